"""Topic 5: a Siamese CNN with contrastive loss on MNIST pairs; verification accuracy.

  ycng run topic5/contrastive_mnist [--workdir DIR] [--config.num_epochs=10]
  ycng run topic5/contrastive_mnist --config.dataset=fashion_mnist --config.train_examples=20000

One tower (Conv32-Conv64-Dense128 -> 64-d, L2-normalised) embeds both images of a pair;
contrastive loss (Hadsell et al. 2006) with margin 1 on balanced, seeded pairs (a new partner
for every anchor each epoch). Test pairs (balanced, seeded) are judged same/different by a
distance threshold chosen on validation pairs; raw-pixel distance is the baseline.
Runner: ycng_jax.vision.siamese_experiment.
"""

from ycng_jax.vision.siamese_experiment import base_config


def get_config():
  config = base_config()
  config.dataset = "mnist"
  config.loss = "contrastive"
  config.margin = 1.0
  config.batch_size = 128
  config.num_epochs = 10
  config.optimizer.learning_rate = 1e-3
  return config

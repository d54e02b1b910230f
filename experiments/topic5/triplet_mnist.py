"""Topic 5: a Siamese CNN with triplet loss and online semi-hard (or batch-hard) mining on MNIST.

  ycng run topic5/triplet_mnist [--workdir DIR] [--config.loss=batch_hard]
  ycng run topic5/triplet_mnist --config.dataset=fashion_mnist --config.train_examples=20000

Batches of P=10 classes x K=16 examples so every anchor has positives; per-anchor triplet
loss with margin 0.5 on L2-normalised 64-d embeddings. `config.loss` switches the mining:
`semi_hard` (FaceNet, the default) or `batch_hard` (farthest positive, nearest negative).
From scratch, batch-hard mining collapses the embeddings to nearly one point here (all
distances ~0.01, loss stuck at the margin: the collapse Xuan et al., ECCV 2020, describe for
hardest-negative mining); the ranking survives, so its verification accuracy stays high but
below semi-hard's. Evaluated like topic5/contrastive_mnist. Runner:
ycng_jax.vision.siamese_experiment.
"""

from ycng_jax.vision.siamese_experiment import base_config


def get_config():
  config = base_config()
  config.dataset = "mnist"
  config.loss = "semi_hard"
  config.margin = 0.5
  config.classes_per_batch = 10
  config.examples_per_class = 16
  config.num_epochs = 10
  config.optimizer.learning_rate = 1e-3
  return config

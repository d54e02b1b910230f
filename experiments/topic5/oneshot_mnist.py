"""Topic 5: one-shot 5-way classification of digits 5-9 by a tower trained on digits 0-4 only.

  ycng run topic5/oneshot_mnist [--workdir DIR] [--config.loss=contrastive]
  ycng run topic5/oneshot_mnist --config.dataset=fashion_mnist --config.train_examples=20000

The Siamese tower (triplet loss, batch-hard, P=5 classes x K=32) never sees classes 5-9.
1000 seeded episodes on the test images of 5-9: one support image per class, one query;
the query takes the class of the nearest support. Reported beside chance (0.2) and the same
nearest-neighbour rule on raw pixels. Runner: ycng_jax.vision.siamese_experiment.
"""

from ycng_jax.vision.siamese_experiment import base_config


def get_config():
  config = base_config()
  config.dataset = "mnist"
  config.train_classes = (0, 1, 2, 3, 4)
  config.one_shot_classes = (5, 6, 7, 8, 9)
  config.loss = "batch_hard"
  config.margin = 0.5
  config.classes_per_batch = 5
  config.examples_per_class = 32
  config.num_epochs = 10
  config.n_way = 5
  config.num_episodes = 1000
  return config

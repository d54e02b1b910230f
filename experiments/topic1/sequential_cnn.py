"""Topic 1: a Sequential CNN on Fashion-MNIST (>= 91% test accuracy).

  ycng run topic1/sequential_cnn [--workdir DIR] [--config.num_epochs=12]

Conv(32)-BN-ReLU-pool-dropout(0.1), Conv(64)-BN-ReLU-pool-dropout(0.1), Dense(128)-dropout(0.2); Adam with a cosine
schedule, 10% of train held out for validation. Shared runner: ycng_jax.train.classification.
"""

from ycng_jax.train.classification import base_config


def get_config():
  config = base_config()
  config.dataset = "fashion_mnist"
  config.model.name = "ycng_jax.models.cnn:CNN"
  config.model.kwargs.features = (32, 64)
  config.model.kwargs.convs_per_block = 1
  config.model.kwargs.dense = 128
  config.model.kwargs.dropout = 0.1
  config.model.kwargs.batch_norm = True
  config.batch_size = 128
  config.num_epochs = 8
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 2e-3
  config.optimizer.schedule = "cosine"
  return config

"""Topic 1: a Sequential MLP on Fashion-MNIST (>= 88% test accuracy).

  ycng run topic1/sequential_mlp [--workdir DIR] [--config.num_epochs=20]

Flatten, Dense(512)-ReLU-Dropout, Dense(256)-ReLU-Dropout, Dense(10); Adam with a cosine
schedule, 10% of train held out for validation. Shared runner: ycng_jax.train.classification.
"""

from ycng_jax.train.classification import base_config


def get_config():
  config = base_config()
  config.dataset = "fashion_mnist"
  config.model.name = "ycng_jax.models.mlp:MLP"
  config.model.kwargs.hidden = (512, 256)
  config.model.kwargs.dropout = 0.2
  config.batch_size = 128
  config.num_epochs = 20
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-3
  config.optimizer.schedule = "cosine"
  return config

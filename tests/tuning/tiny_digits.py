"""A tiny experiment for the tuner's tests: an MLP on scikit-learn's digits, seconds per trial.

  ycng tune tests/tuning/tiny_digits.py --algorithm random --trials 3 --study-dir DIR
"""

from ycng_jax.train.classification import base_config
from ycng_jax.tuning import space as hp


def get_config():
  config = base_config()
  config.dataset = "digits"
  config.model.name = "ycng_jax.models.mlp:MLP"
  config.model.kwargs.hidden = (32,)
  config.model.kwargs.dropout = 0.0
  config.train_examples = 600
  config.test_examples = 200
  config.batch_size = 64
  config.eval_batch_size = 256
  config.num_epochs = 2
  config.num_devices = 1
  config.optimizer.learning_rate = 3e-3
  config.tensorboard = False
  config.verbose = 0
  config.log_every_steps = 100
  return config


def get_search_space():
  return hp.SearchSpace([
      hp.Float("optimizer.learning_rate", 1e-3, 1e-2, sampling="log"),
      hp.Choice("model.kwargs.hidden", [(16,), (32,)]),
      hp.Choice("optimizer.name", ["adam", "sgd"]),
      hp.Float("optimizer.kwargs.momentum", 0.0, 0.9, step=0.45,
               parent_name="optimizer.name", parent_values=["sgd"]),
  ])

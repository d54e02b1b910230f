"""Quick start: an MLP on scikit-learn's 8x8 digits on the shared trainer (~0.98 test accuracy).

  ycng run quickstart/mlp_digits [--workdir DIR] [--config.num_epochs=30]

The data ship with scikit-learn, so this runs on any fresh install in well under a minute
on a laptop CPU. It is a config only: the shared runner (ycng_jax.train.classification)
loads the data, builds the model and calls the trainer's ``fit``, with a progress bar per
epoch, 10% of train held out for val_* metrics, checkpoints (run it again after a crash and
it resumes), and metrics.jsonl, history.csv, curves.png and results.json in the workdir,
like every topic's experiments.
"""

from ycng_jax.train.classification import base_config


def get_config():
  config = base_config()
  config.dataset = "digits"
  config.model.name = "ycng_jax.models.mlp:MLP"
  config.model.kwargs.hidden = (256, 128)
  config.model.kwargs.dropout = 0.1
  config.batch_size = 64
  config.num_epochs = 40
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 2e-3
  return config

"""Topic 9: tune a Fashion-MNIST CNN (filters, dense units, dropout, learning rate) with ycng tune.

  ycng tune topic9/fashion_cnn --algorithm hyperband --trials 30 --study-dir studies/fashion_cnn
  ycng tune topic9/fashion_cnn --algorithm random --trials 12 --config.num_epochs=2
  ycng run studies/fashion_cnn/best_config.py          # the best trial's config, trained again

The model is topic 1's Sequential CNN, with its dropout masks drawn from hashed bits
(``hashed_dropout``: the same rates, a train step that compiles in about half the time, a large
share of a short trial on a CPU). The search space (``get_search_space``) is the one of the
course's KerasTuner notebook: the filters of the two conv blocks, the dense layer's units, the
dropout rate and Adam's learning rate (log-uniform). Trials train on the first 10,000 training
images (10% of them held out for ``val_accuracy``, the objective) for at most 4 epochs, the
resource of Hyperband; a quick try: ``--trials 4 --config.train_examples=2000
--config.num_epochs=2``. The algorithms: random, bayes (TPE), bayes-gp, hyperband,
successive-halving, and grid (which needs every parameter discrete: it stops with an error
naming the log-uniform learning rate here).
"""

from ycng_jax import experiments
from ycng_jax.tuning import space as hp


def get_config():
  """Topic 1's Sequential CNN, on a tuning budget: 10k images, at most 4 epochs, constant lr."""
  config = experiments.load_module("topic1/sequential_cnn").get_config()
  config.train_examples = 10_000
  config.num_epochs = 4
  config.optimizer.schedule = "constant"
  config.model.kwargs.hashed_dropout = True  # each new network compiles its train step
  config.tensorboard = False
  return config


def get_search_space():
  return hp.SearchSpace([
      hp.Choice("model.kwargs.features", [(16, 32), (32, 64), (64, 128)]),
      hp.Int("model.kwargs.dense", 64, 256, step=64),
      hp.Float("model.kwargs.dropout", 0.0, 0.5, step=0.1),
      hp.Float("optimizer.learning_rate", 1e-4, 1e-2, sampling="log"),
  ])

"""Topic 9: random search + successive halving as one population of 16 MLPs on Fashion-MNIST.

  ycng run topic9/population_fashion_mnist [--workdir DIR] [--config.population=32]

16 trials (learning rate 1e-4..1e-2 and weight decay 1e-5..1e-1 log-uniform, dropout 0..0.5,
seeds 0..15) train together in one compiled program (jax.vmap over the hyperparameters, the
population sharded over the devices). Rungs judge validation accuracy (10% of train held
out) after 1, 2 and 4 epochs and keep the best half: 16 -> 8 -> 4 members. Writes results.json,
results.md, population.png (objective per member per rung) and best_config.py (`ycng run
WORKDIR/best_config.py` trains the best trial alone). A few minutes on 2 CPU cores.
Runner: ycng_jax.tuning.population_search (docs/tuning_populations.md).
"""

from ycng_jax.tuning.population_search import base_config


def get_config():
  config = base_config()
  config.dataset = "fashion_mnist"
  config.model.name = "ycng_jax.models.mlp:MLP"
  config.model.kwargs.hidden = (256, 128)
  config.batch_size = 128
  config.population = 16
  config.rung_epochs = (1, 2, 4)
  config.eta = 2
  config.search.learning_rate = (1e-4, 1e-2)
  config.search.weight_decay = (1e-5, 1e-1)
  config.search.dropout = (0.0, 0.5)
  return config

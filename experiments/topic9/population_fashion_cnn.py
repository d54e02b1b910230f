"""Topic 9: successive halving over 16 Fashion-MNIST CNNs trained together as one population.

  ycng run topic9/population_fashion_cnn [--workdir DIR] [--config.population=32]

topic9/fashion_cnn's network at one architecture (filters (32, 64), one conv a block, 128
units, BatchNorm, hashed dropout masks) with Adam's learning rate (1e-4..1e-2, log-uniform) and
the dropout rate (0..0.5) drawn for 16 members, seeds 0..15, trained in one compiled program
(jax.vmap over the hyperparameters, the population sharded over the devices) on the first
10,000 training images (10% held out for val_accuracy). Rungs after 1, 2 and 4 epochs keep the
best half: 16 -> 8 -> 4. The convolutions are PatchConv (im2col and one matmul), which vmaps to
batched matmuls: nn.Conv would become a grouped convolution that XLA:CPU runs 2.5-3x slower
per member (on a GPU, where grouped convolutions run well, add
--config.model.kwargs.patch_convs=False). About 3 minutes on 2 CPU cores, 2 with
LD_PRELOAD=libtcmalloc_minimal.so.4 (docs/training.md). Writes results.json,
results.md, population.png and best_config.py (`ycng run WORKDIR/best_config.py` trains the
best member alone).
Runner: ycng_jax.tuning.population_search (docs/tuning_populations.md).
"""

from ycng_jax.tuning.population_search import base_config


def get_config():
  config = base_config()
  config.dataset = "fashion_mnist"
  config.train_examples = 10_000
  config.model.name = "ycng_jax.models.cnn:CNN"
  config.model.kwargs.features = (32, 64)
  config.model.kwargs.convs_per_block = 1
  config.model.kwargs.dense = 128
  config.model.kwargs.batch_norm = True
  config.model.kwargs.hashed_dropout = True
  config.model.kwargs.patch_convs = True
  config.optimizer = "adamw"
  config.population = 16
  config.rung_epochs = (1, 2, 4)
  config.eta = 2
  config.search.learning_rate = (1e-4, 1e-2)
  config.search.weight_decay = (0.0, 0.0)  # Adam, as topic9/fashion_cnn
  config.search.dropout = (0.0, 0.5)
  config.search.log = ("learning_rate",)
  return config

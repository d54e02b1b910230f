"""DEC and IDEC on Fashion-MNIST (all 70k images), with k-means and autoencoder + k-means baselines.

  ycng run clustering/dec_fashion_mnist [--workdir DIR] [--config.seeds="(0,)"] [--config.pretrain_epochs=20]

Same method and hyperparameters as clustering/dec_mnist (DEC-keras's): 784-500-500-2000-10
autoencoder, Adam pretraining, k-means x 20 on the embedding, SGD (0.01, momentum 0.9) on
KL(P||Q), target every 140 iterations, tol 0.1%; IDEC with gamma 0.1. Writes metrics.jsonl,
results.json, embedding.png and clusters.png. Published target (DEC-keras, 10-run mean):
accuracy 0.62, NMI 0.65.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.runner = "ycng_jax.cluster.experiment:run"
  config.dataset = "fashion_mnist"
  config.limit = 0  # 0: every image; N: a fixed random subset of N (for a quick look)
  config.n_clusters = 10
  config.seeds = (0, 1, 2)
  # Autoencoder and its pretraining.
  config.hidden_dims = (500, 500, 2000, 10)
  config.pretrain_epochs = 100  # 70k images: as many steps as 700 epochs of 10k
  config.pretrain_batch_size = 256
  config.pretrain_learning_rate = 1e-3
  config.greedy_epochs = 0  # > 0: the paper's greedy layer-wise denoising pretraining first
  config.greedy_dropout = 0.2
  # Clustering.
  config.kmeans_n_init = 20
  config.alpha = 1.0
  config.batch_size = 256
  config.max_iter = 20_000
  config.update_interval = 140
  config.tol = 1e-3
  config.optimizer = "sgd"
  config.learning_rate = 0.01
  config.momentum = 0.9
  config.idec = True
  config.gamma = 0.1
  config.verbose = True
  return config

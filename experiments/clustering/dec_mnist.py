"""DEC and IDEC on MNIST (10k real digits), with k-means and autoencoder + k-means baselines.

  ycng run clustering/dec_mnist [--workdir DIR] [--config.seeds="(0,)"] [--config.pretrain_epochs=50]

Hyperparameters follow DEC-keras (Guo's reference implementation of Xie et al. 2016):
a 784-500-500-2000-10 autoencoder pretrained end to end with Adam, k-means with 20
restarts on the embedding, SGD (lr 0.01, momentum 0.9) on KL(P||Q) with the target
updated every 140 iterations, stopping when < 0.1% of labels change. IDEC keeps the
reconstruction loss (MSE + 0.1 KL). Writes metrics.jsonl, results.json (mean and spread
over seeds), embedding.png and clusters.png to the workdir. Published targets: DEC-keras
accuracy 0.91 / NMI 0.87 on the 70k MNIST; the paper's 0.843.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.runner = "ycng_jax.cluster.experiment:run"
  config.dataset = "mnist"
  config.limit = 0  # 0: every image; N: a fixed random subset of N (for a quick look)
  config.n_clusters = 10
  config.seeds = (0, 1, 2)
  # Autoencoder and its pretraining.
  config.hidden_dims = (500, 500, 2000, 10)
  config.pretrain_epochs = 200
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

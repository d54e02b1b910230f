"""DEC and IDEC on Fashion-MNIST (all 70k images), with k-means and autoencoder + k-means baselines.

  ycng run clustering/dec_fashion_mnist [--workdir DIR] [--config.seeds="(0,)"] [--config.pretrain_epochs=10]

Same method and hyperparameters as clustering/dec_mnist (DEC-keras's): 784-500-500-2000-10
autoencoder, Adam pretraining, k-means x 20 on the embedding, SGD (0.01, momentum 0.9) on
KL(P||Q), target every 140 iterations, tol 0.1%; IDEC with gamma 0.1. Writes metrics.jsonl,
results.json, embedding.png and clusters.png. Published target (DEC-keras, 10-run mean):
accuracy 0.62, NMI 0.65.
"""

from ycng_jax.cluster import experiment


def get_config():
  config = experiment.base_config()
  config.dataset = "fashion_mnist"
  config.pretrain_epochs = 40  # 70k images: 11k Adam steps, more than 200 epochs of 10k
  return config

"""DEC with data augmentation (DEC-DA, Guo et al. 2018) on MNIST (10k real digits).

  ycng run clustering/dec_da_mnist [--workdir DIR] [--config.seeds="(0,)"]

The recipe of clustering/dec_mnist (DEC-keras's hyperparameters, 784-500-500-2000-10
autoencoder, 200 Adam epochs, k-means x 20, SGD on KL(P||Q), target every 140 iterations),
plus one change: every pretraining and clustering batch is randomly rotated (up to 10 degrees)
and shifted (up to 10% of the height and width) on the device, while the targets P come from
the clean digits (``ycng_jax.vision.augment``). On 10k digits the plain autoencoder's
embedding is what limits DEC (docs/clustering.md); augmentation teaches it that a shifted or
tilted digit is the same digit. IDEC is off: its augmented phase costs 3x DEC's and the paper's
targets are DEC's. Writes the same table and figures as clustering/dec_mnist.
"""

from ycng_jax.cluster import experiment


def get_config():
  config = experiment.base_config()
  config.augment = True
  config.idec = False
  return config

"""DEC and IDEC on MNIST (10k real digits), with k-means and autoencoder + k-means baselines.

  ycng run clustering/dec_mnist [--workdir DIR] [--config.seeds="(0,)"] [--config.pretrain_epochs=50]

Hyperparameters follow DEC-keras (Guo's reference implementation of Xie et al. 2016) but
for the pretraining optimiser: a 784-500-500-2000-10 autoencoder pretrained end to end with
Adam (DEC-keras uses SGD at learning rate 1, momentum 0.9, for 300 epochs:
``--config.pretrain_optimizer=sgd --config.pretrain_learning_rate=1``), k-means with 20
restarts on the embedding, SGD (lr 0.01, momentum 0.9) on KL(P||Q) with the target
updated every 140 iterations, stopping when < 0.1% of labels change. IDEC keeps the
reconstruction loss (MSE + 0.1 KL). Writes metrics.jsonl, results.json (mean and spread
over seeds), embedding.png and clusters.png to the workdir. Published targets: DEC-keras
accuracy 0.91 / NMI 0.87 on the 70k MNIST; the paper's 0.843.
"""

from ycng_jax.cluster import experiment


def get_config():
  return experiment.base_config()  # dataset "mnist", 200 pretraining epochs

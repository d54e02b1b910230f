"""Bi-encoder on Debian package synopses: all-MiniLM-L6-v2 fine-tuned with in-batch negatives.

  ycng run topic6/debian_synopses_bi_encoder [--workdir DIR] [--config.limit=2000]

Trains the sentence-transformers tower (mean pooling, unit vectors) on the (synopsis, long
description) pairs of the training packages with MultipleNegativesRankingLoss, every other pair
of the global batch (over all devices) a negative, and saves it as a sentence-transformers
folder (WORKDIR/model). On the held-out source packages, the frozen and the fine-tuned encoder
are compared on the pair task (cosine with a threshold tuned on validation: accuracy, F1, ROC
AUC) and on retrieval (each synopsis ranks the long descriptions of all held-out packages:
recall@1, recall@10). A killed run resumes with the same command.
"""

from ycng_jax.text import biencoder_experiment


def get_config():
  return biencoder_experiment.base_config()

"""Semantic similarity at scale on 30k Debian package descriptions (debtags), with MiniLM.

  ycng run topic10/debtags_similarity [--workdir DIR] [--config.limit=5000]

Embeds the corpus to disk (resumable after a kill), indexes it, answers sample queries, finds
near-duplicate descriptions, maps the topics with k-means, and compares the tags a package
shares with its 10 nearest neighbours: sentence embeddings vs TF-IDF vs random.
"""

from ycng_jax.text import similarity_experiment


def get_config():
  return similarity_experiment.base_config()

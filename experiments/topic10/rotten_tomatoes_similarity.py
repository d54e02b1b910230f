"""Semantic similarity at scale on 14k Rotten Tomatoes snippets, with MiniLM.

  ycng run topic10/rotten_tomatoes_similarity [--workdir DIR]

Embedding to disk (resumable), semantic search, near-duplicates and a topic map.
"""

from ycng_jax.text import similarity_experiment


def get_config():
  config = similarity_experiment.base_config()
  config.dataset = "rotten_tomatoes"
  config.duplicate_threshold = 0.9
  config.num_topics = 12
  config.queries = ("a funny film about a dog", "a slow, boring drama", "space aliens attack")
  return config

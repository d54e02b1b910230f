"""Similarity search: one ``Index`` API over sharded XLA kNN kernels and faiss."""

from ycng_jax.search.index import BACKENDS, Index
from ycng_jax.search.storage import IndexFormatError

__all__ = ["BACKENDS", "Index", "IndexFormatError"]

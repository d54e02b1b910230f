"""Clustering: k-means as a sharded XLA program, DEC / IDEC, and clustering metrics."""

from ycng_jax.cluster import metrics
from ycng_jax.cluster.dec import DEC
from ycng_jax.cluster.kmeans import KMeans, KMeansResult, assign, kmeans

__all__ = ["DEC", "KMeans", "KMeansResult", "assign", "kmeans", "metrics"]

"""N2D: cluster an autoencoder's embedding on its UMAP manifold (McConville et al. 2019).

k-means on an autoencoder's embedding cuts it into convex cells around centres. Clusters of
real images are rarely convex there: on Fashion-MNIST, shirts, T-shirts, pullovers and coats
form long, touching shapes. N2D ("not too deep" clustering) first learns the embedding's
manifold with UMAP (umap-learn), into as many dimensions as clusters, and fits a Gaussian
mixture there. ``DEC(init="n2d")`` starts DEC from these clusters instead of k-means.

  labels, manifold = umap_gmm(z, n_clusters=10, n_neighbors=20, seed=0)

``umap_project`` is the UMAP step alone; the topic maps of ``ycng_jax.text.topic_map`` use it too.
"""

from __future__ import annotations

import numpy as np


def umap_gmm(z, n_clusters: int, *, n_neighbors: int = 20, n_components: int | None = None,
             min_dist: float = 0.0, seed: int = 0,
             verbose: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """UMAP of ``z`` to ``n_components`` (default: ``n_clusters``) dims, then a full-covariance
  Gaussian mixture; returns the int32 labels and the UMAP coordinates.

  N2D's settings: ``min_dist=0`` packs each cluster tightly; ``n_neighbors`` sets how local
  the manifold is (N2D's ``run.sh`` uses 20, with 10 dimensions, for MNIST and Fashion-MNIST).
  """
  z = np.asarray(z, np.float32)
  if z.ndim != 2:
    raise ValueError(f"umap_gmm expects a 2-D array (samples, features), got shape {z.shape}.")
  if not np.all(np.isfinite(z)):
    raise ValueError("umap_gmm got NaN or infinite values in the embedding; a diverged "
                     "autoencoder produces them: retrain it with a lower learning rate.")
  if n_clusters < 2 or z.shape[0] <= max(n_neighbors, n_clusters):
    raise ValueError(
        f"umap_gmm needs n_clusters >= 2 and more samples ({z.shape[0]}) than n_neighbors "
        f"({n_neighbors}) and n_clusters ({n_clusters}); lower n_neighbors for small data.")
  from sklearn.mixture import GaussianMixture  # pylint: disable=import-outside-toplevel

  manifold = umap_project(z, n_components or n_clusters, n_neighbors=n_neighbors,
                          min_dist=min_dist, seed=seed, verbose=verbose)
  gmm = GaussianMixture(n_clusters, covariance_type="full", random_state=seed).fit(manifold)
  return gmm.predict(manifold).astype(np.int32), manifold


def umap_project(x, n_components: int, *, n_neighbors: int = 15, min_dist: float = 0.1,
                 metric: str = "euclidean", n_epochs: int | None = None, seed: int = 0,
                 verbose: bool = False) -> np.ndarray:
  """UMAP of the rows of ``x`` into ``n_components`` dims, seeded: (N, n_components) float32.

  ``n_epochs`` None lets UMAP choose (200 above 10k rows, 500 below); tests pass a few.
  """
  try:
    import umap  # pylint: disable=import-outside-toplevel  (numba's import costs seconds)
  except ImportError as err:
    raise ImportError("UMAP needs umap-learn: pip install 'umap-learn>=0.5.12'.") from err
  reducer = umap.UMAP(n_components=n_components, n_neighbors=n_neighbors, min_dist=min_dist,
                      metric=metric, n_epochs=n_epochs, random_state=seed,
                      n_jobs=1, verbose=verbose)  # a fixed seed runs single-threaded anyway
  return reducer.fit_transform(np.asarray(x, np.float32)).astype(np.float32)


def centers_from_labels(z, labels, n_clusters: int) -> np.ndarray:
  """The mean of ``z`` over each cluster's members: (n_clusters, dim) float32."""
  z = np.asarray(z, np.float32)
  labels = np.asarray(labels)
  if labels.shape != (z.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"init labels must be {z.shape[0]} integers (one per sample), got "
                     f"{labels.dtype} of shape {labels.shape}.")
  if labels.min() < 0 or labels.max() >= n_clusters:
    raise ValueError(f"init labels must lie in 0..{n_clusters - 1}, got {labels.min()}.."
                     f"{labels.max()}.")
  counts = np.bincount(labels, minlength=n_clusters)
  if np.any(counts == 0):
    raise ValueError(f"init labels leave clusters {np.flatnonzero(counts == 0).tolist()} empty; "
                     "every cluster needs at least one member to place its centre.")
  sums = np.zeros((n_clusters, z.shape[1]), np.float64)
  np.add.at(sums, labels, z)
  return (sums / counts[:, None]).astype(np.float32)

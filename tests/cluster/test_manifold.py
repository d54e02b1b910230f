"""N2D (UMAP + Gaussian mixture) and DEC started from given clusters, on scikit-learn's digits.

The N2D experiment's end-to-end test is here too, not in tests/cluster/test_experiment.py:
numba compiles UMAP once a process (~15 CPU-s), so UMAP's users share one file.
"""

import json

import numpy as np
import pytest
from sklearn.datasets import load_digits

from ycng_jax import experiments
from ycng_jax.cluster import DEC, metrics
from ycng_jax.cluster.manifold import centers_from_labels, umap_gmm


@pytest.fixture(scope="module")
def digits():
  data = load_digits()
  return (data.data / 16.0).astype(np.float32), data.target


def test_umap_gmm_separates_digits(digits):
  x, y = digits
  labels, manifold = umap_gmm(x, 10, n_neighbors=15, seed=0)
  assert labels.dtype == np.int32 and labels.shape == (len(x),)
  assert manifold.shape == (len(x), 10) and np.all(np.isfinite(manifold))
  # On the 64 raw pixels our k-means reaches ~0.79 (tests/cluster/test_dec.py); the manifold
  # separates the digits far better.
  assert metrics.cluster_accuracy(y, labels) > 0.85


def _same_label_as_nearest(xy, y):
  distances = ((xy[:, None] - xy[None]) ** 2).sum(-1)
  np.fill_diagonal(distances, np.inf)
  return float((y[distances.argmin(1)] == y).mean())


def test_topic_map_umap_projection_keeps_clusters_apart(digits):
  # In this file because numba has compiled UMAP for the test above in this process already.
  from ycng_jax.errors import UserError
  from ycng_jax.text.topic_map import project_2d
  x, y = digits[0][:500], digits[1][:500]
  xy = project_2d(x, method="umap", n_neighbors=10, n_epochs=50, seed=0)
  assert xy.shape == (500, 2) and xy.dtype == np.float32 and np.all(np.isfinite(xy))
  np.testing.assert_array_equal(project_2d(x, n_neighbors=10, n_epochs=50, seed=0), xy)
  # UMAP keeps neighbourhoods: a point's nearest neighbour in 2-D is nearly always the same digit,
  # far more often than on PCA's linear projection, which piles the clusters on one another.
  umap_agreement = _same_label_as_nearest(xy, y)
  pca_agreement = _same_label_as_nearest(project_2d(x, method="pca"), y)
  assert umap_agreement > 0.9 and umap_agreement > pca_agreement + 0.2, (
      umap_agreement, pca_agreement)
  with pytest.raises(UserError, match=r"one of \['umap', 'pca'\], got 'tsne'"):
    project_2d(x, method="tsne")


def test_umap_gmm_errors():
  with pytest.raises(ValueError, match="2-D"):
    umap_gmm(np.zeros(10), 2)
  with pytest.raises(ValueError, match="NaN or infinite"):
    umap_gmm(np.full((30, 3), np.nan), 2, n_neighbors=5)
  with pytest.raises(ValueError, match="n_neighbors"):
    umap_gmm(np.zeros((10, 3)), 2, n_neighbors=15)


def test_centers_from_labels_are_cluster_means():
  z = np.arange(12, dtype=np.float32).reshape(6, 2)
  labels = np.array([0, 1, 0, 2, 1, 2])
  centers = centers_from_labels(z, labels, 3)
  np.testing.assert_allclose(centers, [z[[0, 2]].mean(0), z[[1, 4]].mean(0), z[[3, 5]].mean(0)])
  with pytest.raises(ValueError, match="one per sample"):
    centers_from_labels(z, labels[:5], 3)
  with pytest.raises(ValueError, match="one per sample"):
    centers_from_labels(z, labels.astype(np.float32), 3)
  with pytest.raises(ValueError, match=r"0\.\.2"):
    centers_from_labels(z, np.array([0, 1, 0, 3, 1, 2]), 3)
  with pytest.raises(ValueError, match=r"\[2\] empty"):
    centers_from_labels(z, np.array([0, 1, 0, 1, 1, 0]), 3)


SMALL = dict(hidden_dims=(64, 10), pretrain_epochs=3, pretrain_batch_size=64, batch_size=64,
             update_interval=5, kmeans_n_init=2)


def test_dec_starts_from_n2d_clusters(digits):
  # The N2D experiment's 400 rows (test below): UMAP runs twice here, and the embedding's
  # k-means program is the experiment's. 20 pretraining epochs (140 steps, SMALL's 3 on all
  # rows are 87): N2D's accuracy 0.76, against 0.55 on all rows after 3 epochs.
  x, y = digits[0][:400], digits[1][:400]
  # max_iter=0: no clustering step, so the centres are exactly where DEC starts.
  dec = DEC(10, seed=0, max_iter=0, init="n2d", n2d_neighbors=15,
            **{**SMALL, "pretrain_epochs": 20}).fit(x)
  z = dec.transform(x)
  expected, _ = umap_gmm(z, 10, n_neighbors=15, seed=0)
  np.testing.assert_array_equal(dec.init_labels_, expected)
  np.testing.assert_allclose(dec.cluster_centers_, centers_from_labels(z, expected, 10),
                             rtol=1e-5, atol=1e-5)
  assert dec.timings_["n2d_s"] > 0
  assert not np.array_equal(dec.init_labels_, dec.kmeans_labels_)  # not k-means' start
  assert metrics.cluster_accuracy(y, dec.init_labels_) > 0.5


def test_fit_from_given_labels_and_bad_init(digits):
  x, y = digits
  first = DEC(10, seed=0, max_iter=0, **SMALL).fit(x)
  np.testing.assert_array_equal(first.init_labels_, first.kmeans_labels_)
  # Start a second model on the same autoencoder from the true classes: its centres are the
  # class means in the embedding, and its labels follow the classes closely.
  second = DEC(10, seed=0, max_iter=0, **SMALL).fit(
      x, autoencoder_params=first.autoencoder_params_, init_labels=y)
  z = second.transform(x)
  np.testing.assert_allclose(second.cluster_centers_, centers_from_labels(z, y, 10),
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(second.init_labels_, y)
  assert metrics.cluster_accuracy(y, second.labels_) > metrics.cluster_accuracy(
      y, first.labels_)
  with pytest.raises(ValueError, match="one per sample"):
    DEC(10, seed=0, max_iter=0, **SMALL).fit(
        x, autoencoder_params=first.autoencoder_params_, init_labels=y[:-1])
  with pytest.raises(ValueError, match="init must be"):
    DEC(10, init="spectral")


def test_n2d_experiment_adds_the_manifold_row(tmp_path):
  # The autoencoder and batch sizes of SMALL: DEC's pretraining and clustering steps compiled
  # by the tests above serve this run too.
  overrides = {"dataset": "digits", "limit": "400", "seeds": "(0,)", "hidden_dims": "(64, 10)",
               "pretrain_epochs": "2", "pretrain_batch_size": "64", "batch_size": "64",
               "max_iter": "5", "update_interval": "5", "kmeans_n_init": "2",
               "n2d_neighbors": "10", "idec": "True", "verbose": "False"}
  result = experiments.run("clustering/n2d_fashion_mnist", tmp_path, overrides)
  for method in ("kmeans_pixels", "autoencoder_kmeans", "autoencoder_umap_gmm", "dec", "idec"):
    assert 0.0 < result[f"{method}_acc_mean"] <= 1.0
  saved = json.loads((tmp_path / "seed_0.json").read_text())
  assert saved["settings"]["init"] == "n2d" and saved["settings"]["dataset"] == "digits"
  # Even on a 2-epoch autoencoder N2D is well above chance (~0.13 for random labels here).
  assert {r["method"]: r["acc"] for r in saved["rows"]}["autoencoder_umap_gmm"] > 0.25

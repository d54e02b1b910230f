"""k-means on 8 simulated devices: agreement with scikit-learn, sharding invariance, errors."""

import jax
import numpy as np
import pytest
from sklearn.cluster import KMeans as SkKMeans
from sklearn.datasets import load_digits, make_blobs

from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score

from ycng_jax.cluster import KMeans, assign, kmeans
from ycng_jax.checks import seed_key
from ycng_jax.cluster.kmeans import block_layout
from ycng_jax.train.mesh import make_mesh


def numpy_inertia(x, centers):
  d2 = ((x[:, None, :].astype(np.float64) - centers[None].astype(np.float64)) ** 2).sum(-1)
  return d2.min(1).sum(), d2.argmin(1)


@pytest.fixture(scope="module")
def blobs():
  # 1003 rows: not a multiple of 8, so the last shard carries padding.
  x, _ = make_blobs(n_samples=1003, n_features=5, centers=7, cluster_std=1.5, random_state=0)
  return x.astype(np.float32)


@pytest.fixture(scope="module")
def digits():
  return load_digits().data.astype(np.float32)


# Every test reuses these two compiled programs (k=7 / k=10, n_init=4, max_iter=300)
# where it can: compiling dominates the run time of this file.
@pytest.fixture(scope="module")
def blobs_model(blobs):
  return KMeans(7, n_init=4, seed=0).fit(blobs)


@pytest.fixture(scope="module")
def digits_result(digits):
  return kmeans(jax.random.key(0), digits, 10, n_init=4)


def test_blobs_inertia_matches_sklearn(blobs, blobs_model):
  theirs = SkKMeans(7, n_init=4, random_state=0).fit(blobs)
  assert abs(blobs_model.inertia_ / theirs.inertia_ - 1) < 0.01


def test_digits_inertia_matches_sklearn(digits, digits_result):
  theirs = SkKMeans(10, n_init=4, random_state=0).fit(digits)
  assert abs(digits_result.inertia / theirs.inertia_ - 1) < 0.01


def test_sharded_equals_unsharded(blobs):
  results = [kmeans(jax.random.key(3), blobs, 7, n_init=4, mesh=make_mesh(n))
             for n in (1, 8)]
  one, eight = results
  np.testing.assert_array_equal(one.labels, eight.labels)
  np.testing.assert_allclose(np.asarray(one.centers), np.asarray(eight.centers), rtol=1e-5,
                             atol=1e-5)
  np.testing.assert_allclose(one.inertia, eight.inertia, rtol=1e-5)


def test_fitted_attributes_are_consistent(blobs, blobs_model):
  km = blobs_model
  inertia, labels = numpy_inertia(blobs, km.cluster_centers_)
  assert km.cluster_centers_.shape == (7, 5)
  assert km.labels_.shape == (1003,) and km.labels_.dtype == np.int32
  np.testing.assert_array_equal(km.labels_, labels)  # padding rows never leak into labels
  np.testing.assert_allclose(km.inertia_, inertia, rtol=1e-4)  # nor into the inertia
  np.testing.assert_array_equal(km.predict(blobs[:10]), labels[:10])
  np.testing.assert_allclose(-km.score(blobs), inertia, rtol=1e-4)
  # Each centre is the mean of its points (a Lloyd fixed point, up to tol).
  for j in range(7):
    np.testing.assert_allclose(km.cluster_centers_[j], blobs[labels == j].mean(0), atol=1e-2)


def test_best_restart_is_kept(digits_result):
  result = digits_result
  assert result.all_inertia.shape == (4,)
  assert len(np.unique(result.all_inertia)) > 1  # the restarts really differ
  np.testing.assert_allclose(result.inertia, result.all_inertia.min(), rtol=1e-5)


def test_same_seed_same_result_other_seed_other_result(digits, digits_result):
  again = kmeans(jax.random.key(0), digits, 10, n_init=4)
  other = kmeans(jax.random.key(1), digits, 10, n_init=4)
  np.testing.assert_array_equal(np.asarray(again.centers), np.asarray(digits_result.centers))
  np.testing.assert_array_equal(again.all_inertia, digits_result.all_inertia)
  assert not np.array_equal(other.all_inertia, digits_result.all_inertia)


def test_one_cluster_is_the_mean(blobs):
  x = blobs[:50]
  result = kmeans(jax.random.key(0), x, 1, max_iter=5)
  np.testing.assert_allclose(np.asarray(result.centers)[0], x.mean(0), atol=1e-4)
  assert np.all(result.labels == 0)


def test_assign_uneven_rows(blobs):
  centers = blobs[:4]
  labels, inertia = assign(blobs[:13], centers)
  ref_inertia, ref_labels = numpy_inertia(blobs[:13], centers)
  np.testing.assert_array_equal(labels, ref_labels)
  np.testing.assert_allclose(inertia, ref_inertia, rtol=1e-4)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((5,)), "2-D"),
    (np.full((4, 2), np.nan), "NaN"),
    (np.zeros((3, 2)), "n_clusters=4"),
])
def test_bad_input_is_a_clear_error(bad, match):
  with pytest.raises(ValueError, match=match):
    kmeans(jax.random.key(0), bad, 4)


@pytest.mark.parametrize("scale, offset", [(1e18, 0.0), (1e19, 0.0), (1e-30, 0.0), (1.0, 1e4)])
def test_any_finite_float32_scale_or_offset_gives_the_same_clusters(blobs, blobs_model, scale,
                                                                     offset):
  """Squared distances of huge or tiny data would overflow or underflow float32, and a large
  common offset would eat their digits: the clusters must not change (k and n_init of
  blobs_model, so nothing compiles again)."""
  x = blobs * np.float32(scale) + np.float32(offset)
  km = KMeans(7, n_init=4, seed=0).fit(x)
  assert adjusted_rand_score(blobs_model.labels_, km.labels_) == 1.0  # same up to permutation
  assert np.isfinite(km.inertia_) and np.isfinite(km.cluster_centers_).all()
  np.testing.assert_allclose(km.inertia_, blobs_model.inertia_ * scale**2, rtol=1e-3)
  np.testing.assert_array_equal(km.predict(x), km.labels_)
  np.testing.assert_allclose(-km.score(x), km.inertia_, rtol=1e-3)


def test_seeds_keep_all_64_bits(digits, digits_result):
  # Seeds below 2**32 keep the keys jax.random.key gives them; larger ones are not cut to 32 bits.
  for seed in (0, 5, 2**32 - 1):
    np.testing.assert_array_equal(jax.random.key_data(seed_key(seed)),
                                  jax.random.key_data(jax.random.key(seed)))
  np.testing.assert_array_equal(jax.random.key_data(seed_key(2**32 + 5)), [1, 5])
  big = KMeans(10, n_init=4, seed=2**32).fit(digits)
  assert not np.array_equal(big.cluster_centers_, np.asarray(digits_result.centers))
  with pytest.raises(ValueError, match=r"seed must be an integer in \[-2\*\*63, 2\*\*63\), "
                     "got 18446744073709551616"):
    KMeans(seed=2**64)


def test_fewer_distinct_points_than_clusters_warns():
  x = np.array([[0, 0], [1, 1], [0, 0], [1, 1], [0, 0]], np.float32)
  with pytest.warns(ConvergenceWarning,
                    match=r"Number of distinct clusters \(2\) found smaller than n_clusters \(5\)"):
    km = KMeans(5).fit(x)
  assert len(np.unique(km.labels_)) == 2


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(n_clusters=2.5), TypeError, r"n_clusters must be an integer >= 1, got 2.5 \(float\)"),
    (dict(n_clusters="3"), TypeError, r"n_clusters must be an integer >= 1, got '3' \(str\)"),
    (dict(n_clusters=True), TypeError, "n_clusters must be an integer"),
    (dict(n_clusters=0), ValueError, "n_clusters must be an integer >= 1, got 0"),
    (dict(seed="a"), TypeError, r"seed must be an integer in .*got 'a' \(str\)"),
    (dict(n_init=0), ValueError, "n_init must be an integer >= 1"),
    (dict(max_iter=1.0), TypeError, "max_iter must be an integer"),
    (dict(tol=-1), ValueError, r"tol must be a number in \[0.0, inf\), got -1.0"),
    (dict(tol=float("nan")), ValueError, "tol must be a number"),
    (dict(tol="small"), TypeError, "tol must be a number"),
    (dict(mesh="cpu"), TypeError, "mesh must be a jax.sharding.Mesh"),
])
def test_constructor_checks_types_and_ranges(kwargs, error, match):
  with pytest.raises(error, match=match):
    KMeans(**kwargs)


def test_predict_errors(blobs, blobs_model):
  with pytest.raises(RuntimeError, match="not fitted"):
    KMeans(3).predict(blobs)
  with pytest.raises(ValueError, match="features"):
    blobs_model.predict(blobs[:, :3])


def test_blocked_lloyd_equals_one_block(blobs):
  """Walking each shard in small cache-sized blocks changes nothing but speed."""
  one_block = kmeans(jax.random.key(2), blobs, 7, n_init=4)
  blocked = kmeans(jax.random.key(2), blobs, 7, n_init=4, block_rows=40)
  np.testing.assert_array_equal(one_block.labels, blocked.labels)
  np.testing.assert_allclose(np.asarray(one_block.centers), np.asarray(blocked.centers),
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n, devices, block_rows", [(1003, 8, 40), (70000, 1, 2048),
                                                    (70000, 8, 2048), (10, 8, 2048)])
def test_block_layout_tiles_every_shard(n, devices, block_rows):
  per_device, block = block_layout(n, devices, block_rows)
  assert per_device * devices >= n and per_device % block == 0 and block <= max(block_rows, 8)
  assert per_device * devices - n < devices * (per_device // block) * 8 + devices

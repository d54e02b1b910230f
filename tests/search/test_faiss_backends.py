"""Every faiss backend behind ``Index`` reaches its expected recall@10 on clustered data."""

import faiss
import numpy as np
import pytest
from sklearn.datasets import make_blobs

from ycng_jax.search import Index

# faiss's OpenMP threads spin badly when the CPU is shared with other test
# processes; one thread keeps these tests fast and their timing stable.
faiss.omp_set_num_threads(1)

DIM = 32
BACKENDS = [
    ("faiss-flat", {}, 1.0),
    ("faiss-ivf", {"nlist": 16, "nprobe": 4}, 0.9),
    ("faiss-hnsw", {"M": 16, "ef_search": 64, "ef_construction": 40}, 0.9),
    # 16 sub-quantizers of 6 bits: 12 bytes a vector; measured ~0.7 here.
    ("faiss-ivfpq", {"nlist": 16, "nprobe": 4, "m": 16, "nbits": 6}, 0.6),
]


@pytest.fixture(scope="module")
def blobs():
  points, _ = make_blobs(3100, n_features=DIM, centers=50, cluster_std=2.0, center_box=(-10, 10),
                         random_state=0)
  points = points.astype(np.float32)
  return points[:3000], points[3000:]


def _recall(found, truth):
  return np.mean([len(set(a) & set(b)) / truth.shape[1] for a, b in zip(found, truth)])


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("backend,params,min_recall", BACKENDS, ids=[b[0] for b in BACKENDS])
def test_recall_on_clustered_data(blobs, metric, backend, params, min_recall):
  database, queries = blobs
  _, truth = Index(DIM, metric=metric, backend="exact").add(database).search(queries, 10)
  index = Index(DIM, metric=metric, backend=backend, **params)
  index.add(database[:1000]).add(database[1000:])  # trains on the first add
  scores, ids = index.search(queries, 10)
  assert index.ntotal == 3000 and index.is_trained
  assert scores.dtype == np.float32 and ids.dtype == np.int64 and ids.shape == (100, 10)
  assert _recall(ids, truth) >= min_recall
  # Scores come back in the same order as the exact backend's: similarities
  # descending, squared distances ascending.
  order = np.diff(scores, axis=1)
  assert (order <= 1e-5).all() if metric == "ip" else (order >= -1e-5).all()


def test_flat_scores_equal_exact_kernel(blobs):
  database, queries = blobs
  for metric in ("ip", "l2"):
    exact = Index(DIM, metric=metric, backend="exact").add(database).search(queries, 10)
    flat = Index(DIM, metric=metric, backend="faiss-flat").add(database).search(queries, 10)
    np.testing.assert_array_equal(exact[1], flat[1])
    np.testing.assert_allclose(exact[0], flat[0], rtol=1e-4, atol=1e-2)


def test_explicit_train_then_add(blobs):
  database, queries = blobs
  index = Index(DIM, metric="l2", backend="faiss-ivf", nlist=16, nprobe=16)
  assert not index.is_trained
  index.train(database)
  assert index.is_trained and index.ntotal == 0
  index.add(database[:10])
  _, ids = index.search(database[:10], 1)  # nprobe = nlist: exact
  np.testing.assert_array_equal(ids[:, 0], np.arange(10))


def test_too_few_training_vectors_is_clear(blobs):
  database, _ = blobs
  index = Index(DIM, backend="faiss-ivfpq", nlist=16, m=16, nbits=8)
  with pytest.raises(ValueError, match="at least 256 training vectors"):
    index.add(database[:100])
  with pytest.raises(ValueError, match="m=5 sub-quantizers must divide dim=32"):
    Index(DIM, backend="faiss-ivfpq", m=5)
  with pytest.raises(ValueError, match="nprobe=20 exceeds nlist=16"):
    Index(DIM, backend="faiss-ivf", nlist=16, nprobe=20)


def test_few_training_vectors_warn_in_python_not_on_stderr(blobs, capfd):
  database = blobs[0][:400]  # under 39 per centroid for nlist=16 and for 2**6 PQ centroids
  with pytest.warns(UserWarning, match=r"training 16 centroids \(nlist\) on 400 vectors") as seen:
    Index(DIM, backend="faiss-ivfpq", nlist=16, m=16, nbits=6).add(database)
  assert any("2**nbits" in str(w.message) for w in seen)
  assert seen[0].filename == __file__  # points at the caller's line
  assert "WARNING clustering" not in capfd.readouterr().err  # faiss' own print is off

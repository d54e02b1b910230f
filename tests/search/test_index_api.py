"""``Index`` save/load round trips, the container's checks, and input errors."""

import struct

import faiss
import jax.numpy as jnp
import numpy as np
import pytest

from ycng_jax.search import BACKENDS, Index, IndexFormatError
from ycng_jax.errors import UserError
from ycng_jax.search import storage

faiss.omp_set_num_threads(1)  # see test_faiss_backends.py

DIM = 16
PARAMS = {
    "exact": {"block": 128},
    "approx": {"block": 128, "recall_target": 0.9},
    "faiss-flat": {},
    "faiss-ivf": {"nlist": 8, "nprobe": 3},
    "faiss-hnsw": {"M": 8, "ef_search": 32},
    "faiss-ivfpq": {"nlist": 8, "m": 4, "nbits": 4, "nprobe": 3},
}


@pytest.fixture(scope="module")
def data():
  rng = np.random.default_rng(0)
  return (rng.standard_normal((600, DIM)).astype(np.float32),
          rng.standard_normal((9, DIM)).astype(np.float32))


def test_every_backend_has_round_trip_params():
  assert set(PARAMS) == set(BACKENDS)


@pytest.mark.parametrize("backend", sorted(PARAMS))
def test_save_load_round_trip(tmp_path, data, backend):
  database, queries = data
  metric = "l2" if backend in ("exact", "approx", "faiss-hnsw") else "ip"
  index = Index(DIM, metric=metric, backend=backend, **PARAMS[backend])
  index.add(database[:400]).add(database[400:])
  before = index.search(queries, 5)
  path = tmp_path / "index.ycng"
  index.save(path)
  loaded = Index.load(path)
  assert (loaded.dim, loaded.metric, loaded.backend, loaded.ntotal) == (DIM, metric, backend, 600)
  assert loaded.params == index.params
  after = loaded.search(queries, 5)
  np.testing.assert_array_equal(before[1], after[1])
  np.testing.assert_array_equal(before[0], after[0])
  # A loaded index keeps growing with the next ids, like the original.
  extra = queries[:3] * 3.0
  loaded.add(extra)
  index.add(extra)
  assert loaded.ntotal == 603
  np.testing.assert_array_equal(loaded.search(queries, 5)[1], index.search(queries, 5)[1])
  if backend in ("exact", "approx"):  # exact L2 search finds each new row itself
    _, ids = loaded.search(extra, 1)
    np.testing.assert_array_equal(ids[:, 0], [600, 601, 602])


def test_bfloat16_setting_survives_save(tmp_path, data):
  database, _ = data
  index = Index(DIM, backend="exact", compute_dtype=jnp.bfloat16).add(database)
  index.save(tmp_path / "bf16.ycng")
  assert Index.load(tmp_path / "bf16.ycng").params["compute_dtype"] == "bfloat16"


def _saved(tmp_path, data):
  path = tmp_path / "index.ycng"
  Index(DIM, backend="exact").add(data[0][:50]).save(path)
  return path, path.read_bytes()


def test_truncated_file_is_a_clear_error(tmp_path, data):
  path, raw = _saved(tmp_path, data)
  for cut in (len(raw) - 7, 40, 10):
    path.write_bytes(raw[:cut])
    with pytest.raises(IndexFormatError, match="truncated|not a ycng_jax search index"):
      Index.load(path)


def test_saving_onto_a_directory_or_into_a_missing_one_is_a_clear_error(tmp_path, data):
  index = Index(DIM, backend="faiss-flat").add(data[0][:10])
  with pytest.raises(ValueError, match="is a directory; give a file path, e.g. .*index.ycng"):
    index.save(tmp_path)
  with pytest.raises(FileNotFoundError, match="the directory .*missing.* does not exist"):
    index.save(tmp_path / "missing" / "index.ycng")
  assert sorted(p.name for p in tmp_path.parent.iterdir() if p.name.startswith(tmp_path.name)) == [
      tmp_path.name]  # nothing written next to the directory
  assert list(tmp_path.iterdir()) == []


def test_a_failed_save_leaves_no_temporary_file(tmp_path, data, monkeypatch):
  index = Index(DIM, backend="faiss-flat").add(data[0][:10])

  def disk_full(*args):
    raise OSError(28, "No space left on device")

  # A failure once the temporary file is written (injected: a full disk cannot be made here).
  monkeypatch.setattr(storage.os, "replace", disk_full)
  with pytest.raises(OSError, match="No space left"):
    index.save(tmp_path / "index.ycng")
  assert list(tmp_path.iterdir()) == []


def test_foreign_file_is_a_clear_error(tmp_path):
  path = tmp_path / "weights.npy"
  np.save(path, np.zeros(10))
  with pytest.raises(IndexFormatError, match="not a ycng_jax search index"):
    Index.load(path)
  path.write_bytes(b"")
  with pytest.raises(IndexFormatError, match="not a ycng_jax search index"):
    Index.load(path)


def test_newer_version_and_corruption_are_clear_errors(tmp_path, data):
  path, raw = _saved(tmp_path, data)
  newer = raw[:8] + struct.pack("<I", storage.FORMAT_VERSION + 1) + raw[12:]
  path.write_bytes(newer)
  with pytest.raises(IndexFormatError, match="format version 2"):
    Index.load(path)
  flipped = bytearray(raw)
  flipped[-3] ^= 0xFF
  path.write_bytes(bytes(flipped))
  with pytest.raises(IndexFormatError, match="corrupted"):
    Index.load(path)


def test_input_errors(data):
  database, queries = data
  index = Index(DIM, backend="exact")
  with pytest.raises(ValueError, match="index is empty"):
    index.search(queries, 1)
  with pytest.raises(ValueError, match="dimension 8 but the index was built for dim=16"):
    index.add(database[:, :8])
  with pytest.raises(ValueError, match="must be 2-D"):
    index.add(database[0])
  with pytest.raises(TypeError, match="floating-point"):
    index.add(np.ones((3, DIM), np.int32))
  bad = database[:5].copy()
  bad[3, 2] = np.nan
  with pytest.raises(ValueError, match="NaN or inf in 1 row.*row 3"):
    index.add(bad)
  bad[3, 2] = np.inf
  with pytest.raises(ValueError, match="NaN or inf"):
    index.add(bad)
  assert index.ntotal == 0  # rejected adds leave the index unchanged
  index.add(database[:20])
  with pytest.raises(ValueError, match="k=21 is larger than the index"):
    index.search(queries, 21)
  with pytest.raises(ValueError, match="k must be a positive integer"):
    index.search(queries, 0)
  with pytest.raises(ValueError, match="dimension 4"):
    index.search(queries[:, :4], 3)
  with pytest.raises(ValueError, match="NaN or inf"):
    index.search(np.full((1, DIM), np.nan, np.float32), 3)
  with pytest.raises(TypeError, match="floating-point"):
    index.search(queries.astype(np.int64), 3)
  scores, ids = index.search(queries[:0], 3)
  assert scores.shape == ids.shape == (0, 3)


def test_constructor_errors():
  with pytest.raises(ValueError, match="metric must be one of"):
    Index(DIM, metric="cosine")
  with pytest.raises(ValueError, match="backend must be one of"):
    Index(DIM, backend="annoy")
  with pytest.raises(TypeError, match="takes parameters"):
    Index(DIM, backend="faiss-flat", nprobe=3)
  with pytest.raises(ValueError, match="dim must be a positive integer"):
    Index(0)
  with pytest.raises(UserError, match="compute_dtype"):
    Index(DIM, compute_dtype=jnp.float16)
  with pytest.raises(UserError, match=r"compute_dtype must be one of \('float32', 'bfloat16'\).*"
                     "got 'nosuch'"):
    Index(DIM, compute_dtype="nosuch")
  with pytest.raises(ValueError, match="block must be a positive integer"):
    Index(DIM, block=0)


def test_set_search_params(data):
  database, queries = data
  index = Index(DIM, metric="l2", backend="faiss-ivf", nlist=8, nprobe=1).add(database)
  _, exact_ids = Index(DIM, metric="l2", backend="faiss-flat").add(database).search(queries, 5)
  index.set_search_params(nprobe=8)  # all lists: IVF becomes exhaustive
  assert index.params["nprobe"] == 8
  np.testing.assert_array_equal(index.search(queries, 5)[1], exact_ids)
  with pytest.raises(TypeError, match="can change only"):
    index.set_search_params(nlist=4)
  with pytest.raises(ValueError, match="nprobe=9 exceeds nlist=8"):
    index.set_search_params(nprobe=9)
  assert index.params["nprobe"] == 8
  exact = Index(DIM, backend="exact").add(database)
  exact.set_search_params(query_batch=4)
  np.testing.assert_array_equal(exact.search(queries, 3)[1],
                                Index(DIM, backend="exact").add(database).search(queries, 3)[1])

"""The resumable chunk store behind corpus embeddings and feature extraction."""

import numpy as np
import pytest

from ycng_jax.data import chunk_store


def _rows(start, stop):
  return np.arange(start * 3, stop * 3, dtype=np.float32).reshape(-1, 3)


def test_build_resume_and_repair(tmp_path):
  calls = []

  def compute(start, stop):
    calls.append(start)
    if len(calls) == 3:
      raise KeyboardInterrupt  # killed while computing the third chunk
    return _rows(start, stop)

  with pytest.raises(KeyboardInterrupt):
    chunk_store.build(tmp_path, {"model": "m"}, 10, 4, compute, progress=False)
  assert calls == [0, 4, 8] and not list(tmp_path.glob(".tmp_*"))
  calls.clear()
  manifest = chunk_store.build(tmp_path, {"model": "m"}, 10, 4,
                               lambda a, b: (calls.append(a), _rows(a, b))[1], progress=False)
  assert calls == [8] and manifest["rows"] == 10 and manifest["complete"]
  np.testing.assert_array_equal(chunk_store.load(tmp_path), _rows(0, 10))
  # A damaged chunk is found and computed again.
  (tmp_path / "chunk_000001.npy").write_bytes(b"\x93NUMPY truncated")
  calls.clear()
  chunk_store.build(tmp_path, {"model": "m"}, 10, 4,
                    lambda a, b: (calls.append(a), _rows(a, b))[1], progress=False)
  assert calls == [4]
  np.testing.assert_array_equal(chunk_store.load(tmp_path), _rows(0, 10))
  assert [c.shape for c in chunk_store.iter_chunks(tmp_path)] == [(4, 3), (4, 3), (2, 3)]


def test_other_run_in_same_folder_is_refused(tmp_path):
  chunk_store.build(tmp_path, {"model": "a"}, 4, 2, _rows, progress=False)
  with pytest.raises(ValueError, match="holds the output of another run"):
    chunk_store.build(tmp_path, {"model": "b"}, 4, 2, _rows, progress=False)
  with pytest.raises(FileNotFoundError, match="no finished output"):
    chunk_store.load(tmp_path / "missing")

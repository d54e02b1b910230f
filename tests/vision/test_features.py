"""Chunked, resumable feature extraction: equivalence, kill-and-resume, damaged chunks."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from ycng_jax.train.mesh import make_mesh
from ycng_jax.vision import features as vf

DIM = 6


def tiny_model():
  """A small frozen 'network': enough to check the plumbing, not the backbone."""
  weights = jnp.asarray(np.random.default_rng(0).normal(size=(5 * 4, DIM)), jnp.float32)

  def embed(params, images):
    x = images.astype(jnp.float32).reshape(images.shape[0], -1) / 255.0
    return jnp.tanh(x @ params)

  return vf.FeatureModel(embed, weights, "tiny-test-model")


def expected_features(images):
  model = tiny_model()
  return np.asarray(model.embed(model.params, jnp.asarray(images)))


@pytest.fixture(scope="module")
def images():
  return np.random.default_rng(1).integers(0, 256, size=(77, 5, 4), dtype=np.uint8)


def batches(images, size, fail_after=None):
  """An iterable of uneven batches; raises once ``fail_after`` examples went out."""
  sent = 0
  for start in range(0, len(images), size):
    if fail_after is not None and sent >= fail_after:
      raise RuntimeError("simulated crash")
    batch = images[start:start + size]
    sent += len(batch)
    yield batch, np.zeros(len(batch))  # (images, labels): labels are ignored


def file_stamps(directory):
  return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in directory.glob("chunk_*.npy")}


def test_array_and_iterable_give_the_features_in_order(images, tmp_path):
  # 8 devices: batch 12 -> 16; 77 = 4 full chunks of 16 + 13, last batch padded and masked.
  manifest = vf.extract_features(images, tmp_path / "a", tiny_model(), batch_size=12,
                                 chunk_size=16, progress=False)
  assert manifest["rows"] == 77 and manifest["dim"] == DIM
  assert [c["rows"] for c in manifest["chunks"]] == [16, 16, 16, 16, 13]
  loaded = vf.load_features(tmp_path / "a")
  assert isinstance(loaded, np.memmap) and loaded.dtype == np.float32
  np.testing.assert_allclose(loaded, expected_features(images), rtol=1e-6, atol=1e-6)

  vf.extract_features(batches(images, 7), tmp_path / "b", tiny_model(), batch_size=8,
                      chunk_size=32, mesh=make_mesh(4), progress=False)
  np.testing.assert_array_equal(vf.load_features(tmp_path / "b"), loaded)
  assert sum(len(c) for c in vf.iter_feature_chunks(tmp_path / "b")) == 77


def test_kill_and_resume_equals_a_straight_run(images, tmp_path):
  straight = tmp_path / "straight"
  vf.extract_features(batches(images, 5), straight, tiny_model(), batch_size=8, chunk_size=16,
                      progress=False)
  resumed = tmp_path / "resumed"
  with pytest.raises(RuntimeError, match="simulated crash"):
    vf.extract_features(batches(images, 5, fail_after=2 * 16 + 5), resumed, tiny_model(),
                        batch_size=8, chunk_size=16, progress=False)
  partial = json.loads((resumed / vf.MANIFEST).read_text())
  assert not partial["complete"] and [c["index"] for c in partial["chunks"]] == [0, 1]
  assert sorted(p.name for p in resumed.glob("*.npy")) == ["chunk_000000.npy", "chunk_000001.npy"]
  with pytest.raises(FileNotFoundError, match="no finished"):
    vf.load_features(resumed)
  before = file_stamps(resumed)

  vf.extract_features(batches(images, 5), resumed, tiny_model(), batch_size=8, chunk_size=16,
                      progress=False)
  after = file_stamps(resumed)
  assert all(after[name] == stamp for name, stamp in before.items())  # kept, not rewritten
  assert len(after) == 5
  np.testing.assert_array_equal(vf.load_features(resumed), vf.load_features(straight))


def test_truncated_chunk_is_rejected_and_recomputed(images, tmp_path):
  out = tmp_path / "run"
  vf.extract_features(images, out, tiny_model(), batch_size=8, chunk_size=16, progress=False)
  reference = np.array(vf.load_features(out))
  damaged = out / "chunk_000002.npy"
  damaged.write_bytes(damaged.read_bytes()[:200])
  with pytest.raises(ValueError, match="chunk_000002.npy is damaged"):
    list(vf.iter_feature_chunks(out))
  before = file_stamps(out)

  vf.extract_features(images, out, tiny_model(), batch_size=8, chunk_size=16, progress=False)
  after = file_stamps(out)
  assert after["chunk_000002.npy"] != before["chunk_000002.npy"]
  assert all(after[n] == before[n] for n in before if n != "chunk_000002.npy")
  np.testing.assert_array_equal(vf.load_features(out), reference)


def test_same_shape_but_edited_chunk_fails_the_hash(images, tmp_path):
  out = tmp_path / "run"
  vf.extract_features(images, out, tiny_model(), batch_size=8, chunk_size=32, progress=False)
  reference = np.array(vf.load_features(out))
  chunk = np.load(out / "chunk_000001.npy")
  chunk[3, 2] += 1.0
  np.save(out / "chunk_000001.npy", chunk)
  vf.extract_features(images, out, tiny_model(), batch_size=8, chunk_size=32, progress=False)
  np.testing.assert_array_equal(vf.load_features(out), reference)


def test_bad_arguments_are_explained(images, tmp_path):
  with pytest.raises(ValueError, match="multiple of the global batch"):
    vf.extract_features(images, tmp_path / "x", tiny_model(), batch_size=8, chunk_size=20)
  vf.extract_features(images[:10], tmp_path / "y", tiny_model(), batch_size=8, chunk_size=16,
                      progress=False)
  with pytest.raises(ValueError, match="another run"):
    vf.extract_features(images, tmp_path / "y", tiny_model(), batch_size=8, chunk_size=16)
  with pytest.raises(ValueError, match="empty"):
    vf.extract_features(iter([]), tmp_path / "z", tiny_model())
  bad = vf.FeatureModel(lambda p, x: x, None, "identity")
  with pytest.raises(ValueError, match=r"\(B, D\)"):
    vf.extract_features(images, tmp_path / "w", bad, batch_size=8, chunk_size=16)

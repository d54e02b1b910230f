"""Topic 5 experiments end to end on real MNIST with tiny configs (a few steps each)."""

import json
import os

import pytest

from ycng_jax import experiments

TINY = {"train_examples": "480", "test_examples": "300", "num_epochs": "1", "batch_size": "32",
        "eval_batch_size": "128", "num_val_pairs": "96", "num_test_pairs": "200",
        "num_episodes": "100", "model.features": "(8,)", "model.dense": "32",
        "model.embedding_dim": "16", "verbose": "0", "tensorboard": "False",
        "log_every_steps": "4"}


def _records(workdir):
  records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  assert all("step" in r for r in records) and records[-1]["final"]
  return records


def test_contrastive_writes_metrics_and_figures(tmp_path):
  result = experiments.run("topic5/contrastive_mnist", str(tmp_path), TINY)
  records = _records(tmp_path)
  assert records[-1]["test_verification_accuracy"] == result["test_verification_accuracy"]
  assert any(r.get("split") == "epoch" and "val_verification_auc" in r for r in records)
  # 13 steps already separate digits better than chance; balanced pairs: chance is 0.5
  assert result["test_verification_auc"] > 0.6
  assert 0.0 <= result["pixel_test_verification_accuracy"] <= 1.0
  for name in ("results.json", "curves.png", "embedding_map.png", "distances.png",
               "test_pairs.png", "test_embeddings.npz", "history.csv"):
    assert os.path.exists(tmp_path / name), name


def test_unknown_loss_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match="contrastive"):
    experiments.run("topic5/contrastive_mnist", str(tmp_path), {**TINY, "loss": "hinge"})

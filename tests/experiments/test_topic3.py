"""Topic 3 experiments (custom callback, data parallel) with tiny configs on real Fashion-MNIST."""

import json
import os

import pytest


from tiny_runs import run_tiny as _run


def test_custom_callback_adds_a_metric_everyone_records(tmp_path):
  result = _run("topic3/custom_callback", tmp_path, num_epochs=2)
  assert 0 <= result["val_worst_class_accuracy"] <= 1
  history = json.load(open(tmp_path / "results.json"))["history"]
  assert len(history["val_worst_class_accuracy"]) == 2
  assert os.path.exists(tmp_path / "confusion" / "epoch_2.json")
  assert os.path.exists(tmp_path / "confusion.png")
  assert "val_worst_class_accuracy" in open(tmp_path / "history.csv").readline()


def test_data_parallel_matches_one_device(tmp_path):
  result = _run("topic3/data_parallel", tmp_path, num_epochs=2)
  assert result["num_devices"] == 8
  assert result["accuracy_difference"] <= 1 / 256 + 1e-9  # at most one test example differs
  assert result["all_devices_test_loss"] == pytest.approx(result["one_device_test_loss"], rel=1e-4)

"""Topic 1 experiments end to end with tiny configs on real Fashion-MNIST."""

import os

import jax
import numpy as np
import pytest

from ycng_jax import experiments

from tiny_runs import final_metrics as _final, run_tiny as _run


# One CNN for sequential_cnn and feature_extraction (same layers, CNN's default dropout, Adam at
# 2e-3 on a cosine schedule): the feature-extraction run finds the CNN's init, train and eval
# steps compiled by the sequential_cnn run and compiles only its feature function.
SHARED_CNN = {"optimizer.learning_rate": 2e-3, "optimizer.schedule": "cosine"}
OVERRIDES = {"topic1/sequential_cnn": {"model.kwargs.dropout": 0.25}}


@pytest.mark.parametrize("name", ["topic1/sequential_mlp", "topic1/sequential_cnn"])
def test_sequential_models(name, tmp_path):
  result = _run(name, tmp_path, **OVERRIDES.get(name, {}))
  assert result["test_accuracy"] > 0.3  # 10 classes: chance is 0.1; 9 steps of training
  assert _final(tmp_path)["test_accuracy"] == result["test_accuracy"]
  for f in ("config.json", "results.json", "curves.png", "history.csv"):
    assert os.path.exists(tmp_path / f), f


def test_functional_dag_two_inputs_two_outputs(tmp_path):
  result = _run("topic1/functional_dag", tmp_path, num_epochs=2)
  assert result["test_label_accuracy"] > 0.4
  assert result["test_group_accuracy"] > 0.8  # 3 groups, easy
  # the weighted loss is exactly 1.0 * label loss + 0.5 * group loss (averaged per example)
  assert result["test_loss"] == pytest.approx(
      result["test_label_loss"] + 0.5 * result["test_group_loss"], rel=1e-5)


def test_functional_dag_shares_the_nested_encoder():
  module = experiments.load_module("topic1/functional_dag")
  model = module.TwoInputTwoOutput(width=4)
  x = np.zeros((2, 28, 28, 1), np.float32)
  # eval_shape: the parameter tree without the eager init's compiles (~5 CPU-s).
  params = jax.eval_shape(model.init, jax.random.PRNGKey(0), x, x)["params"]
  assert set(params) == {"encoder", "joint", "label_head", "group_head"}  # one encoder, used twice
  assert set(params["encoder"]) == {"stem", "block_conv1", "block_conv2"}


def test_feature_extraction_leaves_params_unchanged(tmp_path):
  result = _run("topic1/feature_extraction", tmp_path, probe_examples=512, **SHARED_CNN)
  assert result["params_unchanged"] and result["feature_dim"] == 128
  assert result["probe_test_accuracy"] > 0.5


def test_transfer_blueprints_freeze_bit_identically(tmp_path):
  result = _run("topic1/transfer_freeze", tmp_path, source_epochs=1, target_examples=320,
                train_examples=1280, num_epochs=2)
  for blueprint in (1, 2):
    assert result[f"blueprint{blueprint}_frozen_unchanged"] is True
    assert result[f"blueprint{blueprint}_trainable_changed"] is True
    assert result[f"blueprint{blueprint}_test_accuracy"] > 0.2  # above chance (5 classes)



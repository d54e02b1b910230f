"""Topic 2 experiments (custom layer, model, loop) with tiny configs on real Fashion-MNIST."""


import jax
import numpy as np
import pytest

from ycng_jax import experiments

from tiny_runs import final_metrics as _final, run_tiny as _run


@pytest.mark.parametrize("name", ["topic2/custom_layer", "topic2/custom_model", "topic2/custom_loop"])
def test_custom_layers_models_and_loop(name, tmp_path):
  result = _run(name, tmp_path)
  assert result["test_accuracy"] > 0.4
  assert _final(tmp_path)["test_accuracy"] == pytest.approx(result["test_accuracy"])


def test_custom_layer_params_have_own_names_and_init():
  module = experiments.load_module("topic2/custom_layer")
  model = module.custom_mlp((8,), 10, 1.0)
  params = model.init(jax.random.PRNGKey(0), np.zeros((1, 28, 28, 1), np.float32))["params"]
  assert set(params["layers_1"]) == {"w", "b"} and params["layers_1"]["w"].shape == (784, 8)
  np.testing.assert_array_equal(params["layers_2"]["beta"], np.ones(8))
  assert abs(float(params["layers_1"]["w"].std()) - 1 / np.sqrt(784)) < 0.01



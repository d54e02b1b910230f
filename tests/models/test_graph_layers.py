"""Sequential/functional helpers and the small custom layers."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ycng_jax import experiments
from ycng_jax.models.cnn import CNN
from ycng_jax.models.graph import Residual, Sequential, extract_features
from ycng_jax.models.layers import LearnedScaleSwish, Linear, Rescaling, scaled_normal
from ycng_jax.models.mlp import MLP
from ycng_jax.train.classification import build_model

from numpy_variables import numpy_variables


def test_sequential_switches_dropout_and_batchnorm_by_train():
  model = Sequential([nn.Dense(16), nn.BatchNorm(momentum=0.5), nn.relu, nn.Dropout(0.5),
                      nn.Dense(3)])
  x = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
  variables = numpy_variables(model, x, seed=1, scale=0.5)
  a = model.apply(variables, x)
  b = model.apply(variables, x)
  np.testing.assert_array_equal(a, b)  # inference: deterministic, running stats
  out, updates = model.apply(variables, x, train=True, rngs={"dropout": jax.random.PRNGKey(2)},
                             mutable=["batch_stats"])
  assert not np.allclose(out, a)
  stats = jax.tree.leaves(updates["batch_stats"])
  assert any(not np.allclose(s, o) for s, o in zip(stats, jax.tree.leaves(variables["batch_stats"])))


def test_residual_adds_identity_or_projection():
  x = jnp.ones((2, 4))
  same = Residual(nn.Dense(4, kernel_init=nn.initializers.zeros))
  v = same.init(jax.random.PRNGKey(0), x)
  np.testing.assert_allclose(same.apply(v, x), x)  # zero block -> identity
  wider = Residual(nn.Dense(6))
  v = wider.init(jax.random.PRNGKey(0), x)
  assert "projection" in v["params"] and wider.apply(v, x).shape == (2, 6)


def test_extract_features_by_name_and_clear_error():
  model = CNN(num_classes=10, features=(4,), dense=8, convs_per_block=1)
  x = jnp.ones((3, 28, 28, 1))
  v = numpy_variables(model, x)  # CNN's default batch norm: its statistics too
  assert extract_features(model, v, x, layer="dense").shape == (3, 8)
  logits = model.apply(v, x)
  assert np.isfinite(logits).all()
  np.testing.assert_allclose(extract_features(model, v, x, layer="logits"), logits, rtol=1e-6)
  with pytest.raises(KeyError, match="layers: .*conv_0_0"):
    extract_features(model, v, x, layer="nope")


def test_custom_layers_params_and_initialisers():
  x = jnp.ones((5, 100))
  v = Linear(7, kernel_init=scaled_normal(2.0)).init(jax.random.PRNGKey(0), x)
  assert v["params"]["w"].shape == (100, 7) and v["params"]["b"].shape == (7,)
  assert float(jnp.std(v["params"]["w"])) == pytest.approx(0.2, rel=0.15)
  v = LearnedScaleSwish(beta0=0.5).init(jax.random.PRNGKey(0), x)
  np.testing.assert_array_equal(v["params"]["beta"], np.full(100, 0.5))
  np.testing.assert_allclose(Rescaling().apply({}, jnp.full((1,), 255, jnp.uint8)), [1.0])


def test_mlp_and_cnn_shapes_and_param_names():
  # Shapes and names only: jax.eval_shape traces init and apply without compiling them.
  mlp = MLP(num_classes=3, hidden=(5,), batch_norm=True)
  x = jnp.ones((2, 8, 8, 1))
  v = jax.eval_shape(mlp.init, jax.random.PRNGKey(0), x)
  assert set(v["params"]) == {"dense_0", "bn_0", "logits"}
  assert jax.eval_shape(mlp.apply, v, x).shape == (2, 3)
  cnn = CNN(num_classes=4, features=(4, 8), dense=6, convs_per_block=2)
  x = jnp.ones((2, 28, 28, 1))
  v = jax.eval_shape(cnn.init, jax.random.PRNGKey(0), x)
  assert v["params"]["dense"]["kernel"].shape == (7 * 7 * 8, 6)
  assert jax.eval_shape(cnn.apply, v, x).shape == (2, 4)


def test_cnn_hashed_dropout_draws_other_masks_at_the_same_rates():
  # topic 9's trials use hashed_dropout (a faster compile); the rates must stay what they say.
  x = np.random.default_rng(0).uniform(size=(64, 8, 8, 1)).astype(np.float32)
  threefry = CNN(num_classes=4, features=(4,), dense=256, convs_per_block=1, dropout=0.25)
  hashed = threefry.clone(hashed_dropout=True)
  v = numpy_variables(threefry, x)
  dropped = {}
  for name, model in (("threefry", threefry), ("hashed", hashed)):
    _, state = model.apply(v, x, train=True, rngs={"dropout": jax.random.PRNGKey(1)},
                           capture_intermediates=True, mutable=["intermediates", "batch_stats"])
    out = {k: np.asarray(layer["__call__"][0]) for k, layer in state["intermediates"].items()
           if k != "__call__"}
    pooled = np.maximum(out["bn_0_0"], 0).reshape(64, 4, 2, 4, 2, 4).max(axis=(2, 4))
    # The fraction of each dropout's nonzero inputs that it zeroes: its rate.
    for before, after, rate in ((pooled, out["Dropout_0"], 0.25),
                                (np.maximum(out["dense"], 0), out["Dropout_1"], 0.5)):
      kept = before != 0
      assert (after[kept] == 0).mean() == pytest.approx(rate, abs=0.03), name
      np.testing.assert_allclose(after[after != 0], before[after != 0] / (1 - rate), rtol=1e-5)
    dropped[name] = out["Dropout_1"] == 0
  assert (dropped["hashed"] != dropped["threefry"]).mean() > 0.2  # other masks
  np.testing.assert_array_equal(hashed.apply(v, x), threefry.apply(v, x))  # eval: no dropout
  topic9 = build_model(experiments.load_module("topic9/fashion_cnn").get_config(), 10)
  assert isinstance(topic9, CNN) and topic9.hashed_dropout

"""The stacked autoencoder of DEC: shapes, layer names, linear ends, greedy assembly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ycng_jax.models.autoencoder import (Autoencoder, greedy_pair_params, greedy_pairs,
                                         reconstruction_loss)

from numpy_variables import numpy_variables  # Flax's eager init compiles a sampler per shape


def test_shapes_and_layer_names():
  model = Autoencoder(input_dim=12, hidden_dims=(8, 6, 3))
  params = numpy_variables(model, jnp.zeros((1, 12)))
  z, recon = model.apply(params, jnp.ones((5, 12)))
  assert z.shape == (5, 3) and recon.shape == (5, 12)
  shapes = jax.tree.map(lambda a: a.shape, params["params"])
  assert shapes["encoder_0"]["kernel"] == (12, 8)
  assert shapes["encoder_2"]["kernel"] == (6, 3)
  assert shapes["decoder_0"]["kernel"] == (3, 6)
  assert shapes["decoder_2"]["kernel"] == (8, 12)
  np.testing.assert_allclose(model.apply(params, jnp.ones((5, 12)), method=model.encode), z)


def test_embedding_and_output_are_linear_hidden_layers_are_relu():
  model = Autoencoder(input_dim=10, hidden_dims=(16, 4))
  params = numpy_variables(model, jnp.zeros((1, 10)), seed=1, scale=0.5)
  x = np.random.default_rng(2).standard_normal((64, 10)).astype(np.float32)
  z, recon = model.apply(params, x)
  assert (z < 0).any() and (recon < 0).any()  # no ReLU at the ends
  hidden = jax.nn.relu(x @ params["params"]["encoder_0"]["kernel"]
                       + params["params"]["encoder_0"]["bias"])
  expected_z = hidden @ params["params"]["encoder_1"]["kernel"] + params["params"]["encoder_1"]["bias"]
  np.testing.assert_allclose(z, expected_z, rtol=1e-5, atol=1e-5)


def test_dropout_only_when_training():
  model = Autoencoder(input_dim=10, hidden_dims=(16, 4), dropout_rate=0.5)
  params = numpy_variables(model, jnp.zeros((1, 10)))
  x = jnp.ones((3, 10))
  eval_a = model.apply(params, x)[1]
  eval_b = model.apply(params, x)[1]
  train = model.apply(params, x, deterministic=False, rngs={"dropout": jax.random.key(1)})[1]
  np.testing.assert_array_equal(eval_a, eval_b)
  assert not np.allclose(eval_a, train)


def test_wrong_input_width_is_an_error():
  model = Autoencoder(input_dim=10, hidden_dims=(4,))
  with pytest.raises(ValueError, match="10 input features"):
    model.init(jax.random.key(0), jnp.zeros((1, 9)))


def test_greedy_pairs_assemble_into_the_autoencoder():
  dims = (8, 6, 3)
  pairs = greedy_pairs(12, dims)
  assert [(p.input_dim, p.hidden_dim) for p in pairs] == [(12, 8), (8, 6), (6, 3)]
  # Linear reconstruction of the data in the first pair, linear embedding in the last.
  assert not pairs[0].decoder_relu and pairs[0].encoder_relu
  assert not pairs[-1].encoder_relu and pairs[-1].decoder_relu
  pair_params = [numpy_variables(p, jnp.zeros((1, p.input_dim)), seed=i)
                 for i, p in enumerate(pairs)]
  params = greedy_pair_params(pair_params)
  model = Autoencoder(input_dim=12, hidden_dims=dims)
  x = np.random.default_rng(9).standard_normal((4, 12)).astype(np.float32)
  h = x
  for pair, pp in zip(pairs, pair_params):
    h = pair.apply(pp, h, method=pair.encode)
  z, _ = model.apply(params, x)
  np.testing.assert_allclose(z, h, rtol=1e-5, atol=1e-6)
  # The assembled tree has exactly the structure of a freshly initialised model.
  fresh = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 12)))
  assert jax.tree.structure(fresh) == jax.tree.structure(params)


def test_reconstruction_loss_is_per_example_mse():
  x = jnp.array([[0.0, 2.0], [1.0, 1.0]])
  r = jnp.array([[0.0, 0.0], [1.0, 1.0]])
  np.testing.assert_allclose(reconstruction_loss(x, r), [2.0, 0.0])

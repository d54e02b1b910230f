"""ycng_jax.models.layers: the reshape max-pool, the 16-bit dropout and the im2col convolution
against flax's own."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ycng_jax.models.layers import PatchConv, max_pool


@pytest.mark.parametrize("shape,window", [((3, 8, 8, 4), (2, 2)), ((2, 7, 9, 3), (2, 2)),
                                          ((2, 9, 9, 5), (3, 3)), ((4, 10, 6), (2,))])
def test_values_and_gradients_equal_flax(shape, window):
  x = jnp.asarray(np.random.default_rng(0).standard_normal(shape), jnp.float32)  # no ties
  np.testing.assert_array_equal(max_pool(x, window), nn.max_pool(x, window, window))
  cotangent = jnp.asarray(np.random.default_rng(1).standard_normal(
      nn.max_pool(x, window, window).shape), jnp.float32)
  ours = jax.grad(lambda v: jnp.sum(max_pool(v, window) * cotangent))(x)
  flax_grad = jax.grad(lambda v: jnp.sum(nn.max_pool(v, window, window) * cotangent))(x)
  np.testing.assert_array_equal(ours, flax_grad)


def test_overlapping_or_padded_windows_fall_back_to_flax():
  x = jnp.asarray(np.random.default_rng(2).standard_normal((2, 9, 9, 3)), jnp.float32)
  np.testing.assert_array_equal(max_pool(x, (3, 3), (2, 2)), nn.max_pool(x, (3, 3), (2, 2)))
  np.testing.assert_array_equal(max_pool(x, (2, 2), padding="SAME"),
                                nn.max_pool(x, (2, 2), (2, 2), padding="SAME"))


def test_dropout_keeps_the_right_fraction_and_the_mean():
  from ycng_jax.models.layers import Dropout, keep_mask
  mask, keep_prob = keep_mask(jax.random.key(0), 0.1, (1001, 999))  # odd size: half a word
  assert mask.shape == (1001, 999) and abs(keep_prob - 0.9) < 1e-5
  assert abs(float(mask.mean()) - keep_prob) < 2e-3
  x = jnp.ones((4096, 64))
  layer = Dropout(0.25)
  y = layer.apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(1)})
  assert abs(float(y.mean()) - 1.0) < 0.02  # inverted dropout keeps the expectation
  np.testing.assert_allclose(np.unique(np.asarray(y)), [0.0, 1 / 0.75], rtol=1e-6)
  np.testing.assert_array_equal(layer.apply({}, x, deterministic=True), x)
  other = layer.apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(2)})
  assert not np.array_equal(np.asarray(y), np.asarray(other))
  # broadcast_dims: one decision per row
  rows = Dropout(0.5, broadcast_dims=(1,)).apply({}, x, deterministic=False,
                                                 rngs={"dropout": jax.random.key(3)})
  assert np.all(np.ptp(np.asarray(rows), axis=1) == 0)


def test_hashed_bits_look_uniform_and_independent():
  from ycng_jax.models.layers import hashed_bits
  words = np.asarray(hashed_bits(jax.random.key(0), 1 << 20)).astype(np.int64)
  bits = (words[:, None] >> np.arange(32)) & 1
  assert np.abs(bits.mean(0) - 0.5).max() < 3e-3  # every bit position fair (sigma 5e-4)
  low, high = (words & 0xFFFF).astype(float), (words >> 16).astype(float)
  for a, b in ((low[:-1], low[1:]), (low, high), (high[:-1], high[1:])):
    assert abs(np.corrcoef(a, b)[0, 1]) < 5e-3  # neighbours and halves uncorrelated
  counts = np.bincount(words & 0xFF, minlength=256)
  chi2 = float(((counts - counts.mean()) ** 2 / counts.mean()).sum())
  assert chi2 < 350  # 255 degrees of freedom: p ~ 1e-4
  other = np.asarray(hashed_bits(jax.random.key(1), 1 << 20)).astype(np.int64)
  assert np.mean(words == other) < 1e-3
  split = np.asarray(hashed_bits(jax.random.fold_in(jax.random.key(0), 1), 1 << 20))
  assert abs(np.corrcoef(low, (split & 0xFFFF).astype(float))[0, 1]) < 5e-3


@pytest.mark.parametrize("kernel,use_bias", [((3, 3), True), ((5, 3), False), ((1, 1), True)])
def test_patch_conv_equals_flax_conv_in_parameters_values_and_gradients(kernel, use_bias):
  x = jnp.asarray(np.random.default_rng(3).standard_normal((2, 7, 9, 3)), jnp.float32)
  conv = nn.Conv(4, kernel, padding="SAME", use_bias=use_bias)
  patch = PatchConv(4, kernel, use_bias=use_bias)
  variables = conv.init(jax.random.key(0), x)
  jax.tree.map(np.testing.assert_array_equal, patch.init(jax.random.key(0), x), variables)
  np.testing.assert_allclose(patch.apply(variables, x), conv.apply(variables, x), atol=2e-6)

  def grads(module):
    return jax.grad(lambda v, inputs: jnp.sum(jnp.sin(module.apply(v, inputs))),
                    argnums=(0, 1))(variables, x)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5), grads(patch),
               grads(conv))


def test_patch_conv_vmapped_over_members_is_a_batched_matmul_not_a_grouped_convolution():
  """What it is for: members with their own inputs and kernels (a population of trials)."""
  x = jnp.asarray(np.random.default_rng(4).standard_normal((3, 2, 6, 6, 5)), jnp.float32)
  patch, conv = PatchConv(8), nn.Conv(8, (3, 3), padding="SAME")
  members = jax.vmap(lambda key: patch.init(key, x[0]))(jax.random.split(jax.random.key(1), 3))
  ours = jax.vmap(patch.apply)(members, x)
  for m in range(3):
    one = jax.tree.map(lambda v, m=m: v[m], members)
    np.testing.assert_allclose(ours[m], conv.apply(one, x[m]), atol=2e-6)
  program = str(jax.make_jaxpr(jax.vmap(patch.apply))(members, x))
  assert "conv_general_dilated" not in program and "dot_general" in program
  assert "feature_group_count=3" in str(jax.make_jaxpr(jax.vmap(conv.apply))(members, x))


def test_patch_conv_takes_odd_kernels_only():
  with pytest.raises(ValueError, match="odd kernel sizes"):
    PatchConv(4, (2, 2)).init(jax.random.key(0), jnp.zeros((1, 4, 4, 1)))

"""ycng_jax.models.layers.max_pool: the reshape fast path equals flax's max_pool."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ycng_jax.models.layers import max_pool


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

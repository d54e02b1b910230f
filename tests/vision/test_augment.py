import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ycng_jax.vision.augment import affine, flat_image_augmenter, random_affine


def _images(n=3, h=7, w=7, seed=0):
  return np.random.default_rng(seed).random((n, h, w)).astype(np.float32)


def test_zero_angle_and_shift_is_identity():
  x = _images()
  out = affine(jnp.asarray(x), jnp.zeros(3), jnp.zeros((3, 2)))
  np.testing.assert_allclose(out, x, atol=1e-6)


def test_quarter_turn_matches_rot90_counter_clockwise():
  x = _images()
  out = affine(jnp.asarray(x), jnp.full(3, math.pi / 2), jnp.zeros((3, 2)))
  np.testing.assert_allclose(out, np.rot90(x, k=1, axes=(1, 2)), atol=1e-5)


def test_integer_shift_moves_pixels_and_fills_zeros():
  x = _images(n=1)
  out = np.asarray(affine(jnp.asarray(x), jnp.zeros(1), jnp.array([[2.0, -1.0]])))
  expected = np.zeros_like(x)
  expected[:, 2:, :-1] = x[:, :-2, 1:]  # two rows down, one column left
  np.testing.assert_allclose(out, expected, atol=1e-6)


def test_channels_are_warped_alike():
  x = _images()
  rgb = np.stack([x, 2 * x], axis=-1)
  angle, shift = jnp.array([0.3, -0.2, 0.1]), jnp.array([[0.5, 1.0], [0.0, -2.0], [1.5, 0.0]])
  out = np.asarray(affine(jnp.asarray(rgb), angle, shift))
  gray = np.asarray(affine(jnp.asarray(x), angle, shift))
  np.testing.assert_allclose(out[..., 0], gray, atol=1e-6)
  np.testing.assert_allclose(out[..., 1], 2 * gray, atol=1e-5)


def test_random_affine_is_seeded_and_per_image():
  x = jnp.asarray(np.repeat(_images(n=1, h=12, w=12), 4, axis=0))
  a = np.asarray(random_affine(jax.random.key(0), x))
  b = np.asarray(random_affine(jax.random.key(0), x))
  c = np.asarray(random_affine(jax.random.key(1), x))
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, c)
  assert not np.allclose(a[0], a[1])  # each image its own draw
  assert a.min() >= 0 and a.max() <= 1  # bilinear: convex combinations of pixels and zeros


def test_flat_augmenter_round_trips_shape_and_checks_width():
  augment = jax.jit(flat_image_augmenter((8, 8), max_rotation=0.0, max_shift=0.0))
  x = jnp.asarray(np.random.default_rng(0).random((5, 64)), jnp.float32)
  np.testing.assert_allclose(augment(jax.random.key(0), x), x, atol=1e-6)
  with pytest.raises(ValueError, match="not images of shape"):
    flat_image_augmenter((8, 8))(jax.random.key(0), jnp.zeros((5, 63)))
  with pytest.raises(ValueError, match="height, width"):
    affine(jnp.zeros((2, 3)), jnp.zeros(2), jnp.zeros((2, 2)))

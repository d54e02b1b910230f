"""Random affine image augmentation as a pure, jittable JAX function.

Every image of a batch gets its own rotation and shift, drawn uniformly from
``[-max_rotation, max_rotation]`` degrees and ``[-max_shift, max_shift]`` of its height and
width (Keras' ``ImageDataGenerator(rotation_range, width_shift_range, height_shift_range)``),
and is resampled bilinearly about its centre with zeros outside. It runs on the device
inside a jitted step, so augmenting costs no host round trip.

Deep Embedded Clustering with data augmentation (DEC-DA, Guo et al. 2018) pretrains the
autoencoder and runs the clustering phase on such randomly shifted and rotated digits.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp


def affine(images: jax.Array, angle: jax.Array, shift: jax.Array) -> jax.Array:
  """``images`` (batch, height, width[, channels]) each rotated by ``angle`` (batch,) radians
  counter-clockwise about its centre, then shifted by ``shift`` (batch, 2) pixels (rows,
  columns); bilinear, zeros outside."""
  if images.ndim not in (3, 4):
    raise ValueError(
        f"images must be (batch, height, width) or (batch, height, width, channels); got "
        f"shape {images.shape}.")
  height, width = images.shape[1:3]
  rows, cols = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32),
                            jnp.arange(width, dtype=jnp.float32), indexing="ij")
  centre_r, centre_c = (height - 1) / 2.0, (width - 1) / 2.0

  def warp(image, theta, offset):
    # Output pixel p samples the input at the inverse rotation of (p - centre - offset);
    # rows grow downwards, which flips the sign convention of the (r, c) rotation.
    r, c = rows - centre_r - offset[0], cols - centre_c - offset[1]
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    src_r = cos * r + sin * c + centre_r
    src_c = -sin * r + cos * c + centre_c
    sample = lambda plane: jax.scipy.ndimage.map_coordinates(
        plane, [src_r, src_c], order=1, mode="constant", cval=0.0)
    if image.ndim == 2:
      return sample(image)
    return jax.vmap(sample, in_axes=-1, out_axes=-1)(image)

  return jax.vmap(warp)(images, angle, shift).astype(images.dtype)


def random_affine(key: jax.Array, images: jax.Array, max_rotation: float = 10.0,
                  max_shift: float = 0.1) -> jax.Array:
  """Randomly rotated and shifted copies of ``images`` (batch, height, width[, channels])."""
  n, height, width = images.shape[:3]
  k_angle, k_shift = jax.random.split(key)
  angle = jax.random.uniform(k_angle, (n,), minval=-1.0, maxval=1.0) * math.radians(max_rotation)
  shift = jax.random.uniform(k_shift, (n, 2), minval=-1.0, maxval=1.0) * (
      max_shift * jnp.array([height, width], jnp.float32))
  return affine(images, angle, shift)


def flat_image_augmenter(image_shape: Sequence[int], max_rotation: float = 10.0,
                         max_shift: float = 0.1) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """``augment(key, x)`` for rows ``x`` (batch, prod(image_shape)) of flattened images."""
  image_shape = tuple(int(d) for d in image_shape)
  size = math.prod(image_shape)

  def augment(key: jax.Array, x: jax.Array) -> jax.Array:
    if x.shape[-1] != size:
      raise ValueError(f"rows of {x.shape[-1]} features are not images of shape {image_shape}.")
    images = x.reshape(x.shape[0], *image_shape)
    return random_affine(key, images, max_rotation, max_shift).reshape(x.shape)

  return augment

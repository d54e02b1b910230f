"""Siamese networks: one embedding tower whose single parameter tree serves every input.

``SiameseNetwork(x)`` returns the embeddings of one batch (triplet losses mine inside it);
``SiameseNetwork(x_a, x_b)`` (or three inputs) returns one embedding array per input. The
inputs are stacked on a new axis *after* the batch axis and folded into the batch, so the
tower runs once per step and every device keeps its own rows (no cross-device shuffle of the
batch-sharded inputs); the weights are shared by construction, not by copying.
"""

from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from ycng_jax.models.layers import Flatten, max_pool


def l2_normalize(x: jnp.ndarray, eps: float = 1e-12) -> jnp.ndarray:
  """Rows scaled to unit length (a zero row stays finite: divided by ``sqrt(eps)``)."""
  x = x.astype(jnp.float32)
  return x * jnp.reciprocal(jnp.sqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), eps)))


class EmbeddingTower(nn.Module):
  """A small CNN mapping NHWC float images to ``embedding_dim`` vectors.

  Per block: Conv 3x3 -> [BatchNorm] -> ReLU -> max-pool 2x2; then Dense(dense) -> ReLU ->
  [Dropout] -> Dense(embedding_dim), L2-normalised when ``normalize`` (distances then lie in
  [0, 2], so one margin suits every data set).
  """
  features: Sequence[int] = (32, 64)
  dense: int = 128
  embedding_dim: int = 64
  normalize: bool = True
  batch_norm: bool = False
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
    if x.ndim != 4:
      raise ValueError(f"EmbeddingTower expects NHWC images (batch, height, width, channels); "
                       f"got shape {x.shape}. Add a channel axis to grayscale images.")
    pool = functools.partial(max_pool, window_shape=(2, 2))
    for i, width in enumerate(self.features):
      x = nn.Conv(width, (3, 3), padding="SAME", use_bias=not self.batch_norm, name=f"conv_{i}")(x)
      if self.batch_norm:
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, name=f"bn_{i}")(x)
      x = pool(nn.relu(x))
    x = nn.relu(nn.Dense(self.dense, name="dense")(Flatten()(x)))
    if self.dropout:
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    x = nn.Dense(self.embedding_dim, name="embedding")(x)
    return l2_normalize(x) if self.normalize else x


class SiameseNetwork(nn.Module):
  """The shared tower applied to one, two or three inputs of the same shape.

  Returns an array ``(B, embedding_dim)`` for one input, else a tuple with one such array
  per input, in order. All parameters live under ``tower``.
  """
  features: Sequence[int] = (32, 64)
  dense: int = 128
  embedding_dim: int = 64
  normalize: bool = True
  batch_norm: bool = False
  dropout: float = 0.0

  @nn.compact
  def __call__(self, *inputs: jnp.ndarray, train: bool = False):
    if not inputs:
      raise ValueError("SiameseNetwork needs at least one input batch")
    shapes = {tuple(x.shape) for x in inputs}
    if len(shapes) != 1:
      raise ValueError(f"every input of a SiameseNetwork must have the same shape; got "
                       f"{[tuple(x.shape) for x in inputs]}")
    tower = EmbeddingTower(self.features, self.dense, self.embedding_dim, self.normalize,
                           self.batch_norm, self.dropout, name="tower")
    if len(inputs) == 1:
      return tower(inputs[0], train=train)
    batch = inputs[0].shape[0]
    stacked = jnp.stack(inputs, axis=1)                      # (B, n, H, W, C): rows stay local
    embeddings = tower(stacked.reshape((-1,) + stacked.shape[2:]), train=train)
    embeddings = embeddings.reshape(batch, len(inputs), -1)
    return tuple(embeddings[:, i] for i in range(len(inputs)))

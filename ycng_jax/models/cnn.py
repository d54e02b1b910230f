"""A small Sequential convolutional classifier (VGG-style blocks) for 28x28-ish images."""

from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn

from ycng_jax.models.graph import Sequential
from ycng_jax.models.layers import Dropout as HashedDropout
from ycng_jax.models.layers import Flatten, PatchConv, max_pool


def cnn_layers(features: Sequence[int], dense: int, num_classes: int, dropout: float = 0.25,
               batch_norm: bool = True, convs_per_block: int = 2,
               hashed_dropout: bool = False, patch_convs: bool = False) -> list:
  """Per block: ``convs_per_block`` x (Conv 3x3, [BN], ReLU), max-pool 2x2, dropout; then a head.

  ``hashed_dropout``: masks from ``ycng_jax.models.layers.Dropout`` (16 hashed bits a decision)
  in place of ``flax.linen.Dropout``'s threefry: the same rates, other masks, and a train step
  that compiles in about half the time on XLA:CPU, which is most of a short tuning trial.
  ``patch_convs``: ``ycng_jax.models.layers.PatchConv`` (im2col and one matmul) in place of
  ``nn.Conv``, same parameters: for populations of trials vmapped on a CPU, where ``nn.Conv``
  becomes a slow grouped convolution.
  """
  dropout_layer = HashedDropout if hashed_dropout else nn.Dropout
  conv = PatchConv if patch_convs else functools.partial(nn.Conv, padding="SAME")
  layers: list = []
  pool = functools.partial(max_pool, window_shape=(2, 2))
  for b, width in enumerate(features):
    for c in range(convs_per_block):
      layers.append(conv(width, (3, 3), use_bias=not batch_norm, name=f"conv_{b}_{c}"))
      if batch_norm:
        layers.append(nn.BatchNorm(momentum=0.9, name=f"bn_{b}_{c}"))
      layers.append(nn.relu)
    layers.append(pool)
    if dropout:
      layers.append(dropout_layer(dropout))
  layers += [Flatten(), nn.Dense(dense, name="dense"), nn.relu]
  if dropout:
    layers.append(dropout_layer(2 * dropout))
  layers.append(nn.Dense(num_classes, name="logits"))
  return layers


class CNN(nn.Module):
  """``Sequential(cnn_layers(...))``; inputs are float NHWC images (scaled by the caller)."""
  num_classes: int = 10
  features: Sequence[int] = (32, 64)
  dense: int = 128
  dropout: float = 0.25
  batch_norm: bool = True
  convs_per_block: int = 2
  hashed_dropout: bool = False
  patch_convs: bool = False

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    layers = cnn_layers(self.features, self.dense, self.num_classes, self.dropout,
                        self.batch_norm, self.convs_per_block, self.hashed_dropout,
                        self.patch_convs)
    return Sequential(layers, name="sequential")(x, train=train)

"""A Sequential multilayer perceptron for images or feature vectors."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn

from ycng_jax.models.graph import Sequential
from ycng_jax.models.layers import Flatten


def mlp_layers(hidden: Sequence[int], num_classes: int, dropout: float = 0.0,
               batch_norm: bool = False) -> list:
  """Flatten, then (Dense, [BatchNorm], ReLU, [Dropout]) per hidden width, then the logits."""
  layers: list = [Flatten()]
  for i, width in enumerate(hidden):
    layers.append(nn.Dense(width, name=f"dense_{i}"))
    if batch_norm:
      layers.append(nn.BatchNorm(momentum=0.9, name=f"bn_{i}"))
    layers.append(nn.relu)
    if dropout:
      layers.append(nn.Dropout(dropout))
  layers.append(nn.Dense(num_classes, name="logits"))
  return layers


class MLP(nn.Module):
  """``Sequential(mlp_layers(...))`` as a configurable module (input scaled by the caller)."""
  num_classes: int = 10
  hidden: Sequence[int] = (512, 256)
  dropout: float = 0.2
  batch_norm: bool = False

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    layers = mlp_layers(self.hidden, self.num_classes, self.dropout, self.batch_norm)
    return Sequential(layers, name="sequential")(x, train=train)

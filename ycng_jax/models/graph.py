"""Sequential and functional model building blocks (Keras' two APIs, in Flax Linen).

``Sequential`` chains layers and hands ``train`` to those that take it (dropout, batch
norm). Functional models are ordinary ``@nn.compact`` modules: any DAG of calls, several
inputs and outputs, layers shared by calling the same submodule twice, models nested as
layers. ``extract_features`` reads an intermediate layer's output without retraining.
"""

from __future__ import annotations

import inspect
from typing import Any, Sequence

import flax.linen as nn
import jax


def _takes_train(layer: Any) -> bool:
  fn = layer.__call__ if isinstance(layer, nn.Module) else layer
  try:
    return "train" in inspect.signature(fn).parameters
  except (TypeError, ValueError):
    return False


class Sequential(nn.Module):
  """Layers (modules or functions such as ``nn.relu``) applied in order.

  ``nn.Dropout`` and ``nn.BatchNorm`` are switched between training and inference by
  ``train``; custom layers receive ``train=`` when their ``__call__`` accepts it.
  """
  layers: Sequence[Any]

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    for layer in self.layers:
      if isinstance(layer, nn.Dropout):
        x = layer(x, deterministic=not train)
      elif isinstance(layer, nn.BatchNorm):
        x = layer(x, use_running_average=not train)
      elif _takes_train(layer):
        x = layer(x, train=train)
      else:
        x = layer(x)
    return x


class Residual(nn.Module):
  """``x + block(x)`` with a projection of ``x`` when the widths differ."""
  block: nn.Module

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    y = self.block(x, train=train) if _takes_train(self.block) else self.block(x)
    if y.shape[-1] != x.shape[-1]:
      x = nn.Dense(y.shape[-1], use_bias=False, name="projection")(x)
    return x + y


def extract_features(model: nn.Module, variables: Any, *inputs: Any, layer: str,
                     train: bool = False) -> jax.Array:
  """The output of the submodule named ``layer`` (a path like ``"encoder/Dense_1"`` or a name).

  Uses Flax's ``capture_intermediates``: the model runs once in inference mode and nothing
  is retrained. Raises with the available layer names if ``layer`` does not exist.
  """
  _, state = model.apply(variables, *inputs, train=train, capture_intermediates=True,
                         mutable=["intermediates"])
  found = {}

  def walk(tree, prefix):
    for key, value in tree.items():
      if key == "__call__":
        found[prefix] = value[0]
      elif isinstance(value, dict):
        walk(value, f"{prefix}/{key}" if prefix else key)

  walk(jax.tree_util.tree_map(lambda x: x, dict(state["intermediates"]),
                              is_leaf=lambda x: isinstance(x, tuple)), "")
  if layer in found:
    return found[layer]
  matches = [k for k in found if k.split("/")[-1] == layer]
  if len(matches) == 1:
    return found[matches[0]]
  raise KeyError(f"no single layer named {layer!r}; layers: {sorted(k for k in found if k)}")

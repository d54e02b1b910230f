"""Topic 2: custom layers with their own parameters and initialisers, in a Sequential model.

  ycng run topic2/custom_layer [--workdir DIR] [--config.num_epochs=10]

``Linear`` (``self.param`` for w and b, a scaled-normal initialiser written here) and
``LearnedScaleSwish`` (a learnable per-unit slope, constant-initialised) replace Dense+ReLU
in an MLP on Fashion-MNIST. Trained by the shared runner like any built-in model.
"""

from __future__ import annotations

from typing import Sequence

import ml_collections

from ycng_jax.models.graph import Sequential
from ycng_jax.models.layers import Flatten, LearnedScaleSwish, Linear, scaled_normal
from ycng_jax.train import classification


def get_config() -> ml_collections.ConfigDict:
  config = classification.base_config()
  config.runner = ""
  config.num_epochs = 10
  config.hidden = (256, 128)
  config.init_scale = 1.4
  config.optimizer.learning_rate = 1e-3
  config.optimizer.schedule = "cosine"
  return config


def custom_mlp(hidden: Sequence[int], num_classes: int, init_scale: float) -> Sequential:
  layers: list = [Flatten()]
  for width in hidden:
    layers += [Linear(width, kernel_init=scaled_normal(init_scale)), LearnedScaleSwish(beta0=1.0)]
  layers.append(Linear(num_classes))
  return Sequential(layers)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  model = custom_mlp(tuple(config.hidden), 10, config.init_scale)
  return classification.run(config, workdir, model=model, reference_config=get_config())

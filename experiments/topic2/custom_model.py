"""Topic 2: a custom model: a residual MLP with its own ``setup`` and an ``embed`` method.

  ycng run topic2/custom_model [--workdir DIR] [--config.num_blocks=3]

Subclassing ``nn.Module`` with ``setup`` (Keras' subclassed Model with ``__init__``/``call``):
submodules are declared once, ``__call__`` wires them with residual connections and
``embed`` exposes the representation before the classifier for reuse.
"""

from __future__ import annotations

import flax.linen as nn
import ml_collections

from ycng_jax.train import classification


def get_config() -> ml_collections.ConfigDict:
  config = classification.base_config()
  config.runner = ""
  config.num_epochs = 10
  config.width = 256
  config.num_blocks = 2
  config.dropout = 0.2
  config.optimizer.learning_rate = 1e-3
  config.optimizer.schedule = "cosine"
  return config


class ResidualMLP(nn.Module):
  num_classes: int = 10
  width: int = 256
  num_blocks: int = 2
  dropout: float = 0.2

  def setup(self):
    self.stem = nn.Dense(self.width)
    self.blocks = [nn.Dense(self.width, name=f"block_{i}") for i in range(self.num_blocks)]
    self.norms = [nn.LayerNorm(name=f"norm_{i}") for i in range(self.num_blocks)]
    self.drop = nn.Dropout(self.dropout)
    self.head = nn.Dense(self.num_classes)

  def embed(self, x, *, train: bool = False):
    h = nn.relu(self.stem(x.reshape(x.shape[0], -1)))
    for block, norm in zip(self.blocks, self.norms):
      h = h + self.drop(nn.relu(block(norm(h))), deterministic=not train)
    return h

  def __call__(self, x, *, train: bool = False):
    return self.head(self.embed(x, train=train))


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  model = ResidualMLP(10, config.width, config.num_blocks, config.dropout)
  return classification.run(config, workdir, model=model, reference_config=get_config())

"""Topic 1: a functional DAG: two inputs, two outputs, weighted loss, shared + nested + residual.

  ycng run topic1/functional_dag [--workdir DIR] [--config.num_epochs=4]

Inputs: the Fashion-MNIST image and its edge map (gradient magnitude). One ``ConvEncoder`` (a
model used as a layer, with a residual connection inside) is shared by both inputs: the same
parameters see the image and the edges. Outputs: the 10 classes and 3 groups (clothing /
footwear / bag); loss = 1.0 * class loss + ``group_loss_weight`` * group loss.
"""

from __future__ import annotations

import os

import flax.linen as nn
import jax.numpy as jnp
import ml_collections
import numpy as np

from ycng_jax.models.layers import max_pool
from ycng_jax.train import classification, logging_callbacks as log_lib, optim
from ycng_jax.train.losses import make_weighted_loss
from ycng_jax.train.mesh import make_mesh
from ycng_jax.train.trainer import Trainer, peek

# Fashion-MNIST classes -> groups: 0 clothing (t-shirt, trouser, pullover, dress, coat, shirt),
# 1 footwear (sandal, sneaker, ankle boot), 2 bag.
GROUP_OF_CLASS = np.array([0, 0, 0, 0, 0, 1, 0, 1, 2, 1], np.int32)


def get_config() -> ml_collections.ConfigDict:
  config = classification.base_config()
  config.runner = ""
  config.num_epochs = 4
  config.group_loss_weight = 0.5
  config.model.name = "functional_dag:TwoInputTwoOutput"
  config.model.kwargs.width = 32
  config.optimizer.learning_rate = 2e-3
  config.best_monitor = ""
  return config


class ConvEncoder(nn.Module):
  """A small model (conv, pool, residual conv block) reused as a layer."""
  width: int = 32

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Conv(self.width, (3, 3), name="stem")(x))
    x = max_pool(x, (2, 2))
    y = nn.relu(nn.Conv(self.width, (3, 3), name="block_conv1")(x))
    y = nn.Conv(self.width, (3, 3), name="block_conv2")(y)
    x = nn.relu(x + y)  # the residual connection
    x = max_pool(x, (2, 2))
    return x.reshape(x.shape[0], -1)


class TwoInputTwoOutput(nn.Module):
  """image, edges -> {"label": 10 logits, "group": 3 logits}."""
  num_classes: int = 10
  num_groups: int = 3
  width: int = 32

  @nn.compact
  def __call__(self, image, edges, *, train: bool = False):
    encoder = ConvEncoder(self.width, name="encoder")  # nested model ...
    a, b = encoder(image), encoder(edges)              # ... shared by both inputs
    h = jnp.concatenate([a, b], axis=-1)
    h = nn.Dropout(0.3, deterministic=not train)(nn.relu(nn.Dense(128, name="joint")(h)))
    return {"label": nn.Dense(self.num_classes, name="label_head")(h),
            "group": nn.Dense(self.num_groups, name="group_head")(h)}


def edge_map(images: np.ndarray) -> np.ndarray:
  """Gradient magnitude, uint8 like the images."""
  x = images.astype(np.float32)[..., 0]
  gx = np.zeros_like(x)
  gy = np.zeros_like(x)
  gx[:, :, 1:-1] = x[:, :, 2:] - x[:, :, :-2]
  gy[:, 1:-1, :] = x[:, 2:, :] - x[:, :-2, :]
  return np.clip(np.hypot(gx, gy) / 2, 0, 255).astype(np.uint8)[..., None]


def _with_inputs(arrays):
  if arrays is None:
    return None
  return {"image": arrays["image"], "edges": edge_map(arrays["image"]), "label": arrays["label"],
          "group": GROUP_OF_CLASS[arrays["label"]]}


def _scale(batch):
  return {**batch, "image": batch["image"].astype(jnp.float32) / 255.0,
          "edges": batch["edges"].astype(jnp.float32) / 255.0}


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  classification.check_config(config, get_config())
  mesh = make_mesh(config.num_devices or None)
  train, val, test = (_with_inputs(a) for a in classification.load_splits(config))
  loaders = classification.make_loaders(config, mesh, train, val, test)
  loss = make_weighted_loss({"label": ("label", 1.0, "classification"),
                             "group": ("group", config.group_loss_weight, "classification")})
  total_steps = config.num_epochs * loaders["train"].steps_per_epoch
  tx = optim.optimizer_from_config(
      {**config.optimizer.to_dict(), "kwargs": dict(config.optimizer.kwargs)}, total_steps)
  trainer = Trainer(TwoInputTwoOutput(width=config.model.kwargs.width), loss, tx, mesh=mesh,
                    input_keys=("image", "edges"), preprocess=_scale, seed=config.seed)
  trainer.init(peek(loaders["train"]))
  callbacks = classification.default_callbacks(config, workdir, loaders["val"] is not None)
  history = trainer.fit(loaders["train"], epochs=config.num_epochs, validation_data=loaders["val"],
                        callbacks=callbacks, verbose=config.verbose, workdir=workdir,
                        log_every_steps=config.log_every_steps)
  test_metrics = {f"test_{k}": v for k, v in trainer.evaluate(loaders["test"]).items()}
  log_lib.write_final(os.path.join(workdir, "metrics.jsonl"), trainer.loop.global_step,
                      test_metrics, num_params=trainer.num_params)
  classification.plot_history(history.history, os.path.join(workdir, "curves.png"))
  trainer.free()
  return test_metrics

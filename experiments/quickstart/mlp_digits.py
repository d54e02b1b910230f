"""Quick start: an MLP on scikit-learn's 8x8 digits with a plain, jitted, sharded loop.

  ycng run quickstart/mlp_digits [--workdir DIR] [--config.num_epochs=30]

The data ship with scikit-learn, so this runs on any fresh install in well under a minute
on a laptop CPU. It uses the same input pipeline and mesh as every other experiment.
"""

from __future__ import annotations

import json
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ycng_jax import data
from ycng_jax.data.pipeline import Loader
from ycng_jax.train import mesh as mesh_lib


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.dataset = "digits"
  config.hidden = (256, 128)
  config.dropout = 0.1
  config.learning_rate = 2e-3
  config.batch_size = 64
  config.num_epochs = 40
  config.seed = 0
  return config


class MLP(nn.Module):
  hidden: tuple[int, ...]
  num_classes: int
  dropout: float

  @nn.compact
  def __call__(self, images, *, train: bool):
    x = images.reshape(images.shape[0], -1).astype(jnp.float32) / 255.0
    for width in self.hidden:
      x = nn.Dropout(self.dropout, deterministic=not train)(nn.relu(nn.Dense(width)(x)))
    return nn.Dense(self.num_classes)(x)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  mesh = mesh_lib.make_mesh()
  train, test = data.load(config.dataset, "train"), data.load(config.dataset, "test")
  num_classes = int(train["label"].max()) + 1
  batch = config.batch_size - config.batch_size % mesh.devices.size or mesh.devices.size
  train_loader = Loader(train, global_batch_size=batch, mesh=mesh, seed=config.seed)
  model = MLP(tuple(config.hidden), num_classes, config.dropout)
  key = jax.random.key(config.seed)
  params = model.init(key, train["image"][:1], train=False)["params"]
  optimizer = optax.adam(config.learning_rate)
  params = jax.device_put(params, mesh_lib.replicated(mesh))
  opt_state = optimizer.init(params)

  @jax.jit
  def train_step(params, opt_state, batch, step_key):
    def loss_fn(p):
      logits = model.apply({"params": p}, batch["image"], train=True, rngs={"dropout": step_key})
      losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
      return jnp.sum(losses * batch["mask"]) / jnp.sum(batch["mask"])
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  @jax.jit
  def eval_step(params, batch):
    logits = model.apply({"params": params}, batch["image"], train=False)
    return jnp.sum((jnp.argmax(logits, -1) == batch["label"]) * batch["mask"]), jnp.sum(batch["mask"])

  def accuracy(arrays):
    correct = total = 0.0
    for b in Loader(arrays, global_batch_size=batch, mesh=mesh, shuffle=False, num_epochs=1,
                    drop_remainder=False):
      c, n = eval_step(params, b)
      correct, total = correct + float(c), total + float(n)
    return correct / total

  metrics_path = pathlib.Path(workdir) / "metrics.jsonl"
  with metrics_path.open("w") as log:
    step = 0
    for epoch in range(config.num_epochs):
      losses = []
      for _ in range(train_loader.steps_per_epoch):
        params, opt_state, loss = train_step(params, opt_state, next(train_loader),
                                             jax.random.fold_in(key, step))
        losses.append(loss)
        step += 1
      record = {"step": step, "epoch": epoch + 1, "train_loss": float(np.mean(jax.device_get(losses)))}
      log.write(json.dumps(record) + "\n")
    final = {"step": step, "final": True, "test_accuracy": accuracy(test),
             "train_accuracy": accuracy(train)}
    log.write(json.dumps(final) + "\n")
  print(f"test accuracy: {final['test_accuracy']:.4f}")
  return {k: v for k, v in final.items() if k != "final"}

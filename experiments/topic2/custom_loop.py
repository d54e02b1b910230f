"""Topic 2: a hand-written training loop over the same pure, sharded steps ``fit`` uses.

  ycng run topic2/custom_loop [--workdir DIR] [--config.num_epochs=3]

No Trainer and no callbacks: ``make_train_step`` / ``make_eval_step`` are pure functions,
jitted here with explicit shardings over the mesh (state replicated, batch split on
``data``, old state donated). The loop logs to ``metrics.jsonl`` itself.
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import ml_collections

from ycng_jax.models.cnn import CNN
from ycng_jax.train import classification, optim, steps
from ycng_jax.train.dispatch import DispatchLimit, add_sums
from ycng_jax.train.losses import make_classification_loss
from ycng_jax.train.mesh import make_mesh
from ycng_jax.train.partition import state_shardings
from ycng_jax.train.state import create_train_state


def get_config() -> ml_collections.ConfigDict:
  config = classification.base_config()
  config.runner = ""
  config.num_epochs = 3
  config.validation_split = 0.0
  config.optimizer.learning_rate = 2e-3
  return config


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  classification.check_config(config, get_config())
  os.makedirs(workdir, exist_ok=True)
  mesh = make_mesh(config.num_devices or None)
  train, _, test = classification.load_splits(config)
  loaders = classification.make_loaders(config, mesh, train, None, test)
  model = CNN(num_classes=10, features=(32, 64), convs_per_block=1)
  loss_fn = make_classification_loss()
  preprocess = classification.make_preprocess(config.image_scale)
  tx = optim.make_optimizer(config.optimizer.name, config.optimizer.learning_rate)

  def init(rng):
    variables = dict(model.init(rng, jnp.zeros((1, 28, 28, 1)), train=False))
    params = variables.pop("params")
    return create_train_state(params, variables, tx, jax.random.fold_in(rng, 1))

  rng = jax.random.PRNGKey(config.seed)
  shardings = state_shardings(jax.eval_shape(init, rng), mesh, config.param_sharding)
  state = jax.jit(init, out_shardings=shardings)(rng)
  train_step = steps.jit_train_step(
      steps.make_train_step(model, loss_fn, tx, preprocess=preprocess), mesh, shardings)
  eval_step = steps.jit_eval_step(
      steps.make_eval_step(model, loss_fn, preprocess=preprocess), mesh, shardings)

  log = open(os.path.join(workdir, "metrics.jsonl"), "w")
  loader = loaders["train"]
  # Steps are dispatched asynchronously; waiting for the one a few iterations back keeps
  # XLA:CPU's launch queue short (see ycng_jax/train/dispatch.py for the deadlock it avoids).
  limit = DispatchLimit()
  for epoch in range(config.num_epochs):
    total = None
    for _ in range(loader.steps_per_epoch):
      state, sums = train_step(state, next(loader))
      total = sums if total is None else add_sums(total, sums)
      limit(total)
    host = jax.device_get(total)
    record = {"step": int(state.step), "epoch": epoch + 1,
              "loss": float(host["loss"] / host["count"]),
              "accuracy": float(host["accuracy"] / host["count"])}
    log.write(json.dumps(record) + "\n")
    if config.verbose:
      print(record, flush=True)
  total = None
  for batch in loaders["test"]:
    sums = eval_step(state, batch)
    total = sums if total is None else add_sums(total, sums)
    limit(total)
  host = jax.device_get(total)
  final = {"test_loss": float(host["loss"] / host["count"]),
           "test_accuracy": float(host["accuracy"] / host["count"])}
  log.write(json.dumps({"final": True, "step": int(state.step), **final}) + "\n")
  log.close()
  return final

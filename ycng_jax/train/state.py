"""The train state: everything a step reads and writes, as one pytree.

One pytree (not an object with methods) so that it can be jitted, sharded,
donated, checkpointed with orbax and, later, vmapped over a population of trials.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

PyTree = Any


class TrainState(flax.struct.PyTreeNode):
  """Params, optimizer state and the rest of one training run.

  Attributes:
    step: number of optimizer updates done so far (int32 scalar).
    params: the trainable parameters (float32, whatever the compute dtype).
    opt_state: the optax state; learning rate and other injected hyperparameters
      live here (``optax.inject_hyperparams``) so they can change without a recompile.
    rng: a raw ``uint32[2]`` key; the step folds in ``step`` so no key is carried
      forward and a resumed run draws the same dropout masks.
    model_state: mutable Flax collections other than params (e.g. ``{"batch_stats": ...}``);
      ``{}`` for models without any.
    ema_params: exponential moving average of ``params`` or ``None`` when EMA is off.
  """
  step: jax.Array
  params: PyTree
  opt_state: optax.OptState
  rng: jax.Array
  model_state: PyTree
  ema_params: PyTree | None = None

  @property
  def variables(self) -> dict[str, PyTree]:
    """The Flax variables dict for ``model.apply`` (params plus mutable collections)."""
    return {"params": self.params, **self.model_state}

  @property
  def eval_variables(self) -> dict[str, PyTree]:
    """Variables used for evaluation: the EMA params when EMA is on."""
    params = self.ema_params if self.ema_params is not None else self.params
    return {"params": params, **self.model_state}


def create_train_state(params: PyTree, model_state: PyTree, tx: optax.GradientTransformation,
                       rng: jax.Array, ema: bool = False) -> TrainState:
  """A fresh state at step 0 (pure: call it under ``jax.jit`` with out_shardings)."""
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      opt_state=tx.init(params),
      rng=rng,
      model_state=model_state,
      ema_params=jax.tree.map(jnp.copy, params) if ema else None)


def count_params(params: PyTree) -> int:
  return int(sum(x.size for x in jax.tree.leaves(params)))

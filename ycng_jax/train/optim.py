"""Optimizers and schedules from a config, with hyperparameters kept in the state.

Every optimizer is wrapped in ``optax.inject_hyperparams``: the learning rate (and
weight decay, momentum, ...) is an array in ``opt_state``, not a constant in the
compiled step. Callbacks change it without recompiling, and a later tuner can vmap
a population of trials over it.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import optax

from ycng_jax.checks import real_number
from ycng_jax.errors import UserError

PyTree = Any

SCHEDULES = ("constant", "cosine", "warmup_cosine", "linear", "exponential")


def make_schedule(name: str, learning_rate: float, total_steps: int, *, warmup_steps: int = 0,
                  end_factor: float = 0.0, decay_rate: float = 0.5,
                  transition_steps: int | None = None) -> float | optax.Schedule:
  """A learning-rate schedule by name; ``constant`` returns the plain float.

  Only the constant case lets callbacks (LearningRateScheduler, ReduceLROnPlateau) set the
  rate, as in Keras, because a schedule recomputes it at every step.
  """
  total_steps = max(int(total_steps), 1)
  real_number("learning_rate", learning_rate, 0.0)
  if name == "constant":
    if warmup_steps:
      return optax.linear_schedule(0.0, learning_rate, warmup_steps)
    return float(learning_rate)
  if name == "cosine":
    return optax.cosine_decay_schedule(learning_rate, total_steps, alpha=end_factor)
  if name == "warmup_cosine":
    warmup_steps = max(warmup_steps, 1)
    if warmup_steps >= total_steps:
      raise UserError(f"warmup_steps={warmup_steps} must be smaller than the run's {total_steps} "
                      "steps (epochs x steps per epoch)")
    return optax.warmup_cosine_decay_schedule(0.0, learning_rate, warmup_steps, total_steps,
                                              end_value=learning_rate * end_factor)
  if name == "linear":
    return optax.linear_schedule(learning_rate, learning_rate * end_factor, total_steps)
  if name == "exponential":
    return optax.exponential_decay(learning_rate, transition_steps or total_steps, decay_rate)
  raise UserError(f"unknown schedule {name!r}; choose one of {SCHEDULES}")


def make_optimizer(name: str = "adam", learning_rate: float | optax.Schedule = 1e-3, *,
                   clip_norm: float | None = None, clip_value: float | None = None,
                   **kwargs: Any) -> optax.GradientTransformation:
  """``optax.<name>`` with injected hyperparameters, optionally after gradient clipping.

  Args:
    name: any optax optimizer constructor (``adam``, ``adamw``, ``sgd``, ``lion``, ...).
    learning_rate: a float or an optax schedule.
    clip_norm: clip the global gradient norm to this value (``None``/0: off).
    clip_value: clip each gradient element to ``[-v, v]`` (``None``/0: off).
    **kwargs: further arguments of the optax constructor (``weight_decay``, ``momentum``, ...).
  """
  constructor = getattr(optax, name, None)
  if constructor is None or not callable(constructor):
    raise UserError(f"optax has no optimizer {name!r} (e.g. 'adam', 'adamw', 'sgd', 'lion')")
  if not callable(learning_rate) and not isinstance(learning_rate, jax.Array):
    real_number("learning_rate", learning_rate, 0.0)  # a schedule or a traced value is the caller's
  try:
    inner = optax.inject_hyperparams(constructor)(learning_rate=learning_rate, **kwargs)
  except TypeError as e:
    raise UserError(f"bad arguments for optax.{name}: {sorted(kwargs)}: {e}") from e
  parts = []
  if clip_value:
    parts.append(optax.clip(clip_value))
  if clip_norm:
    parts.append(optax.clip_by_global_norm(clip_norm))
  return optax.chain(*parts, inner) if parts else inner


def optimizer_config(schedule: str = "constant") -> ml_collections.ConfigDict:
  """The default ``config.optimizer`` that ``optimizer_from_config`` reads (Adam, lr 1e-3)."""
  return ml_collections.ConfigDict({
      "name": "adam", "learning_rate": 1e-3, "schedule": schedule, "warmup_steps": 0,
      "end_factor": 0.0, "decay_rate": 0.5, "clip_norm": 0.0, "clip_value": 0.0,
      "kwargs": ml_collections.ConfigDict()})


def optimizer_from_config(cfg: Mapping[str, Any], total_steps: int) -> optax.GradientTransformation:
  """Build the optimizer from ``config.optimizer`` (a ConfigDict or dict).

  Keys: ``name``, ``learning_rate``, ``schedule`` (one of SCHEDULES), ``warmup_steps``,
  ``end_factor``, ``clip_norm``, ``clip_value``, and ``kwargs`` (passed to optax).
  """
  cfg = dict(cfg)
  known = {"name", "learning_rate", "schedule", "warmup_steps", "end_factor", "decay_rate",
           "clip_norm", "clip_value", "kwargs"}
  unknown = set(cfg) - known
  if unknown:
    raise UserError(f"unknown optimizer config keys {sorted(unknown)}; valid: {sorted(known)}")
  lr = make_schedule(cfg.get("schedule", "constant"), cfg.get("learning_rate", 1e-3), total_steps,
                     warmup_steps=cfg.get("warmup_steps", 0) or 0,
                     end_factor=cfg.get("end_factor", 0.0) or 0.0,
                     decay_rate=cfg.get("decay_rate", 0.5) or 0.5)
  kwargs = dict(cfg.get("kwargs") or {})
  return make_optimizer(cfg.get("name", "adam"), lr, clip_norm=cfg.get("clip_norm"),
                        clip_value=cfg.get("clip_value"), **kwargs)


# --- freezing (transfer learning) -------------------------------------------------------------

def path_name(path: Sequence[Any]) -> str:
  """'Dense_0/kernel' style name of a pytree path (dict keys joined by '/')."""
  parts = []
  for p in path:
    parts.append(str(getattr(p, "key", getattr(p, "name", getattr(p, "idx", p)))))
  return "/".join(parts)


def trainable_labels(params: PyTree, *, trainable: Sequence[str] | None = None,
                     frozen: Sequence[str] | None = None) -> PyTree:
  """Label each param ``"trainable"`` or ``"frozen"`` by regexes over its path name.

  Give either ``trainable`` (everything else is frozen) or ``frozen`` (everything else trains).
  """
  if (trainable is None) == (frozen is None):
    raise ValueError("give exactly one of trainable=[regex...] or frozen=[regex...]")
  patterns = [re.compile(p) for p in (trainable if trainable is not None else frozen)]

  def label(path, _):
    hit = any(p.search(path_name(path)) for p in patterns)
    if trainable is not None:
      return "trainable" if hit else "frozen"
    return "frozen" if hit else "trainable"

  labels = jax.tree_util.tree_map_with_path(label, params)
  if not any(v == "trainable" for v in jax.tree.leaves(labels)):
    names = [path_name(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    raise ValueError(f"the patterns leave no parameter trainable; parameter names: {names}")
  return labels


def freeze(tx: optax.GradientTransformation, labels: PyTree | Callable[[PyTree], PyTree]
           ) -> optax.GradientTransformation:
  """``tx`` on the ``"trainable"`` params, exact zero updates on the ``"frozen"`` ones.

  ``optax.set_to_zero`` keeps no state, so frozen params get no optimizer slots and
  ``params + 0`` leaves them bit-identical.
  """
  return optax.multi_transform({"trainable": tx, "frozen": optax.set_to_zero()}, labels)


# --- reading and writing injected hyperparameters ---------------------------------------------

def _has_hparams(x: Any) -> bool:
  return hasattr(x, "hyperparams") and isinstance(getattr(x, "hyperparams"), dict)


def get_hyperparams(opt_state: optax.OptState) -> dict[str, jax.Array]:
  """The injected hyperparameters of the (first) inject_hyperparams state in ``opt_state``."""
  for node in jax.tree.leaves(opt_state, is_leaf=_has_hparams):
    if _has_hparams(node):
      return dict(node.hyperparams)
  raise ValueError("this optimizer has no injected hyperparameters; build it with "
                   "ycng_jax.train.optim.make_optimizer (optax.inject_hyperparams)")


def set_hyperparam(opt_state: optax.OptState, name: str, value: float) -> optax.OptState:
  """``opt_state`` with hyperparameter ``name`` set to ``value`` (same dtype and sharding).

  Raises if the hyperparameter follows a schedule, since the schedule would overwrite it.
  """
  found = False

  def replace(node):
    nonlocal found
    if not _has_hparams(node):
      return node
    if name not in node.hyperparams:
      raise ValueError(f"no hyperparameter {name!r}; have {sorted(node.hyperparams)}")
    if getattr(node, "hyperparams_states", {}).get(name) is not None:
      raise ValueError(f"{name!r} follows a schedule and cannot be set by a callback; use "
                       "schedule='constant' in config.optimizer to let callbacks change it")
    found = True
    old = node.hyperparams[name]
    new = jnp.asarray(value, dtype=old.dtype)
    if isinstance(old, jax.Array):
      new = jax.device_put(new, old.sharding)
    return node._replace(hyperparams={**node.hyperparams, name: new})

  out = jax.tree.map(replace, opt_state, is_leaf=_has_hparams)
  if not found:
    get_hyperparams(opt_state)  # raises the explanatory error
  return out

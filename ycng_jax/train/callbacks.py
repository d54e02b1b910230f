"""Keras-style callbacks: the protocol and the in-memory ones.

Callbacks see the ``Trainer`` as ``self.trainer`` (Keras: ``self.model``). Batch logs are
lazy: reading them syncs with the device, so callbacks that do not read them every batch
cost nothing. A callback whose behaviour depends on its past (patience counters, best
values) returns that in ``get_state`` so a resumed run continues exactly.
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable, Iterable, Mapping

import jax
import jax.numpy as jnp

Logs = Mapping[str, Any]


class Callback:
  """Base class; override the hooks you need.

  Callbacks run in ascending ``order`` (stable): a callback that adds metrics to the epoch
  logs sets a negative order to run before History and the loggers; ``runs_last``
  (checkpointing) ones run after everything else so they save the final state of the step.
  """
  runs_last = False
  order = 0

  def __init__(self):
    self.trainer = None
    self.params: dict[str, Any] = {}

  def set_trainer(self, trainer) -> None:
    self.trainer = trainer

  def set_params(self, params: dict[str, Any]) -> None:
    self.params = params

  def on_train_begin(self, logs: Logs | None = None): ...
  def on_train_end(self, logs: Logs | None = None): ...
  def on_epoch_begin(self, epoch: int, logs: Logs | None = None): ...
  def on_epoch_end(self, epoch: int, logs: Logs | None = None): ...
  def on_train_batch_begin(self, batch: int, logs: Logs | None = None): ...
  def on_train_batch_end(self, batch: int, logs: Logs | None = None): ...
  def on_eval_begin(self, logs: Logs | None = None): ...
  def on_eval_end(self, logs: Logs | None = None): ...

  def get_state(self) -> dict[str, Any]:
    """JSON-serializable state saved in checkpoints (for exact resume)."""
    return {}

  def set_state(self, state: Mapping[str, Any]) -> None:
    """Restore what ``get_state`` returned."""


class CallbackList:
  """Dispatches each hook to every callback, by ``order``, ``runs_last`` ones last."""

  def __init__(self, callbacks: Iterable[Callback], trainer=None, params=None):
    callbacks = list(callbacks)
    self.callbacks = sorted(callbacks, key=lambda c: (c.runs_last, c.order))
    for c in self.callbacks:
      if trainer is not None:
        c.set_trainer(trainer)
      if params is not None:
        c.set_params(params)

  def __iter__(self):
    return iter(self.callbacks)

  def _call(self, name, *args):
    for c in self.callbacks:
      getattr(c, name)(*args)

  def on_train_begin(self, logs=None): self._call("on_train_begin", logs)
  def on_train_end(self, logs=None): self._call("on_train_end", logs)
  def on_epoch_begin(self, epoch, logs=None): self._call("on_epoch_begin", epoch, logs)
  def on_epoch_end(self, epoch, logs=None): self._call("on_epoch_end", epoch, logs)
  def on_train_batch_begin(self, batch, logs=None): self._call("on_train_batch_begin", batch, logs)
  def on_train_batch_end(self, batch, logs=None): self._call("on_train_batch_end", batch, logs)
  def on_eval_begin(self, logs=None): self._call("on_eval_begin", logs)
  def on_eval_end(self, logs=None): self._call("on_eval_end", logs)

  def state_key(self, index: int) -> str:
    return f"{index}:{type(self.callbacks[index]).__name__}"

  def get_state(self) -> dict[str, Any]:
    return {self.state_key(i): c.get_state() for i, c in enumerate(self.callbacks)}

  def set_state(self, state: Mapping[str, Any]) -> None:
    for i, c in enumerate(self.callbacks):
      if self.state_key(i) in state:
        c.set_state(state[self.state_key(i)])


class History(Callback):
  """``history.history[metric]`` is the list of per-epoch values (Keras' History)."""

  def __init__(self):
    super().__init__()
    self.history: dict[str, list[float]] = {}
    self.epoch: list[int] = []

  def on_epoch_end(self, epoch, logs=None):
    self.epoch.append(epoch)
    for k, v in (logs or {}).items():
      self.history.setdefault(k, []).append(float(v))

  def get_state(self):
    return {"history": self.history, "epoch": self.epoch}

  def set_state(self, state):
    self.history = {k: list(v) for k, v in state.get("history", {}).items()}
    self.epoch = list(state.get("epoch", []))


class ProgbarLogger(Callback):
  """A tqdm bar per epoch; the metrics shown are refreshed every ``refresh_every`` batches."""

  def __init__(self, refresh_every: int = 20):
    super().__init__()
    self.refresh_every = max(int(refresh_every), 1)
    self._bar = None

  def on_epoch_begin(self, epoch, logs=None):
    from tqdm.auto import tqdm
    if jax.process_index() == 0:
      self._bar = tqdm(total=self.params.get("steps"), desc=f"epoch {epoch + 1}/"
                       f"{self.params.get('epochs')}", leave=True, dynamic_ncols=True)
      start = (self.params.get("initial_step_in_epoch") or 0) if epoch == self.params.get(
          "initial_epoch") else 0
      self._bar.update(start)

  def on_train_batch_end(self, batch, logs=None):
    if self._bar is None:
      return
    self._bar.update(1)
    if (batch + 1) % self.refresh_every == 0 and logs:
      self._bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items()}, refresh=False)

  def on_epoch_end(self, epoch, logs=None):
    if self._bar is not None:
      self._bar.set_postfix({k: f"{v:.4g}" for k, v in (logs or {}).items()})
      self._bar.close()
      self._bar = None


def _monitor_op(mode: str, monitor: str):
  if mode not in ("auto", "min", "max"):
    raise ValueError(f"mode={mode!r}; use 'auto', 'min' or 'max'")
  if mode == "auto":
    mode = "max" if ("acc" in monitor or monitor.endswith("auc")) else "min"
  return mode


def _improved(mode: str, value: float, best: float | None, min_delta: float) -> bool:
  if best is None:
    return True
  return value < best - min_delta if mode == "min" else value > best + min_delta


def _get_monitor(logs: Logs | None, monitor: str, who: str) -> float | None:
  if not logs or monitor not in logs:
    raise KeyError(f"{who} monitors {monitor!r} but the logs have {sorted(logs or {})}; "
                   "pass validation_data to fit for val_* metrics or pick one of these")
  return float(logs[monitor])


class EarlyStopping(Callback):
  """Stop when ``monitor`` has not improved for ``patience`` epochs.

  With ``restore_best_weights`` the params of the best epoch are put back at the end of
  training (a device copy is kept; EMA params too when EMA is on). Give ``backup_dir`` as
  well and each new best is also written there (orbax), so a run killed and resumed (e.g.
  by ``BackupAndRestore``) still ends with the best weights, even from before the kill.
  """

  def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0,
               mode: str = "auto", baseline: float | None = None,
               restore_best_weights: bool = False, start_from_epoch: int = 0,
               backup_dir: str | None = None):
    super().__init__()
    self.backup_dir = None if backup_dir is None else os.path.abspath(os.fspath(backup_dir))
    self.monitor, self.patience, self.baseline = monitor, patience, baseline
    self.min_delta = abs(min_delta)
    self.mode = _monitor_op(mode, monitor)
    self.restore_best_weights = restore_best_weights
    self.start_from_epoch = start_from_epoch
    self.wait, self.best, self.best_epoch, self.stopped_epoch = 0, None, -1, -1
    self.best_weights = None

  def on_epoch_end(self, epoch, logs=None):
    value = _get_monitor(logs, self.monitor, "EarlyStopping")
    if epoch < self.start_from_epoch or not math.isfinite(value):
      return
    self.wait += 1
    if _improved(self.mode, value, self.best, self.min_delta):
      self.best, self.best_epoch = value, epoch
      if self.restore_best_weights:
        state = self.trainer.state
        self.best_weights = jax.tree.map(jnp.copy, (state.params, state.ema_params))
        if self.backup_dir is not None:
          self._save_backup(self.best_weights)
      if self.baseline is None or _improved(self.mode, value, self.baseline, 0.0):
        self.wait = 0
      return
    if self.wait >= self.patience and epoch > 0:
      self.stopped_epoch = epoch
      self.trainer.stop_training = True

  @staticmethod
  def _weights_tree(weights) -> dict:
    params, ema = weights
    return {"params": params} if ema is None else {"params": params, "ema_params": ema}

  def _save_backup(self, weights) -> None:
    import orbax.checkpoint as ocp  # only needed with backup_dir
    # synchronous: the file is complete before training goes on (and before a kill)
    ocp.Checkpointer(ocp.StandardCheckpointHandler()).save(
        self.backup_dir, args=ocp.args.StandardSave(self._weights_tree(weights)), force=True)

  def _load_backup(self):
    """The best weights of a run that was resumed after the improvement was saved."""
    if self.backup_dir is None or self.best_epoch < 0 or not os.path.isdir(self.backup_dir):
      return None
    import orbax.checkpoint as ocp
    from ycng_jax.train.checkpoint import abstract_like  # checkpoint imports this module
    state = self.trainer.state
    target = abstract_like(self._weights_tree((state.params, state.ema_params)))
    restored = ocp.Checkpointer(ocp.StandardCheckpointHandler()).restore(
        self.backup_dir, args=ocp.args.StandardRestore(target))
    return restored["params"], restored.get("ema_params")

  def on_train_end(self, logs=None):
    if not self.restore_best_weights:
      return
    weights = self.best_weights if self.best_weights is not None else self._load_backup()
    if weights is not None:
      params, ema = weights
      self.trainer.state = self.trainer.state.replace(params=params, ema_params=ema)
      self.best_weights = None

  def get_state(self):
    return {"wait": self.wait, "best": self.best, "best_epoch": self.best_epoch,
            "stopped_epoch": self.stopped_epoch}

  def set_state(self, state):
    self.wait, self.best = state["wait"], state["best"]
    self.best_epoch, self.stopped_epoch = state["best_epoch"], state["stopped_epoch"]


class LearningRateScheduler(Callback):
  """Sets the learning rate to ``schedule(epoch, lr)`` at the start of each epoch (no recompile)."""

  def __init__(self, schedule: Callable[[int, float], float], verbose: int = 0):
    super().__init__()
    self.schedule, self.verbose = schedule, verbose

  def on_epoch_begin(self, epoch, logs=None):
    lr = float(self.schedule(epoch, self.trainer.learning_rate))
    if not math.isfinite(lr):
      raise ValueError(f"LearningRateScheduler returned {lr} at epoch {epoch}")
    self.trainer.learning_rate = lr
    if self.verbose:
      print(f"epoch {epoch + 1}: LearningRateScheduler set learning rate to {lr:.6g}")


class ReduceLROnPlateau(Callback):
  """Multiply the learning rate by ``factor`` when ``monitor`` stalls for ``patience`` epochs."""

  def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
               mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0,
               min_lr: float = 0.0, verbose: int = 0):
    super().__init__()
    if not 0 < factor < 1:
      raise ValueError(f"ReduceLROnPlateau factor={factor} must be in (0, 1)")
    self.monitor, self.factor, self.patience = monitor, factor, patience
    self.mode = _monitor_op(mode, monitor)
    self.min_delta, self.cooldown, self.min_lr, self.verbose = min_delta, cooldown, min_lr, verbose
    self.wait, self.best, self.cooldown_counter = 0, None, 0

  def on_epoch_end(self, epoch, logs=None):
    value = _get_monitor(logs, self.monitor, "ReduceLROnPlateau")
    if self.cooldown_counter > 0:
      self.cooldown_counter -= 1
      self.wait = 0
    if _improved(self.mode, value, self.best, self.min_delta):
      self.best, self.wait = value, 0
      return
    if self.cooldown_counter > 0:
      return
    self.wait += 1
    if self.wait >= self.patience:
      old = self.trainer.learning_rate
      new = max(old * self.factor, self.min_lr)
      if old > new:
        self.trainer.learning_rate = new
        if self.verbose:
          print(f"epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new:.6g}")
        self.cooldown_counter, self.wait = self.cooldown, 0

  def get_state(self):
    return {"wait": self.wait, "best": self.best, "cooldown_counter": self.cooldown_counter}

  def set_state(self, state):
    self.wait, self.best, self.cooldown_counter = (state["wait"], state["best"],
                                                   state["cooldown_counter"])


class LambdaCallback(Callback):
  """Callback from plain functions, e.g. ``LambdaCallback(on_epoch_end=lambda e, logs: ...)``."""

  def __init__(self, **hooks: Callable):
    super().__init__()
    valid = {"on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
             "on_train_batch_begin", "on_train_batch_end", "on_eval_begin", "on_eval_end"}
    unknown = set(hooks) - valid
    if unknown:
      raise ValueError(f"LambdaCallback got unknown hooks {sorted(unknown)}; valid: {sorted(valid)}")
    for name, fn in hooks.items():
      setattr(self, name, fn)


class TerminateOnNaN(Callback):
  """Stop training when the loss is NaN or infinite; checkpoints after that point are skipped.

  ``check_every`` > 1 reads the loss (a device sync) only every that many batches.
  """

  def __init__(self, check_every: int = 1):
    super().__init__()
    self.check_every = max(int(check_every), 1)

  def on_train_batch_end(self, batch, logs=None):
    if (batch + 1) % self.check_every or not logs or "loss" not in logs:
      return
    loss = float(logs["loss"])
    if not math.isfinite(loss):
      step = self.trainer.loop.global_step if self.trainer.loop else None
      self.trainer.nonfinite_step = step
      self.trainer.stop_training = True
      print(f"TerminateOnNaN: non-finite loss {loss} at step {step} (batch {batch}); stopping. "
            "Checkpoints from here on are not written; earlier ones are kept. Lower the "
            "learning rate, set optimizer.clip_norm, or check the inputs for NaN/inf.")

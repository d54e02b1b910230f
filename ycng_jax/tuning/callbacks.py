"""The trainer callback that reports a trial's objective each epoch and stops a pruned trial."""

from __future__ import annotations

import math
from typing import Any, Mapping

from ycng_jax.train.callbacks import Callback


class TrialReporter(Callback):
  """Reports ``logs[objective]`` to the Optuna trial at each epoch end (step = epochs done).

  Epochs are the resource of Hyperband and successive halving: when the pruner says so, the
  trial stops after this epoch (``trainer.stop_training``) and ``pruned`` is set. The values
  reported so far are part of the checkpoint (``get_state``), so a trial restarted from its
  backup reports them again to its new Optuna trial and the pruner sees the whole curve.
  """

  def __init__(self, trial, objective: str, direction: str):
    super().__init__()
    self.trial, self.objective, self.direction = trial, objective, direction
    self.values: list[float] = []
    self.pruned = False
    self.available: list[str] = []

  def on_train_begin(self, logs=None):
    for step, value in enumerate(self.values, start=1):  # restored from a checkpoint
      if math.isfinite(value):
        self.trial.report(value, step)
    if self.pruned:  # killed after the pruner stopped it, before the trial was closed
      self.trainer.stop_training = True

  def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None):
    logs = dict(logs or {})
    self.available = sorted(logs)
    if self.objective not in logs:
      return
    value = float(logs[self.objective])
    self.values.append(value)
    if not math.isfinite(value):
      self.trainer.stop_training = True  # the trial fails; more epochs would not help it
      return
    self.trial.report(value, len(self.values))
    if self.trial.should_prune():
      self.pruned = True
      self.trainer.stop_training = True

  def best(self) -> float | None:
    """The best epoch's value (KerasTuner's objective), or None if the metric was never logged."""
    if not self.values:
      return None
    if any(not math.isfinite(v) for v in self.values):
      return math.nan
    return max(self.values) if self.direction == "max" else min(self.values)

  def get_state(self):
    return {"values": self.values, "pruned": self.pruned}

  def set_state(self, state):
    self.values = [float(v) for v in state.get("values", [])]
    self.pruned = bool(state.get("pruned", False))

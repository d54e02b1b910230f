"""The Keras-style ``fit`` loop over the compiled train step.

The loop keeps its position (epoch, batch within the epoch, running epoch sums) in plain
Python values so that ``BackupAndRestore`` can save it next to the state and the loader's
iterator state and a resumed run takes exactly the same steps.
"""

from __future__ import annotations

import collections.abc
import os
from typing import Any, Callable, Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp

from ycng_jax.checks import whole_number
from ycng_jax.train.callbacks import Callback, CallbackList, History, ProgbarLogger
from ycng_jax.train.logging_callbacks import MetricsLogger
from ycng_jax.train.dispatch import DispatchLimit, add_sums
from ycng_jax.train.trainer import Trainer, averages, peek


class LazyLogs(collections.abc.Mapping):
  """Batch logs that sync with the device only when a callback reads them."""

  def __init__(self, produce: Callable[[], dict[str, float]]):
    self._produce, self._values = produce, None

  def _get(self) -> dict[str, float]:
    if self._values is None:
      self._values = self._produce()
    return self._values

  def __getitem__(self, key):
    return self._get()[key]

  def __iter__(self):
    return iter(self._get())

  def __len__(self):
    return len(self._get())


class FitLoop:
  """One call of ``fit``: position, iteration and the snapshot/restore of that position."""

  def __init__(self, trainer: Trainer, train_data: Iterable, *, epochs: int, steps_per_epoch: int,
               validation_data: Iterable | None, validation_freq: int, callbacks: CallbackList,
               initial_epoch: int):
    self.trainer, self.train_data = trainer, train_data
    self.epochs, self.steps_per_epoch = epochs, steps_per_epoch
    self.validation_data, self.validation_freq = validation_data, validation_freq
    self.callbacks = callbacks
    self.epoch, self.step_in_epoch = initial_epoch, 0
    self.global_step = int(jax.device_get(trainer.state.step))
    self.epoch_sums: dict[str, Any] | None = None
    self._iterator = None

  # --- position ------------------------------------------------------------------------------

  def snapshot(self) -> dict[str, Any]:
    """JSON meta for a checkpoint: everything but the arrays of the state."""
    sums = None
    if self.epoch_sums is not None:
      sums = {k: float(v) for k, v in jax.device_get(self.epoch_sums).items()}
    loader_state = self.train_data.get_state() if hasattr(self.train_data, "get_state") else None
    return {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step, "epoch_sums": sums, "loader": loader_state,
            "callbacks": self.callbacks.get_state()}

  def restore(self, meta: Mapping[str, Any]):
    self.epoch, self.step_in_epoch = int(meta["epoch"]), int(meta["step_in_epoch"])
    self.global_step = int(meta["global_step"])
    sums = meta.get("epoch_sums")
    self.epoch_sums = (None if sums is None else
                       {k: jnp.asarray(v, jnp.float32) for k, v in sums.items()})
    if meta.get("loader") is not None:
      if not hasattr(self.train_data, "set_state"):
        raise ValueError("the checkpoint has a loader state but train_data has no set_state()")
      self.train_data.set_state(meta["loader"])
    self._iterator = None
    self.callbacks.set_state(meta.get("callbacks", {}))

  def _next_batch(self):
    if self._iterator is None:
      self._iterator = iter(self.train_data)
    try:
      return next(self._iterator)
    except StopIteration:
      self._iterator = iter(self.train_data)  # a finite loader: start its next epoch
      try:
        return next(self._iterator)
      except StopIteration:
        raise ValueError("train_data yielded no batches") from None

  # --- running -------------------------------------------------------------------------------

  def _train_logs(self, sums) -> dict[str, float]:
    logs = averages(sums)
    try:
      logs["learning_rate"] = self.trainer.learning_rate
    except ValueError:
      pass
    return logs

  def run(self) -> dict[str, float]:
    trainer, cbs = self.trainer, self.callbacks
    logs: dict[str, float] = {}
    limit = DispatchLimit()
    while self.epoch < self.epochs and not trainer.stop_training:
      epoch = self.epoch
      if self.step_in_epoch == 0:
        self.epoch_sums = None
      cbs.on_epoch_begin(epoch)
      while self.step_in_epoch < self.steps_per_epoch and not trainer.stop_training:
        batch_index = self.step_in_epoch
        cbs.on_train_batch_begin(batch_index)
        sums = trainer.train_step(self._next_batch())
        self.epoch_sums = sums if self.epoch_sums is None else add_sums(self.epoch_sums, sums)
        limit(self.epoch_sums)
        self.step_in_epoch += 1
        self.global_step += 1
        current = self.epoch_sums
        cbs.on_train_batch_end(batch_index, LazyLogs(lambda s=current: self._train_logs(s)))
      if self.epoch_sums is None:
        break
      logs = self._train_logs(self.epoch_sums)
      if self.validation_data is not None and (epoch + 1) % self.validation_freq == 0:
        val = trainer.evaluate(self.validation_data, callbacks=cbs)
        logs.update({f"val_{k}": v for k, v in val.items()})
      self.epoch, self.step_in_epoch = epoch + 1, 0
      cbs.on_epoch_end(epoch, logs)
    return logs


def fit(trainer: Trainer, train_data: Iterable, *, epochs: int = 1,
        steps_per_epoch: int | None = None, validation_data: Iterable | None = None,
        validation_freq: int = 1, callbacks: Sequence[Callback] = (), initial_epoch: int = 0,
        verbose: int = 1, workdir: str | None = None, log_every_steps: int = 50) -> History:
  """Train ``trainer`` on ``train_data`` for ``epochs`` epochs, Keras style.

  Args:
    train_data: a ``ycng_jax.data.pipeline.Loader`` (its ``steps_per_epoch`` and iterator
      state are used) or any iterable of batches (then give ``steps_per_epoch``).
    validation_data: evaluated every ``validation_freq`` epochs; metrics get a ``val_`` prefix.
    callbacks: ``Callback`` instances; a History is always added (and returned), a
      ProgbarLogger when ``verbose``, a MetricsLogger writing ``workdir/metrics.jsonl`` when
      ``workdir`` is given. Add ``BackupAndRestore`` for automatic resume.
  Returns:
    The History callback (``history.history[metric]`` per epoch).
  """
  whole_number("epochs", epochs, 1)
  whole_number("initial_epoch", initial_epoch, 0)
  whole_number("validation_freq", validation_freq, 1)
  if steps_per_epoch is None:
    steps_per_epoch = getattr(train_data, "steps_per_epoch", None)
    if steps_per_epoch is None:
      raise ValueError("train_data has no steps_per_epoch; pass steps_per_epoch=")
  if steps_per_epoch < 1:
    raise ValueError(f"steps_per_epoch={steps_per_epoch}: the data is smaller than one batch")
  if trainer.state is None:
    trainer.init(peek(train_data))
  callbacks = list(callbacks)
  history = next((c for c in callbacks if isinstance(c, History)), None)
  if history is None:
    history = History()
    callbacks.insert(0, history)
  if verbose and not any(isinstance(c, ProgbarLogger) for c in callbacks):
    callbacks.append(ProgbarLogger())
  if workdir is not None and not any(isinstance(c, MetricsLogger) for c in callbacks):
    callbacks.append(MetricsLogger(os.path.join(workdir, "metrics.jsonl"), log_every_steps))
  trainer.stop_training = False
  trainer.nonfinite_step = None
  trainer.history = history
  cbs = CallbackList(callbacks, trainer=trainer, params={
      "epochs": epochs, "steps": steps_per_epoch, "initial_epoch": initial_epoch,
      "initial_step_in_epoch": 0})
  loop = FitLoop(trainer, train_data, epochs=epochs, steps_per_epoch=steps_per_epoch,
                 validation_data=validation_data, validation_freq=validation_freq, callbacks=cbs,
                 initial_epoch=initial_epoch)
  trainer.loop = loop
  # Resume before on_train_begin, so every callback begins from its restored state.
  for c in cbs:
    if hasattr(c, "restore_into") and c.restore_into(loop):
      for other in cbs:
        other.params.update(initial_epoch=loop.epoch, initial_step_in_epoch=loop.step_in_epoch)
      break
  cbs.on_train_begin()
  logs = loop.run()
  cbs.on_train_end(logs)
  return history

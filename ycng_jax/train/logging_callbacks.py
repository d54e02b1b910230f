"""Callbacks that write metrics to files: metrics.jsonl, CSV, TensorBoard event files.

File writers remember how many bytes they had written at the last checkpoint; a resumed
run truncates back to that point, so the files read as if the run was never interrupted.
Only process 0 writes.
"""

from __future__ import annotations

import csv
import json
import math
import os
from typing import Any, Mapping

import jax

from ycng_jax.train.callbacks import Callback


def _floats(logs: Mapping[str, Any] | None) -> dict[str, float]:
  return {k: float(v) for k, v in (logs or {}).items()}


def _json_value(v: float) -> Any:
  return v if math.isfinite(v) else str(v)  # JSON has no NaN/inf


class _FileWriter(Callback):
  """Appends to a file and truncates it on resume to the size saved in the checkpoint."""

  def __init__(self, path: str):
    super().__init__()
    self.path = os.fspath(path)
    self._restored_size: int | None = None

  @property
  def is_writer(self) -> bool:
    return jax.process_index() == 0

  def _size(self) -> int:
    return os.path.getsize(self.path) if os.path.exists(self.path) else 0

  def get_state(self):
    return {"size": self._size()}

  def set_state(self, state):
    size = int(state.get("size", 0))
    if self.is_writer and os.path.exists(self.path) and self._size() > size:
      with open(self.path, "r+b") as f:
        f.truncate(size)
    self._restored_size = size


class MetricsLogger(_FileWriter):
  """``metrics.jsonl``: one JSON object per logging event, each with ``step`` and ``epoch``.

  Train metrics every ``log_every_steps`` batches (running epoch averages, ``"split":
  "train"``) and every epoch's end logs (``"split": "epoch"``, with val_* metrics).
  """

  def __init__(self, path: str, log_every_steps: int = 50):
    super().__init__(path)
    self.log_every_steps = max(int(log_every_steps), 1)

  def on_train_begin(self, logs=None):
    if self.is_writer:
      os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
      fresh_run = self._restored_size is None and self.trainer.loop.global_step == 0
      if fresh_run and os.path.exists(self.path):
        os.remove(self.path)  # a new run in a reused workdir starts a new log

  def _write(self, record: dict[str, Any]):
    if self.is_writer:
      with open(self.path, "a") as f:
        f.write(json.dumps(record) + "\n")

  def on_train_batch_end(self, batch, logs=None):
    step = self.trainer.loop.global_step
    if step % self.log_every_steps == 0 and logs:
      loop = self.trainer.loop
      epochs_done = loop.epoch + loop.step_in_epoch / loop.steps_per_epoch
      record = {"step": step, "epoch": round(epochs_done, 4), "split": "train"}
      record.update({k: _json_value(v) for k, v in _floats(logs).items()})
      self._write(record)

  def on_epoch_end(self, epoch, logs=None):
    record = {"step": self.trainer.loop.global_step, "epoch": epoch + 1, "split": "epoch"}
    record.update({k: _json_value(v) for k, v in _floats(logs).items()})
    self._write(record)


def write_final(path: str, step: int, metrics: Mapping[str, Any], **extra: Any) -> dict:
  """Append the closing ``{"final": true, "step": ..., <test metrics>}`` record."""
  record = {"final": True, "step": int(step)}
  record.update({k: _json_value(float(v)) for k, v in metrics.items()})
  record.update(extra)
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a") as f:
      f.write(json.dumps(record) + "\n")
  return record


def read_metrics(path: str) -> list[dict[str, Any]]:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


class CSVLogger(_FileWriter):
  """One CSV row per epoch (Keras' CSVLogger): ``epoch`` then the sorted log keys."""

  def __init__(self, filename: str, separator: str = ",", append: bool = False):
    super().__init__(filename)
    self.separator, self.append = separator, append
    self._keys: list[str] | None = None

  def on_train_begin(self, logs=None):
    fresh_run = self._restored_size is None and self.trainer.loop.global_step == 0
    if self.is_writer and not self.append and fresh_run and os.path.exists(self.path):
      os.remove(self.path)

  def on_epoch_end(self, epoch, logs=None):
    logs = _floats(logs)
    if not self.is_writer:
      return
    exists = self._size() > 0
    if self._keys is None:
      if exists:
        with open(self.path) as f:
          self._keys = next(csv.reader(f, delimiter=self.separator))[1:]
      else:
        self._keys = sorted(logs)
    with open(self.path, "a", newline="") as f:
      writer = csv.writer(f, delimiter=self.separator)
      if not exists:
        writer.writerow(["epoch"] + self._keys)
      writer.writerow([epoch] + [logs.get(k, "") for k in self._keys])


class TensorBoard(Callback):
  """TensorBoard event files via tensorboardX (no TensorFlow): scalars per epoch and batch.

  ``update_freq``: ``"epoch"`` or an int (write train scalars every that many steps).
  """

  def __init__(self, log_dir: str = "logs", update_freq: str | int = "epoch"):
    super().__init__()
    self.log_dir, self.update_freq = os.fspath(log_dir), update_freq
    self._writers: dict[str, Any] = {}

  def _writer(self, split: str):
    if split not in self._writers:
      from tensorboardX import SummaryWriter
      self._writers[split] = SummaryWriter(os.path.join(self.log_dir, split))
    return self._writers[split]

  def on_train_batch_end(self, batch, logs=None):
    if (jax.process_index() or self.update_freq == "epoch" or not logs):
      return
    step = self.trainer.loop.global_step
    if step % int(self.update_freq) == 0:
      for k, v in _floats(logs).items():
        self._writer("train").add_scalar(f"batch_{k}", v, step)

  def on_epoch_end(self, epoch, logs=None):
    if jax.process_index():
      return
    for k, v in _floats(logs).items():
      split, name = ("validation", k[4:]) if k.startswith("val_") else ("train", k)
      self._writer(split).add_scalar(f"epoch_{name}", v, epoch)
    for w in self._writers.values():
      w.flush()

  def on_train_end(self, logs=None):
    for w in self._writers.values():
      w.close()
    self._writers = {}

"""Resumable DEC runs: orbax checkpoints of each training phase, tied to the run's settings.

A DEC fit on Fashion-MNIST takes tens of minutes on a CPU; with ``checkpoint_dir`` a killed
fit started again with the same arguments continues from its last checkpoint instead of from
scratch, and ends with the same result as a run that was never stopped. Each phase (every
greedy pair, the end-to-end pretraining, the clustering) keeps its newest checkpoint in its
own subdirectory. A phase that finished keeps its final one, so a rerun skips it.

Every checkpoint carries a fingerprint of what the run's result depends on (the
hyperparameters, the data, the given start), so a directory written by a different run is an
error rather than a silent mix of two runs.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

from ycng_jax.fingerprints import fingerprint  # noqa: F401 (DEC imports it from here)
from ycng_jax.train.checkpoint import CheckpointStore, abstract_like


def check_checkpoint_dir(checkpoint_dir: Any) -> str | os.PathLike | None:
  """``checkpoint_dir`` if it is, or can be made, a directory: its nearest existing ancestor must
  be one (a file there would fail only at the first save, after the pretraining)."""
  if checkpoint_dir is None:
    return None
  if not isinstance(checkpoint_dir, (str, os.PathLike)):
    raise TypeError(f"checkpoint_dir must be a path or None, got {type(checkpoint_dir).__name__}.")
  existing = os.path.abspath(os.fspath(checkpoint_dir))
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise ValueError(f"checkpoint_dir={os.fspath(checkpoint_dir)!r} cannot be a directory: "
                     f"{existing!r} is a file. Give a directory (it is created if missing).")
  return checkpoint_dir


class PhaseCheckpoints:
  """The newest checkpoint of one phase, under ``root/phase``, saved at most every ``seconds``.

  ``restore(template)`` returns ``(step, tree, meta)`` or None; ``save(step, tree, meta)``
  writes when ``seconds`` have passed since the last save (or always with ``force``).
  """

  def __init__(self, root: str | os.PathLike, phase: str, run_fingerprint: str, seconds: float):
    self.directory = os.path.join(os.fspath(root), phase)
    self.fingerprint = run_fingerprint
    self.seconds = seconds
    self._store = CheckpointStore(self.directory, max_to_keep=1)
    self._last_save = time.monotonic()

  def restore(self, template: Any) -> tuple[int, Any, dict[str, Any]] | None:
    restored = self._store.restore(abstract_like(template))
    if restored is None:
      return None
    step, tree, meta = restored
    if meta.get("fingerprint") != self.fingerprint:
      raise ValueError(
          f"the checkpoint in {self.directory} was written by a DEC run with other settings, "
          "data or starting point; fit with the same ones to resume it, or give another "
          "checkpoint_dir (or delete this one) to start over.")
    return step, tree, meta

  def save(self, step: int, tree: Any, meta: dict[str, Any], force: bool = False) -> None:
    if not force and time.monotonic() - self._last_save < self.seconds:
      return
    self._store.save(step, tree, {**meta, "fingerprint": self.fingerprint})
    self._last_save = time.monotonic()


def history_to_json(history: list[dict]) -> list[dict]:
  """NaN (the first entry's loss: no step yet) as None, which JSON can hold."""
  return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in entry.items()}
          for entry in history]


def history_from_json(history: list[dict]) -> list[dict]:
  return [{k: (float("nan") if v is None else v) for k, v in entry.items()} for entry in history]

"""Checkpoints with orbax: a store with fallback, ModelCheckpoint and BackupAndRestore.

A checkpoint holds the whole ``TrainState`` (sharded arrays, restored straight onto the
mesh) and a JSON ``meta`` item: the fit loop's position, the input loader's iterator state
and the callbacks' states. Restoring it continues a run exactly where it stopped.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from typing import Any, Mapping

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as cm

from ycng_jax import fingerprints
from ycng_jax.errors import UserError
from ycng_jax.train.callbacks import Callback, _improved, _monitor_op

log = logging.getLogger(__name__)


def abstract_like(tree: Any) -> Any:
  """ShapeDtypeStructs with the shardings of ``tree``: the restore target."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)


def _report(message: str):
  log.info(message)  # a logging handler (absl installs one) would print it a second time
  if jax.process_index() == 0:
    print(f"WARNING: {message}", file=sys.stderr, flush=True)


def _read_every_stored_value(state_dir: str) -> None:
  """Read the whole OCDBT store of an orbax item, one value at a time; raise if any fails.

  Orbax restores all arrays concurrently on a fresh asyncio loop and closes it as soon as one
  read fails: the reads still in flight then complete into the closed loop, and each prints
  a "RuntimeError: Event loop is closed" traceback. Reading synchronously first finds the
  damage before orbax starts, so an unreadable checkpoint costs one warning line.
  """
  if not os.path.isfile(os.path.join(state_dir, "manifest.ocdbt")):
    return  # not an OCDBT item: orbax reports what is wrong on its own
  import tensorstore as ts
  store = ts.KvStore.open({"driver": "ocdbt", "base": f"file://{state_dir}/"}).result()
  for key in store.list().result():
    store.read(key).result()


def _state_handler() -> ocp.PyTreeCheckpointHandler:
  """A pytree handler whose replicated arrays are written from one replica.

  Orbax's default replica-parallel writing slices every replicated array once per device,
  compiling a slice per device and shape: many compilations for nothing on small models.
  """
  registry = ocp.type_handlers.create_type_handler_registry(
      (jax.Array, ocp.type_handlers.ArrayHandler(use_replica_parallel=False)))
  return ocp.PyTreeCheckpointHandler(type_handler_registry=registry)


class CheckpointStore:
  """An orbax ``CheckpointManager`` over ``{state, meta}`` items.

  Args:
    directory: where step directories go.
    max_to_keep: newest checkpoints to keep (without ``monitor``) or best ones (with it);
      the latest is always kept as well.
    monitor / mode: keep the best ``max_to_keep`` by this metric (``mode`` min or max).
  """

  def __init__(self, directory: str, *, max_to_keep: int = 2, monitor: str | None = None,
               mode: str = "min"):
    self.directory = os.path.abspath(os.fspath(directory))
    self.monitor, self.mode = monitor, mode
    if monitor is None:
      policy = cm.LatestN(n=max_to_keep)
    else:
      policy = cm.AnyPreservationPolicy([
          cm.LatestN(n=1),
          cm.BestN(get_metric_fn=lambda m: m[monitor], reverse=(mode == "min"), n=max_to_keep,
                   keep_checkpoints_without_metrics=False)])
    options = ocp.CheckpointManagerOptions(preservation_policy=policy, create=True,
                                           enable_async_checkpointing=False,
                                           cleanup_tmp_directories=True)
    self.manager = ocp.CheckpointManager(
        self.directory, options=options,
        item_handlers={"state": _state_handler(), "meta": ocp.JsonCheckpointHandler()})

  def all_steps(self) -> list[int]:
    self.manager.reload()
    return sorted(self.manager.all_steps())

  def save(self, step: int, state: Any, meta: Mapping[str, Any],
           metrics: Mapping[str, float] | None = None) -> bool:
    """Save synchronously (a SIGKILL right after leaves a complete checkpoint or none)."""
    if step in self.all_steps():
      return False
    self.manager.save(int(step), args=ocp.args.Composite(
        state=ocp.args.PyTreeSave(state), meta=ocp.args.JsonSave(dict(meta))),
        metrics=dict(metrics) if metrics is not None else None, force=True)
    self.manager.wait_until_finished()
    return True

  def best_step(self) -> int | None:
    """The step with the best ``monitor`` value among those kept."""
    if self.monitor is None:
      return self.manager.latest_step()
    best, best_value = None, None
    for step in self.all_steps():
      meta = self.read_meta(step)
      value = (meta or {}).get("metrics", {}).get(self.monitor)
      if value is not None and math.isfinite(value) and _improved(self.mode, value, best_value, 0):
        best, best_value = step, value
    return best

  def read_meta(self, step: int) -> dict | None:
    """The JSON ``meta`` item of ``step``, or None if it cannot be read."""
    try:
      return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
    except Exception:  # pylint: disable=broad-except
      return None

  def restore(self, abstract_state: Any, step: int | None = None
              ) -> tuple[int, Any, dict[str, Any]] | None:
    """``(step, state, meta)`` of ``step`` or of the newest readable checkpoint; None if none.

    An unreadable checkpoint (partial or corrupt files) is reported and the next older one
    tried, so a crash during a save never loses the run.
    """
    steps = [step] if step is not None else sorted(self.all_steps(), reverse=True)
    for s in steps:
      try:
        _read_every_stored_value(os.path.join(self.directory, str(s), "state"))
        restored = self.manager.restore(s, args=ocp.args.Composite(
            state=ocp.args.PyTreeRestore(
                abstract_state, restore_args=ocp.checkpoint_utils.construct_restore_args(
                    abstract_state)), meta=ocp.args.JsonRestore()))
        if restored.meta is None or restored.state is None:
          raise ValueError("an item is missing")
      except Exception as e:  # pylint: disable=broad-except
        reason = " ".join(str(e).split())[:200]
        _report(f"checkpoint step {s} in {self.directory} is unreadable ({type(e).__name__}: "
                f"{reason}); " + ("trying the previous one" if step is None else "giving up"))
        continue
      return s, restored.state, dict(restored.meta)
    return None

  def close(self):
    self.manager.close()


def _should_skip(trainer, logs: Mapping[str, Any] | None, who: str,
                 store: CheckpointStore) -> bool:
  loss = (logs or {}).get("loss")
  bad = trainer.nonfinite_step is not None or (loss is not None and not math.isfinite(float(loss)))
  if bad:
    kept = "the previous checkpoint is kept" if store.all_steps() else "none was saved before"
    _report(f"{who}: not saving at step {trainer.loop.global_step}: the loss is not finite; "
            f"{kept}")
  return bad


class ModelCheckpoint(Callback):
  """Save the state every epoch (or ``save_freq`` steps), keeping the best and the latest.

  With ``save_best_only`` only improvements of ``monitor`` are saved. Restore the best with
  ``load_checkpoint(directory, trainer, which="best", monitor=...)``.
  """
  runs_last = True

  def __init__(self, directory: str, monitor: str | None = "val_loss", mode: str = "auto",
               save_best_only: bool = False, max_to_keep: int = 1, save_freq: str | int = "epoch"):
    super().__init__()
    self.monitor = monitor
    self.mode = _monitor_op(mode, monitor) if monitor else "min"
    self.save_best_only, self.save_freq = save_best_only, save_freq
    self.store = CheckpointStore(directory, max_to_keep=max_to_keep, monitor=monitor,
                                 mode=self.mode)
    self.best: float | None = None

  def _save(self, logs):
    if _should_skip(self.trainer, logs, "ModelCheckpoint", self.store):
      return
    metrics = {k: float(v) for k, v in (logs or {}).items()}
    if self.monitor is not None:
      if self.monitor not in metrics:
        raise KeyError(f"ModelCheckpoint monitors {self.monitor!r}; logs have {sorted(metrics)}")
      value = metrics[self.monitor]
      improved = _improved(self.mode, value, self.best, 0.0)
      if improved:
        self.best = value
      if self.save_best_only and not improved:
        return
    loop = self.trainer.loop
    meta = {"epoch": loop.epoch, "metrics": {k: v for k, v in metrics.items() if math.isfinite(v)}}
    self.store.save(loop.global_step, self.trainer.state, meta,
                    metrics=meta["metrics"] if self.monitor else None)

  def on_epoch_end(self, epoch, logs=None):
    if self.save_freq == "epoch":
      self._save(logs)

  def on_train_batch_end(self, batch, logs=None):
    if self.save_freq != "epoch" and self.trainer.loop.global_step % int(self.save_freq) == 0:
      self._save(dict(logs or {}))

  def get_state(self):
    return {"best": self.best}

  def set_state(self, state):
    self.best = state.get("best")


class BackupAndRestore(Callback):
  """Back up everything needed to resume and, at the start of ``fit``, resume from it.

  A run killed at any point and started again with the same command continues from the
  newest complete backup (state, loader position, callbacks) and ends bit-identical to an
  uninterrupted run. ``save_freq``: ``"epoch"`` or every that many steps (epoch ends are
  always saved too). Backups are kept after training unless ``delete_checkpoint``, so
  rerunning a finished command only re-evaluates.

  ``settings``: what the run's result depends on (``run_settings`` makes it from a runner's
  config). Every backup records it, and backups recorded with other settings are never
  resumed nor overwritten: constructing the callback raises ``ResumeMismatchError``, which
  names each setting that differs.
  """
  runs_last = True

  def __init__(self, backup_dir: str, save_freq: str | int = "epoch", max_to_keep: int = 2,
               delete_checkpoint: bool = False, settings: Mapping[str, Any] | None = None):
    super().__init__()
    if max_to_keep < 2:
      raise ValueError("BackupAndRestore keeps at least 2 backups so a corrupt newest one has a "
                       "fallback")
    self.backup_dir, self.save_freq = backup_dir, save_freq
    self.delete_checkpoint = delete_checkpoint
    self.store = CheckpointStore(backup_dir, max_to_keep=max_to_keep)
    self.settings = None if settings is None else fingerprints.flatten(settings)
    self.restored_step: int | None = None
    if self.settings is not None:
      self._check_settings()

  def _check_settings(self) -> None:
    """Refuse backups of another run: compare the newest readable record with ours."""
    for step in reversed(self.store.all_steps()):
      meta = self.store.read_meta(step)
      if meta is None:
        continue  # restore_into reports it, then tries the previous one
      if "settings" not in meta:
        _report(f"the backups in {self.store.directory} predate settings records, so they "
                "cannot be checked against this run's settings; resuming them as they are")
        return
      changed = fingerprints.differences(meta["settings"], self.settings)
      if changed:
        raise ResumeMismatchError(self.store.directory, step, changed)
      return

  def restore_into(self, loop) -> bool:
    """Called by the fit loop before training: load the newest readable backup, if any."""
    found = self.store.restore(abstract_like(self.trainer.state))
    if found is None:
      steps = self.store.all_steps()
      if steps:  # training from scratch would write over them
        raise UserError(
            f"none of the backups in {self.store.directory} (steps {steps}) can be read; see the "
            "warnings above. To start over, delete that folder or run in another workdir.")
      return False
    step, state, meta = found
    self.trainer.state = state
    loop.restore(meta)
    self.restored_step = step
    if jax.process_index() == 0:
      print(f"BackupAndRestore: resumed from step {step} (epoch {meta['epoch']}, batch "
            f"{meta['step_in_epoch']}) in {self.store.directory}", file=sys.stderr, flush=True)
    return True

  def _save(self, logs):
    if _should_skip(self.trainer, logs, "BackupAndRestore", self.store):
      return
    loop = self.trainer.loop
    meta = loop.snapshot()
    if self.settings is not None:
      meta["settings"] = self.settings
    self.store.save(loop.global_step, self.trainer.state, meta)

  def on_train_batch_end(self, batch, logs=None):
    loop = self.trainer.loop
    if (self.save_freq != "epoch" and loop.global_step % int(self.save_freq) == 0
        and loop.step_in_epoch < loop.steps_per_epoch):
      self._save(logs)

  def on_epoch_end(self, epoch, logs=None):
    self._save(logs)

  def on_train_end(self, logs=None):
    if self.delete_checkpoint and not self.trainer.stop_training and jax.process_index() == 0:
      import shutil
      self.store.close()
      shutil.rmtree(self.store.directory, ignore_errors=True)


class ResumeMismatchError(UserError):
  """Backups in a directory belong to a run with other settings (``differences`` says which)."""

  def __init__(self, directory: str, step: int, differences: list[str], shown: int = 8):
    self.directory, self.step, self.differences = directory, step, differences
    listed = "; ".join(differences[:shown])
    if len(differences) > shown:
      listed += f"; and {len(differences) - shown} more"
    super().__init__(
        f"the checkpoints in {directory} (up to step {step}) belong to a run with other "
        f"settings; what differs (checkpoints -> this run): {listed}. Nothing was changed. To "
        "resume that run, run it with its settings again; to start this one, give it another "
        "workdir (ycng run --workdir DIR) or delete the old run's workdir.")


# Config keys of the runners that change how a run is carried out, watched or saved, not what
# it computes: a resumed run may change them. The device layout (num_devices, param_sharding)
# and eval_batch_size can change the last bits of float sums, never what is computed.
RUN_ONLY_KEYS = frozenset({
    "log_every_steps", "backup_every_steps", "keep_checkpoints", "verbose", "tensorboard",
    "plots", "evaluate_test", "terminate_on_nan", "eval_batch_size", "num_devices",
    "param_sharding", "distributed"})


def run_settings(config: Mapping[str, Any], *arrays: Any) -> dict[str, Any]:
  """A runner config's keys that change the result, and ``data_digest``: ``arrays``' fingerprint.

  For ``BackupAndRestore(settings=...)``; ``config`` is a ConfigDict or a nested dict.
  """
  config = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  settings = {k: v for k, v in config.items() if k not in RUN_ONLY_KEYS}
  if arrays:
    settings["data_digest"] = fingerprints.fingerprint({}, *arrays)
  return fingerprints.flatten(settings)


def load_checkpoint(directory: str, trainer, which: str | int = "latest",
                    monitor: str | None = None, mode: str = "min") -> dict[str, Any]:
  """Load a saved state into an initialised ``trainer``; returns the checkpoint's meta.

  ``which``: ``"latest"``, ``"best"`` (needs ``monitor``) or a step number.
  """
  store = CheckpointStore(directory, monitor=monitor, mode=mode)
  steps = store.all_steps()
  if not steps:
    raise FileNotFoundError(f"no checkpoints in {store.directory}")
  step = None
  if which == "best":
    if monitor is None:
      raise ValueError("which='best' needs monitor= (the metric the checkpoints were ranked by)")
    step = store.best_step()
  elif which != "latest":
    step = int(which)
    if step not in steps:
      raise ValueError(f"no checkpoint at step {step} in {store.directory}; have {steps}")
  found = store.restore(abstract_like(trainer.state), step)
  if found is None:
    raise RuntimeError(f"no readable checkpoint in {store.directory}")
  trainer.state = found[1]
  return found[2]

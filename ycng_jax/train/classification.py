"""The shared supervised-classification runner: ``config.runner = "ycng_jax.train.classification:run"``.

It builds data loaders, model, optimizer and callbacks from the config, calls ``fit``
and writes everything a report needs to the workdir: ``metrics.jsonl`` (ending with the
``"final": true`` test metrics), ``history.csv``, TensorBoard events, ``curves.png``,
``results.json``, and checkpoints (``checkpoints/backup`` for resume, ``checkpoints/best``).
Running the same command again after a crash resumes exactly.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ycng_jax.checks import real_number, whole_number
from ycng_jax.errors import UserError
from ycng_jax.train import callbacks as cb_lib
from ycng_jax.train import checkpoint as ckpt_lib
from ycng_jax.train import distributed, logging_callbacks as log_lib, optim
from ycng_jax.train.losses import make_classification_loss
from ycng_jax.train.mesh import make_mesh
from ycng_jax.train.trainer import Trainer, peek


def base_config() -> ml_collections.ConfigDict:
  """Every key the runner reads, with defaults; experiments override what they need."""
  c = ml_collections.ConfigDict()
  c.runner = "ycng_jax.train.classification:run"
  c.dataset = "fashion_mnist"
  c.image_scale = 255.0             # images are divided by this inside the step
  c.train_examples = 0              # 0: all; >0: the first N (tiny test runs)
  c.test_examples = 0
  c.validation_split = 0.1          # fraction of train held out (seeded) for val_* metrics
  c.model = ml_collections.ConfigDict({"name": "ycng_jax.models.cnn:CNN",
                                       "kwargs": ml_collections.ConfigDict()})
  c.batch_size = 128
  c.eval_batch_size = 512
  c.num_epochs = 10
  c.seed = 0
  c.optimizer = optim.optimizer_config()
  c.label_smoothing = 0.0
  c.num_devices = 0                 # 0: all devices
  c.param_sharding = "replicated"   # or "fsdp"
  c.compute_dtype = "float32"       # or "bfloat16"
  c.grad_accum_steps = 1
  c.ema_decay = 0.0                 # >0: keep EMA params and evaluate with them
  c.trainable = ()                  # regexes over param paths; others frozen (transfer learning)
  c.frozen = ()                     # regexes of params to freeze; others train
  c.init_from = ""                  # a checkpoint directory to load params from before training
  c.log_every_steps = 50
  c.backup_every_steps = 0          # 0: back up at epoch ends only
  c.keep_checkpoints = 2
  c.best_monitor = "val_accuracy"   # "" disables the best-checkpoint keeper
  c.early_stopping_patience = 0     # 0: off
  c.reduce_lr_patience = 0          # 0: off
  c.terminate_on_nan = True
  c.tensorboard = True
  c.plots = True                    # curves.png at the end
  c.evaluate_test = True            # False: no test pass (tuning trials with a val_ objective)
  c.verbose = 1
  c.distributed = distributed.config_defaults()
  return c


def check_config(config: ml_collections.ConfigDict, reference: ml_collections.ConfigDict | None = None):
  """An unknown key (a typo) or a value out of range is an error that says what is valid."""
  reference = reference or base_config()
  for key in config.keys():
    if key not in reference:
      raise UserError(f"unknown config key {key!r} for the classification runner; valid keys: "
                      f"{sorted(reference.keys())}")
    if isinstance(reference[key], ml_collections.ConfigDict) and key not in ("model",):
      sub_ref, sub = reference[key], config[key]
      for k in sub.keys():
        if k not in sub_ref and k != "kwargs":
          raise UserError(f"unknown config key '{key}.{k}'; valid: {sorted(sub_ref.keys())}")
  check_values(config)


def check_values(config: ml_collections.ConfigDict) -> None:
  """Each number the runner reads in its range, before any data is loaded or model built."""

  def check(key, kind, *bounds, **open_ends):
    if key in config:
      kind(f"config.{key}", config[key], *bounds, **open_ends)

  check("num_epochs", whole_number, 1)
  check("train_examples", whole_number, 0)  # 0: all
  check("test_examples", whole_number, 0)
  check("validation_split", real_number, 0.0, 1.0)
  check("batch_size", whole_number, 1)
  check("eval_batch_size", whole_number, 1)
  check("grad_accum_steps", whole_number, 1)
  check("label_smoothing", real_number, 0.0, 1.0, high_open=False)
  check("ema_decay", real_number, 0.0, 1.0)
  check("image_scale", real_number, 0.0, low_open=True)
  check("log_every_steps", whole_number, 1)
  check("backup_every_steps", whole_number, 0)  # 0: at epoch ends only
  check("keep_checkpoints", whole_number, 1)
  if "optimizer" in config:  # an unknown name, a bad argument or learning rate fails here
    opt = config.optimizer
    optim.make_optimizer(opt.get("name", "adam"), opt.get("learning_rate", 1e-3),
                         **dict(opt.get("kwargs") or {}))


def import_object(path: str) -> Any:
  """``"package.module:Name"`` -> the object."""
  example = "e.g. 'ycng_jax.models.mlp:MLP'"
  if path.count(":") != 1:
    raise UserError(f"expected 'package.module:Name' ({example}), got {path!r}")
  module, name = path.split(":")
  try:
    imported = importlib.import_module(module)
  except ModuleNotFoundError as e:
    # Only a missing module of the path itself is a typo; one it imports is an install problem.
    if e.name is None or not (module == e.name or module.startswith(f"{e.name}.")):
      raise
    raise UserError(f"cannot import {path!r}: there is no module {e.name!r}; give an importable "
                    f"'package.module:Name' ({example})") from None
  obj = getattr(imported, name, None)
  if obj is None:
    public = sorted(n for n in vars(imported) if not n.startswith("_"))
    raise UserError(f"module {module} has no {name!r} (from {path!r}); it has {public}")
  return obj


def make_preprocess(image_scale: float) -> Callable:
  """Cast uint8 images to float32 and scale them inside the step (the host sends uint8)."""

  def preprocess(batch):
    out = dict(batch)
    out["image"] = batch["image"].astype(jnp.float32) / image_scale
    return out

  return preprocess


def load_splits(config) -> tuple[dict, dict | None, dict]:
  """Train / validation (or None) / test arrays, labels as int32."""
  import ycng_jax.data as ydata
  from ycng_jax.data.builders import image_datasets
  train, test = ydata.load(config.dataset, "train"), ydata.load(config.dataset, "test")
  missing = [k for k in ("image", "label") if k not in train]
  if missing:
    raise UserError(f"dataset {config.dataset!r} has no {' or '.join(map(repr, missing))} feature "
                    f"(it has {sorted(train)}); this runner trains image classifiers: set "
                    f"config.dataset to one of {image_datasets()}")
  train = {k: np.asarray(train[k]) for k in ("image", "label")}
  test = {k: np.asarray(test[k]) for k in ("image", "label")}
  if config.train_examples:
    train = {k: v[:config.train_examples] for k, v in train.items()}
  if config.test_examples:
    test = {k: v[:config.test_examples] for k, v in test.items()}
  for split in (train, test):
    split["label"] = split["label"].astype(np.int32)
  val = None
  if config.validation_split:
    order = np.random.default_rng(config.seed).permutation(len(train["label"]))
    n_val = max(1, int(round(len(order) * config.validation_split)))
    val = {k: v[np.sort(order[:n_val])] for k, v in train.items()}
    train = {k: v[np.sort(order[n_val:])] for k, v in train.items()}
  return train, val, test


def build_model(config, num_classes: int):
  """``config.model.name`` ("module:Class") built with ``config.model.kwargs``."""
  model_cls = import_object(config.model.name)
  kwargs = dict(config.model.get("kwargs", {}) or {})
  kwargs.setdefault("num_classes", num_classes)
  try:
    return model_cls(**kwargs)
  except TypeError as e:
    raise UserError(f"model {config.model.name} does not accept {sorted(kwargs)}: {e}") from e


def check_labels(splits: dict[str, dict | None], num_classes: int) -> None:
  """Labels are integers in ``[0, num_classes)``.

  Any other label gets an all-zero one-hot row: loss 0 and no gradient, so a shifted label set
  would train on nothing without a word.
  """
  for split, arrays in splits.items():
    if arrays is None:
      continue
    labels = np.asarray(arrays["label"])
    if not np.issubdtype(labels.dtype, np.integer):
      raise UserError(f"the {split} labels must be integers in [0, {num_classes}), got dtype "
                      f"{labels.dtype}")
    outside = (labels < 0) | (labels >= num_classes)
    if outside.any():
      values = np.unique(labels[outside])
      shown = ", ".join(map(str, values[:10])) + (", ..." if len(values) > 10 else "")
      raise UserError(
          f"the {split} labels must be in [0, {num_classes}) (num_classes={num_classes}), but "
          f"{int(outside.sum())} of {len(labels)} are not: {shown}. Map the labels to "
          f"0..{num_classes - 1}, or set config.model.kwargs.num_classes to cover them.")


def build_trainer(config, mesh, num_classes: int, total_steps: int, model: Any = None) -> Trainer:
  model = model if model is not None else build_model(config, num_classes)
  opt_cfg = {k: v for k, v in config.optimizer.items()}
  opt_cfg["kwargs"] = dict(opt_cfg.get("kwargs") or {})
  tx = optim.optimizer_from_config(opt_cfg, total_steps)
  if config.trainable or config.frozen:
    trainable, frozen = tuple(config.trainable) or None, tuple(config.frozen) or None
    tx = optim.freeze(tx, lambda params: optim.trainable_labels(params, trainable=trainable,
                                                                frozen=frozen))
  return Trainer(model, make_classification_loss(label_smoothing=config.label_smoothing), tx,
                 mesh=mesh, preprocess=make_preprocess(config.image_scale),
                 param_sharding=config.param_sharding, compute_dtype=config.compute_dtype,
                 grad_accum_steps=config.grad_accum_steps,
                 ema_decay=config.ema_decay or None, seed=config.seed)


def default_callbacks(config, workdir: str, has_validation: bool,
                      settings: dict | None = None) -> list:
  """The runner's callbacks; ``settings`` (default: the config's) tie the backups to the run."""
  cbs: list = []
  if config.terminate_on_nan:
    cbs.append(cb_lib.TerminateOnNaN())
  monitor = config.best_monitor if has_validation else ""
  if config.early_stopping_patience and has_validation:
    cbs.append(cb_lib.EarlyStopping(monitor="val_loss", patience=config.early_stopping_patience))
  if config.reduce_lr_patience and has_validation:
    cbs.append(cb_lib.ReduceLROnPlateau(monitor="val_loss", patience=config.reduce_lr_patience,
                                        factor=0.5, verbose=1))
  cbs.append(log_lib.CSVLogger(os.path.join(workdir, "history.csv")))
  if config.tensorboard:
    cbs.append(log_lib.TensorBoard(os.path.join(workdir, "tensorboard")))
  if monitor:
    cbs.append(ckpt_lib.ModelCheckpoint(os.path.join(workdir, "checkpoints", "best"),
                                        monitor=monitor, max_to_keep=1))
  cbs.append(ckpt_lib.BackupAndRestore(os.path.join(workdir, "checkpoints", "backup"),
                                       save_freq=config.backup_every_steps or "epoch",
                                       max_to_keep=max(2, config.keep_checkpoints),
                                       settings=settings or ckpt_lib.run_settings(config)))
  return cbs


def plot_history(history: dict[str, list[float]], path: str):
  """Loss and accuracy curves per epoch as a PNG (for the report)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
  for ax, name in zip(axes, ("loss", "accuracy")):
    # Multi-output models log one curve per head ("label_accuracy", "val_group_loss", ...).
    keys = sorted(k for k in history if k == name or k.endswith(f"_{name}"))
    for key in keys:
      ax.plot(range(1, len(history[key]) + 1), history[key], marker="o", label=key)
    ax.set_xlabel("epoch")
    ax.set_title(name)
    if keys:
      ax.legend()
    else:
      ax.text(0.5, 0.5, f"no {name} recorded", ha="center", va="center", transform=ax.transAxes)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def make_loaders(config, mesh, train: dict, val: dict | None, test: dict) -> dict[str, Any]:
  """A shuffled endless train Loader and exact (padded, masked) eval Loaders."""
  from ycng_jax.data.pipeline import Loader
  n_dev = mesh.devices.size
  if config.batch_size % n_dev:
    raise UserError(f"config.batch_size={config.batch_size} must be divisible by the {n_dev} "
                    f"devices; e.g. use {(config.batch_size // n_dev + 1) * n_dev}")
  eval_batch = max(n_dev, config.eval_batch_size - config.eval_batch_size % n_dev)

  def eval_loader(arrays):
    return Loader(arrays, global_batch_size=eval_batch, mesh=mesh, shuffle=False, num_epochs=1,
                  drop_remainder=False)

  return {"train": Loader(train, global_batch_size=config.batch_size, mesh=mesh, shuffle=True,
                          seed=config.seed),
          "val": eval_loader(val) if val is not None else None, "test": eval_loader(test)}


class DivergedError(UserError, FloatingPointError):
  """The loss became NaN/inf: a setting to change (learning rate, clipping), not a crash."""


def _nonfinite_message(step: int, workdir: str, callbacks: list) -> str:
  backup = next(c for c in callbacks if isinstance(c, ckpt_lib.BackupAndRestore))
  saved = backup.store.all_steps()
  where = (f"The last good checkpoint (step {saved[-1]}) is in {backup.store.directory}."
           if saved else "No checkpoint was saved before that.")
  return (f"training stopped at step {step}: the loss became NaN/inf. {where} Lower "
          "optimizer.learning_rate or set optimizer.clip_norm, and run in a new workdir (or "
          f"delete {workdir}): checkpoints resume only with the settings that wrote them.")


@dataclasses.dataclass
class TrainResult:
  """What ``train`` leaves for experiments that continue (feature extraction, transfer)."""
  trainer: Trainer
  test_metrics: dict[str, float]
  history: dict[str, list[float]]
  loaders: dict[str, Any]
  arrays: dict[str, Any]


def train(config: ml_collections.ConfigDict, workdir: str, *, model: Any = None,
          extra_callbacks: list | None = None, reference_config: Any = None,
          splits: tuple[dict, dict | None, dict] | None = None,
          prepare: Callable[[Trainer], None] | None = None) -> TrainResult:
  """Train and test one classifier, writing the workdir; the trainer stays alive.

  Args:
    model: a Flax module to use instead of ``config.model`` (experiments with their own model
      class pass it here).
    extra_callbacks: more callbacks (e.g. an experiment's own).
    reference_config: the config whose keys are valid (default ``base_config()``), for
      experiments that add keys of their own.
    splits: ``(train, val or None, test)`` arrays instead of loading ``config.dataset``.
    prepare: called with the initialised trainer before training (e.g. to load pretrained
      params into part of the model); a resumed run's backup replaces what it set.
  """
  check_config(config, reference_config)
  distributed.initialize(config.distributed)
  os.makedirs(workdir, exist_ok=True)
  mesh = make_mesh(config.num_devices or None)
  train_arrays, val, test = splits if splits is not None else load_splits(config)
  num_classes = int(max(train_arrays["label"].max(), test["label"].max())) + 1
  model = model if model is not None else build_model(config, num_classes)
  check_labels({"train": train_arrays, "validation": val, "test": test},
               getattr(model, "num_classes", None) or num_classes)
  # Before the loaders start their threads and the model is compiled: backups of another run
  # stop this one here.
  arrays = [a[k] for a in (train_arrays, val or {}, test) for k in sorted(a)]
  callbacks = default_callbacks(config, workdir, val is not None,
                                ckpt_lib.run_settings(config, *arrays))
  callbacks += list(extra_callbacks or [])
  loaders = make_loaders(config, mesh, train_arrays, val, test)
  train_loader, val_loader, test_loader = loaders["train"], loaders["val"], loaders["test"]
  total_steps = config.num_epochs * train_loader.steps_per_epoch
  trainer = build_trainer(config, mesh, num_classes, total_steps, model)
  trainer.init(peek(train_loader))
  if config.init_from:
    ckpt_lib.load_checkpoint(config.init_from, trainer, which="latest")
  if prepare is not None:
    prepare(trainer)
  history = trainer.fit(train_loader, epochs=config.num_epochs, validation_data=val_loader,
                        callbacks=callbacks, verbose=config.verbose, workdir=workdir,
                        log_every_steps=config.log_every_steps)
  if trainer.nonfinite_step is not None:
    raise DivergedError(_nonfinite_message(trainer.nonfinite_step, workdir, callbacks))
  test_metrics = ({f"test_{k}": v for k, v in trainer.evaluate(test_loader).items()}
                  if config.evaluate_test else {})
  step = int(jax.device_get(trainer.state.step))
  log_lib.write_final(os.path.join(workdir, "metrics.jsonl"), step, test_metrics,
                      num_params=trainer.num_params)
  if jax.process_index() == 0:
    if history.history and config.plots:
      plot_history(history.history, os.path.join(workdir, "curves.png"))
    with open(os.path.join(workdir, "results.json"), "w") as f:
      json.dump({"final": test_metrics, "history": history.history, "step": step,
                 "num_params": trainer.num_params}, f, indent=2)
  return TrainResult(trainer, test_metrics, history.history, loaders,
                     {"train": train_arrays, "val": val, "test": test})


def run(config: ml_collections.ConfigDict, workdir: str, **kwargs: Any) -> dict[str, float]:
  """``train`` then free the run's device memory; returns the test metrics."""
  result = train(config, workdir, **kwargs)
  result.trainer.free()
  return result.test_metrics

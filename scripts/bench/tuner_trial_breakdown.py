"""Where one tuning trial's time goes: our Tuner's trial in phases, beside a KerasTuner trial.

  python scripts/bench/tuner_trial_breakdown.py [--train-examples 3000] [--epochs 2] [--trials 3]
      [--side ours keras] [--no-cache]

Both sides run ``--trials`` trials of topic9/fashion_cnn's CNN with one network (filters (32, 64),
128 units, dropout 0.2) and a learning rate drawn from [1e-3, 2e-3], in one process, on one
XLA:CPU device; the first trial (imports, the data set, first compiles) is left out of the means.
Ours is ``ycng_jax.tuning.Tuner`` as ``ycng tune`` runs it; its phases are timed by wrapping the
functions that do them (wall seconds, so they include waiting for the device: the training steps
show in the loop, not in the step calls that only dispatch). KerasTuner's ``RandomSearch`` runs
the identical Keras model (scripts/bench/tuner_vs_kerastuner.py builds it); its trial is timed
whole, with its XLA compile time. ``--no-cache`` turns JAX's persistent compilation cache off
for our Tuner, so each trial compiles as one with a new network does; with it, trials after
the first find their programs in the cache (same network, the learning rate is not part of them).
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=2").strip()

TIMES: dict[str, float] = collections.defaultdict(float)


def _timed(owner, name: str, label: str) -> None:
  """Add the wall time of every call of ``owner.name`` to TIMES[label]."""
  fn = getattr(owner, name)
  static = isinstance(owner.__dict__.get(name), staticmethod) if isinstance(owner, type) else False

  @functools.wraps(fn)
  def wrapper(*args, **kwargs):
    start = time.perf_counter()
    try:
      return fn(*args, **kwargs)
    finally:
      TIMES[label] += time.perf_counter() - start

  setattr(owner, name, staticmethod(wrapper) if static else wrapper)


def _time_compiles() -> None:
  """XLA compile seconds per program name (a cache hit compiles nothing)."""
  from jax._src import compiler
  compile_fn = compiler.backend_compile_and_load

  def wrapper(backend, module, *args, **kwargs):
    start = time.perf_counter()
    try:
      return compile_fn(backend, module, *args, **kwargs)
    finally:
      name = str(module.operation.attributes["sym_name"]).strip('"')
      TIMES[f"XLA compile: {name}"] += time.perf_counter() - start
      TIMES["XLA compile (all)"] += time.perf_counter() - start

  compiler.backend_compile_and_load = wrapper


def ours(args) -> list[tuple[str, float]]:
  from ycng_jax.train import checkpoint, classification, trainer
  from ycng_jax.train.fit import FitLoop
  from ycng_jax.tuning import Tuner, space as hp
  from ycng_jax.tuning import tuner as tuner_lib
  for owner, name, label in [
      (classification, "train", "the runner, in all"),
      (classification, "load_splits", "data: load and split"),
      (trainer.Trainer, "init", "init (compile + run)"),
      (FitLoop, "run", "fit loop: steps, validation, callbacks"),
      (trainer.Trainer, "train_step", "  of which: train_step calls (dispatch, 1st compile)"),
      (trainer.Trainer, "evaluate", "evaluate (validation; test unless skipped)"),
      (checkpoint.BackupAndRestore, "on_epoch_end", "checkpoint: backup (resume)"),
      (checkpoint.ModelCheckpoint, "on_epoch_end", "checkpoint: best epoch"),
      (classification, "plot_history", "curves.png"),
      (tuner_lib.Tuner, "_free", "free (clear_caches, gc, malloc_trim)")]:
    _timed(owner, name, label)
  if args.no_cache:
    import jax
    jax.config.update("jax_enable_compilation_cache", False)
  space = hp.SearchSpace([hp.Fixed("model.kwargs.features", (32, 64)),
                          hp.Fixed("model.kwargs.dense", 128), hp.Fixed("model.kwargs.dropout", 0.2),
                          hp.Float("optimizer.learning_rate", 1e-3, 2e-3)])
  with tempfile.TemporaryDirectory() as tmp:
    tuner = Tuner("topic9/fashion_cnn", space, algorithm="random", study_dir=tmp, seed=0,
                  verbose=0, overrides={"train_examples": args.train_examples,
                                        "num_epochs": args.epochs, "num_devices": 1})
    tuner.search(trials=1)
    TIMES.clear()
    start = time.perf_counter()
    tuner.search(trials=args.trials)
    total = time.perf_counter() - start
  n = args.trials - 1
  return [("trial, in all", total / n)] + sorted(((k, v / n) for k, v in TIMES.items()),
                                                 key=lambda kv: -kv[1])


def keras(args) -> list[tuple[str, float]]:
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import keras as keras_lib
  import keras_tuner as kt
  import numpy as np
  from tuner_vs_kerastuner import splits
  layers = keras_lib.layers
  train, val = splits(args.train_examples)

  def build(hp):
    init, rate = "lecun_normal", 0.2
    model = [keras_lib.Input((28, 28, 1))]
    for width in (32, 64):
      model += [layers.Conv2D(width, 3, padding="same", use_bias=False, kernel_initializer=init),
                layers.BatchNormalization(momentum=0.9, epsilon=1e-5), layers.ReLU(),
                layers.MaxPooling2D(2), layers.Dropout(rate)]
    model += [layers.Flatten(), layers.Dense(128, activation="relu", kernel_initializer=init),
              layers.Dropout(2 * rate), layers.Dense(10, kernel_initializer=init)]
    model = keras_lib.Sequential(model)
    model.compile(optimizer=keras_lib.optimizers.Adam(hp.Float("learning_rate", 1e-3, 2e-3),
                                                      epsilon=1e-8),
                  loss=keras_lib.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model

  per_trial = []

  class Search(kt.RandomSearch):
    def run_trial(self, trial, *a, **k):
      start, compiled = time.perf_counter(), TIMES["XLA compile (all)"]
      try:
        return super().run_trial(trial, *a, **k)
      finally:
        per_trial.append((time.perf_counter() - start, TIMES["XLA compile (all)"] - compiled))

  keras_lib.utils.set_random_seed(0)
  x, xv = (s["image"].astype(np.float32) / 255.0 for s in (train, val))
  with tempfile.TemporaryDirectory() as tmp:
    search = Search(build, objective="val_accuracy", max_trials=args.trials, seed=0,
                    directory=tmp, project_name="breakdown", overwrite=True)
    search.search(x, train["label"], validation_data=(xv, val["label"]), epochs=args.epochs,
                  batch_size=128, shuffle=True, verbose=0)
  later = per_trial[1:]
  return [("trial, in all", sum(t for t, _ in later) / len(later)),
          ("XLA compile (all)", sum(c for _, c in later) / len(later))]


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--train-examples", type=int, default=3000)
  parser.add_argument("--epochs", type=int, default=2)
  parser.add_argument("--trials", type=int, default=3, help="the first is left out of the means")
  parser.add_argument("--side", nargs="+", choices=("ours", "keras"), default=["ours", "keras"])
  parser.add_argument("--no-cache", action="store_true",
                      help="no persistent compilation cache for our Tuner (a new network each trial)")
  args = parser.parse_args(argv)
  if args.trials < 2:
    parser.error("--trials must be >= 2 (the first trial is left out)")
  _time_compiles()
  for side in args.side:
    TIMES.clear()
    cpu = time.process_time()
    rows = ours(args) if side == "ours" else keras(args)
    print(f"\n{side}: {args.trials - 1} trials after the first, {args.epochs} epochs of "
          f"{args.train_examples} images (90% train); seconds per trial (process CPU for the "
          f"whole side: {time.process_time() - cpu:.0f} s)")
    for label, seconds in rows:
      print(f"  {label:58s} {seconds:7.2f}")


if __name__ == "__main__":
  main()

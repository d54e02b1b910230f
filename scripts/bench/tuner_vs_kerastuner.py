"""Our Tuner (and the population search) vs KerasTuner 1.4.8 on Keras 3 (jax backend), same search.

  python scripts/bench/tuner_vs_kerastuner.py [--algorithms hyperband random]
      [--train-examples 10000] [--max-epochs 4] [--random-trials 12] [--random-epochs 2]
      [--no-population] [--no-tuner]
  python scripts/bench/tuner_vs_kerastuner.py --quick   # 2000 examples, 2 / 1 epochs, 3 trials

The search is experiments/topic9/fashion_cnn.py's: topic 1's CNN (Conv-BN-ReLU-pool-dropout x2,
Dense-ReLU-dropout(2x), logits) with the filters of the two blocks, the dense units, the dropout
rate and Adam's learning rate (log-uniform) searched; KerasTuner gets the identical Keras model
(lecun_normal kernels, BN momentum 0.9 and epsilon 1e-5, Adam epsilon 1e-8, as Flax and optax)
and the same space. Both sides train on the same arrays: the project's Fashion-MNIST loader, the
first ``--train-examples`` training images, 10% of them held out (the runner's seeded split) for
``val_accuracy``, the objective (best epoch of a trial, as KerasTuner counts it). Batch 128.

(a) Hyperband, at most ``--max-epochs`` epochs a trial: KerasTuner's Hyperband (factor 3) decides
    how many trials it runs; ours (``ycng_jax.tuning.Tuner``, Optuna's HyperbandPruner) runs as
    many trials. (b) Random search, ``--random-trials`` trials of ``--random-epochs`` epochs.
Each side runs in a fresh process of its own. Ours is ``Tuner`` (each trial a ``ycng run`` in
its workdir: checkpoints each epoch, metrics; no test pass or curves.png, which a val_ objective
does not need), on one XLA:CPU device as Keras. "Ours, population":
``ycng_jax.tuning.population_search`` with ``topic9/population_fashion_cnn``'s config (all
trials vmapped in one program, sharded over one XLA:CPU device per core); it cannot vmap over
architectures, so its space is smaller (filters (32, 64) and 128 units fixed, with BatchNorm;
learning rate and dropout searched), labelled as such; its convolutions are ``PatchConv``
(im2col, one matmul), which vmaps to batched matmuls where ``nn.Conv`` would become a grouped
convolution that XLA:CPU runs 2.5-3x slower per member. Hyperband's counterpart is successive
halving over
rungs (1, 2, 4 epochs, keep 1/2) from as many members as the other sides' trials; random search's
is one rung. Wall time includes compiling, data loading and each side's bookkeeping; "epochs" is
the training epochs each side ran in all (the budget actually spent).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from bench_utils import add_json_argument, preset_defaults, result_row, version, write_json

os.environ.setdefault("KERAS_BACKEND", "jax")
EXPERIMENT = "topic9/fashion_cnn"


def splits(train_examples: int):
  """The arrays our runner trains and validates on (same loader, same seeded split)."""
  from ycng_jax import experiments
  from ycng_jax.train.classification import load_splits
  config = experiments.load_module(EXPERIMENT).get_config()
  config.train_examples = train_examples
  train, val, _ = load_splits(config)
  return train, val


def keras_tuner_search(algorithm: str, train, val, args) -> dict:
  """KerasTuner on the identical model and space; wall time, best val_accuracy, trials, epochs."""
  import keras
  import keras_tuner as kt
  layers = keras.layers

  class DropAll(layers.Layer):
    """Flax's Dropout(1.0) (zeros in training); Keras's would divide by zero and give NaN grads."""

    def call(self, x, training=False):
      return x * 0.0 if training else x

  def dropout(rate):
    return DropAll() if rate >= 1.0 else layers.Dropout(rate)

  def build(hp):
    # The space of fashion_cnn.get_search_space(), in KerasTuner's words.
    features = [(16, 32), (32, 64), (64, 128)][hp.Choice("features", [0, 1, 2])]
    dense = hp.Int("dense", 64, 256, step=64)
    rate = hp.Float("dropout", 0.0, 0.5, step=0.1)
    lr = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")
    init = "lecun_normal"
    model = [keras.Input((28, 28, 1))]
    for width in features:
      model += [layers.Conv2D(width, 3, padding="same", use_bias=False, kernel_initializer=init),
                layers.BatchNormalization(momentum=0.9, epsilon=1e-5), layers.ReLU(),
                layers.MaxPooling2D(2)]
      if rate:
        model.append(dropout(rate))
    model += [layers.Flatten(), layers.Dense(dense, activation="relu", kernel_initializer=init)]
    if rate:
      model.append(dropout(2 * rate))
    model.append(layers.Dense(10, kernel_initializer=init))
    model = keras.Sequential(model)
    model.compile(optimizer=keras.optimizers.Adam(lr, epsilon=1e-8),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model

  keras.utils.set_random_seed(0)
  x = train["image"].astype(np.float32) / 255.0
  xv = val["image"].astype(np.float32) / 255.0
  with tempfile.TemporaryDirectory() as tmp:
    start = time.perf_counter()
    common = dict(objective="val_accuracy", seed=0, directory=tmp, project_name=algorithm,
                  overwrite=True)
    if algorithm == "hyperband":
      tuner = kt.Hyperband(build, max_epochs=args.max_epochs, factor=3, **common)
      epochs = args.max_epochs
    else:
      tuner = kt.RandomSearch(build, max_trials=args.random_trials, **common)
      epochs = args.random_epochs
    tuner.search(x, train["label"], validation_data=(xv, val["label"]), epochs=epochs,
                 batch_size=args.batch_size, shuffle=True, verbose=0)
    seconds = time.perf_counter() - start
    trials = list(tuner.oracle.trials.values())
    best = max(t.score for t in trials if t.score is not None)
    # Hyperband's trials train from tuner/initial_epoch (a promoted trial's checkpoint) on.
    spent = sum(t.hyperparameters.values.get("tuner/epochs", epochs)
                - t.hyperparameters.values.get("tuner/initial_epoch", 0) for t in trials)
  return {"seconds": seconds, "best": float(best), "trials": len(trials), "epochs": int(spent)}


def our_search(algorithm: str, trials: int, args) -> dict:
  """``ycng_jax.tuning.Tuner`` in this process, on one device (as Keras)."""
  import optuna
  from ycng_jax.tuning import Tuner
  epochs = args.max_epochs if algorithm == "hyperband" else args.random_epochs
  overrides = {"train_examples": args.train_examples, "num_epochs": epochs,
               "batch_size": args.batch_size, "num_devices": 1}
  with tempfile.TemporaryDirectory() as tmp:
    start = time.perf_counter()
    tuner = Tuner(EXPERIMENT, algorithm=algorithm, study_dir=os.path.join(tmp, "study"),
                  overrides=overrides, seed=0, verbose=0)
    study = tuner.search(trials=trials)
    seconds = time.perf_counter() - start
    done = [t for t in study.get_trials() if t.state in (optuna.trial.TrialState.COMPLETE,
                                                          optuna.trial.TrialState.PRUNED)]
    # The best epoch of any trial, pruned ones included (KerasTuner's score is also a best epoch).
    best = max(max(t.intermediate_values.values()) for t in done if t.intermediate_values)
    spent = sum(len(t.intermediate_values) for t in done)
  return {"seconds": seconds, "best": float(best), "trials": len(done), "epochs": int(spent)}


def population_search(algorithm: str, members: int, args) -> dict:
  """``population_search.run`` of ``topic9/population_fashion_cnn`` (members vmapped together;
  the smaller, fixed-architecture space) on this benchmark's data and budget."""
  from ycng_jax import experiments
  from ycng_jax.tuning import population_search as ps
  config = experiments.load_module("topic9/population_fashion_cnn").get_config()
  config.train_examples, config.batch_size = args.train_examples, args.batch_size
  config.population = members
  if algorithm == "hyperband":
    config.rung_epochs = tuple(e for e in (1, 2, 4, 8, 16) if e < args.max_epochs) + (
        args.max_epochs,)
    config.eta = 2
  else:
    config.rung_epochs = (args.random_epochs,)
  with tempfile.TemporaryDirectory() as tmp:
    start = time.perf_counter()
    ps.run(config, tmp)
    seconds = time.perf_counter() - start
    with open(os.path.join(tmp, "results.json"), encoding="utf-8") as f:
      results = json.load(f)
  values = [v for m in results["members"] for v in m["objective"] if v is not None]
  previous, spent = 0, 0
  for rung in results["rungs"]:
    spent += rung["members"] * (rung["epochs"] - previous)
    previous = rung["epochs"]
  return {"seconds": seconds, "best": float(max(values)), "trials": members, "epochs": spent,
          "devices": results["rungs"][0]["devices"]}


SIDES = ("keras-tuner", "ours", "population")
RESULT = "SIDE RESULT "


def run_side(side: str, algorithm: str, trials: int, args) -> dict:
  """One side of one search in a fresh process: run in one process, our Tuner after KerasTuner
  took 131 s where it takes 116 s alone (2026-12-04), whatever it inherits (live objects for
  each trial's gc, threads, memory); a user runs either tool in a process of its own."""
  command = [sys.executable, os.path.abspath(__file__), "--side", side, "--side-trials",
             str(trials), "--algorithms", algorithm, "--train-examples", str(args.train_examples),
             "--max-epochs", str(args.max_epochs), "--random-trials", str(args.random_trials),
             "--random-epochs", str(args.random_epochs), "--batch-size", str(args.batch_size),
             "--cpu-devices", str(args.cpu_devices)]
  env = dict(os.environ)
  if side == "keras-tuner" and not args.keras_tuned_malloc:
    # KerasTuner as its users run it: with YCNG_JAX_MALLOC=reuse set for our sides, importing
    # ycng_jax (for the same split) would otherwise hand it those malloc settings too, and an
    # LD_PRELOAD of tcmalloc given for our sides would replace its malloc.
    env["YCNG_JAX_MALLOC"] = "system"
    env.pop("LD_PRELOAD", None)
  done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True, env=env)
  lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
  return json.loads(lines[-1][len(RESULT):])


def one_side(args) -> None:
  """The child of ``run_side``: prints its result as one JSON line."""
  algorithm = args.algorithms[0]
  if args.side == "keras-tuner":
    train, val = splits(args.train_examples)
    result = keras_tuner_search(algorithm, train, val, args)
  elif args.side == "ours":
    result = our_search(algorithm, args.side_trials, args)
  else:
    result = population_search(algorithm, args.side_trials, args)
  print(RESULT + json.dumps(result), flush=True)


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--algorithms", nargs="+", choices=("hyperband", "random"),
                      default=["hyperband", "random"])
  parser.add_argument("--train-examples", type=int, default=None, help="10000 (2000 with --quick)")
  parser.add_argument("--max-epochs", type=int, default=None,
                      help="Hyperband's most epochs a trial: 4 (2 with --quick)")
  parser.add_argument("--random-trials", type=int, default=None, help="12 (3 with --quick)")
  parser.add_argument("--random-epochs", type=int, default=None, help="2 (1 with --quick)")
  parser.add_argument("--batch-size", type=int, default=128)
  parser.add_argument("--keras-tuned-malloc", action="store_true",
                      help="give KerasTuner's process the YCNG_JAX_MALLOC and LD_PRELOAD set "
                           "for ours (by default it runs with glibc's malloc as its users do)")
  parser.add_argument("--no-population", action="store_true",
                      help="skip the population search (ours with populations)")
  parser.add_argument("--no-tuner", action="store_true",
                      help="skip our Tuner (ours without populations)")
  parser.add_argument("--cpu-devices", type=int, default=os.cpu_count() or 1,
                      help="XLA:CPU devices the population is sharded over (one per core)")
  parser.add_argument("--quick", action="store_true",
                      help="2000 examples, Hyperband max 2 epochs, 3 random trials of 1 epoch: "
                           "the `ycng bench` preset")
  parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)  # one side, in a child
  parser.add_argument("--side-trials", type=int, default=0, help=argparse.SUPPRESS)
  add_json_argument(parser)
  args = parser.parse_args(argv)
  preset_defaults(args, train_examples=(10000, 2000), max_epochs=(4, 2), random_trials=(12, 3),
                  random_epochs=(2, 1))
  if min(args.max_epochs, args.random_trials, args.random_epochs, args.cpu_devices) < 1:
    parser.error("--max-epochs, --random-trials, --random-epochs and --cpu-devices must be >= 1")
  if args.train_examples * 0.9 < args.batch_size:
    parser.error("--train-examples must leave at least one batch after the 10% validation split")
  return args


def main(argv=None):
  args = parse_args(argv)
  if args.side:  # a child of run_side: XLA_FLAGS come from the parent
    one_side(args)
    return
  # Before jax starts: one device per core for the population; our Tuner and Keras use one.
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             f" --xla_force_host_platform_device_count={args.cpu_devices}").strip()
  train, val = splits(args.train_examples)
  print(f"Fashion-MNIST: {len(train['label'])} train / {len(val['label'])} validation images, "
        f"batch {args.batch_size}; keras {version('keras')}, keras-tuner "
        f"{version('keras-tuner')}; each side in a process of its own", flush=True)
  table, rows = [], []
  for algorithm in args.algorithms:
    budget = (f"Hyperband, max {args.max_epochs} epochs" if algorithm == "hyperband" else
              f"random search, {args.random_trials} trials x {args.random_epochs} epochs")
    theirs = run_side("keras-tuner", algorithm, 0, args)
    print(f"{budget}: keras-tuner {theirs}", flush=True)
    sides = [("keras-tuner", theirs)]
    if not args.no_tuner:
      ours = run_side("ours", algorithm, theirs["trials"], args)
      print(f"{budget}: ycng Tuner {ours}", flush=True)
      sides.append(("ycng Tuner", ours))
    if not args.no_population:
      pop = run_side("population", algorithm, theirs["trials"], args)
      print(f"{budget}: ycng population {pop}", flush=True)
      sides.append((f"ycng population (fixed CNN, lr+dropout; {pop['devices']} devices)", pop))
    for name, side in sides:
      table.append((budget, name, side, theirs["seconds"] / side["seconds"]))
    for name, side in sides[1:]:
      rows.append(result_row(
          f"{budget}, CNN, Fashion-MNIST {args.train_examples} examples: {name}", "seconds",
          side["seconds"], theirs["seconds"], f"keras-tuner {version('keras-tuner')} "
          f"(keras {version('keras')}, jax backend)", higher_is_better=False,
          notes=f"best val_accuracy {side['best']:.4f} vs {theirs['best']:.4f}; "
                f"{side['trials']} vs {theirs['trials']} trials, {side['epochs']} vs "
                f"{theirs['epochs']} epochs"))
  print(f"\n| search | side | wall s | best val_accuracy | trials | epochs | speed-up vs "
        f"keras-tuner |\n|---|---|---:|---:|---:|---:|---:|")
  for budget, name, side, ratio in table:
    print(f"| {budget} | {name} | {side['seconds']:.1f} | {side['best']:.4f} | {side['trials']} | "
          f"{side['epochs']} | {ratio:.2f}x |")
  write_json(args.json, rows)


if __name__ == "__main__":
  main()

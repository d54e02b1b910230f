"""``ycng tune EXPERIMENT ...``: search, then the results table, plots and best config.

Importing this module stays cheap (the ``ycng`` parser imports it); Optuna loads on use.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys

ALGORITHMS = ("random", "grid", "bayes", "bayes-gp", "hyperband", "successive-halving")

USAGE = ("ycng tune EXPERIMENT [--algorithm ALG] [--trials N] [--objective METRIC] "
         "[--direction max|min] [--study-dir DIR] [--storage URL] [--workers N] "
         "[--config.KEY=VALUE ...]")


def add_parser(commands) -> argparse.ArgumentParser:
  tune = commands.add_parser("tune", help="search an experiment's hyperparameters (Optuna)",
                             usage=USAGE)
  tune.add_argument("experiment", help="name from `ycng list`, or a path to a config .py with "
                    "get_search_space()")
  tune.add_argument("--algorithm", default="random", choices=ALGORITHMS,
                    help="bayes: Optuna's TPE sampler; bayes-gp: its Gaussian process; hyperband "
                    "and successive-halving prune trials between epochs (default random)")
  tune.add_argument("--trials", type=int, default=10, help="trials in the study, all workers "
                    "together; running again after a crash runs only the missing ones")
  tune.add_argument("--objective", default="val_accuracy",
                    help="a metric logged each epoch (the best epoch counts) or a final one such "
                    "as test_accuracy (default val_accuracy)")
  tune.add_argument("--direction", default="max", choices=("max", "min"))
  tune.add_argument("--study-dir", help="trial workdirs, the study journal, results, plots and "
                    "best_config.py (default studies/EXPERIMENT-ALGORITHM)")
  tune.add_argument("--storage", help="an Optuna storage URL shared by workers, e.g. "
                    "postgresql://user:pass@host/db (default: a journal file in the study dir)")
  tune.add_argument("--study-name", help="the study's name in the storage (default from the "
                    "study dir's name)")
  tune.add_argument("--workers", type=int, default=1, help="worker processes on this machine")
  tune.add_argument("--seed", type=int, default=0, help="the sampler's seed")
  tune.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
  tune.add_argument("--no-report", action="store_true", help="skip the tables, plots and best "
                    "config at the end (other workers write them)")
  return tune


def _worker_argv(args) -> list[str]:
  argv = [sys.executable, "-m", "ycng_jax.cli", "tune", args.experiment, "--algorithm",
          args.algorithm, "--trials", str(args.trials), "--objective", args.objective,
          "--direction", args.direction, "--study-dir", args.study_dir, "--seed", str(args.seed),
          "--no-report"]
  if args.storage:
    argv += ["--storage", args.storage]
  if args.study_name:
    argv += ["--study-name", args.study_name]
  return argv + [f"--config.{k}={v}" for k, v in args.overrides.items()]


def main(args) -> int:
  from ycng_jax.errors import UserError  # pylint: disable=import-outside-toplevel
  from ycng_jax.tuning.tuner import Tuner  # pylint: disable=import-outside-toplevel
  if args.workers < 1:
    raise UserError(f"--workers must be >= 1, got {args.workers}")
  if args.trials < 1:
    raise UserError(f"--trials must be >= 1, got {args.trials}")
  if not args.study_dir:
    stem = pathlib.Path(args.experiment).with_suffix("").as_posix().replace("/", "-")
    args.study_dir = os.path.join("studies", f"{stem}-{args.algorithm}")
  tuner = Tuner(args.experiment, algorithm=args.algorithm, objective=args.objective,
                direction=args.direction, study_dir=args.study_dir, storage=args.storage,
                study_name=args.study_name, overrides=args.overrides, seed=args.seed,
                worker=args.worker_index)
  tuner.study  # pylint: disable=pointless-statement  # a mismatched study dir stops here, once
  children = []
  for i in range(1, args.workers):
    log = open(os.path.join(args.study_dir, f"worker-{i}.log"), "ab")  # pylint: disable=consider-using-with
    children.append(subprocess.Popen(_worker_argv(args) + ["--worker-index", str(i)],
                                     stdout=log, stderr=subprocess.STDOUT))
  try:
    tuner.search(trials=args.trials)
  finally:
    for child in children:
      child.wait()
  failed = [c.args[-1] for c in children if c.returncode]
  if failed:
    print(f"ycng: workers {failed} ended with an error; see {args.study_dir}/worker-N.log",
          file=sys.stderr)
  if not args.no_report:
    out = tuner.write_reports()
    tuner.results_summary(num_trials=5)
    for what, path in out.items():
      print(f"{what}: {path}")
    if "best_config" in out:
      print(f"rerun the best: ycng run {out['best_config']}")
  return 1 if failed else 0

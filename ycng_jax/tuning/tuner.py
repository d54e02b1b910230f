"""``Tuner``: KerasTuner's interface on an Optuna study that lives in a study dir.

  tuner = Tuner("topic9/fashion_cnn", algorithm="hyperband", objective="val_accuracy",
                direction="max", study_dir="studies/cnn")
  tuner.search(trials=30)
  tuner.results_summary()
  best = tuner.get_best_config()

Each trial runs the experiment's runner with its config in ``STUDY_DIR/trials/NNNN`` (so it
checkpoints and resumes like ``ycng run``), in this process: the trainer's buffers, jit caches
and garbage are freed after each trial, and the process RSS is recorded with the trial; JAX's
persistent compilation cache in the study dir spares trials of a network seen before compiling.
The study is in Optuna's storage (a journal file in the study dir, or a database URL), so the
same command after a crash, or more processes on the same study, go on where it stands.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import inspect
import math
import os
import pathlib
import sys
import threading
import time
import traceback
import warnings
from typing import Any, Callable

import filelock
import ml_collections
import optuna

from ycng_jax import experiments
from ycng_jax.checks import whole_number
from ycng_jax.errors import UserError
from ycng_jax.tuning import space as space_lib
from ycng_jax.tuning import study as study_lib
from ycng_jax.tuning.callbacks import TrialReporter

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
            optuna.trial.TrialState.FAIL)


class ObjectiveError(UserError):
  """The objective is not a metric the runs log: every trial would fail the same way."""


def _accepts(fn: Callable, name: str) -> bool:
  params = inspect.signature(fn).parameters.values()
  return any(p.name == name or p.kind is p.VAR_KEYWORD for p in params)


class Tuner:
  """Search hyperparameters of an experiment (or of configs built by ``build_fn(hp)``).

  Args:
    experiment: an experiment name (``ycng list``) or path to its config file, whose
      ``get_search_space()`` gives the space unless ``space`` is passed; or a function
      ``build_fn(hp) -> ConfigDict`` that draws values with ``hp.Int(...)`` etc. and returns
      the trial's config (its ``config.runner`` trains it).
    space: a ``SearchSpace`` (or a list of parameters) over the config's dotted keys.
    algorithm: random, grid, bayes (TPE), bayes-gp (Gaussian process), hyperband or
      successive-halving (epochs are the resource; trials are pruned between epochs).
    objective: a metric the runner logs each epoch (``val_accuracy``, the best epoch counts, as
      in KerasTuner) or returns at the end (``test_accuracy``).
    direction: ``"max"`` or ``"min"``.
    study_dir: trial workdirs, the default storage, the results table, plots, best config.
    storage: an Optuna storage URL (``sqlite:///...``, ``postgresql://...``) shared by workers.
    overrides: ``{"num_epochs": "2", ...}`` applied to the experiment's config first (as
      ``ycng run --config.KEY=VALUE``).
    seed: the sampler's seed (each worker and each restart gets its own stream from it).
    worker: this process's index among workers started together (varies the sampler's seed).
    heartbeat: (interval, grace) seconds, for database storages: a trial whose worker has not
      beaten for ``grace`` seconds (its host died) is restarted by another worker.
  """

  def __init__(self, experiment: str | Callable, space: Any = None, *, algorithm: str = "random",
               objective: str = "val_accuracy", direction: str = "max",
               study_dir: str | os.PathLike = "studies/tuning", storage: str | None = None,
               study_name: str | None = None, overrides: dict[str, str] | None = None,
               seed: int = 0, worker: int = 0, verbose: int = 1,
               heartbeat: tuple[int, int] = (30, 120)):
    self.algorithm = study_lib.check_algorithm(algorithm)
    if direction not in ("max", "min"):
      raise UserError(f"direction must be 'max' or 'min', got {direction!r}")
    if not isinstance(objective, str) or not objective:
      raise UserError(f"objective must be a metric name such as 'val_accuracy', got {objective!r}")
    self.objective, self.direction = objective, direction
    self.overrides = {k: str(v) for k, v in (overrides or {}).items()}
    self.seed, self.worker, self.verbose = seed, worker, verbose
    self.heartbeat = heartbeat
    self.study_dir = pathlib.Path(study_dir)
    self.storage_url = storage
    self.build_fn: Callable | None = None
    self.module = None
    if callable(experiment):
      self.build_fn, self.name = experiment, getattr(experiment, "__qualname__", "build_fn")
      self.base_config = None
    else:
      self.name = str(experiment)
      self.module = experiments.load_module(self.name)
      self.base_config = experiments.apply_overrides(self.module.get_config(), self.overrides)
      if space is None:
        if not hasattr(self.module, "get_search_space"):
          raise UserError(f"experiment {self.name} has no get_search_space(); add one to its "
                          "config file or pass a space")
        space = self.module.get_search_space()
    if space is not None and not isinstance(space, space_lib.SearchSpace):
      space = space_lib.SearchSpace(space)
    self.space = space
    if self.space is None and self.build_fn is None:
      raise UserError("give a search space")
    if self.space is not None and self.base_config is not None:
      self.space.check_keys(self.base_config)
    if self.algorithm == "grid":
      if self.space is None:
        raise UserError("grid search needs a declared search space (pass space=...)")
      for p in self.space.params:
        p.grid()  # a continuous parameter is an error here, before anything runs
    # Hyperband's largest resource: the config's epochs; for build_fn configs Optuna takes
    # the epochs the first finished trial reported ("auto").
    self.max_epochs = None
    if self.base_config is not None and self.algorithm in study_lib.PRUNING:
      if "num_epochs" not in self.base_config:
        raise UserError(f"{self.algorithm} uses epochs as the resource: the config needs "
                        "num_epochs (the most epochs a trial trains)")
      self.max_epochs = int(self.base_config.num_epochs)
    self.study_name = study_name or f"ycng-{self.study_dir.resolve().name}"
    self._study: optuna.Study | None = None

  # -- the study -------------------------------------------------------------------------------

  def record(self) -> dict[str, Any]:
    """What the study dir belongs to (checked on every start)."""
    if self.build_fn is not None:
      try:
        source = inspect.getsource(self.build_fn)
      except (OSError, TypeError):
        source = self.name
      what = {"build_fn": self.name, "build_fn_source": source}
    else:
      what = {"experiment": self.name, "overrides": self.overrides}
    return {**what, "space": self.space.describe() if self.space else None,
            "algorithm": self.algorithm, "objective": self.objective,
            "direction": self.direction}

  @property
  def study(self) -> optuna.Study:
    if self._study is None:
      experiments.prepare_workdir(self.study_dir)
      optuna.logging.set_verbosity(optuna.logging.WARNING)
      storage = study_lib.make_storage(self.storage_url, self.study_dir, self.heartbeat,
                                       on_stale=self._enqueue_retry)
      self._storage = storage
      with self._lock():
        existing = optuna.create_study(storage=storage, study_name=self.study_name,
                                       direction="maximize" if self.direction == "max"
                                       else "minimize", load_if_exists=True)
        offset = len(existing.trials)
      self._study = optuna.load_study(
          study_name=self.study_name, storage=storage,
          sampler=study_lib.make_sampler(self.algorithm, self.seed + 1009 * self.worker + offset),
          pruner=study_lib.make_pruner(self.algorithm, self.max_epochs))
      study_lib.check_record(self.study_dir, self._study, self.record())
    return self._study

  def _lock(self):
    # Serialises choosing the next trial between processes that share this study dir, so
    # `--trials N` runs exactly N and a dead worker's trial is restarted once.
    return filelock.FileLock(str(self.study_dir / ".tuner.lock"))

  @staticmethod
  def _retried(trials) -> set[int]:
    return {t.user_attrs["retry_of_trial"] for t in trials if "retry_of_trial" in t.user_attrs}

  def _counted(self, trials) -> int:
    """Trials that use one of the N slots: all but WAITING ones and failures restarted later."""
    retried = self._retried(trials)
    return sum(1 for t in trials if t.state != optuna.trial.TrialState.WAITING
               and t.number not in retried)

  def recover(self) -> None:
    """Restart the trials of dead workers: those of this host at once (their process is gone),
    those of other hosts once their heartbeat is older than the grace period (databases)."""
    study = self.study
    with self._lock():
      self._recover_dead(study)

  def _recover_dead(self, study: optuna.Study) -> None:
    """A RUNNING trial whose process died on this host (kill -9, power): FAIL it, and enqueue its
    parameters again; the new trial resumes in the same workdir, from its last checkpoint."""
    if isinstance(self._storage, optuna.storages.RDBStorage):
      with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # other hosts' (calls _enqueue_retry)
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
      attrs = t.user_attrs
      if attrs.get("host") != study_lib.host() or "pid" not in attrs:
        continue
      if study_lib.process_alive(attrs["pid"], attrs.get("pid_started")):
        continue
      try:
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
      except (RuntimeError, ValueError):  # another process closed it first
        continue
      self._enqueue_retry(study, t)

  def _enqueue_retry(self, study, frozen) -> None:
    root = frozen.user_attrs.get("trial_dir", self._trial_dir_name(frozen.number))
    study.enqueue_trial(frozen.params, user_attrs={"retry_of_trial": frozen.number,
                                                   "trial_dir": root})

  @staticmethod
  def _trial_dir_name(number: int) -> str:
    return f"{number:04d}"

  def _next_grid_point(self, study, trials) -> bool:
    """Enqueue the first grid point no trial has taken; False when the grid is done."""
    taken = [t.params for t in trials]
    for point in space_lib.grid_values(self.space):
      params = {k: self._optuna_value(k, v) for k, v in point.items()}
      if params not in taken:
        study.enqueue_trial(params)
        return True
    return False

  def _optuna_value(self, name, value):
    param = next(p for p in self.space.params if p.name == name)
    if isinstance(param, space_lib.Choice) and not all(
        v is None or isinstance(v, (bool, int, float, str)) for v in param.values):
      return param.values.index(value)
    return value

  # -- search ----------------------------------------------------------------------------------

  def search(self, trials: int = 10) -> optuna.Study:
    """Run trials until the study has ``trials`` finished ones (also counting other workers')."""
    whole_number("trials", trials, 1)
    study = self.study
    bar = None
    if self.verbose:
      from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel
      bar = tqdm(total=trials, desc="trials", unit="trial", file=sys.stderr, dynamic_ncols=True)
      self._progress(bar, study, trials)  # a resumed study starts where it stands
    try:
      with study_lib.compilation_cache(self.study_dir):
        self._search(study, trials, bar)
    finally:
      if bar is not None:
        bar.close()
    return study

  def _search(self, study: optuna.Study, trials: int, bar) -> None:
    while True:
      with self._lock():
        self._recover_dead(study)
        all_trials = study.get_trials(deepcopy=False)
        if self._counted(all_trials) >= trials:
          break
        waiting = any(t.state == optuna.trial.TrialState.WAITING for t in all_trials)
        if self.algorithm == "grid" and not waiting and not self._next_grid_point(study,
                                                                                    all_trials):
          break
        with warnings.catch_warnings():
          # We beat the heart ourselves (_beating), as Study.optimize would.
          warnings.filterwarnings("ignore", "Heartbeat of storage is supposed")
          trial = study.ask()
        trial.set_user_attr("host", study_lib.host())
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("pid_started", study_lib.process_start_time())
        if "trial_dir" not in trial.user_attrs:
          trial.set_user_attr("trial_dir", self._trial_dir_name(trial.number))
      with self._beating(trial):
        self._run_trial(study, trial)
      if bar is not None:
        self._progress(bar, study, trials)

  def _progress(self, bar, study, total):
    trials = study.get_trials(deepcopy=False)
    bar.n = min(total, sum(1 for t in trials if t.state in FINISHED) - len(self._retried(trials)))
    best = self._best_trial(study)
    if best is not None:
      bar.set_postfix_str(f"best {self.objective}={best.value:.4g} (trial {best.number})")
    bar.refresh()

  def trial_config(self, trial) -> tuple[ml_collections.ConfigDict, dict[str, Any]]:
    """The trial's config and the parameter values it drew (external values, for people)."""
    if self.build_fn is not None:
      hp = space_lib.HyperParameters(trial)
      config = self.build_fn(hp)
      if not isinstance(config, ml_collections.ConfigDict):
        raise UserError(f"build_fn must return an ml_collections.ConfigDict, got "
                        f"{type(config).__name__}")
      return config, hp.values
    values = self.space.sample(trial)
    return space_lib.apply_params(self.base_config, values), values

  def _runner(self, config):
    if self.module is not None:
      return experiments.resolve_runner(self.module, config)
    from ycng_jax.train.classification import import_object  # pylint: disable=import-outside-toplevel
    if not config.get("runner"):
      raise UserError("the config from build_fn has no runner = 'package.module:function'")
    return import_object(config.runner)

  def _run_trial(self, study: optuna.Study, trial: optuna.Trial) -> None:
    start = time.time()
    workdir = self.study_dir / "trials" / trial.user_attrs["trial_dir"]
    reporter = TrialReporter(trial, self.objective, self.direction)
    state, value, error = optuna.trial.TrialState.FAIL, None, None
    self._log(trial, "start")
    try:
      config, values = self.trial_config(trial)
      trial.set_user_attr("values", _jsonable(values))
      _trial_only_settings(config, values, self.objective)
      runner = self._runner(config)
      kwargs = {}
      if _accepts(runner, "extra_callbacks"):
        kwargs["extra_callbacks"] = [reporter]
      elif self.algorithm in study_lib.PRUNING:
        raise UserError(f"{self.algorithm} needs a runner that takes extra_callbacks= (to stop a "
                        f"pruned trial between epochs); {runner.__qualname__} does not")
      experiments.prepare_workdir(workdir)
      (workdir / "config.json").write_text(config.to_json_best_effort(indent=2, sort_keys=True))
      result = runner(config, str(workdir), **kwargs) or {}
      value = reporter.best()
      if value is None:
        if self.objective not in result:
          known = sorted(set(reporter.available) | set(result))
          raise ObjectiveError(f"the objective {self.objective!r} is not a metric of this "
                               f"experiment; it logs {known}")
        value = float(result[self.objective])
      if reporter.pruned:
        state = optuna.trial.TrialState.PRUNED
      elif not math.isfinite(value):
        error = f"the objective {self.objective} is {value}"
      else:
        state = optuna.trial.TrialState.COMPLETE
    except ObjectiveError as e:
      error = str(e)
      self._close(study, trial, state, None, error, start, reporter)
      raise
    except Exception as e:  # pylint: disable=broad-except
      error = f"{type(e).__name__}: {e}"
      if not isinstance(e, UserError):
        traceback.print_exc()
    except BaseException:  # Ctrl-C: this trial is restarted by the next run
      self._close(study, trial, state, None, "interrupted", start, reporter)
      with self._lock():
        self._enqueue_retry(study, study.trials[trial.number])
      raise
    self._close(study, trial, state, value, error, start, reporter)

  def _close(self, study, trial, state, value, error, start, reporter):
    self._free()
    trial.set_user_attr("epochs", len(reporter.values))
    trial.set_user_attr("seconds", round(time.time() - start, 3))
    trial.set_user_attr("rss_mb", round(study_lib.rss_mb(), 1))
    if error:
      trial.set_user_attr("error", error[:2000])
    if state == optuna.trial.TrialState.COMPLETE:
      study.tell(trial, value)
    else:
      study.tell(trial, state=state)
    self._log(trial, f"end {state.name}")
    if self.verbose and error:
      print(f"trial {trial.number} failed: {error.splitlines()[0]}", file=sys.stderr)

  @contextlib.contextmanager
  def _beating(self, trial):
    """Record the trial's heartbeat in a thread while it runs (database storages only)."""
    storage = self._storage
    if not isinstance(storage, optuna.storages.RDBStorage):
      yield
      return
    stop = threading.Event()

    def beat():
      while not stop.is_set():
        storage.record_heartbeat(trial._trial_id)  # pylint: disable=protected-access  # as optuna's own thread
        stop.wait(self.heartbeat[0])

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
      yield
    finally:
      stop.set()
      thread.join()

  def _log(self, trial, event: str) -> None:
    """One line per trial start and end in STUDY_DIR/trials.log, from every worker (O_APPEND)."""
    line = (f"{time.strftime('%Y-%m-%dT%H:%M:%S')} trial {trial.number} dir "
            f"{trial.user_attrs['trial_dir']} host {study_lib.host()} pid {os.getpid()} {event}\n")
    with open(self.study_dir / "trials.log", "a", encoding="utf-8") as f:
      f.write(line)

  @staticmethod
  def _free():
    """A finished trial's compiled steps and device buffers go, so 30 trials fit like one."""
    import jax  # pylint: disable=import-outside-toplevel
    jax.clear_caches()
    gc.collect()  # the trial's trainer and arrays are unreachable now: their buffers go
    # glibc keeps the freed memory of a trial's host arrays in its arenas, so RSS kept growing
    # by ~19 MB a trial of the Fashion-MNIST CNN with nothing alive (jax.live_arrays() and the
    # Python objects flat); malloc_trim hands it back and RSS then stays flat (docs/tuning.md).
    try:
      ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
      pass  # not glibc (macOS, musl): nothing to trim

  # -- results ---------------------------------------------------------------------------------

  def _best_trial(self, study=None):
    study = study or self.study
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not done:
      return None
    key = lambda t: t.value
    return max(done, key=key) if self.direction == "max" else min(done, key=key)

  def get_best_trials(self, num_trials: int = 1) -> list[optuna.trial.FrozenTrial]:
    done = self.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    done.sort(key=lambda t: t.value, reverse=self.direction == "max")
    return done[:num_trials]

  def get_best_hyperparameters(self, num_trials: int = 1) -> list[dict[str, Any]]:
    """The parameter values of the best ``num_trials`` completed trials, best first."""
    return [dict(t.user_attrs.get("values", t.params)) for t in self.get_best_trials(num_trials)]

  def get_best_config(self) -> ml_collections.ConfigDict:
    """The best trial's full config (the experiment's config with its values set)."""
    best = self.get_best_trials(1)
    if not best:
      raise UserError(f"the study in {self.study_dir} has no completed trial yet; run search()")
    if self.build_fn is not None:
      return self.trial_config(optuna.trial.FixedTrial(best[0].params))[0]
    # apply_params turns JSON's lists back into tuples where the config has tuples.
    return space_lib.apply_params(self.base_config, best[0].user_attrs["values"])

  def results(self) -> list[dict[str, Any]]:
    from ycng_jax.tuning import results  # pylint: disable=import-outside-toplevel
    return results.rows(self.study.get_trials(), self.objective)

  def results_summary(self, num_trials: int = 10) -> str:
    """The best trials as a table (printed, and returned)."""
    from ycng_jax.tuning import results  # pylint: disable=import-outside-toplevel
    text = results.summary(self.results(), self.objective, self.direction, num_trials)
    print(text)
    return text

  def write_reports(self) -> dict[str, str]:
    """results.csv / results.md, the plots and best_config.py in the study dir."""
    from ycng_jax.tuning import plots, results  # pylint: disable=import-outside-toplevel
    rows = self.results()
    out = results.write_tables(rows, self.study_dir, self.objective)
    out.update(plots.write_plots(self.study, self.study_dir, self.objective))
    if self.get_best_trials(1):
      out["best_config"] = results.write_best_config(self, self.study_dir / "best_config.py")
    return out


def _trial_only_settings(config: ml_collections.ConfigDict, values: dict[str, Any],
                         objective: str) -> None:
  """Skip what a trial does not need, where the runner has the key and the space does not set it.

  A trial of a few seconds paid ~3 s for a pass over the 10,000 test images and ~0.5 s for its
  curves.png (docs/tuning.md, "Where a trial's time goes"); neither is part of the objective
  unless it is a ``test_`` metric. These keys do not change what is trained (not part of the
  resume fingerprint), and ``get_best_config`` leaves them as the experiment has them.
  """
  off = {"verbose": 0, "plots": False}  # one progress bar: over trials
  if not objective.startswith("test_"):
    off["evaluate_test"] = False
  for key, value in off.items():
    if key in config and key not in values:
      config[key] = value


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
  return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}

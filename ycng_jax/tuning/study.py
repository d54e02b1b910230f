"""Opening a study dir's Optuna study: storage, sampler, pruner, and the one-study-per-dir check."""

from __future__ import annotations

import json
import os
import pathlib
import time
import warnings
from typing import Any

import optuna

from ycng_jax import fingerprints
from ycng_jax.errors import UserError
from ycng_jax.train.compile_cache import host, persistent_compilation_cache

from ycng_jax.tuning.cli import ALGORITHMS
PRUNING = ("hyperband", "successive-halving")


class StudyMismatchError(UserError):
  """The study dir (or the storage's study) belongs to another experiment, space or algorithm."""


def check_algorithm(algorithm: str) -> str:
  if algorithm not in ALGORITHMS:
    raise UserError(f"unknown algorithm {algorithm!r}; choose one of {list(ALGORITHMS)} (bayes is "
                    "Optuna's TPE sampler, bayes-gp its Gaussian-process sampler)")
  return algorithm


def make_sampler(algorithm: str, seed: int | None) -> optuna.samplers.BaseSampler:
  if algorithm == "bayes":
    return optuna.samplers.TPESampler(seed=seed)
  if algorithm == "bayes-gp":
    return optuna.samplers.GPSampler(seed=seed)
  # grid: every trial is enqueued with its grid point, so the sampler never draws.
  return optuna.samplers.RandomSampler(seed=seed)


def make_pruner(algorithm: str, max_epochs: int | None) -> optuna.pruners.BasePruner:
  if algorithm == "hyperband":
    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs or "auto",
                                          reduction_factor=3)
  if algorithm == "successive-halving":
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
  return optuna.pruners.NopPruner()


_SCHEMA_RACE_ATTEMPTS = 5


def _lost_schema_race(error: Exception) -> bool:
  """Whether ``RDBStorage`` failed because another process created Optuna's tables at the same
  moment (workers started together on a new database): PostgreSQL's unique violation on its
  catalog, or SQLite's "already exists". Opening again finds the tables."""
  import sqlalchemy.exc  # pylint: disable=import-outside-toplevel  (Optuna's RDB dependency)
  return isinstance(error, sqlalchemy.exc.IntegrityError) or "already exists" in str(error)


def make_storage(storage: str | None, study_dir: pathlib.Path, heartbeat: tuple[int, int] = (30, 120),
                 on_stale=None):
  """The default is an Optuna journal file in the study dir (several local processes may share
  it: Optuna locks the file); a URL (``sqlite:///...``, ``postgresql://...``) is an RDB.

  An RDB records a heartbeat of each running trial every ``heartbeat[0]`` seconds; a trial
  whose worker fell silent for ``heartbeat[1]`` seconds (a host that died) is failed by the
  next worker that looks, and ``on_stale(study, trial)`` restarts it.
  """
  if not storage:
    backend = optuna.storages.journal.JournalFileBackend(
        str(study_dir / "study.journal"),
        lock_obj=optuna.storages.journal.JournalFileOpenLock(str(study_dir / "study.journal")))
    return optuna.storages.JournalStorage(backend)
  if "://" not in storage:
    raise UserError(f"--storage must be a database URL such as sqlite:///study.db or "
                    f"postgresql://user@host/db, got {storage!r}; leave it out for a journal file "
                    "in the study dir")
  for attempt in range(_SCHEMA_RACE_ATTEMPTS):
    try:
      with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats
        return optuna.storages.RDBStorage(storage, engine_kwargs={"pool_pre_ping": True},
                                          heartbeat_interval=heartbeat[0],
                                          grace_period=heartbeat[1],
                                          heartbeat_stale_trial_callback=on_stale)
    except ImportError as e:
      raise UserError(f"the storage {storage} needs a database driver that is not installed "
                      f"({e}); for PostgreSQL: pip install 'psycopg[binary]' (or "
                      "ycng-jax[postgres])") from None
    except Exception as e:  # sqlalchemy's OperationalError: a server that cannot be reached
      if _lost_schema_race(e) and attempt + 1 < _SCHEMA_RACE_ATTEMPTS:
        time.sleep(0.2 * (attempt + 1))  # another worker is creating the tables: use them
        continue
      raise UserError(f"cannot open the storage {storage}: {str(e).splitlines()[0]}") from None


def check_record(study_dir: pathlib.Path, study: optuna.Study, record: dict[str, Any]) -> None:
  """The study dir and the storage's study were made by this experiment, space and algorithm."""
  flat = fingerprints.flatten(record)
  path = study_dir / "study.json"
  saved_sources = []
  if path.exists():
    saved_sources.append((str(path), fingerprints.flatten(json.loads(path.read_text()))))
  if "ycng_study" in study.user_attrs:
    saved_sources.append((f"the study {study.study_name!r} in the storage",
                          fingerprints.flatten(study.user_attrs["ycng_study"])))
  for where, saved in saved_sources:
    diff = fingerprints.differences(saved, flat)
    if diff:
      raise StudyMismatchError(
          f"{where} belongs to another tuning run; what differs (saved -> this run): "
          + "; ".join(diff) + f". Nothing was changed. To continue that study, run it with its "
          "settings again; to start this one, give it another --study-dir (or --study-name), or "
          "delete the old one.")
  if not path.exists():
    path.write_text(json.dumps(record, indent=2, sort_keys=True, default=str))
  if "ycng_study" not in study.user_attrs:
    study.set_user_attr("ycng_study", json.loads(json.dumps(record, default=str)))


def process_alive(pid: int, started: float | None) -> bool:
  """Whether process ``pid`` (started at ``started``, psutil's create_time) still runs here."""
  import psutil  # pylint: disable=import-outside-toplevel
  try:
    process = psutil.Process(pid)
    if process.status() == psutil.STATUS_ZOMBIE:
      return False
    return started is None or abs(process.create_time() - started) < 1.0
  except psutil.NoSuchProcess:
    return False


def process_start_time() -> float:
  import psutil  # pylint: disable=import-outside-toplevel
  return psutil.Process(os.getpid()).create_time()


def rss_mb() -> float:
  import psutil  # pylint: disable=import-outside-toplevel
  return psutil.Process(os.getpid()).memory_info().rss / 2**20


def compilation_cache(study_dir: str | os.PathLike):
  """JAX's persistent compilation cache in ``STUDY_DIR/xla_cache/HOST`` while trials run.

  The tuner clears JAX's in-memory caches after each trial (flat memory), so without it every
  trial compiles its steps again; with it, trials whose programs are identical (the same
  architecture: learning rates are state, not constants of the program) load the executable
  from disk instead, and so do the study's other workers on this host and a resumed run (see
  ``train.compile_cache``).
  """
  return persistent_compilation_cache(pathlib.Path(study_dir) / "xla_cache" / host())

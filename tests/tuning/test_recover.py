"""Trials of dead workers are restarted: a dead local process at once, a silent host after its
heartbeat's grace period (database storages). No training runs here."""

import os
import socket
import pathlib
import subprocess
import sys
import time
import warnings

import optuna
import psutil

from ycng_jax.tuning import Tuner

TINY = str(pathlib.Path(__file__).with_name("tiny_digits.py"))


def _orphan(study, **attrs):
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Optuna: "heartbeat ... used with Study.optimize"
    trial = study.ask()
  trial.suggest_float("optimizer.learning_rate", 1e-3, 1e-2, log=True)
  for key, value in attrs.items():
    trial.set_user_attr(key, value)
  return trial


def _retry_of(study, number):
  return [t for t in study.trials if t.user_attrs.get("retry_of_trial") == number]


def test_dead_local_worker_and_silent_host(tmp_path):
  tuner = Tuner(TINY, algorithm="random", study_dir=tmp_path / "s", verbose=0,
                storage=f"sqlite:///{tmp_path / 'study.db'}", heartbeat=(1, 1))
  study = tuner.study
  dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True, check=True)
  local = _orphan(study, host=socket.gethostname(), pid=int(dead.stdout),
                  trial_dir="0000")
  alive = _orphan(study, host=socket.gethostname(), pid=os.getpid(),
                  pid_started=psutil.Process().create_time(), trial_dir="0001")
  remote = _orphan(study, host="another-host", pid=1, trial_dir="0002")
  tuner._storage.record_heartbeat(remote._trial_id)  # pylint: disable=protected-access
  tuner._storage.record_heartbeat(alive._trial_id)  # pylint: disable=protected-access
  time.sleep(2.5)
  tuner._storage.record_heartbeat(alive._trial_id)  # pylint: disable=protected-access  # still beating
  tuner.recover()
  tuner.recover()  # a second look restarts nothing twice
  states = {t.number: t.state for t in study.trials}
  assert states[local.number] == states[remote.number] == optuna.trial.TrialState.FAIL
  assert states[alive.number] == optuna.trial.TrialState.RUNNING
  for orphan, trial_dir in ((local, "0000"), (remote, "0002")):
    (retry,) = _retry_of(study, orphan.number)
    assert retry.state == optuna.trial.TrialState.WAITING
    assert retry.user_attrs["trial_dir"] == trial_dir
  assert not _retry_of(study, alive.number)

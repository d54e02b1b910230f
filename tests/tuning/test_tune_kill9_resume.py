"""`ycng tune` killed with SIGKILL mid-trial and started again with the same command."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import optuna
import pytest

from ycng_jax.tuning import study as study_lib

TINY = str(pathlib.Path(__file__).with_name("tiny_digits.py"))
ROOT = pathlib.Path(__file__).resolve().parents[2]


def tune_command(study_dir, algorithm):
  return [sys.executable, "-m", "ycng_jax.cli", "tune", TINY, "--algorithm", algorithm,
          "--trials", "2", "--study-dir", str(study_dir), "--config.num_epochs=3",
          "--config.train_examples=320", "--config.best_monitor=''"]


def env():
  return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def checkpointed(trial_dir):
  backup = trial_dir / "checkpoints" / "backup"
  return backup.is_dir() and any(p.name.isdigit() for p in backup.iterdir())


@pytest.mark.parametrize("algorithm", [pytest.param("random", marks=pytest.mark.slow),
                                       "hyperband"])
def test_kill9_then_resume(tmp_path, algorithm):
  """[random] is in `-m slow` (~15 CPU-s with its subprocesses): [hyperband] runs the same
  retry and resume code, and its pruner besides; random search differs only by never pruning."""
  study_dir = tmp_path / "study"
  proc = subprocess.Popen(tune_command(study_dir, algorithm), env=env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  deadline = time.time() + 300
  while not checkpointed(study_dir / "trials" / "0001"):  # trial 1 saved its first epoch
    assert proc.poll() is None, proc.stdout.read()
    assert time.time() < deadline
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  first = (study_dir / "trials" / "0000" / "metrics.jsonl").read_bytes()

  again = subprocess.run(tune_command(study_dir, algorithm), env=env(), capture_output=True,
                         text=True, timeout=300, check=False)
  assert again.returncode == 0, again.stderr[-3000:]
  assert (study_dir / "trials" / "0000" / "metrics.jsonl").read_bytes() == first  # not rerun
  # The interrupted trial continued from its backup, in its own workdir.
  assert "BackupAndRestore: resumed from step" in again.stderr
  assert str(study_dir / "trials" / "0001" / "checkpoints") in again.stderr

  study = optuna.load_study(study_name="ycng-study",
                            storage=study_lib.make_storage(None, study_dir))
  trials = study.trials
  assert len(trials) == 3
  assert trials[1].state == optuna.trial.TrialState.FAIL
  retry = trials[2]
  assert retry.user_attrs["retry_of_trial"] == 1 and retry.user_attrs["trial_dir"] == "0001"
  assert retry.params == trials[1].params
  assert retry.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
  # The epochs before the kill are reported to the new trial (the pruner sees the whole curve).
  assert retry.intermediate_values[1] == trials[1].intermediate_values[1]
  assert trials[0].state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
  table = (study_dir / "results.md").read_text()
  assert "FAIL (restarted as trial 2)" in table and "(restart of trial 1)" in table

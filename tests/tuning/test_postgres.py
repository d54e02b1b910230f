"""Workers share one study: three in a real PostgreSQL server, one killed mid-trial; two on the
default journal file.

The trials (tests/tuning/quadratic.py) sleep 3 s instead of training: this test is about the
shared study, and tests/tuning/test_tune_kill9_resume.py covers trials that train and resume.
"""

import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import optuna
import psutil
import pytest

from pg_server import Server
from ycng_jax.tuning.study import make_storage

QUADRATIC = str(pathlib.Path(__file__).with_name("quadratic.py"))
ROOT = pathlib.Path(__file__).resolve().parents[2]
TRIALS = 6


@pytest.fixture(scope="module")
def postgres_url():
  with Server() as url:
    yield url


def test_three_workers_one_killed(tmp_path, postgres_url):
  study_dir = tmp_path / "study"
  env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
  main = subprocess.Popen(
      [sys.executable, "-m", "ycng_jax.cli", "tune", QUADRATIC, "--trials", str(TRIALS),
       "--workers", "3", "--objective", "score", "--storage", postgres_url, "--study-dir",
       str(study_dir), "--config.seconds=3", "--config.wait_for_workers=3"],
      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  storage = make_storage(postgres_url, study_dir)  # races the workers to create the tables
  deadline, victim = time.time() + 300, None
  while victim is None:  # a child worker that is running a trial
    assert main.poll() is None and time.time() < deadline, main.communicate()
    time.sleep(0.2)
    children = {c.pid for c in psutil.Process(main.pid).children()}
    try:
      study = optuna.load_study(study_name="ycng-study", storage=storage)
    except KeyError:
      continue
    running = [t for t in study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
               if t.user_attrs.get("pid") in children and "trial_dir" in t.user_attrs]
    if running and (study_dir / "trials" / running[0].user_attrs["trial_dir"]).exists():
      victim = running[0]
  os.kill(victim.user_attrs["pid"], signal.SIGKILL)
  out, err = main.communicate(timeout=600)
  # The main process reports the dead worker, and the study still finished.
  assert main.returncode == 1 and "ended with an error" in err, err[-3000:]

  study = optuna.load_study(study_name="ycng-study", storage=storage)
  trials = study.trials
  retried = {t.user_attrs["retry_of_trial"] for t in trials if "retry_of_trial" in t.user_attrs}
  assert retried == {victim.number}
  counted = [t for t in trials if t.number not in retried]
  assert len(counted) == TRIALS
  assert all(t.state == optuna.trial.TrialState.COMPLETE for t in counted)
  # Every trial ran exactly once (the killed one once, then its restart once).
  log = (study_dir / "trials.log").read_text()
  starts = re.findall(r"trial (\d+) dir \S+ host \S+ pid (\d+) start", log)
  assert sorted(int(n) for n, _ in starts) == list(range(len(trials)))
  assert len({pid for _, pid in starts}) == 3
  restart = next(t for t in trials if t.user_attrs.get("retry_of_trial") == victim.number)
  assert restart.user_attrs["pid"] != victim.user_attrs["pid"]
  # The best trial: the study's, the table's and the best config's.
  assert "best_config:" in out
  best = study.best_trial
  assert best.value == max(t.value for t in counted)
  assert f"(trial {best.number}, score={best.value:.6g})" in (study_dir / "best_config.py").read_text()


def test_two_workers_on_the_default_journal(tmp_path):
  """Without --storage the workers share the journal file in the study dir."""
  study_dir = tmp_path / "study"
  env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
  done = subprocess.run(
      [sys.executable, "-m", "ycng_jax.cli", "tune", QUADRATIC, "--trials", "4", "--workers", "2",
       "--objective", "score", "--study-dir", str(study_dir), "--config.wait_for_workers=2"],
      env=env, capture_output=True, text=True, timeout=300, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  starts = re.findall(r"trial (\d+) dir \S+ host \S+ pid (\d+) start",
                      (study_dir / "trials.log").read_text())
  assert sorted(int(n) for n, _ in starts) == [0, 1, 2, 3]
  assert len({pid for _, pid in starts}) == 2
  rows = (study_dir / "results.csv").read_text().splitlines()[1:]
  assert len(rows) == 4 and all(",COMPLETE," in row for row in rows)


def test_workers_that_start_together_on_a_fresh_database(postgres_url):
  """Six workers opening one new database at once: each creates Optuna's tables if missing,
  and the losers of that race once stopped with "duplicate key value violates unique
  constraint" (seen in the three-worker test on a busy machine)."""
  import threading  # pylint: disable=import-outside-toplevel
  import psycopg  # pylint: disable=import-outside-toplevel
  failures = []
  for attempt in range(3):
    name = f"fresh_{attempt}"
    with psycopg.connect(postgres_url, autocommit=True) as connection:
      connection.execute(f"CREATE DATABASE {name}")
    url = postgres_url.rsplit("/", 1)[0] + "/" + name
    start = threading.Barrier(6)

    def open_storage():
      start.wait()
      try:
        make_storage(url, pathlib.Path("unused"))
      except Exception as e:  # pylint: disable=broad-except
        failures.append(repr(e))

    threads = [threading.Thread(target=open_storage) for _ in range(6)]
    for thread in threads:
      thread.start()
    for thread in threads:
      thread.join()
  assert not failures, failures
  storage = make_storage(url, pathlib.Path("unused"))
  assert optuna.create_study(storage=storage, study_name="after").study_name == "after"

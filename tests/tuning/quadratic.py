"""A tuning target without training, for the tuner's tests: score = -(x - 0.3)^2 - (units - 64)^2 / 1e4.

  ycng tune tests/tuning/quadratic.py --algorithm grid --objective score [--config.seconds=2]

``seconds`` makes each trial last that long (asleep, so it costs no CPU): long enough for a
test to kill the worker that runs it. ``wait_for_workers`` makes each trial wait (up to two
minutes) until that many worker processes have started a trial, as trials.log shows: a test of
sharing then does not depend on how fast each worker starts.
"""

import json
import os
import pathlib
import re
import time

import ml_collections

from ycng_jax.tuning import space as hp


def get_config():
  return ml_collections.ConfigDict({"x": 0.0, "units": 32, "kind": "a", "bonus": 0.0,
                                    "seconds": 0.0, "wait_for_workers": 0})


def get_search_space():
  return hp.SearchSpace([
      hp.Float("x", 0.0, 0.5, step=0.25),
      hp.Int("units", 32, 96, step=32),
      hp.Choice("kind", ["a", "b"]),
      hp.Float("bonus", 0.0, 0.1, step=0.1, parent_name="kind", parent_values=["b"]),
  ])


def _wait_for_workers(workdir, count, timeout=120.0):
  log = pathlib.Path(workdir).parents[1] / "trials.log"  # STUDY_DIR/trials/NNNN
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    text = log.read_text() if log.exists() else ""
    if len(set(re.findall(r" pid (\d+) start", text))) >= count:
      return
    time.sleep(0.05)


def run(config, workdir):
  if config.wait_for_workers:
    _wait_for_workers(workdir, config.wait_for_workers)
  time.sleep(config.seconds)
  score = -(config.x - 0.3) ** 2 - (config.units - 64) ** 2 / 1e4 + config.bonus
  with open(os.path.join(workdir, "score.json"), "w") as f:
    json.dump({"score": score}, f)
  return {"score": score}

"""A tuning target without training, for the tuner's tests: score = -(x - 0.3)^2 - (units - 64)^2 / 1e4.

  ycng tune tests/tuning/quadratic.py --algorithm grid --objective score [--config.seconds=2]

``seconds`` makes each trial last that long (asleep, so it costs no CPU): long enough for a
test to kill the worker that runs it.
"""

import json
import os
import time

import ml_collections

from ycng_jax.tuning import space as hp


def get_config():
  return ml_collections.ConfigDict({"x": 0.0, "units": 32, "kind": "a", "bonus": 0.0,
                                    "seconds": 0.0})


def get_search_space():
  return hp.SearchSpace([
      hp.Float("x", 0.0, 0.5, step=0.25),
      hp.Int("units", 32, 96, step=32),
      hp.Choice("kind", ["a", "b"]),
      hp.Float("bonus", 0.0, 0.1, step=0.1, parent_name="kind", parent_values=["b"]),
  ])


def run(config, workdir):
  time.sleep(config.seconds)
  score = -(config.x - 0.3) ** 2 - (config.units - 64) ** 2 / 1e4 + config.bonus
  with open(os.path.join(workdir, "score.json"), "w") as f:
    json.dump({"score": score}, f)
  return {"score": score}

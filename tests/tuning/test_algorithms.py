"""Every algorithm on a target without training (tests/tuning/quadratic.py): seconds in all."""

import pathlib

import optuna
import pytest

from ycng_jax import experiments
from ycng_jax.tuning import Tuner
from ycng_jax.tuning import space as hp

QUADRATIC = str(pathlib.Path(__file__).with_name("quadratic.py"))
GRID = 3 * 3 * (1 + 2)  # x, units, and kind a (no bonus) or b (two bonuses)


def test_grid_runs_every_point_once_and_resumes(tmp_path):
  tuner = Tuner(QUADRATIC, algorithm="grid", objective="score", study_dir=tmp_path, verbose=0)
  tuner.search(trials=5)
  again = Tuner(QUADRATIC, algorithm="grid", objective="score", study_dir=tmp_path, verbose=0)
  again.search(trials=100)  # capped by the grid
  points = [t.user_attrs["values"] for t in again.study.trials]
  assert len(points) == GRID
  assert sorted(map(repr, points)) == sorted(map(repr, hp.grid_values(tuner.space)))
  best = again.get_best_hyperparameters(1)[0]
  assert best == {"x": 0.25, "units": 64, "kind": "b", "bonus": 0.1}
  # The best config is an experiment file that `ycng run` takes, with the experiment's run().
  out = again.write_reports()
  result = experiments.run(out["best_config"], tmp_path / "rerun")
  assert result["score"] == pytest.approx(again.get_best_trials(1)[0].value)


@pytest.mark.parametrize("algorithm", ["random", "bayes", "bayes-gp"])
def test_samplers_find_good_points(tmp_path, algorithm):
  tuner = Tuner(QUADRATIC, algorithm=algorithm, objective="score", study_dir=tmp_path, verbose=0)
  tuner.search(trials=12)
  trials = tuner.study.trials
  assert len(trials) == 12 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
  assert tuner.get_best_trials(1)[0].value == max(t.value for t in trials)
  assert all(("bonus" in t.user_attrs["values"]) == (t.user_attrs["values"]["kind"] == "b")
             for t in trials)


def test_define_by_run_with_a_grid(tmp_path):
  def build(h):
    config = experiments.load_module(QUADRATIC).get_config()
    config.x = h.Choice("x", [0.0, 0.3])
    config.runner = "nosuch.module:run"  # build_fn configs name their runner
    return config
  tuner = Tuner(build, algorithm="random", objective="score", study_dir=tmp_path, verbose=0)
  tuner.search(trials=1)
  assert "cannot import 'nosuch.module:run'" in tuner.study.trials[0].user_attrs["error"]

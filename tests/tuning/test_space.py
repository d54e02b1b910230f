"""Search spaces: KerasTuner's parameter kinds, conditions, grids, and the errors of bad ones."""

import optuna
import pytest

from ycng_jax.train.classification import base_config
from ycng_jax.tuning import space as hp


def _space():
  return hp.SearchSpace([
      hp.Int("batch_size", 32, 128, step=32),
      hp.Float("optimizer.learning_rate", 1e-4, 1e-2, sampling="log"),
      hp.Choice("model.kwargs.hidden", [(16,), (32, 16)]),
      hp.Boolean("tensorboard"),
      hp.Fixed("num_epochs", 3),
      hp.Choice("optimizer.name", ["adam", "sgd"]),
      hp.Float("optimizer.kwargs.momentum", 0.0, 0.9, step=0.3, parent_name="optimizer.name",
               parent_values=["sgd"]),
  ])


def test_samples_stay_in_range_and_conditions_hold():
  space, study = _space(), optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
  seen = set()
  for _ in range(30):
    values = space.sample(study.ask())
    assert values["batch_size"] in (32, 64, 96, 128)
    assert 1e-4 <= values["optimizer.learning_rate"] <= 1e-2
    assert values["model.kwargs.hidden"] in ((16,), (32, 16))
    assert values["num_epochs"] == 3 and isinstance(values["tensorboard"], bool)
    assert ("optimizer.kwargs.momentum" in values) == (values["optimizer.name"] == "sgd")
    seen.add(values["optimizer.name"])
  assert seen == {"adam", "sgd"}
  config = hp.apply_params(base_config(), values)
  assert config.model.kwargs.hidden == values["model.kwargs.hidden"]
  assert config.optimizer.learning_rate == values["optimizer.learning_rate"]


def test_grid_respects_conditions():
  space = hp.SearchSpace([hp.Choice("optimizer.name", ["adam", "sgd"]),
                          hp.Float("optimizer.kwargs.momentum", 0.0, 0.9, step=0.45,
                                   parent_name="optimizer.name", parent_values=["sgd"]),
                          hp.Int("batch_size", 32, 64, step=32)])
  points = hp.grid_values(space)
  # adam x 2 batch sizes + sgd x 3 momenta x 2 batch sizes
  assert len(points) == 8 and space.grid_size() == 8
  assert all(("optimizer.kwargs.momentum" in p) == (p["optimizer.name"] == "sgd") for p in points)
  with pytest.raises(hp.SearchSpaceError, match="grid search needs a finite set.*give the Float a step"):
    hp.Float("x", 0.0, 1.0).grid()


@pytest.mark.parametrize("make, message", [
    (lambda: hp.Int("batch_size", 64, 32), r"the range \[64, 32\] is empty"),
    (lambda: hp.Float("optimizer.learning_rate", 0.0, 1.0, sampling="log"), "log sampling needs min_value > 0"),
    (lambda: hp.Float("x", 0.0, 1.0, step=0.0), "step must be a number > 0"),
    (lambda: hp.Choice("x", []), "a Choice needs at least one value"),
    (lambda: hp.Int("x", 0.5, 3), "Int needs whole bounds"),
    (lambda: hp.Float("x", 0.0, 1.0, parent_name="y"), "give both parent_name and parent_values"),
    (lambda: hp.SearchSpace([]), "the search space is empty"),
    (lambda: hp.SearchSpace([hp.Fixed("a", 1), hp.Fixed("a", 2)]), "a is declared twice"),
    (lambda: hp.SearchSpace([hp.Float("b", 0.0, 1.0, parent_name="a", parent_values=[1])]),
     "depends on 'a', which is not declared before it"),
    (lambda: hp.SearchSpace([hp.Choice("a", ["x"]), hp.Fixed("b", 1, parent_name="a", parent_values=["z"])]),
     r"parent_values \['z'\] are not values of a"),
])
def test_bad_spaces_are_clear_errors(make, message):
  with pytest.raises(hp.SearchSpaceError, match=message):
    make()


def test_unknown_config_key_lists_the_valid_ones():
  space = hp.SearchSpace([hp.Float("optimizer.learning_rat", 1e-4, 1e-2),
                          hp.Float("model.kwargs.anything", 0.0, 1.0)])  # kwargs are open
  with pytest.raises(hp.SearchSpaceError, match=r"sets \['optimizer.learning_rat'\].*valid keys:(.|\n)*optimizer.learning_rate"):
    space.check_keys(base_config())


def test_define_by_run_hyperparameters():
  trial = optuna.trial.FixedTrial({"units": 64, "lr": 0.01, "act": "relu", "deep": True})
  h = hp.HyperParameters(trial)
  assert h.Int("units", 32, 128, step=32) == 64
  assert h.Float("lr", 1e-3, 1e-1, sampling="log") == 0.01
  assert h.Choice("act", ["relu", "gelu"]) == "relu"
  assert h.Boolean("deep") is True and h.Fixed("epochs", 2) == 2
  assert h.values == {"units": 64, "lr": 0.01, "act": "relu", "deep": True, "epochs": 2}

"""Search spaces in KerasTuner's vocabulary, sampled by Optuna trials.

A parameter's name is the dotted config key it sets (``"optimizer.learning_rate"``,
``"model.kwargs.dropout"``). An experiment declares its space next to its config::

  from ycng_jax.tuning import space as hp

  def get_search_space():
    return hp.SearchSpace([
        hp.Float("optimizer.learning_rate", 1e-4, 1e-2, sampling="log"),
        hp.Choice("optimizer.name", ["adam", "sgd"]),
        # conditional (KerasTuner's parent_name / parent_values): only sampled for sgd
        hp.Float("optimizer.kwargs.momentum", 0.0, 0.9, step=0.3,
                 parent_name="optimizer.name", parent_values=["sgd"]),
    ])

``HyperParameters`` is KerasTuner's ``hp`` object for define-by-run ``build_fn(hp)``
functions: ``hp.Int(name, ...)`` returns the trial's value.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable, Sequence

import ml_collections

from ycng_jax.errors import UserError


class SearchSpaceError(UserError):
  """A bad search space: an empty range, an unknown config key, a dangling condition."""


@dataclasses.dataclass(frozen=True)
class _Param:
  name: str

  def __post_init__(self):
    if not isinstance(self.name, str) or not self.name:
      raise SearchSpaceError(f"a hyperparameter name must be a non-empty config key such as "
                             f"'optimizer.learning_rate', got {self.name!r}")
    parent_values = getattr(self, "parent_values", None)
    if (getattr(self, "parent_name", None) is None) != (parent_values is None):
      raise SearchSpaceError(f"{self.name}: give both parent_name and parent_values (a condition), "
                             "or neither")
    if parent_values is not None:
      object.__setattr__(self, "parent_values", tuple(parent_values))
      if not self.parent_values:
        raise SearchSpaceError(f"{self.name}: parent_values is empty, so it could never be active")

  def describe(self) -> dict[str, Any]:
    """JSON-able record (for the study's fingerprint)."""
    return {"type": type(self).__name__, **dataclasses.asdict(self)}

  def active(self, values: dict[str, Any]) -> bool:
    parent = getattr(self, "parent_name", None)
    return parent is None or (parent in values and values[parent] in self.parent_values)


def _check_range(name, low, high, step, sampling, kind):
  if sampling not in ("linear", "log"):
    raise SearchSpaceError(f"{name}: sampling must be 'linear' or 'log', got {sampling!r}")
  for label, v in (("min_value", low), ("max_value", high)):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
      raise SearchSpaceError(f"{name}: {label} must be a finite number, got {v!r}")
    if kind is int and v != int(v):
      raise SearchSpaceError(f"{name}: Int needs whole bounds, got {label}={v!r}; use Float")
  if low > high:
    raise SearchSpaceError(f"{name}: the range [{low}, {high}] is empty (min_value > max_value); "
                           "swap the bounds")
  if sampling == "log" and low <= 0:
    raise SearchSpaceError(f"{name}: log sampling needs min_value > 0, got {low}")
  if step is not None:
    if isinstance(step, bool) or not isinstance(step, (int, float)) or not step > 0:
      raise SearchSpaceError(f"{name}: step must be a number > 0, got {step!r}")
    if sampling == "log":
      raise SearchSpaceError(f"{name}: step and log sampling do not go together in Optuna; drop "
                             "one of them")


@dataclasses.dataclass(frozen=True)
class Int(_Param):
  """An integer in ``[min_value, max_value]`` (both included), every ``step``, or log-uniform."""
  min_value: int = 0
  max_value: int = 0
  step: int | None = None
  sampling: str = "linear"
  parent_name: str | None = None
  parent_values: Sequence[Any] | None = None

  def __post_init__(self):
    super().__post_init__()
    _check_range(self.name, self.min_value, self.max_value, self.step, self.sampling, int)
    if self.step is not None and self.step != int(self.step):
      raise SearchSpaceError(f"{self.name}: an Int step must be whole, got {self.step!r}")

  def suggest(self, trial):
    return trial.suggest_int(self.name, int(self.min_value), int(self.max_value),
                             step=int(self.step or 1), log=self.sampling == "log")

  def grid(self) -> list:
    if self.sampling == "log":
      raise SearchSpaceError(f"{self.name}: grid search needs a finite set of values; give the "
                             "Int a step instead of log sampling (or use a Choice)")
    return list(range(int(self.min_value), int(self.max_value) + 1, int(self.step or 1)))


@dataclasses.dataclass(frozen=True)
class Float(_Param):
  """A float in ``[min_value, max_value]``: uniform, every ``step``, or log-uniform."""
  min_value: float = 0.0
  max_value: float = 1.0
  step: float | None = None
  sampling: str = "linear"
  parent_name: str | None = None
  parent_values: Sequence[Any] | None = None

  def __post_init__(self):
    super().__post_init__()
    _check_range(self.name, self.min_value, self.max_value, self.step, self.sampling, float)

  def suggest(self, trial):
    return trial.suggest_float(self.name, float(self.min_value), float(self.max_value),
                               step=self.step, log=self.sampling == "log")

  def grid(self) -> list:
    if self.step is None:
      raise SearchSpaceError(f"{self.name}: grid search needs a finite set of values; give the "
                             "Float a step (or use a Choice)")
    n = int(math.floor((self.max_value - self.min_value) / self.step + 1e-9))
    return [self.min_value + i * self.step for i in range(n + 1)]


@dataclasses.dataclass(frozen=True)
class Choice(_Param):
  """One of ``values`` (numbers, strings, booleans, None, or tuples of them)."""
  values: Sequence[Any] = ()
  parent_name: str | None = None
  parent_values: Sequence[Any] | None = None

  def __post_init__(self):
    super().__post_init__()
    object.__setattr__(self, "values", tuple(self.values))
    if not self.values:
      raise SearchSpaceError(f"{self.name}: a Choice needs at least one value")
    if len(set(map(repr, self.values))) != len(self.values):
      raise SearchSpaceError(f"{self.name}: the Choice repeats a value: {list(self.values)}")

  def suggest(self, trial):
    # Optuna's categorical choices must be None/bool/int/float/str: tuples go by their index.
    if all(v is None or isinstance(v, (bool, int, float, str)) for v in self.values):
      return trial.suggest_categorical(self.name, list(self.values))
    return self.values[trial.suggest_categorical(self.name, list(range(len(self.values))))]

  def grid(self) -> list:
    return list(self.values)


def Boolean(name: str, **condition) -> Choice:  # pylint: disable=invalid-name
  """True or False (KerasTuner's ``hp.Boolean``)."""
  return Choice(name, (False, True), **condition)


@dataclasses.dataclass(frozen=True)
class Fixed(_Param):
  """A value set in every trial, recorded with the trial's parameters."""
  value: Any = None
  parent_name: str | None = None
  parent_values: Sequence[Any] | None = None

  def suggest(self, trial):
    return self.value

  def grid(self) -> list:
    return [self.value]


class SearchSpace:
  """An ordered list of parameters; a condition's parent comes before the parameter."""

  def __init__(self, params: Iterable[_Param]):
    self.params = list(params)
    if not self.params:
      raise SearchSpaceError("the search space is empty; declare at least one parameter")
    seen: dict[str, _Param] = {}
    for p in self.params:
      if not isinstance(p, _Param):
        raise SearchSpaceError(f"a search space holds Int, Float, Choice, Boolean and Fixed "
                               f"parameters, got {p!r}")
      if p.name in seen:
        raise SearchSpaceError(f"{p.name} is declared twice in the search space")
      parent = getattr(p, "parent_name", None)
      if parent is not None:
        if parent not in seen:
          raise SearchSpaceError(f"{p.name} depends on {parent!r}, which is not declared before "
                                 f"it; declared so far: {sorted(seen)}")
        possible = seen[parent].grid() if not isinstance(seen[parent], (Int, Float)) else None
        if possible is not None:
          missing = [v for v in p.parent_values if v not in possible]
          if missing:
            raise SearchSpaceError(f"{p.name}: parent_values {missing} are not values of "
                                   f"{parent} ({possible})")
      seen[p.name] = p

  @property
  def names(self) -> list[str]:
    return [p.name for p in self.params]

  def describe(self) -> list[dict[str, Any]]:
    return [p.describe() for p in self.params]

  def sample(self, trial) -> dict[str, Any]:
    """The trial's values of the parameters whose conditions hold."""
    values: dict[str, Any] = {}
    for p in self.params:
      if p.active(values):
        values[p.name] = p.suggest(trial)
    return values

  def grid_size(self) -> int:
    """How many distinct trials a grid search has (conditions respected)."""
    return len(list(self._grid_points(0, {})))

  def _grid_points(self, index, values):
    if index == len(self.params):
      yield dict(values)
      return
    p = self.params[index]
    if not p.active(values):
      yield from self._grid_points(index + 1, values)
      return
    for v in p.grid():
      yield from self._grid_points(index + 1, {**values, p.name: v})

  def check_keys(self, config: ml_collections.ConfigDict) -> None:
    """Every parameter names a key of ``config``; otherwise the error lists the valid keys."""
    valid = flat_keys(config)
    unknown = [n for n in self.names if n not in valid and not _under_open_dict(config, n)]
    if unknown:
      raise SearchSpaceError(f"the search space sets {unknown}, which the experiment's config does "
                             "not have; valid keys:\n  " + "\n  ".join(valid))


def flat_keys(config: ml_collections.ConfigDict) -> list[str]:
  from ycng_jax.experiments import _flat_keys  # pylint: disable=import-outside-toplevel,protected-access
  return _flat_keys(config)


def _under_open_dict(config, dotted: str) -> bool:
  """``model.kwargs.X`` and ``optimizer.kwargs.X`` are free-form: any key may be added."""
  *parents, _ = dotted.split(".")
  return bool(parents) and parents[-1] == "kwargs" and _get(config, ".".join(parents)) is not None


def _get(config, dotted: str):
  node = config
  for part in dotted.split("."):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      return None
    node = node[part]
  return node


def apply_params(config: ml_collections.ConfigDict, params: dict[str, Any]) -> ml_collections.ConfigDict:
  """A copy of ``config`` with each dotted key set (ints into float keys become floats)."""
  config = ml_collections.ConfigDict(config.to_dict())
  for dotted, value in params.items():
    *parents, leaf = dotted.split(".")
    node = config
    for part in parents:
      node = node[part]
    old = node.get(leaf)
    if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
      value = float(value)
    if isinstance(old, tuple) and isinstance(value, list):
      value = tuple(value)
    with node.ignore_type():
      node[leaf] = value
  return config


class HyperParameters:
  """KerasTuner's ``hp`` for a define-by-run ``build_fn(hp) -> ConfigDict``.

  Each method draws the trial's value (or returns the value given with ``Tuner``) and records
  it in ``values``. Conditions are plain Python: call ``hp.Float(...)`` only in the branch where
  it matters.
  """

  def __init__(self, trial):
    self.trial = trial
    self.values: dict[str, Any] = {}

  def _draw(self, param: _Param):
    if param.name in self.values:
      return self.values[param.name]
    self.values[param.name] = param.suggest(self.trial)
    return self.values[param.name]

  def Int(self, name, min_value, max_value, step=None, sampling="linear"):  # pylint: disable=invalid-name
    return self._draw(Int(name, min_value, max_value, step, sampling))

  def Float(self, name, min_value, max_value, step=None, sampling="linear"):  # pylint: disable=invalid-name
    return self._draw(Float(name, min_value, max_value, step, sampling))

  def Choice(self, name, values):  # pylint: disable=invalid-name
    return self._draw(Choice(name, values))

  def Boolean(self, name):  # pylint: disable=invalid-name
    return self._draw(Boolean(name))

  def Fixed(self, name, value):  # pylint: disable=invalid-name
    return self._draw(Fixed(name, value))


def grid_values(space: SearchSpace) -> list[dict[str, Any]]:
  """Every point of the grid (for tests and for sizing a grid search)."""
  return list(space._grid_points(0, {}))  # pylint: disable=protected-access


__all__ = ["Int", "Float", "Choice", "Boolean", "Fixed", "SearchSpace", "HyperParameters",
           "SearchSpaceError", "apply_params", "grid_values"]

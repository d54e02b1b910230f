"""Across workdirs: several runs of one experiment (seeds, trials) as mean ± std, and the
metrics that different experiments share, side by side.

The std is the population std (numpy's default), as in the project's other result tables.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from ycng_jax.report.workdir import Workdir, is_number


@dataclasses.dataclass
class Stat:
  mean: float
  std: float
  n: int

  def __str__(self) -> str:
    return format_number(self.mean) if self.n == 1 else \
        f"{format_number(self.mean)} ± {format_number(self.std)}"


@dataclasses.dataclass
class Group:
  """The workdirs of one experiment (or one workdir whose experiment is not recorded)."""
  name: str
  workdirs: list[Workdir]

  @functools.cached_property
  def stats(self) -> dict[str, Stat]:
    return mean_std([w.numeric_metrics() for w in self.workdirs])

  def varying_config(self) -> list[str]:
    """Config keys whose values differ between the group's runs (the seed, a trial's values)."""
    keys = sorted(set().union(*(w.config for w in self.workdirs)))
    return [k for k in keys
            if len({repr(w.config.get(k)) for w in self.workdirs}) > 1]


def format_number(value) -> str:
  if isinstance(value, bool) or not is_number(value):
    return str(value)
  if float(value).is_integer() and abs(value) < 1e15:
    return str(int(value))
  return f"{value:.4g}" if abs(value) >= 1e-3 else f"{value:.3e}"


def mean_std(runs: list[dict[str, float]]) -> dict[str, Stat]:
  """Per metric over the runs that recorded it: mean, population std and how many runs."""
  names: list[str] = []
  for run in runs:
    names += [k for k in run if k not in names]
  out = {}
  for name in names:
    values = np.array([run[name] for run in runs if name in run and is_number(run[name])], float)
    if len(values):
      out[name] = Stat(float(values.mean()), float(values.std()), len(values))
  return out


def group_workdirs(workdirs: list[Workdir]) -> list[Group]:
  """Group by recorded experiment name, in order of first appearance; unknown ones alone."""
  groups: dict[str, Group] = {}
  for i, workdir in enumerate(workdirs):
    key = workdir.experiment or f"\0{i}"
    groups.setdefault(key, Group(workdir.title, [])).workdirs.append(workdir)
  return list(groups.values())


def shared_metrics(groups: list[Group]) -> list[str]:
  """Metrics that at least two groups report (test_accuracy of two classifiers, ...)."""
  counts: dict[str, int] = {}
  for group in groups:
    for name in group.stats:
      counts[name] = counts.get(name, 0) + 1
  return [name for name, count in counts.items() if count >= 2 and name not in ("step",)]

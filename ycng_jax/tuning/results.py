"""The results table of a study (CSV, markdown, summary) and the best config as an experiment file."""

from __future__ import annotations

import csv
import json
import pathlib
import pprint
from typing import Any

import optuna

COLUMNS = ("trial", "state", "objective", "epochs", "seconds", "rss_mb")


def rows(trials: list[optuna.trial.FrozenTrial], objective: str) -> list[dict[str, Any]]:
  """One row per trial: number, state, objective, epochs run, seconds, RSS after it, values."""
  restarted = {t.user_attrs["retry_of_trial"]: t.number for t in trials
               if "retry_of_trial" in t.user_attrs}
  out = []
  for t in sorted(trials, key=lambda t: t.number):
    state = t.state.name
    if t.number in restarted:
      state += f" (restarted as trial {restarted[t.number]})"
    if "retry_of_trial" in t.user_attrs:
      state += f" (restart of trial {t.user_attrs['retry_of_trial']})"
    value = t.value if t.state == optuna.trial.TrialState.COMPLETE else None
    if t.state == optuna.trial.TrialState.PRUNED and t.intermediate_values:
      value = t.intermediate_values[max(t.intermediate_values)]  # its last epoch
    row = {"trial": t.number, "state": state, "objective": value,
           "epochs": t.user_attrs.get("epochs"), "seconds": t.user_attrs.get("seconds"),
           "rss_mb": t.user_attrs.get("rss_mb")}
    row.update({k: json.dumps(v) if isinstance(v, (list, dict)) else v
                for k, v in t.user_attrs.get("values", {}).items()})
    row["error"] = t.user_attrs.get("error", "")
    out.append(row)
  return out


def _columns(table: list[dict[str, Any]]) -> list[str]:
  params = []
  for row in table:
    params += [k for k in row if k not in COLUMNS and k != "error" and k not in params]
  return list(COLUMNS) + params + ["error"]


def _cell(value) -> str:
  if value is None:
    return ""
  if isinstance(value, float):
    return f"{value:.6g}"
  return str(value)


def markdown(table: list[dict[str, Any]], objective: str) -> str:
  cols = _columns(table)
  head = [objective if c == "objective" else c for c in cols]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(cols)]
  for row in table:
    cells = [_cell(row.get(c)).replace("|", "\\|").replace("\n", " ") for c in cols]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def write_tables(table: list[dict[str, Any]], study_dir: pathlib.Path, objective: str) -> dict:
  cols = _columns(table)
  with open(study_dir / "results.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
    writer.writeheader()
    for row in table:
      writer.writerow({c: _cell(row.get(c)) for c in cols})
  (study_dir / "results.md").write_text(markdown(table, objective))
  return {"csv": str(study_dir / "results.csv"), "markdown": str(study_dir / "results.md")}


def summary(table: list[dict[str, Any]], objective: str, direction: str, num_trials: int) -> str:
  done = [r for r in table if r["state"] == "COMPLETE" and r["objective"] is not None]
  done.sort(key=lambda r: r["objective"], reverse=direction == "max")
  counts: dict[str, int] = {}
  for r in table:
    counts[r["state"].split(" ")[0]] = counts.get(r["state"].split(" ")[0], 0) + 1
  head = (f"{len(table)} trials (" + ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
          + f"); best {min(num_trials, len(done))} by {objective} ({direction}):\n")
  return head + markdown(done[:num_trials], objective)


BEST_CONFIG = '''"""The best configuration of the tuning run in {study_dir} (trial {number}, {objective}={value:.6g}).

  ycng run {path} [--workdir DIR]

Written by `ycng tune`; the values the search chose:
{values}
"""

import ml_collections
{extra_imports}

def get_config():
  return ml_collections.ConfigDict({config})
{run}'''

RUN_FROM_EXPERIMENT = '''

def run(config, workdir):
  # The experiment has its own runner: use it.
  from ycng_jax import experiments
  return experiments.load_module({name!r}).run(config, workdir)
'''


def write_best_config(tuner, path: pathlib.Path) -> str:
  """The best trial's whole config as an experiment file that ``ycng run PATH`` takes."""
  best = tuner.get_best_trials(1)[0]
  config = tuner.get_best_config()
  values = "\n".join(f"  {k} = {v!r}" for k, v in best.user_attrs.get("values", {}).items())
  has_run = tuner.module is not None and hasattr(tuner.module, "run")
  text = BEST_CONFIG.format(
      study_dir=tuner.study_dir, number=best.number, objective=tuner.objective, value=best.value,
      path=path, values=values, extra_imports="",
      config=pprint.pformat(config.to_dict(), indent=2, width=100, sort_dicts=True),
      run=RUN_FROM_EXPERIMENT.format(name=str(pathlib.Path(tuner.name).resolve())
                                     if tuner.name.endswith(".py") else tuner.name)
      if has_run else "")
  path.write_text(text)
  return str(path)

"""Reading one workdir for a report: what ran, with which config, how it ended, what it wrote.

A workdir holds ``config.json`` and/or ``metrics.jsonl`` (every runner writes them), usually
``results.json`` and figures (``*.png``), and, from runs started by ``ycng run``, ``run.json``
(the experiment, its overrides, the command and a ``finished`` mark). Nothing here reruns
anything; a workdir of a run still going or killed gives what exists so far.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from typing import Any

from ycng_jax.errors import UserError, UserFileError

INCOMPLETE = "incomplete (running or interrupted)"
TOPIC_MAP = "topic_map.json"


@dataclasses.dataclass
class ConfigRow:
  """One flattened config key: its value here and in the experiment's defaults."""
  key: str
  value: Any
  default: Any = None
  status: str = "same"  # "same", "changed", "added" (not in the defaults), "removed", "unknown"


@dataclasses.dataclass
class Table:
  """A table found in results.json: column names and rows of cells."""
  title: str
  columns: list[str]
  rows: list[list[Any]]


@dataclasses.dataclass
class Workdir:
  path: pathlib.Path
  experiment: str | None          # from run.json; None when the run did not record it
  command: str | None
  run_info: dict[str, Any]
  config: dict[str, Any]          # flattened config.json ({} when missing)
  config_rows: list[ConfigRow]
  defaults_note: str              # why the diff against the defaults is missing, or ""
  records: list[dict[str, Any]]   # metrics.jsonl
  skipped_lines: int              # unreadable lines (a run killed mid-write)
  metrics: dict[str, Any]         # final metrics, or the latest logged ones when incomplete
  metrics_source: str
  tables: list[Table]
  figures: list[pathlib.Path]
  complete: bool
  topic_map: dict[str, Any] | None

  @property
  def status(self) -> str:
    return "finished" if self.complete else INCOMPLETE

  @property
  def title(self) -> str:
    return self.experiment or self.path.name

  def numeric_metrics(self) -> dict[str, float]:
    return {k: float(v) for k, v in self.metrics.items() if is_number(v)}


def is_number(value: Any) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists stay values (a config's tuples)."""
  if not isinstance(tree, dict):
    return {prefix.rstrip("."): tree} if prefix else {}
  out: dict[str, Any] = {}
  for key, value in tree.items():
    if isinstance(value, dict) and value:
      out.update(flatten(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def _load_json(path: pathlib.Path) -> Any:
  try:
    return json.loads(path.read_text(encoding="utf-8"))
  except (OSError, ValueError) as e:
    raise UserFileError(f"{path} is not readable JSON ({e}); a report reads the files a run "
                        "wrote: restore the file or remove it from the workdir") from None


def read_records(path: pathlib.Path) -> tuple[list[dict[str, Any]], int]:
  """metrics.jsonl records, and how many lines could not be read (a line cut by a kill)."""
  if not path.exists():
    return [], 0
  records, skipped = [], 0
  for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
    if not line.strip():
      continue
    try:
      record = json.loads(line)
    except ValueError:
      skipped += 1
      continue
    if isinstance(record, dict):
      records.append(record)
    else:
      skipped += 1
  return records, skipped


def experiment_defaults(name: str) -> dict[str, Any]:
  """The flattened ``get_config()`` of an experiment, as config.json would store it."""
  from ycng_jax import experiments  # pylint: disable=import-outside-toplevel
  config = experiments.load_module(name).get_config()
  return flatten(json.loads(config.to_json_best_effort()))


def config_diff(config: dict[str, Any], defaults: dict[str, Any] | None) -> list[ConfigRow]:
  """Every key of ``config`` (flattened), marked against ``defaults``; keys only in the
  defaults come last as "removed". Without defaults every row is "unknown"."""
  if defaults is None:
    return [ConfigRow(k, v, status="unknown") for k, v in sorted(config.items())]
  rows = []
  for key, value in sorted(config.items()):
    if key not in defaults:
      rows.append(ConfigRow(key, value, status="added"))
    else:
      rows.append(ConfigRow(key, value, defaults[key],
                            "same" if _same(value, defaults[key]) else "changed"))
  rows += [ConfigRow(k, None, defaults[k], "removed") for k in sorted(set(defaults) - set(config))]
  return rows


def _same(a: Any, b: Any) -> bool:
  if is_number(a) and is_number(b):
    return float(a) == float(b)
  return a == b


def final_metrics(records: list[dict[str, Any]], results: Any) -> tuple[dict[str, Any], str]:
  """The run's final metrics and where they came from.

  The last ``"final": true`` record of metrics.jsonl and ``results.json["final"]`` (the trainer
  writes both); else results.json's top-level numbers; else, while there is no results.json
  (a run still going or killed), the latest logged record.
  """
  metrics: dict[str, Any] = {}
  sources = []
  if isinstance(results, dict):
    top = results["final"] if isinstance(results.get("final"), dict) else results
    if _scalars(top):
      metrics.update(_scalars(top))
      sources.append("results.json")
  finals = [r for r in records if r.get("final") is True]
  if finals:
    metrics.update({k: v for k, v in _scalars(finals[-1]).items() if k != "final"})
    sources.append("the final record of metrics.jsonl")
  if metrics:
    return metrics, " and ".join(sources)
  if results is not None:
    return {}, "results.json holds tables only (below)"
  if records:
    last = records[-1]
    where = ", ".join(f"{k} {last[k]}" for k in ("step", "epoch", "iteration", "phase")
                      if k in last)
    return _scalars(last), f"the latest record of metrics.jsonl ({where or 'last line'})"
  return {}, "nothing recorded yet"


def _scalars(record: dict[str, Any]) -> dict[str, Any]:
  return {k: v for k, v in record.items()
          if isinstance(v, (int, float, str, bool)) and not isinstance(v, dict)}


def result_tables(results: Any, limit: int = 200) -> list[Table]:
  """Tables in results.json: a list of records, a dict of records keyed by row name, or a dict
  of such lists (one table per entry, e.g. the hits of each sample query)."""
  if not isinstance(results, dict):
    return []
  tables = []
  for key, value in results.items():
    if key in ("final", "history", "config"):
      continue
    table = _table(key, value, limit)
    if table is not None:
      tables.append(table)
    elif isinstance(value, dict) and value and all(isinstance(v, list) for v in value.values()):
      tables += [t for name, v in list(value.items())[:10]
                 if (t := _table(f"{key}: {name}", v, limit)) is not None]
  return tables


def _table(title: str, value: Any, limit: int) -> Table | None:
  rows: list[tuple[str | None, dict]] = []
  if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
    rows = [(None, v) for v in value]
  elif isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
    rows = [(str(k), v) for k, v in value.items()]
  if not rows:
    return None
  columns: list[str] = []
  for _, row in rows:
    columns += [c for c in row if c not in columns and not isinstance(row[c], dict)]
  head = ([""] if rows[0][0] is not None else []) + columns
  body = [([name] if name is not None else []) + [row.get(c, "") for c in columns]
          for name, row in rows[:limit]]
  if len(rows) > limit:
    title = f"{title} (first {limit} of {len(rows)} rows)"
  return Table(title, head, body)


def figures(path: pathlib.Path) -> list[pathlib.Path]:
  """The figures the experiment wrote: the workdir's own ``*.png`` (not in subfolders)."""
  return sorted(p for p in path.glob("*.png") if p.is_file())


def is_workdir(path: pathlib.Path) -> bool:
  return path.is_dir() and ((path / "config.json").is_file() or (path / "metrics.jsonl").is_file())


def _not_a_workdir(path: pathlib.Path) -> UserError:
  if not path.exists():
    return UserFileError(f"{path} does not exist; give ycng report the workdir of a run "
                         "(the --workdir of `ycng run`)")
  expected = ("a workdir holds config.json and metrics.jsonl (what `ycng run` writes), or "
              "bench.json (what `ycng bench` writes)")
  inside = sorted(p.name for p in path.iterdir() if is_workdir(p)) if path.is_dir() else []
  hint = (f"; it holds the workdirs {', '.join(inside[:5])}{' ...' if len(inside) > 5 else ''}: "
          f"give them instead (e.g. {path}/*)") if inside else ""
  return UserFileError(f"{path} is not a workdir: {expected}{hint}")


def read_workdir(path: str | pathlib.Path, *, with_defaults: bool = True) -> Workdir:
  """Read what a run left in ``path``; a folder without config.json and metrics.jsonl is a
  UserError."""
  path = pathlib.Path(path)
  if not is_workdir(path):
    raise _not_a_workdir(path)
  run_info = _load_json(path / "run.json") if (path / "run.json").is_file() else {}
  run_info = run_info if isinstance(run_info, dict) else {}
  config_file = path / "config.json"
  config = flatten(_load_json(config_file)) if config_file.is_file() else {}
  experiment = run_info.get("experiment")
  defaults, note = None, "the experiment is not recorded (no run.json), so its defaults are unknown"
  if experiment and with_defaults:
    try:
      defaults, note = experiment_defaults(experiment), ""
    except UserError as e:  # renamed or removed since the run
      note = f"the defaults of {experiment} could not be loaded: {e}"
  elif experiment:
    note = "the defaults were not loaded"
  records, skipped = read_records(path / "metrics.jsonl")
  results = _load_json(path / "results.json") if (path / "results.json").is_file() else None
  metrics, source = final_metrics(records, results)
  if "finished" in run_info:
    complete = bool(run_info["finished"])
  else:  # runs from before run.json: a result or a final record means it ended
    complete = results is not None or any(r.get("final") is True for r in records)
  topic_map = _load_json(path / TOPIC_MAP) if (path / TOPIC_MAP).is_file() else None
  return Workdir(path=path, experiment=experiment, command=run_info.get("command"),
                 run_info=run_info, config=config, config_rows=config_diff(config, defaults),
                 defaults_note=note, records=records, skipped_lines=skipped, metrics=metrics,
                 metrics_source=source, tables=result_tables(results),
                 figures=figures(path), complete=complete, topic_map=topic_map)

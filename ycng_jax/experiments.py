"""Finding, configuring and running experiments (config files under ``experiments/``).

An experiment is a Python file with ``get_config() -> ml_collections.ConfigDict`` whose
docstring gives the command that runs it, and either its own ``run(config, workdir)`` or
``config.runner = "package.module:function"`` naming a shared runner with that signature.
Its name is its path under ``experiments/`` without ``.py`` (``topic1/sequential_cnn``).
"""

from __future__ import annotations

import ast
import datetime
import importlib
import importlib.util
import json
import os
import pathlib
import re
import shlex
import sys
import tempfile
import types
from typing import Any, Callable

import ml_collections

from ycng_jax.errors import UserError
from ycng_jax.train.compile_cache import host, persistent_compilation_cache


class ExperimentError(UserError):
  """A bad experiment name or config override; the message lists the valid choices."""


INSTALLED_EXPERIMENTS = "ycng_jax_experiments"


def experiments_dir() -> pathlib.Path:
  """``$YCNG_EXPERIMENTS_DIR``, else the experiment configs beside this package.

  An installed wheel has them in ``ycng_jax_experiments/`` (see setup.py), a source checkout
  (also an editable install) in ``experiments/``. Looking beside the package, not importing
  ``ycng_jax_experiments``, keeps a checkout on PYTHONPATH from listing another install's files.
  """
  env = os.environ.get("YCNG_EXPERIMENTS_DIR")
  if env:
    return pathlib.Path(env)
  root = pathlib.Path(__file__).resolve().parents[1]
  installed = root / INSTALLED_EXPERIMENTS
  return installed if installed.is_dir() else root / "experiments"


def list_experiments() -> dict[str, str]:
  """Experiment name -> first line of its docstring."""
  root = experiments_dir()
  out = {}
  for path in sorted(root.rglob("*.py")):
    if path.name.startswith("_") or any(p.startswith((".", "_")) for p in path.relative_to(root).parts):
      continue
    text = path.read_text(encoding="utf-8")
    if "def get_config" not in text:
      continue
    doc = ast.get_docstring(ast.parse(text)) or ""
    out[path.relative_to(root).with_suffix("").as_posix()] = doc.strip().split("\n")[0]
  return out


def load_module(name: str) -> types.ModuleType:
  """Import an experiment by name (or by path to its .py file)."""
  path = pathlib.Path(name)
  if path.suffix != ".py" or not path.exists():
    path = experiments_dir() / f"{name}.py"
  if not path.exists():
    known = list_experiments()
    raise ExperimentError(f"Unknown experiment '{name}'. Known experiments:\n  " +
                          "\n  ".join(known) + "\n(`ycng list` shows them with descriptions.)")
  module_name = "ycng_experiment_" + re.sub(r"\W", "_", path.with_suffix("").as_posix())
  spec = importlib.util.spec_from_file_location(module_name, path)
  module = importlib.util.module_from_spec(spec)
  sys.modules[module_name] = module
  spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ExperimentError(f"{path} defines no get_config().")
  return module


def _flat_keys(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
  keys = []
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      keys += _flat_keys(value, f"{prefix}{key}.")
    else:
      keys.append(f"{prefix}{key}")
  return keys


def _parse_value(text: str) -> Any:
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text  # a bare word is a string


def apply_overrides(config: ml_collections.ConfigDict, overrides: dict[str, str]) -> ml_collections.ConfigDict:
  """Set ``a.b.c=value`` overrides; an unknown key is an error that lists the valid ones."""
  valid = _flat_keys(config)
  for dotted, raw in overrides.items():
    if dotted not in valid:
      raise ExperimentError(f"Unknown config key '{dotted}'. Valid keys:\n  " + "\n  ".join(valid))
    *parents, leaf = dotted.split(".")
    node = config
    for p in parents:
      node = node[p]
    old, new = node[leaf], _parse_value(raw)
    if isinstance(old, bool) and isinstance(new, str) and new.lower() in ("true", "false"):
      new = new.lower() == "true"
    if isinstance(old, float) and isinstance(new, int) and not isinstance(new, bool):
      new = float(new)
    if isinstance(old, str) and not isinstance(new, str):
      new = raw
    if old is not None and type(old) is not type(new) and not (isinstance(old, tuple) and isinstance(new, (tuple, list))):
      raise ExperimentError(f"Config key '{dotted}' is a {type(old).__name__} ({old!r}); "
                            f"could not use {raw!r} ({type(new).__name__}).")
    node[leaf] = tuple(new) if isinstance(old, tuple) else new
  return config


def resolve_runner(module: types.ModuleType, config: ml_collections.ConfigDict) -> Callable:
  if hasattr(module, "run"):
    return module.run
  target = config.get("runner")
  if not target or ":" not in target:
    raise ExperimentError(f"{module.__file__} has no run(config, workdir) and no "
                          "config.runner = 'module:function'.")
  module_name, function = target.split(":")
  return getattr(importlib.import_module(module_name), function)


def prepare_workdir(workdir: pathlib.Path) -> None:
  """Create ``workdir`` if needed and make sure files can be written in it."""
  if workdir.exists() and not workdir.is_dir():
    raise ExperimentError(f"the workdir {workdir} is a file, not a folder; give --workdir a folder "
                          "(it is created if missing)")
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=workdir):
      pass
  except OSError as e:
    raise ExperimentError(f"cannot write in the workdir {workdir} ({e.strerror or e}); give "
                          "--workdir a folder you can write to") from None


def command_line(name: str, workdir: str | os.PathLike, overrides: dict[str, str]) -> str:
  """The shell command that runs this experiment again: ``ycng run NAME --workdir DIR ...``."""
  parts = ["ycng", "run", name, "--workdir", os.fspath(workdir)]
  parts += [f"--config.{key}={value}" for key, value in overrides.items()]
  return shlex.join(parts)


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def run(name: str, workdir: str | os.PathLike | None = None,
        overrides: dict[str, str] | None = None) -> dict:
  """Run an experiment; returns its final metrics (also in WORKDIR/metrics.jsonl).

  ``WORKDIR/run.json`` names the experiment, its overrides and the command that reruns it, for
  ``ycng report``; ``"finished": true`` marks a run that returned.
  """
  overrides = overrides or {}
  module = load_module(name)
  config = apply_overrides(module.get_config(), overrides)
  workdir = pathlib.Path(workdir or pathlib.Path("workdirs") / pathlib.Path(name).with_suffix("").as_posix())
  prepare_workdir(workdir)
  config_json, run_json = workdir / "config.json", workdir / "run.json"
  record = {"experiment": name, "overrides": {key: str(value) for key, value in overrides.items()},
            "command": command_line(name, workdir, overrides), "started": _now(),
            "finished": False}
  # A config.json (run.json) already there describes the run whose checkpoints are in the
  # workdir; this run may be refused (another config), so it replaces them only once finished.
  if not config_json.exists():
    config_json.write_text(config.to_json_best_effort(indent=2, sort_keys=True))
  if not run_json.exists():
    run_json.write_text(json.dumps(record, indent=2))
  # A resumed run (kill -9, a crash) loads the programs its first try compiled.
  with persistent_compilation_cache(workdir / "xla_cache" / host()):
    result = resolve_runner(module, config)(config, str(workdir))
  config_json.write_text(config.to_json_best_effort(indent=2, sort_keys=True))
  run_json.write_text(json.dumps({**record, "finished": True, "ended": _now()}, indent=2))
  return json.loads(json.dumps(result or {}, default=float))

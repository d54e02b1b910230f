"""Random search and successive halving as one population: ``config.runner =
"ycng_jax.tuning.population_search:run"`` (``experiments/topic9/population_fashion_mnist.py``).

P members with random hyperparameters (log-uniform learning rate and weight decay, uniform
dropout, seeds ``seed .. seed + P - 1``) train together (``population.PopulationTrainer``).
At the end of each rung (``rung_epochs``: the epochs a member has trained when it is judged)
every member is evaluated on the validation split; all but the best ``1 / eta`` are dropped
(their states sliced off the population axis) and the survivors train on. One rung is plain
random search. Members whose objective is NaN or infinite rank last and are marked diverged.

Writes to the workdir: ``results.json`` (every member's hyperparameters and objective per
rung, the rungs' sizes and seconds, the best member and its test metrics), ``results.md``
(the same as a table), ``population.png`` (objective per member per rung),
``best_config.py`` (the best member as a config of the shared classification runner: ``ycng
run WORKDIR/best_config.py`` trains it alone), ``final_params.npz`` (the last rung's members'
parameters, ``member{i}/{layer path}``), ``metrics.jsonl`` (a record per rung and the
best member's test metrics as the final one) and ``settings.json`` (a workdir belongs to one
search: another config there is an error; the same config runs again from the start).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from ycng_jax import fingerprints
from ycng_jax.checks import real_number, whole_number
from ycng_jax.errors import UserError
from ycng_jax.train import classification as clf
from ycng_jax.train import logging_callbacks as log_lib
from ycng_jax.train.losses import make_classification_loss
from ycng_jax.train.mesh import make_mesh
from ycng_jax.train.trainer import peek, rewound
from ycng_jax.tuning.population import HPARAMS, PopulationTrainer

SEARCHED = ("learning_rate", "weight_decay", "dropout")


def base_config() -> ml_collections.ConfigDict:
  """Every key the runner reads, with defaults."""
  c = ml_collections.ConfigDict()
  c.runner = "ycng_jax.tuning.population_search:run"
  c.dataset = "fashion_mnist"
  c.image_scale = 255.0
  c.train_examples = 0              # 0: all
  c.test_examples = 0
  c.validation_split = 0.1          # the objective is measured on this held-out part of train
  c.model = ml_collections.ConfigDict({"name": "ycng_jax.models.mlp:MLP",
                                       "kwargs": ml_collections.ConfigDict()})
  c.batch_size = 128
  # Every member evaluates the batch at once: at 1000 images the temporaries (a CNN's im2col
  # is 225 MB a member) made 10 CNNs 2.7x slower per image than at 256 with
  # YCNG_JAX_MALLOC=reuse, and no faster with glibc's defaults.
  c.eval_batch_size = 256
  c.seed = 0                        # data split and order, sampling; member i has seed + i
  c.optimizer = "adamw"             # an optax optimizer with learning_rate and weight_decay
  c.population = 16                 # members at the first rung
  c.rung_epochs = (1, 2, 4)         # epochs trained when each rung judges its members
  c.eta = 2                         # each rung keeps the best 1/eta (at least one)
  c.objective = "val_accuracy"      # or "val_loss"
  c.direction = "max"               # "max" or "min"
  # (low, high) ranges; low == high fixes the value. Names in `log` are sampled log-uniform.
  c.search = ml_collections.ConfigDict({
      "learning_rate": (1e-4, 1e-2), "weight_decay": (1e-5, 1e-1), "dropout": (0.0, 0.5),
      "log": ("learning_rate", "weight_decay")})
  c.num_devices = 0                 # 0: shard the population over all devices
  return c


def check_config(config: ml_collections.ConfigDict) -> None:
  """Unknown keys and values out of range are one-line errors, before any data is loaded."""
  reference = base_config()
  for key in config.keys():
    if key not in reference:
      raise UserError(f"unknown config key {key!r} for the population search; valid keys: "
                      f"{sorted(reference.keys())}")
  for key in config.search.keys():
    if key not in reference.search:
      raise UserError(f"unknown config key 'search.{key}'; valid: {sorted(reference.search)}")
  whole_number("config.population", config.population, 1)
  whole_number("config.eta", config.eta, 2)
  whole_number("config.batch_size", config.batch_size, 1)
  whole_number("config.eval_batch_size", config.eval_batch_size, 1)
  whole_number("config.train_examples", config.train_examples, 0)
  whole_number("config.test_examples", config.test_examples, 0)
  whole_number("config.num_devices", config.num_devices, 0, len(jax.devices()))
  real_number("config.validation_split", config.validation_split, 0.0, 1.0, low_open=True)
  epochs = list(config.rung_epochs)
  if not epochs or any(not isinstance(e, int) or e < 1 for e in epochs) or \
      any(b <= a for a, b in zip(epochs, epochs[1:])):
    raise UserError(f"config.rung_epochs must be increasing whole numbers of epochs >= 1, e.g. "
                    f"(1, 2, 4); got {tuple(epochs)}")
  if config.objective not in ("val_accuracy", "val_loss"):
    raise UserError(f"config.objective must be 'val_accuracy' or 'val_loss', got "
                    f"{config.objective!r}")
  if config.direction not in ("max", "min"):
    raise UserError(f"config.direction must be 'max' or 'min', got {config.direction!r}")
  for name in SEARCHED:
    value = tuple(config.search[name])
    if len(value) != 2 or value[0] > value[1]:
      raise UserError(f"config.search.{name} must be (low, high) with low <= high, got {value}")
    high = 1.0 if name == "dropout" else math.inf
    for bound in value:
      real_number(f"config.search.{name}", bound, 0.0, high,
                  low_open=name == "learning_rate" or name in config.search.log)
  unknown = [n for n in config.search.log if n not in SEARCHED]
  if unknown:
    raise UserError(f"config.search.log names {unknown}; it may hold {list(SEARCHED)}")


def sample(config: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
  """The population's hyperparameters, drawn from ``config.search`` with ``config.seed``."""
  rng = np.random.default_rng(config.seed)
  out = {}
  for name in SEARCHED:
    low, high = (float(v) for v in config.search[name])
    if name in config.search.log:
      out[name] = np.exp(rng.uniform(math.log(low), math.log(high), config.population))
    else:
      out[name] = rng.uniform(low, high, config.population)
  out["seed"] = config.seed + np.arange(config.population)
  return out


def _check_workdir(config, workdir: str) -> None:
  """A workdir holds one search: a record of another config there stops this one."""
  path = os.path.join(workdir, "settings.json")
  settings = fingerprints.flatten(config.to_dict())
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      saved = json.load(f)
    changed = fingerprints.differences(saved, settings)
    if changed:
      raise UserError(f"{workdir} holds the results of a population search with other settings "
                      f"({'; '.join(changed)}); nothing was changed. Give this one another "
                      "workdir (ycng run --workdir DIR) or delete the old one.")
  os.makedirs(workdir, exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(settings, f, indent=1)


def _rank(values: np.ndarray, direction: str) -> np.ndarray:
  """Member positions best first; NaN/inf last; ties keep the lower position first."""
  key = np.where(np.isfinite(values), values if direction == "min" else -values, np.inf)
  return np.argsort(key, kind="stable")


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
  """The search; returns the best member's test metrics (also in metrics.jsonl)."""
  from ycng_jax.data.pipeline import Loader
  check_config(config)
  _check_workdir(config, workdir)
  train, val, test = clf.load_splits(config)
  num_classes = int(max(train["label"].max(), test["label"].max())) + 1
  hparams = sample(config)
  kwargs = dict(config.model.kwargs)
  kwargs.setdefault("num_classes", num_classes)
  searches_dropout = float(config.search.dropout[1]) > 0
  # The model is built once with dropout layers at a placeholder rate; each member's rate
  # replaces it inside the step (population.dropout_interceptor).
  kwargs["dropout"] = 0.5 if searches_dropout else 0.0
  model = clf.import_object(config.model.name)(**kwargs)
  clf.check_labels({"train": train, "validation": val, "test": test}, num_classes)
  devices = jax.devices()[:config.num_devices or None]
  pop = PopulationTrainer(model, make_classification_loss(), optimizer=config.optimizer,
                          preprocess=clf.make_preprocess(config.image_scale),
                          dropout_base=kwargs["dropout"], devices=devices)
  one = make_mesh(1)  # the loaders fill one device; the trainer copies batches to its mesh
  train_loader = Loader(train, global_batch_size=config.batch_size, mesh=one, seed=config.seed)

  def eval_loader(arrays):
    return Loader(arrays, global_batch_size=config.eval_batch_size, mesh=one, shuffle=False,
                  num_epochs=1, drop_remainder=False)

  val_loader, test_loader = eval_loader(val), eval_loader(test)
  pop.init(peek(train_loader), hparams)
  metric = config.objective[len("val_"):]
  members = np.arange(config.population)  # original index of each position
  objectives = np.full((config.population, len(config.rung_epochs)), np.nan)
  status = ["finished"] * config.population
  rungs, done_epochs, step, start = [], 0, 0, time.perf_counter()
  metrics_path = os.path.join(workdir, "metrics.jsonl")
  open(metrics_path, "w", encoding="utf-8").close()
  from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel
  # On a terminal only (disable=None): logs and tests get the one line per rung below.
  bar = tqdm(total=config.rung_epochs[-1] * train_loader.steps_per_epoch, unit="step",
             file=sys.stderr, dynamic_ncols=True, disable=None)
  for r, epochs in enumerate(config.rung_epochs):
    rung_start = time.perf_counter()
    steps = (epochs - done_epochs) * train_loader.steps_per_epoch
    bar.set_description(f"rung {r}, {len(members)} members")
    train_metrics = pop.fit_steps(_Counted(train_loader, bar), steps)
    step, done_epochs = step + steps, epochs
    with rewound(val_loader):
      values = pop.evaluate(val_loader)[metric]
    objectives[members, r] = values
    order = _rank(values, config.direction)
    for position in np.flatnonzero(~np.isfinite(values) | ~np.isfinite(train_metrics["loss"])):
      status[members[position]] = f"diverged (rung {r})"
    rungs.append({"rung": r, "epochs": epochs, "members": len(members),
                  "devices": int(pop.mesh.devices.size),
                  "seconds": round(time.perf_counter() - rung_start, 2)})
    best = values[order[0]]
    _append_record(metrics_path, {"step": step, "epoch": epochs, "rung": r,
                                  "members": len(members), f"best_{config.objective}": best})
    tqdm.write(f"rung {r}: {len(members)} members, {epochs} epochs, best {config.objective} "
               f"{best:.4f} (member {members[order[0]]})", file=sys.stdout)
    if r < len(config.rung_epochs) - 1:
      keep = np.sort(order[:max(1, len(members) // config.eta)])
      for position in np.setdiff1d(np.arange(len(members)), keep):
        if status[members[position]] == "finished":
          status[members[position]] = f"dropped (rung {r})"
      pop.select(keep)
      members = members[keep]
  bar.close()
  best_position = int(_rank(objectives[members, -1], config.direction)[0])
  best_member = int(members[best_position])
  _save_params(os.path.join(workdir, "final_params.npz"), pop, members)
  # Only the best member is tested: testing all 12 members of a random search took 29 s, the
  # best one alone 1.6 s with its compile.
  pop.select([best_position])
  with rewound(test_loader):
    test = pop.evaluate(test_loader)
  test_metrics = {f"test_{k}": float(v[0]) for k, v in test.items()}
  pop.free()
  results = _results(config, hparams, objectives, status, rungs, best_member, test_metrics,
                     time.perf_counter() - start)
  _write(workdir, config, results, hparams, best_member)
  log_lib.write_final(metrics_path, step, test_metrics, best_member=best_member)
  return test_metrics


class _Counted:
  """The loader's batches, each one counted on a progress bar as it is taken."""

  def __init__(self, loader, bar):
    self.loader, self.bar = loader, bar

  def __iter__(self):
    return self

  def __next__(self):
    batch = next(self.loader)
    self.bar.update(1)
    return batch


def _append_record(path: str, record: dict[str, Any]) -> None:
  with open(path, "a", encoding="utf-8") as f:
    f.write(json.dumps({k: (float(v) if isinstance(v, (float, np.floating)) else v)
                        for k, v in record.items()}) + "\n")


def _save_params(path: str, pop: PopulationTrainer, members: np.ndarray) -> None:
  """The last rung's members' parameters: ``member{i}/{layer path}`` arrays in one .npz."""
  from ycng_jax.train.optim import path_name
  arrays = {}
  for position, member in enumerate(members):
    for keys, value in jax.tree_util.tree_flatten_with_path(pop.member_params(position))[0]:
      arrays[f"member{member}/{path_name(keys)}"] = value
  np.savez(path, **arrays)


def _number(value: float) -> float | None:
  return None if not np.isfinite(value) else float(value)


def _results(config, hparams, objectives, status, rungs, best, test_metrics, seconds) -> dict:
  members = []
  for i in range(config.population):
    members.append({"member": i, **{k: (int(hparams[k][i]) if k == "seed" else
                                        float(hparams[k][i])) for k in HPARAMS},
                    "objective": [_number(v) for v in objectives[i]], "status": status[i]})
  return {"objective": config.objective, "direction": config.direction,
          "rung_epochs": list(config.rung_epochs), "eta": config.eta, "rungs": rungs,
          "members": members, "best": {**members[best], **test_metrics},
          "final": test_metrics, "seconds": round(seconds, 2)}


def markdown(results: dict) -> str:
  epochs = results["rung_epochs"]
  head = ["member", "learning rate", "weight decay", "dropout", "seed",
          *[f"{results['objective']} @ {e} ep" for e in epochs], "status"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  best = results["best"]["member"]
  for m in results["members"]:
    cells = [f"**{m['member']}**" if m["member"] == best else str(m["member"]),
             f"{m['learning_rate']:.3g}", f"{m['weight_decay']:.3g}", f"{m['dropout']:.3f}",
             str(m["seed"]), *["" if v is None else f"{v:.4f}" for v in m["objective"]],
             m["status"]]
    lines.append("| " + " | ".join(cells) + " |")
  tests = ", ".join(f"{k} {v:.4f}" for k, v in results["final"].items())
  rungs = "; ".join(f"rung {r['rung']}: {r['members']} members to {r['epochs']} epoch(s) in "
                    f"{r['seconds']:.1f} s" for r in results["rungs"])
  return (f"# Population search\n\nBest: member {best} ({tests}). {rungs}; "
          f"{results['seconds']:.1f} s in all.\n\n" + "\n".join(lines) + "\n")


def plot(results: dict, path: str) -> None:
  """Objective per member per rung: a line per member up to the rung that dropped it."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6.5, 4))
  epochs = results["rung_epochs"]
  for m in results["members"]:
    points = [(e, v) for e, v in zip(epochs, m["objective"]) if v is not None]
    if not points:
      continue
    best = m["member"] == results["best"]["member"]
    ax.plot(*zip(*points), marker="o", color="C3" if best else "0.6", lw=2 if best else 0.8,
            zorder=3 if best else 1, label=f"best: member {m['member']}" if best else None)
  ax.set_xscale("log", base=2)
  ax.set_xticks(epochs, [str(e) for e in epochs])
  ax.set_xlabel("epochs trained (one rung each)")
  ax.set_ylabel(results["objective"])
  ax.set_title(f"{len(results['members'])} members, the best 1/{results['eta']} kept per rung")
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def best_config_source(config, hparams: dict[str, np.ndarray], member: int) -> str:
  """An experiment config of the shared classification runner with member ``member``'s
  hyperparameters: ``ycng run`` trains that trial alone."""
  kwargs = {k: v for k, v in dict(config.model.kwargs).items() if k != "dropout"}
  lines = [f'"""The best member ({member}) of a population search, as a config of the shared '
           "classification runner.", "", "  ycng run PATH/TO/best_config.py", "",
           "Written by ycng_jax.tuning.population_search; the data split and order follow "
           "config.seed (the member's seed),", "so the accuracy of this run is a new draw, not "
           'the search\'s own figure.', '"""', "",
           "from ycng_jax.train.classification import base_config", "", "",
           "def get_config():", "  config = base_config()",
           f"  config.dataset = {config.dataset!r}",
           f"  config.train_examples = {config.train_examples!r}",
           f"  config.test_examples = {config.test_examples!r}",
           f"  config.validation_split = {config.validation_split!r}",
           f"  config.image_scale = {config.image_scale!r}",
           f"  config.model.name = {config.model.name!r}"]
  lines += [f"  config.model.kwargs.{k} = {v!r}" for k, v in sorted(kwargs.items())]
  lines += [f"  config.model.kwargs.dropout = {float(hparams['dropout'][member])!r}",
            f"  config.batch_size = {config.batch_size!r}",
            f"  config.num_epochs = {config.rung_epochs[-1]!r}",
            f"  config.seed = {int(hparams['seed'][member])!r}",
            f"  config.optimizer.name = {config.optimizer!r}",
            f"  config.optimizer.learning_rate = {float(hparams['learning_rate'][member])!r}",
            f"  config.optimizer.kwargs.weight_decay = "
            f"{float(hparams['weight_decay'][member])!r}",
            "  return config", ""]
  return "\n".join(lines)


def _write(workdir: str, config, results: dict, hparams, best: int) -> None:
  with open(os.path.join(workdir, "results.json"), "w", encoding="utf-8") as f:
    json.dump(results, f, indent=1)
  with open(os.path.join(workdir, "results.md"), "w", encoding="utf-8") as f:
    f.write(markdown(results))
  with open(os.path.join(workdir, "best_config.py"), "w", encoding="utf-8") as f:
    f.write(best_config_source(config, hparams, best))
  plot(results, os.path.join(workdir, "population.png"))

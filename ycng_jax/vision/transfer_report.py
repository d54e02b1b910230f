"""Table and learning curves of the transfer-learning experiment, built from ``runs/*.json``."""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

import numpy as np

from ycng_jax.vision.transfer import REGIMES

LABELS = {"scratch": "(a) from scratch", "frozen": "(b) frozen base + new head",
          "finetune": "(c) fine-tuned top (BN inference)"}


def load_runs(workdir: str, config) -> dict[tuple[int, str], list[dict[str, Any]]]:
  """Finished runs of the configured grid, grouped by (train size, regime)."""
  runs: dict[tuple[int, str], list[dict[str, Any]]] = {}
  for size in config.train_sizes:
    for regime in REGIMES:
      for seed in config.seeds:
        path = os.path.join(workdir, "runs", f"{size}_{regime}_seed{seed}.json")
        if os.path.exists(path):
          with open(path) as f:
            result = json.load(f)
          result["seed"] = seed
          runs.setdefault((size, regime), []).append(result)
  return runs


def summarize(runs: Mapping[tuple[int, str], list[dict[str, Any]]]) -> list[dict[str, Any]]:
  """One row per (size, regime): mean, std (ddof=0) over seeds, and what the runs cost."""
  rows = []
  for (size, regime), results in sorted(runs.items(), key=lambda kv: (kv[0][0],
                                                                      REGIMES.index(kv[0][1]))):
    accuracy = np.array([r["test_accuracy"] for r in results])
    freeze = [r["freeze"] for r in results]
    rows.append({
        "train_examples": size, "regime": regime, "seeds": [r["seed"] for r in results],
        "test_accuracy_mean": float(accuracy.mean()), "test_accuracy_std": float(accuracy.std()),
        "test_accuracy": accuracy.tolist(), "epochs": results[0]["epochs"],
        "input": results[0]["input"],
        "seconds_mean": float(np.mean([r["seconds"] for r in results])),
        "frozen_unchanged": all(f["frozen_unchanged"] for f in freeze),
        "trainable_changed": all(f["trainable_changed"] for f in freeze),
        "batch_stats_unchanged": all(f["batch_stats_unchanged"] for f in freeze),
        "num_trainable_tensors": freeze[0]["num_trainable"],
        "num_frozen_tensors": freeze[0]["num_frozen"]})
  return rows


def markdown(rows: list[dict[str, Any]], config, timings: Mapping[str, float]) -> str:
  lines = [f"Fashion-MNIST at {config.image_size}x{config.image_size} RGB, EfficientNet-Lite0; "
           "test accuracy mean ± std over seeds.", "",
           "| labelled examples | regime | test accuracy | seeds | epochs | input | s / run | "
           "frozen bit-identical | trainable changed | BN stats unchanged |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(
        f"| {r['train_examples']} | {LABELS[r['regime']]} | {r['test_accuracy_mean']:.4f} ± "
        f"{r['test_accuracy_std']:.4f} | {len(r['seeds'])} | {r['epochs']} | {r['input']} | "
        f"{r['seconds_mean']:.0f} | {r['frozen_unchanged']} | {r['trainable_changed']} | "
        f"{r['batch_stats_unchanged'] if r['regime'] != 'scratch' else 'n/a (BN trains)'} |")
  if timings:
    lines += ["", "Precomputation of the frozen backbone (once for all runs):", ""]
    lines += [f"- {k}: {v:.1f}" for k, v in sorted(timings.items())]
  return "\n".join(lines) + "\n"


def plot_curves(runs, size: int, path: str) -> None:
  """Validation accuracy per epoch, mean ± std over seeds; fine-tuning after the frozen epochs."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, ax = plt.subplots(figsize=(7, 4))
  for regime in REGIMES:
    results = runs.get((size, regime))
    if not results:
      continue
    curves = np.array([r["history"]["val_accuracy"] for r in results])
    offset = 0
    if regime == "finetune" and runs.get((size, "frozen")):
      offset = len(runs[(size, "frozen")][0]["history"]["val_accuracy"])
    epochs = np.arange(1, curves.shape[1] + 1) + offset
    mean, std = curves.mean(0), curves.std(0)
    ax.plot(epochs, mean, marker=".", label=LABELS[regime])
    ax.fill_between(epochs, mean - std, mean + std, alpha=0.2)
  ax.set_xlabel("epoch")
  ax.set_ylabel("validation accuracy")
  ax.set_title(f"{size} labelled examples")
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def write(config, workdir: str, timings: Mapping[str, float], total_seconds: float
          ) -> dict[str, Any]:
  """``results.json``, ``results.md`` and ``curves_<size>.png`` in ``workdir``."""
  runs = load_runs(workdir, config)
  rows = summarize(runs)
  summary = {"config": config.to_dict(), "table": rows, "precompute_timings": dict(timings),
             "total_seconds_this_invocation": total_seconds}
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(summary, f, indent=2)
  with open(os.path.join(workdir, "results.md"), "w") as f:
    f.write(markdown(rows, config, timings))
  for size in config.train_sizes:
    if any(s == size for s, _ in runs):
      plot_curves(runs, size, os.path.join(workdir, f"curves_{size}.png"))
  return summary

"""What a fine-tuning run leaves in its workdir besides checkpoints: the baselines' scores, the
results (``results.json``, ``results.md``), figures, ``per_label_f1.csv`` and the model folder.

Everything here reads host arrays; nothing trains (the baselines fit scikit-learn models).
"""

from __future__ import annotations

import csv
import json
import os
from typing import Any

import numpy as np

from ycng_jax.text import baselines as baselines_lib
from ycng_jax.text import finetune_metrics as fm

MULTI, SINGLE, REGRESSION = ("multi_label_classification", "single_label_classification",
                             "regression")
# Column order of the results table; a metric a run does not have is left out.
COLUMNS = ("accuracy", "macro_f1", "f1", "roc_auc", "average_precision", "threshold",
           "micro_f1_global", "macro_f1_global", "micro_f1_per_label", "macro_f1_per_label",
           "precision_at_1", "precision_at_5", "mean_average_precision", "pearson", "spearman",
           "mse")


def describe_task(task, arrays: dict, bert_config) -> dict[str, Any]:
  return {"name": task.name, "problem_type": task.problem_type, "pair": bool(task.pair),
          "num_labels": bert_config.num_labels,
          "label_names": list(bert_config.label_names or ()),
          "examples": {s: int(len(a["label"])) for s, a in arrays.items()}}


# --- baselines ---------------------------------------------------------------------------------

def run_baselines(config, task, arrays: dict) -> dict[str, dict]:
  """The baselines that fit the task: TF-IDF + logistic regression for one text (a class or
  labels), the two cosines for a binary or regression pair task; others have none here."""
  out = {}
  binary = task.problem_type == SINGLE and len(task.label_names) == 2
  if not task.pair and task.problem_type in (SINGLE, MULTI):
    found = baselines_lib.tfidf_logistic_regression(
        arrays["train"], arrays["validation"], arrays["test"], task.problem_type,
        c=config.baseline_c, seed=config.seed)
    out[found.pop("name")] = found
  elif task.pair and (binary or task.problem_type == REGRESSION):
    for found in (baselines_lib.embedding_cosine(arrays["validation"], arrays["test"],
                                                 model=config.baseline_model,
                                                 precision=config.precision),
                  baselines_lib.tfidf_cosine(arrays["train"], arrays["validation"],
                                             arrays["test"])):
      out[found.pop("name")] = found
  return out


def scored_baselines(config, task, arrays: dict) -> tuple[dict[str, dict], dict[str, dict]]:
  """``run_baselines``' scores, and each baseline's test metrics (``baseline_metrics``)."""
  scores = run_baselines(config, task, arrays)
  labels = {s: arrays[s]["label"] for s in arrays}
  return scores, {name: baseline_metrics(task.problem_type, labels, out)
                  for name, out in scores.items()}


def baseline_metrics(problem_type: str, labels: dict, scores: dict) -> dict[str, float]:
  """Test metrics of a baseline, its decisions tuned on validation as the fine-tuned model's."""
  val, test = scores["validation"], scores["test"]
  if problem_type == MULTI:
    return fm.task_metrics(problem_type, labels["test"], test,
                           thresholds=fm.tune_thresholds(labels["validation"], val))
  if test.ndim == 2:  # class probabilities
    return fm.task_metrics(problem_type, labels["test"], test)
  if problem_type == REGRESSION:  # a cosine ranks pairs: its squared error means nothing
    found = fm.regression_metrics(labels["test"], test)
    return {k: found[k] for k in ("pearson", "spearman")}
  threshold, _ = fm.best_threshold(labels["validation"], val, "accuracy")
  return fm.thresholded_binary_metrics(labels["test"], test, threshold)


# --- the model folder --------------------------------------------------------------------------

def save_model(out: str, params, bert_config, source_folder: str, task, config,
               thresholds: dict | None) -> None:
  """A Hugging Face folder (``save_classifier``) with the per-label thresholds of validation."""
  import jax
  from ycng_jax.text.classifier import save_classifier
  save_classifier(out, params=jax.device_get(params), config=bert_config,
                  tokenizer_folder=source_folder, problem_type=task.problem_type,
                  label_names=list(bert_config.label_names) if bert_config.label_names else None,
                  thresholds=None if thresholds is None else
                  [float(t) for t in np.clip(thresholds["per_label"], 0.0, 1.0)],
                  max_length=config.max_length, pair=bool(task.pair),
                  extra={"dataset": str(config.dataset), "base_model": str(config.model),
                         **({"threshold_global": float(thresholds["global"])}
                            if thresholds is not None else {})})


# --- files -------------------------------------------------------------------------------------

def _json_ready(value):
  if isinstance(value, dict):
    return {k: _json_ready(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_json_ready(v) for v in value]
  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, (np.floating, np.integer)):
    return value.item()
  return value


def results_table(results: dict) -> str:
  """The markdown table: one row per model (fine-tuned, then each baseline)."""
  rows = {"fine-tuned " + os.path.basename(str(results["model"])): results["fine_tuned"]}
  rows.update({name.replace("_", " "): m for name, m in results["baselines"].items()})
  columns = [c for c in COLUMNS if any(c in m for m in rows.values())]
  lines = ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
  for name, metrics in rows.items():
    cells = [f"{metrics[c]:.4f}" if c in metrics else "" for c in columns]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def results_markdown(results: dict, figures: list[str]) -> str:
  task = results["task"]
  sizes = ", ".join(f"{s} {n}" for s, n in task["examples"].items())
  steps_per_second = results["step"] / max(results["train_seconds"], 1e-9)
  lines = [f"# {task['name']}: {task['problem_type']}" + (" (text pairs)" if task["pair"] else ""),
           "", f"{task['num_labels']} label(s); examples: {sizes}. Test split:", "",
           results_table(results), ""]
  if task["problem_type"] == MULTI:
    lines += ["`*_global`: one threshold for every label, `*_per_label`: one per label; both "
              "chosen on the validation split (best micro-F1, best F1 of the label). "
              "precision@k and mean average precision need no threshold.", ""]
  lines += [f"Fine-tuning: {results['step']} steps in {results['train_seconds']:.0f} s "
            f"({steps_per_second:.2f} steps/s, with compiles), {results['num_params']:,} "
            "parameters; the model is in `model/`.", ""]
  lines += [f"![{os.path.splitext(f)[0]}]({f})" for f in figures]
  return "\n".join(lines) + "\n"


def write_per_label_csv(path: str, label_names, tables: dict[str, dict]) -> None:
  """One row per label: its counts, then threshold / precision / recall / F1 of each model."""
  first = next(iter(tables.values()))
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    header = ["label", "train_count", "test_support"]
    for model in tables:
      header += [f"{model}_{k}" for k in ("threshold", "precision", "recall", "f1")]
    writer.writerow(header)
    for j, name in enumerate(label_names):
      row = [name, int(first["train_count"][j]), int(first["test_support"][j])]
      for table in tables.values():
        row += [f"{table[k][j]:.4f}" for k in ("threshold", "precision", "recall", "f1")]
      writer.writerow(row)


def write(workdir: str, results: dict, labels: dict, scores: dict, baseline_scores: dict,
          thresholds: dict | None, task) -> None:
  """``results.json``, ``results.md``, the figures and (multi-label) ``per_label_f1.csv``."""
  from ycng_jax.text import finetune_figures as figs
  problem_type = task.problem_type
  test = {"fine-tuned": scores["test"]}
  test.update({name: out["test"] for name, out in baseline_scores.items()})
  figures = [figs.curves(results["history"], os.path.join(workdir, "curves.png"))]
  if problem_type == SINGLE:
    names = results["task"]["label_names"] or [str(i) for i in range(scores["test"].shape[1])]
    figures.append(figs.confusion(labels["test"], scores["test"].argmax(-1), names,
                                  os.path.join(workdir, "confusion_matrix.png")))
    figures.append(figs.pr_curves(labels["test"], test, names,
                                  os.path.join(workdir, "pr_curve.png")))
  elif problem_type == MULTI:
    figures.append(figs.pr_curves(labels["test"], test, None,
                                  os.path.join(workdir, "pr_curve.png")))
    train_counts = np.asarray(labels["train"]).sum(0)
    tables = {"fine_tuned": fm.per_label_table(labels["test"], scores["test"],
                                               thresholds["per_label"], train_counts)}
    for name, out in baseline_scores.items():
      tuned = fm.tune_thresholds(labels["validation"], out["validation"])
      tables[name] = fm.per_label_table(labels["test"], out["test"], tuned["per_label"],
                                        train_counts)
    write_per_label_csv(os.path.join(workdir, "per_label_f1.csv"),
                        results["task"]["label_names"], tables)
    figures.append(figs.f1_vs_frequency(tables, os.path.join(workdir, "f1_vs_frequency.png")))
  else:
    figures.append(figs.regression_scatter(labels["test"], test,
                                           os.path.join(workdir, "scatter.png")))
  with open(os.path.join(workdir, "results.json"), "w", encoding="utf-8") as f:
    json.dump(_json_ready(results), f, indent=2)
  with open(os.path.join(workdir, "results.md"), "w", encoding="utf-8") as f:
    f.write(results_markdown(results, [os.path.basename(p) for p in figures]))

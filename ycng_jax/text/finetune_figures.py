"""Figures of a fine-tuning run (PNG, matplotlib's Agg backend); each returns the path it wrote."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np


def _pyplot():
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def _save(fig, path: str) -> str:
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  _pyplot().close(fig)
  return path


def curves(history: Mapping[str, Sequence[float]], path: str) -> str:
  """Train and validation loss per epoch, and every other validation metric."""
  plt = _pyplot()
  fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
  for key in ("loss", "val_loss"):
    if key in history:
      left.plot(range(1, len(history[key]) + 1), history[key], marker="o", label=key)
  left.set_title("loss")
  shown = [k for k in sorted(history) if k.startswith("val_") and k not in ("val_loss", "val_mse")
           and not k.endswith("threshold")]
  for key in shown:
    right.plot(range(1, len(history[key]) + 1), history[key], marker="o", label=key)
  right.set_title("validation metrics")
  for ax in (left, right):
    ax.set_xlabel("epoch")
    if ax.lines:
      ax.legend(fontsize=8)
  return _save(fig, path)


def confusion(labels: np.ndarray, predicted: np.ndarray, names: Sequence[str], path: str) -> str:
  """The test confusion matrix (rows: true class), counts in the cells."""
  from sklearn.metrics import ConfusionMatrixDisplay
  plt = _pyplot()
  size = min(4 + 0.5 * len(names), 16)
  fig, ax = plt.subplots(figsize=(size, size))
  ConfusionMatrixDisplay.from_predictions(labels, predicted, labels=np.arange(len(names)),
                                          display_labels=list(names), ax=ax, colorbar=False,
                                          xticks_rotation=45)
  ax.set_title("test confusion matrix (fine-tuned)")
  return _save(fig, path)


def pr_curves(labels: np.ndarray, scores: Mapping[str, np.ndarray], names: Sequence[str] | None,
              path: str) -> str:
  """Precision-recall on test: of class 1 for two classes (each model), of each class for more
  (fine-tuned), micro-averaged over all labels for multi-label (each model)."""
  from sklearn.metrics import PrecisionRecallDisplay
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(6, 5))
  labels = np.asarray(labels)
  if names is not None and len(names) > 2:  # one-vs-rest curve per class of the fine-tuned model
    probs = scores["fine-tuned"]
    for c, name in enumerate(names[:12]):
      if (labels == c).any():
        PrecisionRecallDisplay.from_predictions(labels == c, probs[:, c], name=name, ax=ax)
    ax.set_title("test precision-recall per class (fine-tuned)")
  else:
    for model, s in scores.items():
      s = np.asarray(s)
      if names is not None:  # two classes: the positive class' probability, or a cosine
        y, s = labels, (s[:, 1] if s.ndim == 2 else s)
      else:  # multi-label: every (text, label) decision
        y, s = labels.ravel(), s.ravel()
      PrecisionRecallDisplay.from_predictions(y, s, name=model.replace("_", " "), ax=ax)
    ax.set_title("test precision-recall" + (" (micro, all labels)" if names is None else ""))
  ax.legend(fontsize=8)
  return _save(fig, path)


def f1_vs_frequency(tables: Mapping[str, Mapping[str, np.ndarray]], path: str) -> str:
  """Per-label test F1 (per-label thresholds) against the label's training examples."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for (model, table), marker in zip(tables.items(), "o^sv"):
    ax.scatter(table["train_count"], table["f1"], s=14, alpha=0.7, marker=marker,
               label=f"{model.replace('_', ' ')} (macro {np.mean(table['f1']):.3f})")
  ax.set_xscale("log")
  ax.set_xlabel("training examples of the label")
  ax.set_ylabel("test F1")
  ax.set_ylim(-0.02, 1.02)
  ax.set_title("per-label F1 against label frequency")
  ax.legend(fontsize=8)
  return _save(fig, path)


def regression_scatter(targets: np.ndarray, predictions: Mapping[str, np.ndarray],
                       path: str) -> str:
  """Predicted against gold scores on test, one panel per model."""
  plt = _pyplot()
  fig, axes = plt.subplots(1, len(predictions), figsize=(4 * len(predictions), 4), squeeze=False)
  for ax, (model, values) in zip(axes[0], predictions.items()):
    ax.scatter(targets, values, s=6, alpha=0.5)
    ax.set_xlabel("gold score")
    ax.set_ylabel("prediction")
    ax.set_title(model.replace("_", " "))
  return _save(fig, path)

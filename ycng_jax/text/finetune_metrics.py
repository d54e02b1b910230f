"""Metrics and decision thresholds of the text-classification runs, on host numpy arrays.

Threshold tuning is exact, not a grid: sorting the validation scores gives every distinct cut,
and the counts at each cut give F1 (or accuracy) at once. A threshold is the midpoint between
the last score kept and the first one dropped, and a score counts as positive when it is
``> threshold`` (as ``TextClassifier.predict`` decides). scikit-learn computes the rest (F1 and
its averages, ROC AUC, average precision), scipy the correlations, so the numbers mean what they
mean everywhere else.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

PROBLEM_TYPES = ("single_label_classification", "multi_label_classification", "regression")


def _cuts(y_true: np.ndarray, scores: np.ndarray):
  """(thresholds, predicted positives, true positives) at every distinct cut, best score first."""
  y_true, scores = np.asarray(y_true, np.float64).ravel(), np.asarray(scores, np.float64).ravel()
  order = np.argsort(-scores, kind="stable")
  s, y = scores[order], y_true[order]
  last_of_tie = np.append(s[1:] != s[:-1], True)  # a cut may only fall between distinct scores
  k = np.flatnonzero(last_of_tie)  # index of the last example kept positive
  following = np.append(s[k[:-1] + 1], -np.inf)
  thresholds = np.where(np.isfinite(following), (s[k] + following) / 2,
                        np.nextafter(s[k], -np.inf))
  return thresholds, k + 1.0, np.cumsum(y)[k]


def best_threshold(y_true: np.ndarray, scores: np.ndarray, objective: str = "f1"
                   ) -> tuple[float, float]:
  """The threshold on ``scores`` that maximises ``objective`` ("f1" of the positives, or
  "accuracy") over all examples (any shape: a multi-label array gives micro-F1); and that value.

  With no positive at all, F1 is undefined: the highest score is returned (nothing is over it).
  """
  y = np.asarray(y_true, np.float64).ravel()
  if y.size == 0:
    raise ValueError("best_threshold needs at least one example")
  thresholds, predicted, true_pos = _cuts(y, scores)
  positives = y.sum()
  if objective == "f1":
    if positives == 0:
      return float(np.max(scores)), 0.0
    values = 2 * true_pos / (predicted + positives)
  elif objective == "accuracy":
    values = (true_pos + (y.size - positives) - (predicted - true_pos)) / y.size
    none_positive = (y.size - positives) / y.size  # the cut above every score
    if none_positive > values.max():
      return float(np.max(scores)), float(none_positive)
  else:
    raise ValueError(f"objective={objective!r}; use 'f1' or 'accuracy'")
  best = int(np.argmax(values))
  return float(thresholds[best]), float(values[best])


def tune_thresholds(y_true: np.ndarray, scores: np.ndarray) -> dict:
  """Multi-label thresholds from validation: one global (best micro-F1) and one per label
  (best F1 of that label; the global one where validation has no example of the label)."""
  y_true, scores = np.asarray(y_true), np.asarray(scores)
  global_threshold, micro = best_threshold(y_true, scores, "f1")
  per_label = np.full(y_true.shape[1], global_threshold, np.float64)
  for j in range(y_true.shape[1]):
    if y_true[:, j].any():
      per_label[j] = best_threshold(y_true[:, j], scores[:, j], "f1")[0]
  return {"global": global_threshold, "per_label": per_label,
          "validation_micro_f1_global": micro}


def sigmoid(x: np.ndarray) -> np.ndarray:
  return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
  x = np.asarray(x, np.float64)
  e = np.exp(x - x.max(axis, keepdims=True))
  return e / e.sum(axis, keepdims=True)


def scores_of(logits: np.ndarray, problem_type: str) -> np.ndarray:
  """What a threshold applies to: sigmoid (multi-label), softmax (single-label), the score."""
  if problem_type == "multi_label_classification":
    return sigmoid(logits)
  if problem_type == "single_label_classification":
    return softmax(logits)
  return np.asarray(logits, np.float64).reshape(len(logits))


def mean_loss(problem_type: str, logits: np.ndarray, labels: np.ndarray,
              pos_weight: float = 0.0) -> float:
  """The training loss over a whole split, on the host (no compile for a number per epoch)."""
  logits = np.asarray(logits, np.float64)
  if problem_type == "regression":
    return float(np.mean((logits[:, 0] - labels) ** 2))
  if problem_type == "single_label_classification":
    shifted = logits - logits.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    return float(-np.mean(np.take_along_axis(log_probs, labels[:, None].astype(np.int64), 1)))
  log_sigmoid = lambda x: -np.logaddexp(0.0, -x)
  weight = pos_weight if pos_weight > 0 else 1.0
  return float(-np.mean(weight * labels * log_sigmoid(logits)
                        + (1 - labels) * log_sigmoid(-logits)))


def single_label_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
  """Accuracy and macro-F1; for two classes also F1, ROC AUC and average precision of class 1."""
  from sklearn import metrics as skm
  labels, probs = np.asarray(labels), np.asarray(probs)
  predicted = probs.argmax(-1)
  out = {"accuracy": float(np.mean(predicted == labels)),
         "macro_f1": float(skm.f1_score(labels, predicted, average="macro",
                                        labels=np.arange(probs.shape[1]), zero_division=0))}
  if probs.shape[1] == 2:
    out.update(binary_metrics(labels, probs[:, 1], predicted))
  return out


def binary_metrics(labels: np.ndarray, scores: np.ndarray, predicted: np.ndarray
                   ) -> dict[str, float]:
  """F1 of the positive class for ``predicted``, and the threshold-free ROC AUC and AP."""
  from sklearn import metrics as skm
  out = {"f1": float(skm.f1_score(labels, predicted, zero_division=0))}
  if 0 < np.sum(labels) < len(labels):  # both classes present, else AUC is undefined
    out["roc_auc"] = float(skm.roc_auc_score(labels, scores))
    out["average_precision"] = float(skm.average_precision_score(labels, scores))
  return out


def thresholded_binary_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float
                               ) -> dict[str, float]:
  """Accuracy, F1, ROC AUC of a score with a decision threshold (the pair baselines)."""
  predicted = (np.asarray(scores) > threshold).astype(np.int64)
  return {"accuracy": float(np.mean(predicted == labels)), "threshold": float(threshold),
          **binary_metrics(labels, scores, predicted)}


def regression_metrics(targets: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
  """Pearson and Spearman correlations (what STS-B reports) and the mean squared error."""
  from scipy import stats
  targets = np.asarray(targets, np.float64).ravel()
  predictions = np.asarray(predictions, np.float64).ravel()
  return {"pearson": float(stats.pearsonr(targets, predictions)[0]),
          "spearman": float(stats.spearmanr(targets, predictions)[0]),
          "mse": float(np.mean((targets - predictions) ** 2))}


def multi_label_metrics(y_true: np.ndarray, scores: np.ndarray, thresholds) -> dict[str, float]:
  """Micro and macro F1 (and micro precision/recall) at ``thresholds`` (a float or per label)."""
  from sklearn import metrics as skm
  y_true = np.asarray(y_true).astype(np.int64)
  predicted = (np.asarray(scores) > np.asarray(thresholds)).astype(np.int64)
  p, r, f, _ = skm.precision_recall_fscore_support(y_true, predicted, average="micro",
                                                   zero_division=0)
  return {"micro_f1": float(f), "micro_precision": float(p), "micro_recall": float(r),
          "macro_f1": float(skm.f1_score(y_true, predicted, average="macro", zero_division=0))}


def ranking_metrics(y_true: np.ndarray, scores: np.ndarray, ks: Sequence[int] = (1, 5)
                    ) -> dict[str, float]:
  """Threshold-free: precision@k (true labels among each text's k best scores, / k) and the
  mean over labels of average precision (labels with a positive in ``y_true``)."""
  from sklearn import metrics as skm
  y_true, scores = np.asarray(y_true), np.asarray(scores)
  out = {}
  ranked = np.argsort(-scores, axis=1, kind="stable")
  for k in (k for k in ks if k <= y_true.shape[1]):  # P@k needs k labels to rank
    top = np.take_along_axis(y_true, ranked[:, :k], axis=1)
    out[f"precision_at_{k}"] = float(np.mean(top.sum(1) / k))
  present = y_true.any(0)
  out["mean_average_precision"] = float(skm.average_precision_score(
      y_true[:, present], scores[:, present], average="macro")) if present.any() else 0.0
  return out


def per_label_table(y_true: np.ndarray, scores: np.ndarray, thresholds: np.ndarray,
                    train_counts: np.ndarray) -> dict[str, np.ndarray]:
  """Per label: training examples, test support, threshold, precision, recall, F1."""
  from sklearn import metrics as skm
  y_true = np.asarray(y_true).astype(np.int64)
  predicted = (np.asarray(scores) > np.asarray(thresholds)).astype(np.int64)
  p, r, f, support = skm.precision_recall_fscore_support(y_true, predicted, average=None,
                                                         zero_division=0)
  return {"train_count": np.asarray(train_counts), "test_support": support,
          "threshold": np.broadcast_to(np.asarray(thresholds, np.float64), (y_true.shape[1],)),
          "precision": p, "recall": r, "f1": f}


def task_metrics(problem_type: str, labels: np.ndarray, scores: np.ndarray, *,
                 thresholds: dict | None = None) -> dict[str, float]:
  """The test metrics of one model: ``scores`` as ``scores_of`` gives them; multi-label needs
  ``thresholds`` from ``tune_thresholds`` (reported for the global and the per-label ones)."""
  if problem_type == "single_label_classification":
    return single_label_metrics(labels, scores)
  if problem_type == "regression":
    return regression_metrics(labels, scores)
  if problem_type != "multi_label_classification":
    raise ValueError(f"problem_type={problem_type!r}; expected one of {PROBLEM_TYPES}")
  out = ranking_metrics(labels, scores)
  for kind in ("global", "per_label"):
    out.update({f"{k}_{kind}": v for k, v in
                multi_label_metrics(labels, scores, thresholds[kind]).items()})
  out["threshold_global"] = float(thresholds["global"])
  return out

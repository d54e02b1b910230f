"""External clustering metrics: accuracy under the best label matching, NMI and ARI.

Cluster ids are arbitrary names, so accuracy first finds the one-to-one matching of
clusters to classes that agrees with the most points (the Hungarian algorithm on the
contingency table, as in DEC and IDEC); NMI and ARI are scikit-learn's.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn import metrics as sk_metrics


def _check_labels(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
  y_true = np.asarray(y_true)
  y_pred = np.asarray(y_pred)
  if y_true.ndim != 1 or y_pred.ndim != 1:
    raise ValueError(
        f"labels must be 1-D arrays; got shapes {y_true.shape} and {y_pred.shape} "
        "(pass class ids, not one-hot or probability rows: use argmax first).")
  if y_true.shape[0] != y_pred.shape[0]:
    raise ValueError(
        f"y_true has {y_true.shape[0]} labels but y_pred has {y_pred.shape[0]}; "
        "both must label the same points in the same order.")
  if y_true.shape[0] == 0:
    raise ValueError("labels are empty; there is nothing to score.")
  return y_true, y_pred


def contingency(y_true, y_pred) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Counts (clusters x classes) plus the cluster and class names of its rows / columns."""
  y_true, y_pred = _check_labels(y_true, y_pred)
  classes, true_idx = np.unique(y_true, return_inverse=True)
  clusters, pred_idx = np.unique(y_pred, return_inverse=True)
  table = np.zeros((clusters.size, classes.size), np.int64)
  np.add.at(table, (pred_idx, true_idx), 1)
  return table, clusters, classes


def cluster_mapping(y_true, y_pred) -> dict:
  """The cluster -> class matching that maximises agreement (unmatched clusters are left out).

  With more clusters than classes, the extra clusters match nothing and count as errors;
  with fewer, some classes go unmatched.
  """
  table, clusters, classes = contingency(y_true, y_pred)
  rows, cols = linear_sum_assignment(table, maximize=True)
  return {clusters[r].item(): classes[c].item() for r, c in zip(rows, cols)}


def cluster_accuracy(y_true, y_pred) -> float:
  """Fraction of points whose cluster maps to their class under the best one-to-one matching."""
  table, _, _ = contingency(y_true, y_pred)
  rows, cols = linear_sum_assignment(table, maximize=True)
  return float(table[rows, cols].sum() / table.sum())


def nmi(y_true, y_pred) -> float:
  """Normalised mutual information (arithmetic mean normalisation, scikit-learn's default)."""
  y_true, y_pred = _check_labels(y_true, y_pred)
  return float(sk_metrics.normalized_mutual_info_score(y_true, y_pred))


def ari(y_true, y_pred) -> float:
  """Adjusted Rand index: 1 for identical partitions, about 0 for random ones."""
  y_true, y_pred = _check_labels(y_true, y_pred)
  return float(sk_metrics.adjusted_rand_score(y_true, y_pred))


def all_metrics(y_true, y_pred) -> dict[str, float]:
  """``{"acc", "nmi", "ari"}`` in one call, the usual columns of a clustering table."""
  return {"acc": cluster_accuracy(y_true, y_pred), "nmi": nmi(y_true, y_pred),
          "ari": ari(y_true, y_pred)}

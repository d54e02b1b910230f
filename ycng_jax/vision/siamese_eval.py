"""Evaluating embeddings: pair verification with a held-out threshold, N-way one-shot episodes.

These work on any embeddings (a trained tower's, raw pixels for the baseline), as numpy:
the evaluation sets are a few thousand rows, and keeping them on the host makes the pixel
baseline and the tower go through exactly the same code.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from sklearn.metrics import roc_auc_score


def pair_distances(embeddings: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
  """Euclidean distance between rows ``first[i]`` and ``second[i]`` of ``embeddings``."""
  x = np.asarray(embeddings, np.float64).reshape(len(embeddings), -1)
  return np.sqrt(np.sum(np.square(x[first] - x[second]), axis=1))


def best_threshold(distances: np.ndarray, same: np.ndarray) -> tuple[float, float]:
  """The distance threshold (``same`` predicted when ``d <= t``) with the best accuracy.

  Exact: every cut between consecutive distinct sorted distances is tried (plus "all
  different"), and the threshold returned is the midpoint of the best gap.
  Returns ``(threshold, accuracy on these pairs)``.
  """
  d, same = _check_pairs(distances, same)
  order = np.argsort(d, kind="stable")
  d, same = d[order], same[order]
  n, n_pos = len(d), same.sum()
  # cut after position i (predict same for the first i + 1): correct = positives kept +
  # negatives beyond.
  positives_in = np.cumsum(same)
  negatives_out = (n - n_pos) - (np.arange(1, n + 1) - positives_in)
  correct = positives_in + negatives_out
  allowed = np.append(d[1:] > d[:-1], True)           # only cut between distinct values
  correct = np.where(allowed, correct, -1)
  best = int(np.argmax(correct))
  if correct[best] <= n - n_pos:                      # predicting "all different" is no worse
    return float(d[0] - 1e-6), float((n - n_pos) / n)
  upper = d[best + 1] if best + 1 < n else d[best] + 1e-6
  return float((d[best] + upper) / 2), float(correct[best] / n)


def verification_accuracy(distances: np.ndarray, same: np.ndarray, threshold: float) -> float:
  """Fraction of pairs classified right by ``d <= threshold`` -> same."""
  d, same = _check_pairs(distances, same)
  return float(np.mean((d <= threshold) == (same == 1)))


def verification_auc(distances: np.ndarray, same: np.ndarray) -> float:
  """ROC AUC of ``-distance`` as a same-class score (threshold free)."""
  d, same = _check_pairs(distances, same)
  return float(roc_auc_score(same, -d))


def _check_pairs(distances, same) -> tuple[np.ndarray, np.ndarray]:
  d = np.asarray(distances, np.float64).reshape(-1)
  same = np.asarray(same).reshape(-1).astype(np.int64)
  if d.shape != same.shape or d.size == 0:
    raise ValueError(f"distances {d.shape} and same {same.shape} must be equal, non-empty")
  if not np.isin(same, (0, 1)).all():
    raise ValueError("same must hold 0 (different) or 1 (same class) only")
  return d, same


@dataclasses.dataclass(frozen=True)
class Episodes:
  """N-way one-shot episodes: ``support[e, j]`` is the one example of class ``classes[e, j]``;
  ``query[e]`` is another example of class ``classes[e, target[e]]``."""
  support: np.ndarray    # (E, N) example indices
  query: np.ndarray      # (E,) example indices
  target: np.ndarray     # (E,) position of the query's class among the N
  classes: np.ndarray    # (E, N) labels


def one_shot_episodes(labels: np.ndarray, n_way: int = 5, num_episodes: int = 1000, *,
                      seed: int = 0) -> Episodes:
  """Seeded episodes: N distinct classes, one support example each, one query of one class.

  The query is a different example than its class's support (both drawn without replacement).
  """
  labels = np.asarray(labels)
  classes, counts = np.unique(labels, return_counts=True)
  if not 2 <= n_way <= len(classes):
    raise ValueError(f"n_way={n_way} needs between 2 and {len(classes)} (the labels' classes)")
  if counts.min() < 2:
    raise ValueError(f"class {classes[counts.argmin()]} has one example; a query needs another")
  members = {c: np.flatnonzero(labels == c) for c in classes}
  rng = np.random.default_rng(seed)
  support = np.empty((num_episodes, n_way), np.int64)
  chosen = np.empty((num_episodes, n_way), labels.dtype)
  query = np.empty(num_episodes, np.int64)
  target = rng.integers(0, n_way, size=num_episodes)
  for e in range(num_episodes):
    chosen[e] = rng.choice(classes, size=n_way, replace=False)
    for j, c in enumerate(chosen[e]):
      if j == target[e]:
        support[e, j], query[e] = rng.choice(members[c], size=2, replace=False)
      else:
        support[e, j] = rng.choice(members[c])
  return Episodes(support, query, target, chosen)


def one_shot_predictions(embeddings: np.ndarray, episodes: Episodes) -> np.ndarray:
  """Position of the support nearest to each query (Euclidean), shape ``(E,)``."""
  x = np.asarray(embeddings, np.float64).reshape(len(embeddings), -1)
  diff = x[episodes.support] - x[episodes.query][:, None, :]          # (E, N, D)
  return np.argmin(np.sum(diff * diff, axis=-1), axis=1)


def one_shot_accuracy(embeddings: np.ndarray, episodes: Episodes) -> float:
  """Fraction of episodes whose query's nearest support is of the query's class."""
  return float(np.mean(one_shot_predictions(embeddings, episodes) == episodes.target))


def binomial_stderr(accuracy: float, n: int) -> float:
  """Standard error of an accuracy measured on ``n`` independent trials."""
  return float(np.sqrt(max(accuracy * (1 - accuracy), 0.0) / max(n, 1)))

"""Retrieval metrics of paired texts: each query has one right document among all documents.

Exact and on the host: the held-out sets are a few thousand texts, so the whole score matrix is
computed in row blocks of unit vectors (cosine = dot product). Documents that are the same text
count as one (``unique_documents``): two packages that share a long description make neither
ranking wrong.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def unique_documents(texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
  """The distinct texts (first-seen order) and, for each input text, its index among them."""
  index: dict[str, int] = {}
  position = np.fromiter((index.setdefault(t, len(index)) for t in texts), np.int64, len(texts))
  return list(index), position


def positive_ranks(queries: np.ndarray, documents: np.ndarray, positive: np.ndarray, *,
                   block: int = 1024) -> np.ndarray:
  """0-based rank of each query's right document among all ``documents`` by dot product.

  ``queries`` (n, d), ``documents`` (m, d), ``positive`` (n,) the index of the right document.
  The rank counts the documents scored strictly higher than the right one (a tie is no loss).
  """
  queries, documents = np.asarray(queries, np.float32), np.asarray(documents, np.float32)
  positive = np.asarray(positive, np.int64)
  if queries.ndim != 2 or documents.ndim != 2 or queries.shape[1] != documents.shape[1]:
    raise ValueError(f"queries {queries.shape} and documents {documents.shape} must be (n, d) "
                     "and (m, d) with the same d")
  if positive.shape != (len(queries),) or (positive.size and not
                                           0 <= positive.min() <= positive.max() < len(documents)):
    raise ValueError(f"positive must be ({len(queries)},) indices into the {len(documents)} "
                     "documents")
  ranks = np.empty(len(queries), np.int64)
  for start in range(0, len(queries), block):
    scores = queries[start:start + block] @ documents.T
    right = scores[np.arange(len(scores)), positive[start:start + block]]
    ranks[start:start + block] = np.sum(scores > right[:, None], axis=1)
  return ranks


def recall_at(ranks: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
  """``recall_at_k``: the fraction of queries whose right document is among the k best; and
  ``mrr_at_10``, the mean reciprocal rank cut at 10."""
  ranks = np.asarray(ranks)
  out = {f"recall_at_{k}": float(np.mean(ranks < k)) for k in ks}
  out["mrr_at_10"] = float(np.mean(np.where(ranks < 10, 1.0 / (ranks + 1), 0.0)))
  return out


def recall_curve(ranks: np.ndarray, max_k: int) -> np.ndarray:
  """Recall@k for k = 1..max_k (the figure's curve)."""
  counts = np.bincount(np.minimum(np.asarray(ranks), max_k), minlength=max_k + 1)[:max_k]
  return np.cumsum(counts) / max(len(ranks), 1)

"""Visual similarity search: same-class precision@k of representations and search backends.

A query's neighbours are searched in a database that contains the query itself; it is
removed by id (not by position, so duplicates and ties do not matter), which is why every
search asks for ``k + 1`` hits. Precision@k is the fraction of the ``k`` neighbours with the
query's label, averaged over queries (the metric of image retrieval on labelled data sets).
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

import numpy as np

from ycng_jax.search import Index


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
  """Rows scaled to unit length (float32), so inner product is cosine similarity."""
  x = np.asarray(x, np.float32).reshape(len(x), -1)
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)


def drop_self(ids: np.ndarray, query_ids: np.ndarray, k: int) -> np.ndarray:
  """The first ``k`` hits of each row of ``ids`` that are not the query's own id.

  Args:
    ids: (n, m) neighbour ids, best first, ``m >= k + 1``; ``-1`` (a missing hit of an IVF
      search) is kept and counts as a wrong neighbour.
    query_ids: (n,) database id of each query (or -1 when the query is not in the database).
  """
  ids, query_ids = np.asarray(ids), np.asarray(query_ids)
  if ids.ndim != 2 or query_ids.shape != (ids.shape[0],):
    raise ValueError(f"ids must be (n, m) and query_ids (n,); got {ids.shape} and "
                     f"{query_ids.shape}")
  if ids.shape[1] < k + 1:
    raise ValueError(f"need at least k+1={k + 1} hits per query to drop the query itself, got "
                     f"{ids.shape[1]}")
  keep = ids != query_ids[:, None]
  # stable order of the kept hits: position among kept = cumulative count
  order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
  return np.take_along_axis(ids, order, axis=1)


def precision_at_k(neighbour_ids: np.ndarray, query_labels: np.ndarray,
                   database_labels: np.ndarray, k: int | None = None) -> float:
  """Mean fraction of each query's first ``k`` neighbours that share its label.

  A missing neighbour (id ``-1``) counts as wrong.
  """
  neighbour_ids = np.asarray(neighbour_ids)
  k = neighbour_ids.shape[1] if k is None else k
  if not 1 <= k <= neighbour_ids.shape[1]:
    raise ValueError(f"k={k} must be in 1..{neighbour_ids.shape[1]} (neighbours per query)")
  ids = neighbour_ids[:, :k]
  database_labels = np.asarray(database_labels)
  labels = np.where(ids >= 0, database_labels[np.clip(ids, 0, None)], -1)
  return float(np.mean(labels == np.asarray(query_labels)[:, None]))


def search_without_self(index: Index, queries: np.ndarray, query_ids: np.ndarray, k: int
                        ) -> tuple[np.ndarray, float]:
  """``k`` neighbours of each query, the query itself excluded; and queries per second."""
  index.search(queries[:min(len(queries), 8)], k + 1)  # compile / warm caches outside the clock
  start = time.perf_counter()
  _, ids = index.search(queries, k + 1)
  seconds = time.perf_counter() - start
  return drop_self(ids, query_ids, k), len(queries) / max(seconds, 1e-9)


def recall_against(ids: np.ndarray, exact_ids: np.ndarray) -> float:
  """Fraction of the exact neighbours that an approximate search also returned."""
  hits = [len(set(a.tolist()) & set(b.tolist())) for a, b in zip(ids, exact_ids)]
  return float(np.sum(hits) / exact_ids.size)


def compare_backends(vectors: np.ndarray, labels: np.ndarray, query_ids: np.ndarray,
                     backends: Mapping[str, Mapping[str, Any]], k: int = 10,
                     metric: str = "ip", reference: str = "exact") -> list[dict[str, Any]]:
  """Build each backend over ``vectors`` and search the rows ``query_ids`` (themselves excluded).

  Args:
    backends: ``{row name: {"backend": Index backend, **its parameters}}``.
    reference: the row whose neighbours define ``recall_at_k`` (the exact search); it runs first.
  Returns:
    One dict per backend (reference first): precision@k, recall against the reference,
    queries/s, build seconds.
  """
  if reference not in backends:
    raise ValueError(f"backends {sorted(backends)} lack the reference {reference!r} (an exact "
                     "search) that recall is measured against")
  queries = np.ascontiguousarray(vectors[query_ids])
  rows, reference_ids = [], None
  for name in [reference] + [n for n in backends if n != reference]:
    spec = dict(backends[name])
    backend = spec.pop("backend")
    start = time.perf_counter()
    index = Index(vectors.shape[1], metric=metric, backend=backend, **spec)
    index.add(vectors)
    build = time.perf_counter() - start
    ids, qps = search_without_self(index, queries, query_ids, k)
    reference_ids = ids if reference_ids is None else reference_ids
    rows.append({"name": name, "backend": backend, "params": index.params,
                 f"precision_at_{k}": precision_at_k(ids, labels[query_ids], labels, k),
                 f"recall_at_{k}_vs_{reference}": recall_against(ids, reference_ids),
                 "queries_per_second": qps, "build_seconds": build, "ntotal": index.ntotal})
    del index
  return rows


def plot_neighbours(images: np.ndarray, labels: np.ndarray, query_ids: Sequence[int],
                    neighbour_ids: np.ndarray, path: str, *, class_names: Sequence[str] | None = None,
                    title: str = "") -> None:
  """A grid: each row a query (left) and its neighbours, framed green (same class) or red."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  n, k = len(query_ids), neighbour_ids.shape[1]
  fig, axes = plt.subplots(n, k + 1, figsize=(1.1 * (k + 1), 1.2 * n), squeeze=False)
  name = (lambda c: class_names[c]) if class_names is not None else str
  for row, (query, hits) in enumerate(zip(query_ids, neighbour_ids)):
    cells = [(query, "black")] + [(h, "green" if labels[h] == labels[query] else "red")
                                  for h in hits]
    for col, (image_id, colour) in enumerate(cells):
      ax = axes[row, col]
      ax.imshow(np.asarray(images[image_id]).squeeze(), cmap="gray")
      ax.set_xticks([])
      ax.set_yticks([])
      for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(2.5 if col else 1.0)
      if col == 0:
        ax.set_ylabel(name(int(labels[image_id])), fontsize=7)
  if title:
    fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)

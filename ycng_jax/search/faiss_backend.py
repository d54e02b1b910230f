"""faiss indexes behind the :class:`~ycng_jax.search.Index` API.

faiss is the reference the XLA kernels are measured against and the choice on
CPU for approximate search (IVF, HNSW, product quantisation). Ids are the
sequential ids faiss assigns on ``add`` (0..ntotal-1 in insertion order), the
same as the XLA backends, so no id map is needed.
"""

from __future__ import annotations

import warnings
from typing import Any

import faiss
import numpy as np

from ycng_jax.errors import UserError

# faiss' own rule of thumb: k-means wants this many training vectors per centroid.
POINTS_PER_CENTROID = 39


class FewTrainingPointsWarning(UserWarning):
  """An IVF or PQ index was trained on fewer vectors than faiss recommends."""


# Backend name -> its parameters and their defaults.
# Parameters that only steer search, so they may change on a built index.
FAISS_SEARCH_PARAMS = ("nprobe", "ef_search")

FAISS_DEFAULTS: dict[str, dict[str, Any]] = {
    "faiss-flat": {},
    "faiss-ivf": {"nlist": 100, "nprobe": 8},
    "faiss-hnsw": {"M": 32, "ef_search": 64, "ef_construction": 40},
    "faiss-ivfpq": {"nlist": 100, "m": 8, "nbits": 8, "nprobe": 8},
}


def _faiss_metric(metric: str) -> int:
  return faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2


class FaissBackend:
  """One faiss index plus the settings it was built with."""

  def __init__(self, dim: int, metric: str, backend: str, params: dict[str, Any],
               index: faiss.Index | None = None):
    self.dim = dim
    self.metric = metric
    self.backend = backend
    self.params = params
    self._check_params()
    self._index = index if index is not None else self._build()
    self._apply_search_params()

  def _check_params(self) -> None:
    p = self.params
    for name, value in p.items():
      if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise UserError(f"{self.backend}: {name} must be a positive integer, got {value!r}.")
    if self.backend == "faiss-ivfpq":
      if self.dim % p["m"]:
        raise UserError(f"faiss-ivfpq: m={p['m']} sub-quantizers must divide dim={self.dim}; "
                        "pick m among the divisors of dim.")
      if p["nbits"] > 16:
        raise UserError(f"faiss-ivfpq: nbits={p['nbits']} is too large (use 4..16, usually 8).")
    if "nprobe" in p and p["nprobe"] > p["nlist"]:
      raise UserError(f"{self.backend}: nprobe={p['nprobe']} exceeds nlist={p['nlist']}.")

  def _build(self) -> faiss.Index:
    metric = _faiss_metric(self.metric)
    p = self.params
    if self.backend == "faiss-flat":
      return faiss.IndexFlat(self.dim, metric)
    if self.backend == "faiss-hnsw":
      index = faiss.IndexHNSWFlat(self.dim, p["M"], metric)
      index.hnsw.efConstruction = p["ef_construction"]
      return index
    # The IVF indexes keep a Python reference to their coarse quantizer.
    quantizer = faiss.IndexFlat(self.dim, metric)
    if self.backend == "faiss-ivf":
      return faiss.IndexIVFFlat(quantizer, self.dim, p["nlist"], metric)
    if self.backend == "faiss-ivfpq":
      return faiss.IndexIVFPQ(quantizer, self.dim, p["nlist"], p["m"], p["nbits"], metric)
    raise ValueError(f"unknown faiss backend {self.backend!r}")

  def _apply_search_params(self) -> None:
    if "nprobe" in self.params:
      self._index.nprobe = self.params["nprobe"]
    if self.backend == "faiss-hnsw":
      self._index.hnsw.efSearch = self.params["ef_search"]

  def set_search_params(self, **params: Any) -> None:
    previous = self.params
    self.params = {**previous, **params}
    try:
      self._check_params()
    except ValueError:
      self.params = previous  # a rejected change leaves the index as it was
      raise
    self._apply_search_params()

  def min_training_points(self) -> int:
    """Fewest vectors faiss can train on (k-means needs one point per centroid)."""
    need = self.params.get("nlist", 1)
    if self.backend == "faiss-ivfpq":
      need = max(need, 2**self.params["nbits"])
    return need

  @property
  def ntotal(self) -> int:
    return int(self._index.ntotal)

  @property
  def is_trained(self) -> bool:
    return bool(self._index.is_trained)

  def train(self, vectors: np.ndarray) -> None:
    if self.is_trained:
      return
    need = self.min_training_points()
    if len(vectors) < need:
      raise ValueError(
          f"{self.backend} needs at least {need} training vectors (nlist={self.params.get('nlist')}"
          + (f", 2**nbits={2**self.params['nbits']}" if "nbits" in self.params else "")
          + f") but got {len(vectors)}; call .train(x) with more vectors first or lower nlist.")
    self._warn_if_few(len(vectors))
    self._index.train(vectors)

  def _warn_if_few(self, n: int) -> None:
    """faiss prints its own warning for this straight to the process' stderr, where Python
    cannot filter or capture it; ours is a Python warning, and faiss' is switched off."""
    quantizers = []
    if "nlist" in self.params:
      quantizers.append(("nlist", self.params["nlist"], self._index.cp))
    if self.backend == "faiss-ivfpq":
      quantizers.append(("2**nbits", 2**self.params["nbits"], self._index.pq.cp))
    for name, centroids, clustering in quantizers:
      clustering.min_points_per_centroid = 1
      if n < POINTS_PER_CENTROID * centroids:
        warnings.warn(
            f"{self.backend}: training {centroids} centroids ({name}) on {n} vectors; faiss "
            f"recommends at least {POINTS_PER_CENTROID * centroids} ({POINTS_PER_CENTROID} per "
            f"centroid) for good recall. Train on more vectors or lower {name.split('*')[-1]}.",
            FewTrainingPointsWarning, stacklevel=5)

  def add(self, vectors: np.ndarray) -> None:
    self.train(vectors)
    self._index.add(vectors)

  def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores, ids = self._index.search(queries, k)
    return scores.astype(np.float32, copy=False), ids.astype(np.int64, copy=False)

  def payload(self) -> bytes:
    return faiss.serialize_index(self._index).tobytes()

  @classmethod
  def from_payload(cls, dim: int, metric: str, backend: str, params: dict[str, Any],
                   payload: bytes) -> "FaissBackend":
    index = faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8))
    if index.d != dim:
      raise ValueError(f"saved faiss index has dim {index.d}, header says {dim}; file is damaged.")
    return cls(dim, metric, backend, params, index=index)

"""``Index``: one similarity-search API over XLA kernels and faiss.

Every backend shares the conventions of faiss, so results can be compared
(and backends swapped) without changing calling code:

* ``metric="ip"`` returns inner products, largest first; ``metric="l2"``
  returns squared Euclidean distances, smallest first.
* ids are int64 and global: 0..ntotal-1 in insertion order, across any
  number of ``add`` calls.
* scores are float32 numpy arrays, ids int64 numpy arrays, both ``(n, k)``.

Bad input is rejected at this boundary with an error that says what was
expected, so the kernels below never see it.
"""

from __future__ import annotations

import os
from typing import Any

import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from ycng_jax.errors import UserError, UserTypeError
from ycng_jax.search import knn
from ycng_jax.search.faiss_backend import FAISS_DEFAULTS, FAISS_SEARCH_PARAMS, FaissBackend
from ycng_jax.search.storage import IndexFormatError, read_container, write_container
from ycng_jax.search.xla_backend import XLA_DEFAULTS, XLA_SEARCH_PARAMS, XlaBackend

BACKENDS: dict[str, dict[str, Any]] = {**XLA_DEFAULTS, **FAISS_DEFAULTS}


def check_backend(backend: Any) -> str:
  """``backend`` if it names an ``Index`` backend; lets a caller check before hours of work."""
  if not isinstance(backend, str) or backend not in BACKENDS:
    raise UserError(f"backend must be one of {sorted(BACKENDS)}, got {backend!r}.")
  return backend


def _as_matrix(x: Any, dim: int, what: str) -> np.ndarray:
  """Checks rank, dtype, width and finiteness; returns a C-contiguous float32 copy-if-needed."""
  array = np.asarray(x)
  if not jnp.issubdtype(array.dtype, jnp.floating):
    raise UserTypeError(f"{what} must be a floating-point array, got dtype {array.dtype}; "
                    "convert with .astype(np.float32).")
  if array.ndim != 2:
    raise UserError(f"{what} must be 2-D (n, {dim}), got shape {array.shape}"
                     + ("; for one vector use x[None, :]." if array.ndim == 1 else "."))
  if array.shape[1] != dim:
    raise UserError(f"{what} have dimension {array.shape[1]} but the index was built for "
                     f"dim={dim}.")
  array = np.ascontiguousarray(array, dtype=np.float32)
  finite = np.isfinite(array).all(axis=1)
  if not finite.all():
    bad = np.flatnonzero(~finite)
    raise UserError(f"{what} contain NaN or inf in {len(bad)} row(s) (first: row {bad[0]}) "
                     "(or overflow float32); clean or drop those rows first.")
  return array


class Index:
  """A k-nearest-neighbour index.

  Example::

    index = Index(128, metric="ip", backend="exact")
    index.add(database)                    # (n, 128) float32
    scores, ids = index.search(queries, 10)

  Backends and their parameters (defaults in ``BACKENDS``):

  * ``"exact"``: brute force on the mesh (``block`` rows per step,
    ``group`` columns per group of the two-stage top-k, ``query_batch``
    queries per call: ``None`` picks sizes tuned for the platform;
    ``compute_dtype`` ``"float32"`` or ``"bfloat16"``), sharded over ``mesh``
    (default: all devices).
  * ``"approx"``: the same with ``jax.lax.approx_max_k`` (``recall_target``);
    exact on CPU, fast on TPU.
  * ``"faiss-flat"``; ``"faiss-ivf"`` (``nlist``, ``nprobe``);
    ``"faiss-hnsw"`` (``M``, ``ef_search``, ``ef_construction``);
    ``"faiss-ivfpq"`` (``nlist``, ``m``, ``nbits``, ``nprobe``). Trained on
    the first ``add`` unless ``train`` was called. IVF searches may return
    fewer than ``k`` hits for a query when ``nprobe`` lists hold too few
    vectors; missing hits have id ``-1``, as in faiss.
  """

  def __init__(self, dim: int, *, metric: str = "ip", backend: str = "exact",
               mesh: Mesh | None = None, **params: Any):
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool) or dim < 1:
      raise UserError(f"dim must be a positive integer, got {dim!r}.")
    if metric not in knn.METRICS:
      raise UserError(f"metric must be one of {knn.METRICS}, got {metric!r}.")
    check_backend(backend)
    unknown = set(params) - set(BACKENDS[backend])
    if unknown:
      raise UserTypeError(f"backend {backend!r} takes parameters {sorted(BACKENDS[backend])}, not "
                      f"{sorted(unknown)}.")
    if mesh is not None and backend not in XLA_DEFAULTS:
      raise UserTypeError(f"mesh applies to the XLA backends {sorted(XLA_DEFAULTS)}, not {backend!r}.")
    self.dim = int(dim)
    self.metric = metric
    self.backend = backend
    merged = {**BACKENDS[backend], **params}
    if backend in XLA_DEFAULTS:
      self._store: XlaBackend | FaissBackend = XlaBackend(self.dim, metric, backend, merged, mesh)
    else:
      self._store = FaissBackend(self.dim, metric, backend, merged)

  @property
  def params(self) -> dict[str, Any]:
    """The backend parameters in effect (defaults filled in)."""
    return dict(self._store.params)

  @property
  def ntotal(self) -> int:
    """Vectors added so far."""
    return self._store.ntotal

  @property
  def is_trained(self) -> bool:
    return self._store.is_trained

  def __len__(self) -> int:
    return self.ntotal

  def __repr__(self) -> str:
    return (f"Index(dim={self.dim}, metric={self.metric!r}, backend={self.backend!r}, "
            f"ntotal={self.ntotal}, params={self.params})")

  def set_search_params(self, **params: Any) -> "Index":
    """Changes search-time parameters (``nprobe``, ``ef_search``, ``query_batch``,
    ``recall_target``) of a built index, e.g. to sweep recall against speed."""
    allowed = set(BACKENDS[self.backend]) & set(FAISS_SEARCH_PARAMS + XLA_SEARCH_PARAMS)
    unknown = set(params) - allowed
    if unknown:
      raise UserTypeError(f"backend {self.backend!r} can change only {sorted(allowed)} after "
                      f"construction, not {sorted(unknown)}.")
    self._store.set_search_params(**params)
    return self

  def train(self, vectors: Any) -> "Index":
    """Trains the backend (IVF / PQ codebooks) on ``vectors`` without adding them."""
    self._store.train(_as_matrix(vectors, self.dim, "training vectors"))
    return self

  def add(self, vectors: Any) -> "Index":
    """Appends ``(n, dim)`` vectors; they get ids ``ntotal .. ntotal + n - 1``."""
    vectors = _as_matrix(vectors, self.dim, "vectors")
    if len(vectors):
      self._store.add(vectors)
    return self

  def search(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest stored vectors of each query.

    Args:
      queries: ``(n, dim)`` floating-point array.
      k: neighbours per query, ``1 <= k <= ntotal``.

    Returns:
      ``(scores, ids)``, both ``(n, k)``: float32 similarities (descending,
      ``"ip"``) or squared distances (ascending, ``"l2"``), and int64 ids.
    """
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
      raise UserError(f"k must be a positive integer, got {k!r}.")
    if self.ntotal == 0:
      raise UserError("the index is empty: add vectors before searching.")
    if k > self.ntotal:
      raise UserError(f"k={k} is larger than the index ({self.ntotal} vectors); ask for at most "
                       f"{self.ntotal} neighbours.")
    queries = _as_matrix(queries, self.dim, "queries")
    if len(queries) == 0:
      return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
    return self._store.search(queries, int(k))

  def save(self, path: str | os.PathLike) -> None:
    """Writes the index to ``path`` (format: :mod:`ycng_jax.search.storage`)."""
    header = {"dim": self.dim, "metric": self.metric, "backend": self.backend,
              "params": self.params, "ntotal": self.ntotal}
    write_container(path, header, self._store.payload())

  @classmethod
  def load(cls, path: str | os.PathLike, *, mesh: Mesh | None = None) -> "Index":
    """Reads an index written by :meth:`save`; ``mesh`` places an XLA backend."""
    header, payload = read_container(path)
    try:
      dim, metric, backend = header["dim"], header["metric"], header["backend"]
      params, ntotal = header["params"], header["ntotal"]
    except KeyError as e:
      raise IndexFormatError(f"{os.fspath(path)!r} has a header without {e}; the file is "
                             "damaged.") from e
    index = cls.__new__(cls)
    index.dim, index.metric, index.backend = dim, metric, backend
    if backend in XLA_DEFAULTS:
      index._store = XlaBackend.from_payload(dim, metric, backend, params, payload, mesh=mesh)
    elif backend in FAISS_DEFAULTS:
      index._store = FaissBackend.from_payload(dim, metric, backend, params, payload)
    else:
      raise IndexFormatError(f"{os.fspath(path)!r} holds an unknown backend {backend!r}.")
    if index.ntotal != ntotal:
      raise IndexFormatError(f"{os.fspath(path)!r} announces {ntotal} vectors but holds "
                             f"{index.ntotal}; the file is damaged.")
    return index

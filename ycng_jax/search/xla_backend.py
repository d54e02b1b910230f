"""The ``exact`` and ``approx`` backends: vectors on the mesh, searched by :mod:`knn`.

Vectors are kept on the host (float32, grown geometrically so repeated
``add`` calls stay cheap) and placed on the mesh lazily, at the first search
after a change, so a run of ``add`` calls costs one transfer.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ycng_jax.errors import UserError
from ycng_jax.search import knn
from ycng_jax.train.mesh import make_mesh

# ``None`` means "pick for the platform at search time" (see ``_AUTO``), so an
# index saved on a CPU and loaded on a GPU gets the GPU's sizes.
XLA_DEFAULTS: dict[str, dict[str, Any]] = {
    "exact": {"block": None, "group": None, "superblock": None, "query_batch": None,
              "compute_dtype": "float32"},
    "approx": {"block": None, "recall_target": 0.95, "query_batch": None,
               "compute_dtype": "float32"},
}
# Tuned on a 2-core CPU (scripts/bench/knn_vs_faiss.py): a (block x
# query_batch) score tile of ~2 MB stays in cache for the group max, and the
# two-pass selection (superblock > 0) pays two small top_k per query per superblock.
# Accelerators want large tiles to fill the matmul units and the one-pass
# selection (superblock 0), whose memory does not grow with the query batch
# times the group size; approx_max_k wants whole blocks.
_AUTO = {
    "cpu": {"block": 2048, "group": 16, "superblock": 262144, "query_batch": 256},
    "accelerator": {"block": 65536, "group": 64, "superblock": 0, "query_batch": 4096},
}
_COMPUTE_DTYPES = ("float32", "bfloat16")
# Parameters that only steer search, so they may change on a built index.
XLA_SEARCH_PARAMS = ("query_batch", "recall_target")


def _dtype_name(dtype: Any) -> str:
  try:
    name = jnp.dtype(dtype).name
  except TypeError:  # not a dtype at all: the same error as for a dtype we do not compute in
    name = None
  if name not in _COMPUTE_DTYPES:
    raise UserError(f"compute_dtype must be one of {_COMPUTE_DTYPES} (or the jnp dtype), got "
                    f"{dtype!r}.")
  return name


def _query_bucket(num_queries: int, query_batch: int) -> int:
  """Padded query-batch size: a power of two (>= 8) so few shapes get compiled."""
  bucket = 8
  while bucket < min(num_queries, query_batch):
    bucket *= 2
  return min(bucket, query_batch)


class XlaBackend:
  """Exact (two-stage top-k) or approximate (``approx_max_k``) kNN on the mesh."""

  def __init__(self, dim: int, metric: str, backend: str, params: dict[str, Any],
               mesh: Mesh | None = None):
    self.dim = dim
    self.metric = metric
    self.backend = backend
    self.params = self._checked(params)
    self.mesh = mesh if mesh is not None else make_mesh()
    self._vectors = np.zeros((0, dim), np.float32)
    self._ntotal = 0
    self._placed: tuple[knn.KernelPlan, jax.Array, jax.Array] | None = None

  def _checked(self, params: dict[str, Any]) -> dict[str, Any]:
    backend = self.backend
    params = dict(params)
    params["compute_dtype"] = _dtype_name(params["compute_dtype"])
    # name -> (smallest allowed value, what to call it in the error)
    sizes = {"block": (1, "a positive integer"), "query_batch": (1, "a positive integer")}
    if backend == "exact":
      sizes["group"] = (1, "a positive integer")
      sizes["superblock"] = (0, "a non-negative integer (0 = one-pass selection)")
    for name, (smallest, kind) in sizes.items():
      value = params.get(name)
      if value is None:
        continue
      if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < smallest:
        raise UserError(f"{backend}: {name} must be {kind}, got {value!r}.")
    if backend == "approx" and not 0.0 < float(params["recall_target"]) <= 1.0:
      raise UserError(f"approx: recall_target must be in (0, 1], got {params['recall_target']}.")
    return params

  def set_search_params(self, **params: Any) -> None:
    self.params = self._checked({**self.params, **params})

  def _setting(self, name: str) -> int:
    """A size parameter, or the platform's tuned default when it is ``None``."""
    if self.params.get(name) is not None:
      return int(self.params[name])
    platform = self.mesh.devices.flat[0].platform
    return _AUTO["cpu" if platform == "cpu" else "accelerator"][name]

  @property
  def ntotal(self) -> int:
    return self._ntotal

  @property
  def is_trained(self) -> bool:
    return True

  def train(self, vectors: np.ndarray) -> None:
    """Nothing to learn for brute-force search."""
    del vectors

  @property
  def vectors(self) -> np.ndarray:
    return self._vectors[:self._ntotal]

  def add(self, vectors: np.ndarray) -> None:
    needed = self._ntotal + len(vectors)
    if needed > len(self._vectors):
      grown = np.zeros((max(needed, 2 * len(self._vectors)), self.dim), np.float32)
      grown[:self._ntotal] = self.vectors
      self._vectors = grown
    self._vectors[self._ntotal:needed] = vectors
    self._ntotal = needed
    self._placed = None

  def _placement(self, k: int) -> tuple[knn.KernelPlan, jax.Array, jax.Array]:
    num_devices = self.mesh.shape[knn.DATA_AXIS]
    group = self._setting("group") if self.backend == "exact" else 1
    superblock = self._setting("superblock") if self.backend == "exact" else 0
    plan = knn.plan_kernel(self._ntotal, num_devices, block=self._setting("block"), group=group,
                           min_block=k, max_superblock=superblock)
    if self._placed is None or self._placed[0] != plan:
      database, bias = knn.place_database(self.vectors, self.metric, plan, self.mesh,
                                          compute_dtype=jnp.dtype(self.params["compute_dtype"]))
      self._placed = (plan, database, bias)
    return self._placed

  def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    plan, database, bias = self._placement(k)
    query_batch = self._setting("query_batch")
    bucket = _query_bucket(len(queries), query_batch)
    replicated = NamedSharding(self.mesh, P())
    # Dispatch every batch before reading any back, so device work overlaps
    # the host-side padding and transfers.
    pending = []
    for start in range(0, len(queries), bucket):
      batch = queries[start:start + bucket]
      padded = np.zeros((bucket, self.dim), np.float32)
      padded[:len(batch)] = batch
      pending.append((len(batch), knn.search_sharded(
          jax.device_put(padded, replicated), database, bias, mesh=self.mesh, k=k,
          block=plan.block, group=plan.group, superblock=plan.superblock, metric=self.metric,
          approx=self.backend == "approx",
          recall_target=float(self.params.get("recall_target", 0.95)))))
    scores = [np.asarray(s)[:n] for n, (s, _) in pending]
    ids = [np.asarray(i)[:n].astype(np.int64) for n, (_, i) in pending]
    return np.concatenate(scores), np.concatenate(ids)

  def payload(self) -> bytes:
    return np.ascontiguousarray(self.vectors, dtype="<f4").tobytes()

  @classmethod
  def from_payload(cls, dim: int, metric: str, backend: str, params: dict[str, Any],
                   payload: bytes, mesh: Mesh | None = None) -> "XlaBackend":
    if len(payload) % (4 * dim):
      raise ValueError(f"saved vectors ({len(payload)} bytes) are not whole rows of dim {dim}; "
                       "the file is damaged.")
    store = cls(dim, metric, backend, params, mesh=mesh)
    store.add(np.frombuffer(payload, dtype="<f4").reshape(-1, dim).astype(np.float32))
    return store

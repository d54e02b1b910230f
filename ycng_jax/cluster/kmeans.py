"""k-means as one jitted XLA program over rows sharded on the device mesh.

The data are split by rows over the mesh axis ``data``; every device works on its
own shard inside ``jax.shard_map`` and only small per-cluster statistics cross
devices (``psum`` of (k, d) sums and (k,) counts, ``all_gather`` of a handful of
k-means++ candidates).  Rows are padded to a multiple of the device count and a
0/1 mask keeps the padding out of every sum, so any row count works.

Random numbers are drawn per *global row index* (``fold_in(key, row)``), never per
shard, so the same seed gives the same centres on 1 device or on 8.

Distances are computed on centred data (as scikit-learn does), and data whose magnitudes
would overflow or underflow float32 once squared is first scaled by a power of two, which
is exact, so any finite float32 data clusters as it would at a moderate scale.

The functional core is :func:`kmeans` (and :func:`assign`); :class:`KMeans` wraps it
in the familiar scikit-learn interface.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec as P
from sklearn.exceptions import ConvergenceWarning

from ycng_jax.checks import check_mesh, check_seed, real_number, seed_key, whole_number
from ycng_jax.train.mesh import DATA_AXIS, data_sharding, make_mesh, replicated


# Rows per block in a Lloyd step: 2048 x 784 float32 rows is 6 MB, about a CPU's L2+L3 share.
DEFAULT_BLOCK_ROWS = 2048
# Data whose largest magnitude lies in this range is used as it is: centred, its squared
# distances and their sums stay far from float32's overflow (3e38) and underflow (1e-38, and
# XLA on CPU flushes smaller values to 0). Other data is scaled by a power of two on the host
# first; that is exact, so skipping it here saves a pass over the data and changes nothing.
UNSCALED_PEAK = (2.0**-20, 2.0**20)


class KMeansResult(NamedTuple):
  """Best run of :func:`kmeans` (the lowest inertia over ``n_init`` restarts)."""
  centers: jax.Array  # (k, d) float32
  labels: np.ndarray  # (n,) int32, for the rows that were fitted
  inertia: float  # sum of squared distances of rows to their centre
  n_iter: int  # Lloyd iterations the best restart ran
  all_inertia: np.ndarray  # (n_init,) float64 inertia of every restart, for inspection


# ----------------------------------------------------------------------------- helpers


def _sq_distances(x: jax.Array, x_sq: jax.Array, centers: jax.Array) -> jax.Array:
  """Squared Euclidean distances (n, k) via the matmul expansion, clamped at 0."""
  c_sq = jnp.sum(centers * centers, axis=-1)
  cross = jnp.dot(x, centers.T, precision=jax.lax.Precision.HIGHEST)
  return jnp.maximum(x_sq[:, None] - 2.0 * cross + c_sq[None, :], 0.0)


def _global_row_ids(n_local: int) -> jax.Array:
  """Global index of each local row; padding sits at the end, so real rows keep theirs."""
  return jax.lax.axis_index(DATA_AXIS) * n_local + jnp.arange(n_local)


def _row_gumbel(key: jax.Array, row_ids: jax.Array) -> jax.Array:
  """One Gumbel draw per global row: independent of how rows are sharded."""
  return jax.vmap(lambda r: jax.random.gumbel(jax.random.fold_in(key, r)))(row_ids)


def _global_top_points(scores: jax.Array, x: jax.Array, count: int) -> jax.Array:
  """The ``count`` rows with the highest score over all shards, as (count, d) points.

  Each shard offers its local best; the union holds the global best because no
  shard can hold more than ``count`` of them.
  """
  local_count = min(count, scores.shape[0])
  values, idx = jax.lax.top_k(scores, local_count)
  points = x[idx]
  all_values = jax.lax.all_gather(values, DATA_AXIS).reshape(-1)
  all_points = jax.lax.all_gather(points, DATA_AXIS).reshape(-1, x.shape[-1])
  _, best = jax.lax.top_k(all_values, count)
  return all_points[best]


# ----------------------------------------------------------------------------- per shard


def _kmeans_plusplus_shard(key, x, x_sq, mask, n_clusters: int, n_trials: int):
  """Greedy k-means++ (Arthur & Vassilvitskii 2007; scikit-learn's variant).

  Each new centre is the best of ``n_trials`` candidates drawn with probability
  proportional to the squared distance to the nearest chosen centre (Gumbel-top-k
  sampling); "best" is the one that lowers the total potential most.
  """
  n_local = x.shape[0]
  row_ids = _global_row_ids(n_local)
  valid = mask > 0
  first_key, rest_key = jax.random.split(key)
  # First centre: uniform over the real rows.
  scores = jnp.where(valid, _row_gumbel(first_key, row_ids), -jnp.inf)
  first = _global_top_points(scores, x, 1)[0]
  centers = jnp.zeros((n_clusters, x.shape[1]), x.dtype).at[0].set(first)
  min_d = _sq_distances(x, x_sq, first[None])[:, 0] * mask

  def add_center(i, carry):
    centers, min_d = carry
    noise = _row_gumbel(jax.random.fold_in(rest_key, i), row_ids)
    scores = jnp.where(valid & (min_d > 0), jnp.log(min_d) + noise, -jnp.inf)
    candidates = _global_top_points(scores, x, n_trials)  # (t, d)
    cand_d = jnp.minimum(min_d[:, None], _sq_distances(x, x_sq, candidates))
    potential = jax.lax.psum(jnp.sum(cand_d * mask[:, None], axis=0), DATA_AXIS)
    best = jnp.argmin(potential)
    return centers.at[i].set(candidates[best]), cand_d[:, best] * mask

  centers, _ = jax.lax.fori_loop(1, n_clusters, add_center, (centers, min_d))
  return centers


def _block_stats(x, x_sq, mask, centers):
  """Cluster sums (k, d), counts (k,) and inertia of one block of rows (no communication)."""
  d2 = _sq_distances(x, x_sq, centers)
  labels = jnp.argmin(d2, axis=1)
  one_hot = jax.nn.one_hot(labels, centers.shape[0], dtype=x.dtype) * mask[:, None]
  sums = jnp.dot(one_hot.T, x, precision=jax.lax.Precision.HIGHEST)
  return sums, jnp.sum(one_hot, axis=0), jnp.sum(jnp.min(d2, axis=1) * mask)


def _assign_shard(x, x_sq, mask, centers, block_rows: int):
  """psum'd cluster sums, counts and inertia of the whole data under ``centers``.

  The shard is walked in blocks of ``block_rows`` rows so that both matmuls of a block
  (distances, then sums) read it while it is still in cache: one pass over memory per
  iteration instead of two, which is what bounds k-means with few clusters.
  """
  n_local = x.shape[0]
  if block_rows >= n_local or n_local % block_rows:
    sums, counts, inertia = _block_stats(x, x_sq, mask, centers)
  else:
    n_blocks = n_local // block_rows
    blocks = (x.reshape(n_blocks, block_rows, -1), x_sq.reshape(n_blocks, -1),
              mask.reshape(n_blocks, -1))

    def body(carry, block):
      return jax.tree.map(jnp.add, carry, _block_stats(*block, centers)), None

    zeros = (jnp.zeros((centers.shape[0], x.shape[1]), x.dtype),
             jnp.zeros((centers.shape[0],), x.dtype), jnp.zeros((), x.dtype))
    (sums, counts, inertia), _ = jax.lax.scan(body, zeros, blocks)
  return (jax.lax.psum(sums, DATA_AXIS), jax.lax.psum(counts, DATA_AXIS),
          jax.lax.psum(inertia, DATA_AXIS))


def _lloyd_shard(x, x_sq, mask, centers, max_iter: int, tol_sq, block_rows: int):
  """Lloyd iterations until the total squared centre shift is <= ``tol_sq``.

  An empty cluster keeps its previous centre (it is rare after k-means++).
  """

  def cond(carry):
    _, shift, it = carry
    return (it < max_iter) & (shift > tol_sq)

  def body(carry):
    centers, _, it = carry
    sums, counts, _ = _assign_shard(x, x_sq, mask, centers, block_rows)
    new = jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1.0)[:, None], centers)
    shift = jnp.sum((new - centers) ** 2)
    return new, shift, it + 1

  centers, _, n_iter = jax.lax.while_loop(
      cond, body, (centers, jnp.asarray(jnp.inf, x.dtype), jnp.asarray(0, jnp.int32)))
  _, _, inertia = _assign_shard(x, x_sq, mask, centers, block_rows)
  return centers, inertia, n_iter


def _fit_shard(keys, x, mask, tol, *, n_clusters: int, max_iter: int, n_trials: int,
               block_rows: int):
  """All restarts on one shard (vmapped, so their matmuls fuse into one), on centred data."""
  x_sq = jnp.sum(x * x, axis=1)
  # scikit-learn scales tol by the mean per-feature variance of the data.
  count = jax.lax.psum(jnp.sum(mask), DATA_AXIS)
  var = jax.lax.psum(jnp.sum(x * x * mask[:, None], axis=0), DATA_AXIS) / count
  tol_sq = tol * jnp.mean(var)

  def one_run(key):
    init = _kmeans_plusplus_shard(key, x, x_sq, mask, n_clusters, n_trials)
    return _lloyd_shard(x, x_sq, mask, init, max_iter, tol_sq, block_rows)

  return jax.vmap(one_run)(keys)


# ----------------------------------------------------------------------------- compiled programs


@functools.lru_cache(maxsize=32)
def _compiled_centre(mesh: Mesh):
  """``(x - mean, mean)`` over the real rows. Distances are computed on centred data: their
  matmul expansion would lose to a common offset the digits that tell points apart. ``x`` is
  donated, so the centred rows take its place instead of doubling the data on the devices."""

  def body(x, mask):
    count = jax.lax.psum(jnp.sum(mask), DATA_AXIS)
    mean = jax.lax.psum(jnp.sum(x * mask[:, None], axis=0), DATA_AXIS) / count
    return (x - mean) * mask[:, None], mean

  sharded = jax.shard_map(body, mesh=mesh, in_specs=(P(DATA_AXIS), P(DATA_AXIS)),
                          out_specs=(P(DATA_AXIS), P()))
  return jax.jit(sharded, donate_argnums=0)


# check_vma=False: the centres come out of ``all_gather`` + ``top_k`` and are equal on
# every device by construction, which the replication checker cannot prove.
@functools.lru_cache(maxsize=32)
def _compiled_fit(mesh: Mesh, n_clusters: int, max_iter: int, n_trials: int, block_rows: int):
  body = functools.partial(_fit_shard, n_clusters=n_clusters, max_iter=max_iter,
                           n_trials=n_trials, block_rows=block_rows)
  sharded = jax.shard_map(
      body, mesh=mesh, in_specs=(P(), P(DATA_AXIS), P(DATA_AXIS), P()),
      out_specs=(P(), P(), P()), check_vma=False)
  return jax.jit(sharded)


@functools.lru_cache(maxsize=32)
def _compiled_assign(mesh: Mesh):
  def body(x, mask, centers):
    x_sq = jnp.sum(x * x, axis=1)
    d2 = _sq_distances(x, x_sq, centers)
    labels = jnp.argmin(d2, axis=1).astype(jnp.int32)
    return labels, jax.lax.psum(jnp.sum(jnp.min(d2, axis=1) * mask), DATA_AXIS)

  sharded = jax.shard_map(
      body, mesh=mesh, in_specs=(P(DATA_AXIS), P(DATA_AXIS), P()),
      out_specs=(P(DATA_AXIS), P()), check_vma=False)
  return jax.jit(sharded)


def _check_rows(x, name: str = "x") -> tuple[np.ndarray, float]:
  """``x`` as float32 rows, and its largest magnitude."""
  x = np.asarray(x)
  if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
    raise ValueError(f"{name} must be a non-empty 2-D array (rows, features); got shape {x.shape}.")
  if not np.issubdtype(x.dtype, np.number):
    raise ValueError(f"{name} must be numeric; got dtype {x.dtype}.")
  x = x.astype(np.float32, copy=False)
  # NaN and inf show in the minimum or the maximum: two passes that allocate nothing.
  low, high = float(x.min()), float(x.max())
  if not (math.isfinite(low) and math.isfinite(high)):
    raise ValueError(f"{name} contains NaN or infinite values (or values beyond float32's range); "
                     "clean or impute them first.")
  return x, max(-low, high)


def _scale_exponent(peak: float) -> int:
  """``e`` such that data of largest magnitude ``peak``, times ``2**-e``, is safe to square:
  0 inside ``UNSCALED_PEAK`` (and for all-zero data), else the magnitude lands in [0.5, 1)."""
  if peak == 0.0 or UNSCALED_PEAK[0] <= peak <= UNSCALED_PEAK[1]:
    return 0
  return int(np.frexp(peak)[1])


def _scaled(x: np.ndarray, exponent: int) -> np.ndarray:
  # np.ldexp is exact also for subnormal values, which XLA on CPU would read as 0.
  return np.ldexp(x, -exponent).astype(np.float32, copy=False) if exponent else x


def block_layout(n: int, n_devices: int, block_rows: int) -> tuple[int, int]:
  """(rows per device, rows per block): blocks of at most ``block_rows`` that tile a shard.

  The block is shrunk to split the shard evenly, so padding stays under 8 rows a block.
  """
  per_device = math.ceil(n / n_devices)
  if per_device <= block_rows:
    return per_device, per_device
  n_blocks = math.ceil(per_device / block_rows)
  block = math.ceil(per_device / n_blocks / 8) * 8
  return block * n_blocks, block


def shard_rows(x: np.ndarray, mesh: Mesh, per_device: int | None = None
               ) -> tuple[jax.Array, jax.Array]:
  """Pads rows to ``per_device`` a device (default: an even split), shards them, adds a mask.

  Padding goes at the end, so a real row keeps its global index whatever the mesh size.
  """
  n = x.shape[0]
  n_dev = mesh.devices.size
  per_device = per_device or math.ceil(n / n_dev)
  padded = per_device * n_dev
  mask = np.zeros((padded,), np.float32)
  mask[:n] = 1.0
  if padded != n:
    x = np.concatenate([x, np.zeros((padded - n, x.shape[1]), x.dtype)])
  sharding = data_sharding(mesh)
  return jax.device_put(x, sharding), jax.device_put(mask, sharding)


# ----------------------------------------------------------------------------- public core


def kmeans(key: jax.Array, x, n_clusters: int, *, n_init: int = 1, max_iter: int = 300,
           tol: float = 1e-4, mesh: Mesh | None = None,
           block_rows: int = DEFAULT_BLOCK_ROWS) -> KMeansResult:
  """Fits k-means (k-means++ init + Lloyd) and returns the best of ``n_init`` restarts.

  Args:
    key: a ``jax.random`` key; the result depends on it alone (not on the mesh size).
    x: (n, d) data, any float dtype (computed in float32).
    n_clusters: number of centres ``k``; needs ``n >= k``.
    n_init: restarts with independent k-means++ seeds, run together (vmapped).
    max_iter: most Lloyd iterations per restart.
    tol: stop when the total squared centre shift is <= ``tol`` times the mean
      per-feature variance (scikit-learn's rule).  ``tol=0`` runs to a fixed point.
    mesh: device mesh; rows are sharded over its ``data`` axis.  Defaults to all devices.
    block_rows: rows per device handled at once in a Lloyd step (a cache-sized block);
      it changes speed, not the result beyond float rounding.
  """
  x, peak = _check_rows(x)
  n, _ = x.shape
  n_clusters, n_init, max_iter, tol = _check_settings(n_clusters, n_init, max_iter, tol)
  if n_clusters > n:
    raise ValueError(f"n_clusters={n_clusters} must be between 1 and the number of rows ({n}).")
  block_rows = whole_number("block_rows", block_rows, 1)
  mesh = check_mesh(mesh) or make_mesh()
  n_trials = 2 + int(math.log(n_clusters))  # scikit-learn's number of local trials
  exponent = _scale_exponent(peak)
  per_device, block = block_layout(n, mesh.devices.size, block_rows)
  xs, mask = shard_rows(_scaled(x, exponent), mesh, per_device)
  xs, mean = _compiled_centre(mesh)(xs, mask)
  keys = jax.device_put(jax.random.split(key, n_init), replicated(mesh))
  fit = _compiled_fit(mesh, n_clusters, max_iter, n_trials, block)
  centers, inertia, n_iter = fit(keys, xs, mask, jnp.float32(tol))
  best = int(jnp.argmin(inertia))
  best_centers = centers[best]
  labels, best_inertia = _compiled_assign(mesh)(xs, mask, best_centers)
  labels = np.asarray(labels)[:n]
  distinct = len(np.unique(labels))
  if distinct < n_clusters:  # scikit-learn's warning, for the same cause
    warnings.warn(f"Number of distinct clusters ({distinct}) found smaller than n_clusters "
                  f"({n_clusters}). Possibly due to duplicate points in X.", ConvergenceWarning,
                  stacklevel=2)
  # Centres are means of the data, so back at its scale they fit in float32; the inertia
  # (a float64) may not.
  centers = np.asarray(best_centers, np.float64) + np.asarray(mean, np.float64)
  return KMeansResult(
      centers=jnp.asarray(np.ldexp(centers, exponent).astype(np.float32)), labels=labels,
      inertia=math.ldexp(float(best_inertia), 2 * exponent), n_iter=int(n_iter[best]),
      all_inertia=np.ldexp(np.asarray(inertia, np.float64), 2 * exponent))


def assign(x, centers, *, mesh: Mesh | None = None) -> tuple[np.ndarray, float]:
  """Nearest-centre labels (n,) and the inertia of ``x`` under ``centers``."""
  x, x_peak = _check_rows(x)
  centers, centers_peak = _check_rows(centers, "centers")
  if centers.shape[1] != x.shape[1]:
    raise ValueError(
        f"x has {x.shape[1]} features but the centres have {centers.shape[1]}; "
        "predict on data shaped like the data that was fitted.")
  mesh = check_mesh(mesh) or make_mesh()
  exponent = _scale_exponent(max(x_peak, centers_peak))
  xs, mask = shard_rows(_scaled(x, exponent), mesh)
  xs, mean = _compiled_centre(mesh)(xs, mask)
  centers = (_scaled(centers, exponent).astype(np.float64) - np.asarray(mean, np.float64))
  labels, inertia = _compiled_assign(mesh)(
      xs, mask, jax.device_put(centers.astype(np.float32), replicated(mesh)))
  return np.asarray(labels)[: x.shape[0]], math.ldexp(float(inertia), 2 * exponent)


def _check_settings(n_clusters, n_init, max_iter, tol) -> tuple[int, int, int, float]:
  return (whole_number("n_clusters", n_clusters, 1), whole_number("n_init", n_init, 1),
          whole_number("max_iter", max_iter, 1), real_number("tol", tol, 0.0))


class KMeans:
  """scikit-learn-like k-means on the device mesh.

  Example::

    km = KMeans(n_clusters=10, n_init=4, seed=0).fit(x)
    km.labels_, km.inertia_, km.predict(x_new)
  """

  def __init__(self, n_clusters: int = 8, *, n_init: int = 1, max_iter: int = 300,
               tol: float = 1e-4, seed: int = 0, mesh: Mesh | None = None):
    self.n_clusters, self.n_init, self.max_iter, self.tol = _check_settings(
        n_clusters, n_init, max_iter, tol)
    self.seed = check_seed(seed)  # any 64-bit integer: seed_key keeps all its bits
    self.mesh = check_mesh(mesh)

  def fit(self, x) -> "KMeans":
    result = kmeans(seed_key(self.seed), x, self.n_clusters, n_init=self.n_init,
                    max_iter=self.max_iter, tol=self.tol, mesh=self.mesh)
    self.cluster_centers_ = np.asarray(result.centers)
    self.labels_ = result.labels
    self.inertia_ = result.inertia
    self.n_iter_ = result.n_iter
    return self

  def _require_fitted(self) -> None:
    if not hasattr(self, "cluster_centers_"):
      raise RuntimeError("This KMeans is not fitted yet; call fit(x) first.")

  def predict(self, x) -> np.ndarray:
    self._require_fitted()
    return assign(x, self.cluster_centers_, mesh=self.mesh)[0]

  def fit_predict(self, x) -> np.ndarray:
    return self.fit(x).labels_

  def score(self, x) -> float:
    """Negative inertia of ``x`` (scikit-learn's convention: higher is better)."""
    self._require_fitted()
    return -assign(x, self.cluster_centers_, mesh=self.mesh)[1]

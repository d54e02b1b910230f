"""Exact and approximate k-nearest-neighbour kernels over a row-sharded database.

The database lives on the mesh split by rows along the ``data`` axis. Every
device scores all queries against its own shard one block of rows at a time
(a matmul), keeps a running top-k, and the per-device top-k lists are merged
into a global top-k at the end. Peak memory is ``queries x block`` scores per
device, whatever the database size.

Both metrics become one "larger is better" ranking score so the kernel has a
single code path:

* inner product: ``score = q.x``
* squared L2: ``|q - x|^2 = |q|^2 - (2q.x - |x|^2)``, so we rank by
  ``2q.x - |x|^2`` (the ``2`` is folded into the queries, an exact scaling)
  and turn the winners back into distances at the end, as faiss does.

Padded rows carry a bias of ``-inf`` and can therefore never beat a real row;
because a search asks for at most ``ntotal`` neighbours, they never appear in
the global result.

Selection is the expensive part on CPU: ``lax.top_k`` over a whole score
block costs more than the matmul that produced it, and each ``top_k`` call
costs about a microsecond per query row before it reads a value. Two exact
selections avoid most of it by taking group maxima first (any element of the
true top-k lies in one of the ``k`` groups with the largest maxima, otherwise
``k`` group maxima would all beat it):

* one-pass (``_shard_search``, accelerators): per block, the max of strided
  column groups, a ``top_k`` over the maxima, and a ``top_k`` over those
  groups' scores plus the running winners;
* two-pass (``_shard_search_two_pass``, CPU): the maxima of groups of
  consecutive database rows for a whole superblock of blocks, the ``k`` best
  groups picked from them (``_top_groups``: two small ``top_k``), then the
  chosen groups' rows gathered and rescored exactly.

On a 2-core CPU (scripts/bench/knn_vs_faiss.py, 1000 queries, k=10) the
two-pass kernel runs at 1.01-1.03x faiss ``IndexFlatIP`` on 100k x 128 and
0.93-1.28x on 200k x 384, depending on the run (a shared VM's noise is
+-15%). Both sides spend most of their time in the same matmul, and both run
it at about the cores' FMA peak (~190 GFLOP/s on 2 AVX-512 cores), so the
ratio is decided by what is left: the group maxima, the selection and the
rescoring of the chosen groups.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ycng_jax.train.mesh import DATA_AXIS

METRICS = ("ip", "l2")
_ROW_ALIGN = 128


@dataclasses.dataclass(frozen=True)
class KernelPlan:
  """Static shapes of one search: how each device's shard is cut up.

  Attributes:
    block: rows of the database scored per step on each device.
    group: columns per group of the two-stage exact top-k (1 = plain top-k).
    rows_per_device: padded shard length, a multiple of ``superblock`` (or of
      ``block`` when ``superblock`` is 0).
    num_devices: devices along the ``data`` axis.
    superblock: rows per top-k pass of the two-pass exact selection, a
      multiple of ``block``; 0 selects per block (one pass).
  """
  block: int
  group: int
  rows_per_device: int
  num_devices: int
  superblock: int = 0

  @property
  def padded_rows(self) -> int:
    return self.rows_per_device * self.num_devices


def _round_up(value: int, multiple: int) -> int:
  return -(-value // multiple) * multiple


def plan_kernel(ntotal: int, num_devices: int, *, block: int, group: int,
                min_block: int = 1, max_superblock: int = 0) -> KernelPlan:
  """Chooses block and group sizes that fit ``ntotal`` rows on the mesh.

  Small databases get a small block (no point scoring padding); a block is
  at least ``min_block`` rows so that a top-``k`` fits in one block.

  Args:
    ntotal: rows in the database.
    num_devices: devices of the ``data`` axis.
    block: the largest block wanted (rows per step per device).
    group: the group size wanted for the two-stage top-k.
    min_block: smallest block allowed (pass the largest ``k`` to be used).
    max_superblock: the largest superblock wanted for the two-pass selection;
      0 plans the one-pass selection. The shard is split into equal
      superblocks, so padding stays under one block per superblock.
  """
  if block < 1 or group < 1:
    raise ValueError(f"block={block} and group={group} must be positive.")
  per_device = max(-(-ntotal // num_devices), min_block, 1)
  block = _round_up(min(block, per_device), _ROW_ALIGN)
  block = max(block, _round_up(min_block, _ROW_ALIGN))
  if max_superblock <= 0:
    return KernelPlan(block=block, group=group, rows_per_device=_round_up(per_device, block),
                      num_devices=num_devices)
  count = -(-per_device // max(max_superblock, block))
  superblock = _round_up(-(-per_device // count), block)
  return KernelPlan(block=block, group=group, rows_per_device=count * superblock,
                    num_devices=num_devices, superblock=superblock)


def _effective_group(block: int, group: int, k: int) -> int:
  """Largest power-of-two group <= ``group`` that divides ``block`` and leaves >= 2k groups."""
  g = 1
  while g * 2 <= group and block % (g * 2) == 0 and block // (g * 2) >= 2 * k:
    g *= 2
  return g


def _select_block(ranked: jax.Array, *, best: tuple[jax.Array, jax.Array], start: jax.Array,
                  k: int, group: int, approx: bool,
                  recall_target: float) -> tuple[jax.Array, jax.Array]:
  """Merges one ``(queries, block)`` block of ranking scores into the running top-k ``best``.

  ``best`` holds values and global ids; ``start`` is the global id of the
  block's first row. The block's candidates and the running winners go
  through a single ``top_k`` (each call has a fixed per-row cost on CPU).
  """
  num_queries, block = ranked.shape
  if approx:
    values, columns = lax.approx_max_k(ranked, k, recall_target=recall_target)
  elif group == 1:
    values, columns = lax.top_k(ranked, k)
  else:
    # Group j holds columns j, j + stride, j + 2 * stride, ...: its max is an
    # elementwise max of ``group`` contiguous rows, which vectorises (a max
    # over contiguous columns would need horizontal reductions).
    stride = block // group
    grouped = ranked.reshape(num_queries, group, stride)
    _, top_groups = lax.top_k(grouped.max(axis=1), k)  # (Q, k) groups holding the top-k
    values = jnp.take_along_axis(grouped, top_groups[:, None, :], axis=2)
    values = values.reshape(num_queries, group * k)
    columns = top_groups[:, None, :] + stride * jnp.arange(group, dtype=top_groups.dtype)[:, None]
    columns = columns.reshape(num_queries, group * k)
  values = jnp.concatenate([best[0], values], axis=1)
  ids = jnp.concatenate([best[1], columns + start], axis=1)
  values, position = lax.top_k(values, k)
  return values, jnp.take_along_axis(ids, position, axis=1)


def _stored(database: jax.Array):
  """``(stored, restore)``: the array to slice and gather rows of inside a loop, and the function
  that turns rows of it back into ``database``'s dtype.

  A bfloat16 database is stored as its 16-bit pattern and bitcast back after each slice or
  gather: used directly, XLA:CPU hoists a float32 copy of the whole shard out of the loop and
  runs the dots in float32 (measured: 162 GFLOP/s instead of 335 on an AVX512-BF16 CPU, 200k x
  384 rows, 256 queries).
  """
  if database.dtype != jnp.bfloat16:
    return database, lambda rows: rows
  return (lax.bitcast_convert_type(database, jnp.uint16),
          lambda rows: lax.bitcast_convert_type(rows, jnp.bfloat16))


def _dot_precision(dtype) -> lax.Precision | None:
  """Full float32 products for a float32 database; the bfloat16 option asks for speed instead.

  GPUs run float32 dots in TF32 by default, which is not exact: on an H200 the float32 kernel's
  recall@10 against faiss' flat index fell to 0.998. On CPUs HIGHEST costs nothing.
  """
  return lax.Precision.HIGHEST if jnp.dtype(dtype) == jnp.float32 else None


def _shard_search(queries: jax.Array, database: jax.Array, bias: jax.Array, *, k: int, block: int,
                  group: int, approx: bool, recall_target: float, needs_bias: bool):
  """Runs on one device: top-k of ``queries`` against this device's shard, one block at a time.

  Returns ``(1, Q, k)`` values and global row ids, stacked over devices by
  ``shard_map``.
  """
  rows = database.shape[0]
  num_queries = queries.shape[0]
  offset = lax.axis_index(DATA_AXIS) * rows
  stored, restore = _stored(database)

  def step(i, carry):
    start = i * block
    rows_block = restore(lax.dynamic_slice_in_dim(stored, start, block, axis=0))
    bias_block = lax.dynamic_slice_in_dim(bias, start, block, axis=0)
    scores = lax.dot_general(queries, rows_block, (((1,), (1,)), ((), ())),
                             precision=_dot_precision(database.dtype),
                             preferred_element_type=jnp.float32)
    select = functools.partial(_select_block, best=carry, start=offset + start, k=k, group=group,
                               approx=approx, recall_target=recall_target)
    if needs_bias:
      return select(scores + bias_block[None, :])
    # Inner product: the bias is zero except on padding, which sits at the end
    # of the (global) database, so only a block whose last row is padding
    # needs it; the others skip a full pass over the scores.
    return lax.cond(bias_block[-1] == -jnp.inf, lambda: select(scores + bias_block[None, :]),
                    lambda: select(scores))

  values, ids = lax.fori_loop(0, rows // block, step, _initial_best(num_queries, k, offset))
  return values[None], ids[None]


def _initial_best(num_queries: int, k: int, offset: jax.Array) -> tuple[jax.Array, jax.Array]:
  # The carry varies across devices (it holds this shard's winners); say so
  # up front, as shard_map's type check asks of a loop carry.
  values = lax.pcast(jnp.full((num_queries, k), -jnp.inf, jnp.float32), DATA_AXIS, to="varying")
  return values, jnp.zeros((num_queries, k), jnp.int32) + offset


def _top_groups(maxima: jax.Array, k: int, fanout: int = 8) -> jax.Array:
  """The ``k`` groups with the largest maxima for each query: ``(G, Q)`` -> ``(Q, k)`` ids.

  ``top_k`` on a CPU costs about as much per row as transposing it, so the
  ``(G, Q)`` maxima are first reduced to the max of every ``fanout``
  consecutive groups; ``top_k`` over those ``G / fanout`` picks ``k``
  supergroups (a top-k group lies in one of them, by the same argument as
  for rows), and a second ``top_k`` over their ``k * fanout`` groups picks
  the ``k`` groups. Both calls see ``fanout`` times fewer values than one
  ``top_k`` over all ``G`` groups would.
  """
  num_groups, num_queries = maxima.shape
  while fanout > 1 and (num_groups % fanout or num_groups // fanout < k):
    fanout //= 2
  if fanout == 1:
    return lax.top_k(maxima.T, k)[1]
  super_maxima = maxima.reshape(num_groups // fanout, fanout, num_queries).max(axis=1)
  _, top_super = lax.top_k(super_maxima.T, k)  # (Q, k)
  candidates = (top_super[:, :, None] * fanout
                + jnp.arange(fanout, dtype=top_super.dtype)).reshape(num_queries, k * fanout)
  candidate_maxima = maxima[candidates, jnp.arange(num_queries)[:, None]]  # (Q, k * fanout)
  _, position = lax.top_k(candidate_maxima, k)
  return jnp.take_along_axis(candidates, position, axis=1)


def _rescore(grouped_rows: jax.Array, restore, top_groups: jax.Array, queries: jax.Array,
             chunk: int = 16) -> jax.Array:
  """Exact float32 scores ``(Q, k, group)`` of the rows of each query's ``(Q, k)`` chosen groups.

  Gathered for all queries at once, the ``(Q, k, group, d)`` candidates leave the cache
  before the dot reads them; ``chunk`` queries at a time they stay. Measured on 2 CPU cores,
  256 queries x 10 groups of 16 rows: 4.8 ms whole and 1.3-2.0 ms in chunks at d = 128, 33 ms
  and 12 ms at d = 384 (where whole, it was ~13% of a search).
  """
  num_queries, count = top_groups.shape
  chunk = min(chunk, num_queries)
  while num_queries % chunk:
    chunk //= 2

  def score_chunk(args):
    groups, chunk_queries = args
    candidates = restore(grouped_rows[groups]).astype(jnp.float32)  # (chunk, k, group, d)
    return jnp.einsum("qkgd,qd->qkg", candidates, chunk_queries.astype(jnp.float32),
                      precision=lax.Precision.HIGHEST, preferred_element_type=jnp.float32)

  scores = lax.map(score_chunk, (top_groups.reshape(num_queries // chunk, chunk, count),
                                 queries.reshape(num_queries // chunk, chunk, -1)))
  return scores.reshape(num_queries, count, -1)


def _shard_search_two_pass(queries: jax.Array, database: jax.Array, bias: jax.Array, *, k: int,
                           block: int, group: int, superblock: int):
  """Runs on one device: exact top-k with one ``top_k`` call per query per superblock.

  ``_shard_search`` pays two ``top_k`` calls per query per block, and on a
  CPU a ``top_k`` call costs about a microsecond per row before it looks at
  a single value. Here pass one scores each block transposed, ``(block, Q)``,
  and keeps only the max of every ``group`` consecutive database rows (an
  elementwise max of contiguous rows, which vectorises) for a whole
  superblock. One ``top_k`` then picks the ``k`` groups with the largest
  maxima; any true top-k row lies in one of them (otherwise ``k`` group
  maxima would all beat it). Pass two gathers those ``k * group`` rows,
  which are contiguous, rescores them exactly and merges them into the
  running winners. Memory: a ``(superblock / group, Q)`` maxima buffer and
  a ``(Q, k * group, d)`` candidate gather, whatever the shard size.
  """
  rows, dim = database.shape
  num_queries = queries.shape[0]
  offset = lax.axis_index(DATA_AXIS) * rows
  grouped_bias = bias.reshape(rows // group, group)
  groups_per_block = block // group
  stored, restore = _stored(database)
  grouped_rows = stored.reshape(rows // group, group, dim)

  def group_maxima(superblock_start):
    def score_block(i, maxima):
      start = superblock_start + i * block
      rows_block = restore(lax.dynamic_slice_in_dim(stored, start, block, axis=0))
      bias_block = lax.dynamic_slice_in_dim(bias, start, block, axis=0)
      scores = lax.dot_general(rows_block, queries, (((1,), (1,)), ((), ())),
                               precision=_dot_precision(database.dtype),
                               preferred_element_type=jnp.float32)  # (block, Q)
      scores = scores + bias_block[:, None]
      block_maxima = scores.reshape(groups_per_block, group, num_queries).max(axis=1)
      return lax.dynamic_update_slice_in_dim(maxima, block_maxima, i * groups_per_block, axis=0)
    maxima = lax.pcast(jnp.zeros((superblock // group, num_queries), jnp.float32), DATA_AXIS,
                       to="varying")
    return lax.fori_loop(0, superblock // block, score_block, maxima)

  def merge_superblock(s, best):
    superblock_start = s * superblock
    top_groups = _top_groups(group_maxima(superblock_start), k) + superblock_start // group
    scores = _rescore(grouped_rows, restore, top_groups, queries) + grouped_bias[top_groups]
    ids = top_groups[:, :, None] * group + jnp.arange(group, dtype=top_groups.dtype)
    values = jnp.concatenate([best[0], scores.reshape(num_queries, k * group)], axis=1)
    ids = jnp.concatenate([best[1], ids.reshape(num_queries, k * group) + offset], axis=1)
    values, position = lax.top_k(values, k)
    return values, jnp.take_along_axis(ids, position, axis=1)

  values, ids = lax.fori_loop(0, rows // superblock, merge_superblock,
                              _initial_best(num_queries, k, offset))
  return values[None], ids[None]


@functools.partial(jax.jit, static_argnames=("mesh", "k", "block", "group", "superblock", "metric",
                                             "approx", "recall_target"))
def search_sharded(queries: jax.Array, database: jax.Array, bias: jax.Array, *, mesh: Mesh, k: int,
                   block: int, group: int, metric: str, superblock: int = 0, approx: bool = False,
                   recall_target: float = 0.95) -> tuple[jax.Array, jax.Array]:
  """Global top-k of ``queries`` against a database sharded by rows over ``mesh``.

  Args:
    queries: ``(Q, d)`` float32, replicated on every device.
    database: ``(D * rows_per_device, d)`` in the compute dtype, sharded by rows.
    bias: ``(D * rows_per_device,)`` float32: ``0`` (ip) or ``-|x|^2`` (l2) for real
      rows, ``-inf`` for padding.
    mesh: the mesh with the ``data`` axis the database is sharded over.
    k: neighbours per query (static).
    block: rows per step; divides the per-device shard length.
    group: group size of the two-stage exact top-k (1 = plain ``top_k``).
    metric: ``"ip"`` or ``"l2"``.
    superblock: rows per pass of the two-pass exact selection (a multiple of
      ``block`` dividing the shard length); 0 selects per block.
    approx: use ``lax.approx_max_k`` per block instead of the exact selection.
    recall_target: recall asked of ``approx_max_k``.

  Returns:
    ``(scores, ids)``, each ``(Q, k)``: similarities descending for ``"ip"``,
    squared distances ascending for ``"l2"``; int32 global row ids.
  """
  group = _effective_group(block, group, k)
  query_scale = 2.0 if metric == "l2" else 1.0
  scaled = (queries * query_scale).astype(database.dtype)
  if superblock and group > 1 and not approx:
    per_shard = functools.partial(_shard_search_two_pass, k=k, block=block, group=group,
                                  superblock=superblock)
  else:
    per_shard = functools.partial(_shard_search, k=k, block=block, group=group, approx=approx,
                                  recall_target=recall_target, needs_bias=metric == "l2")
  shard_fn = jax.shard_map(
      per_shard,
      mesh=mesh, in_specs=(P(), P(DATA_AXIS), P(DATA_AXIS)),
      out_specs=(P(DATA_AXIS), P(DATA_AXIS)))
  values, ids = shard_fn(scaled, database, bias)  # (D, Q, k) each
  num_devices, num_queries, _ = values.shape
  values = jnp.transpose(values, (1, 0, 2)).reshape(num_queries, num_devices * k)
  ids = jnp.transpose(ids, (1, 0, 2)).reshape(num_queries, num_devices * k)
  values, position = lax.top_k(values, k)
  ids = jnp.take_along_axis(ids, position, axis=1)
  if metric == "l2":
    query_norms = jnp.sum(queries.astype(jnp.float32) ** 2, axis=1, keepdims=True)
    values = jnp.maximum(query_norms - values, 0.0)
  return values, ids


def database_bias(vectors: np.ndarray, metric: str, padded_rows: int) -> np.ndarray:
  """Per-row ranking bias, ``-inf`` on padding rows (so they never win)."""
  bias = np.full((padded_rows,), -np.inf, np.float32)
  if metric == "l2":
    bias[:len(vectors)] = -np.einsum("ij,ij->i", vectors, vectors, dtype=np.float32)
  else:
    bias[:len(vectors)] = 0.0
  return bias


def place_database(vectors: np.ndarray, metric: str, plan: KernelPlan, mesh: Mesh,
                   compute_dtype=jnp.float32) -> tuple[jax.Array, jax.Array]:
  """Pads ``vectors`` to the plan and shards rows (and their bias) over ``mesh``."""
  padded = np.zeros((plan.padded_rows, vectors.shape[1]), np.float32)
  padded[:len(vectors)] = vectors
  sharding = NamedSharding(mesh, P(DATA_AXIS))
  database = jax.device_put(padded, sharding)
  if jnp.dtype(compute_dtype) != jnp.float32:
    database = jax.jit(lambda x: x.astype(compute_dtype), out_shardings=sharding)(database)
  bias = jax.device_put(database_bias(vectors, metric, plan.padded_rows), sharding)
  return database, bias

"""In-batch negatives: MultipleNegativesRankingLoss (sentence-transformers) over the global batch.

For anchors ``a_i`` and their positives ``b_i``, row i is a softmax over ``scale * cos(a_i, b_j)``
for every ``j`` of the batch, with ``j = i`` as the target: every other positive of the batch is a
negative. More negatives make a harder task and a better embedding, so the negatives here are
the **global** batch: under ``jax.jit`` with the batch sharded over the mesh's ``data`` axis,
each device all-gathers the positives (``jax.lax.all_gather``) and scores its own anchors
against all of them, a (local rows, global batch) block of the similarity matrix. The loss of
every row is thus exactly the single-device loss on the same global batch
(``tests/text/test_biencoder.py`` checks 8 devices against 1), while each device holds only its
block, not the whole matrix. The all-gather's transpose (a reduce-scatter) brings the gradients
of the positives back to the devices that own them.

Two refinements over sentence-transformers' loss, both off unless asked for:
- ``mask``: batch padding (``mask`` 0) is neither an anchor nor a negative;
- ``group_key``: in-batch "negatives" of the same group are left out of the softmax, so the
  loss does not push apart texts that are in fact about the same thing: the same Debian source
  package (a ``-dev`` and a ``-doc`` sibling describe the same software), or the very same text
  (sentence-transformers' answer to that is a sampler that keeps duplicates out of a batch).
  Groups may be several ids per example (B, G): any equal id leaves the column out.
"""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec as P

from ycng_jax.checks import real_number
from ycng_jax.errors import UserError
from ycng_jax.train.losses import LossFn
from ycng_jax.train.mesh import DATA_AXIS

# Logit of a left-out column: exp() of it is exactly 0 in float32, and its gradient is finite.
_LEFT_OUT = -1e9


def ranking_rows(anchors: jax.Array, positives: jax.Array, first_row: jax.Array | int, *,
                 scale: float, column_mask: jax.Array | None = None,
                 row_groups: jax.Array | None = None, column_groups: jax.Array | None = None
                 ) -> tuple[jax.Array, jax.Array]:
  """Per-row cross-entropy of ``anchors`` (r, d) against all ``positives`` (n, d).

  Row ``k`` is example ``first_row + k`` of the batch, so its target is column ``first_row + k``.
  ``column_mask`` (n,) leaves out padding columns; ``row_groups`` (r, G) / ``column_groups``
  (n, G) leave out the other columns that share any of the row's G group ids. Returns
  (loss (r,), top-1 hit (r,)).
  """
  logits = scale * jnp.dot(anchors.astype(jnp.float32), positives.astype(jnp.float32).T,
                           precision=jax.lax.Precision.HIGHEST)
  rows = jnp.arange(anchors.shape[0])
  target = first_row + rows
  columns = jnp.arange(positives.shape[0])
  keep = jnp.ones(logits.shape, bool)
  if column_mask is not None:
    keep &= column_mask[None, :] > 0
  if row_groups is not None:
    keep &= jnp.all(row_groups[:, None, :] != column_groups[None, :, :], axis=-1)
  keep |= columns[None, :] == target[:, None]  # the positive always stays
  scores = jnp.where(keep, logits, _LEFT_OUT)
  positive = jnp.take_along_axis(logits, target[:, None], axis=1)[:, 0]
  loss = jax.nn.logsumexp(scores, axis=1) - positive
  hit = (jnp.argmax(scores, axis=1) == target).astype(jnp.float32)
  return loss, hit


def global_ranking_loss(anchors: jax.Array, positives: jax.Array, mesh: Mesh, *,
                        scale: float = 20.0, symmetric: bool = False,
                        mask: jax.Array | None = None, groups: jax.Array | None = None
                        ) -> dict[str, jax.Array]:
  """MultipleNegativesRankingLoss per example, negatives from the global batch over ``mesh``.

  ``anchors`` and ``positives`` are (B, d) embeddings (normalised for cosine similarity, as the
  sentence-transformers loss computes it) whose batch axis is split over ``mesh``'s ``data``
  axis; B must be a multiple of the number of devices. ``symmetric`` averages the
  anchor -> positive and positive -> anchor losses (MultipleNegativesSymmetricRankingLoss).
  ``groups``: (B,) or (B, G) integer ids; a column sharing an id with the row is left out.
  Returns ``{"loss": (B,), "in_batch_accuracy": (B,)}``; rows with ``mask`` 0 get 0.
  """
  n = anchors.shape[0]
  mask = jnp.ones((n,), jnp.float32) if mask is None else mask.astype(jnp.float32)
  with_groups = groups is not None
  groups = jnp.zeros((n, 1), jnp.int32) if groups is None else groups.astype(jnp.int32)
  groups = groups.reshape(n, -1)

  def local(a, b, row_mask, row_groups):
    gather = lambda x: jax.lax.all_gather(x, DATA_AXIS, tiled=True)
    first = jax.lax.axis_index(DATA_AXIS) * a.shape[0]
    all_mask, all_groups = gather(row_mask), gather(row_groups)
    extra = dict(scale=scale, column_mask=all_mask,
                 row_groups=row_groups if with_groups else None,
                 column_groups=all_groups if with_groups else None)
    loss, hit = ranking_rows(a, gather(b), first, **extra)
    if symmetric:
      back, back_hit = ranking_rows(b, gather(a), first, **extra)
      loss, hit = (loss + back) / 2, (hit + back_hit) / 2
    real = row_mask > 0
    return jnp.where(real, loss, 0.0), jnp.where(real, hit, 0.0)

  loss, hit = jax.shard_map(local, mesh=mesh, in_specs=(P(DATA_AXIS),) * 4,
                            out_specs=(P(DATA_AXIS), P(DATA_AXIS)))(anchors, positives, mask,
                                                                    groups)
  return {"loss": loss, "in_batch_accuracy": hit}


def make_ranking_loss(mesh: Mesh, *, scale: float = 20.0, symmetric: bool = False,
                      group_key: str | None = None) -> LossFn:
  """The trainer's loss for a model returning ``(anchor_embeddings, positive_embeddings)``.

  ``scale`` 20 is sentence-transformers' default (a temperature of 0.05). ``group_key`` names a
  batch key of integer group ids, (B,) or (B, G), whose same-group negatives are left out.
  """
  real_number("scale", scale, 0.0, low_open=True)

  def loss_fn(outputs, batch: Mapping[str, jax.Array]):
    if not isinstance(outputs, (tuple, list)) or len(outputs) != 2:
      raise UserError("the ranking loss needs a model that returns (anchor, positive) "
                      "embeddings for a batch of pairs")
    if group_key is not None and group_key not in batch:
      raise UserError(f"group_key={group_key!r} is not a batch key (keys: {sorted(batch)}); "
                      "add the group ids to the data or set group_key=None")
    return global_ranking_loss(outputs[0], outputs[1], mesh, scale=scale, symmetric=symmetric,
                               mask=batch.get("mask"),
                               groups=None if group_key is None else batch[group_key])

  return loss_fn

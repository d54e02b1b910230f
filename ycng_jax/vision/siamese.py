"""Siamese losses: contrastive on pairs, triplet with batch-hard / semi-hard online mining.

Every loss is *per example* (per pair, per anchor) so the shared train/eval steps weight it
by ``batch["mask"]`` and average exactly (``ycng_jax.train.losses``). Distances are Euclidean
between embeddings (the triplet losses take ``squared=True`` for squared distances, as in
FaceNet).

Label convention for pairs: ``same = 1`` for a same-class (positive) pair, ``0`` otherwise.
Contrastive loss (Hadsell, Chopra & LeCun 2006, with their factor 1/2 dropped, which only
rescales the learning rate):  ``same * d**2 + (1 - same) * max(0, margin - d)**2``.

Triplet loss per anchor ``a`` with positive ``p`` and negative ``n``:
``max(0, d(a, p) - d(a, n) + margin)``, where the triplets are mined inside the batch:

- batch-hard (Hermans, Beyer & Leibe 2017): the farthest positive and the nearest negative
  of each anchor; one triplet per anchor.
- semi-hard (Schroff et al., FaceNet 2015): every positive of the anchor, each with the
  nearest negative that is farther than that positive but within the margin
  (``d(a,p) < d(a,n) < d(a,p) + margin``); where no such negative exists, the hardest
  (nearest) negative. The anchor's loss is the mean over its positives. (TensorFlow
  Addons' ``triplet_semihard_loss`` differs in the fallback: it takes the *farthest*
  negative and has no upper bound.)

An anchor without a positive or without a negative in the batch (or a padded row) has no
triplet: its loss is 0 and ``triplet_anchor_mask`` removes it from ``batch["mask"]`` inside
the step (``make_siamese_preprocess(..., triplet=True)``), so averages count real anchors only.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp

from ycng_jax.train.losses import LossFn

MINING = ("batch_hard", "semi_hard")
_EPS = 1e-12


def _safe_sqrt(x: jax.Array) -> jax.Array:
  """sqrt with a finite gradient at 0 (identical points give distance 0, gradient 0)."""
  positive = x > _EPS
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def pair_distances(a: jax.Array, b: jax.Array, *, squared: bool = False) -> jax.Array:
  """Row-wise distance between two ``(B, D)`` embedding arrays -> ``(B,)``."""
  d2 = jnp.sum(jnp.square(a.astype(jnp.float32) - b.astype(jnp.float32)), axis=-1)
  return d2 if squared else _safe_sqrt(d2)


def pairwise_distances(x: jax.Array, *, squared: bool = False) -> jax.Array:
  """All distances within one ``(B, D)`` batch -> ``(B, B)``, exactly 0 on the diagonal."""
  x = x.astype(jnp.float32)
  sq = jnp.sum(x * x, axis=-1)
  d2 = jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0)
  d2 = d2 * (1.0 - jnp.eye(x.shape[0], dtype=d2.dtype))
  return d2 if squared else _safe_sqrt(d2)


def contrastive_loss(emb_a: jax.Array, emb_b: jax.Array, same: jax.Array, margin: float = 1.0
                     ) -> tuple[jax.Array, jax.Array]:
  """Per-pair contrastive loss and Euclidean distance (``same``: 1 same class, 0 different).

  The positive term is the squared distance computed directly (smooth at 0); only the
  hinge term needs the square root.
  """
  d2 = jnp.sum(jnp.square(emb_a.astype(jnp.float32) - emb_b.astype(jnp.float32)), axis=-1)
  d = _safe_sqrt(d2)
  same = same.astype(jnp.float32)
  loss = same * d2 + (1.0 - same) * jnp.square(jnp.maximum(margin - d, 0.0))
  return loss, d


def _masks(labels: jax.Array, valid: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(B, B) candidate masks: positives (same label, not self) and negatives, real rows only."""
  same = labels[:, None] == labels[None, :]
  real = valid.astype(bool)[None, :]
  positives = same & ~jnp.eye(labels.shape[0], dtype=bool) & real
  negatives = ~same & real
  return positives, negatives


def triplet_anchor_mask(labels: jax.Array, valid: jax.Array) -> jax.Array:
  """1.0 for real anchors that have at least one positive and one negative in the batch."""
  positives, negatives = _masks(labels, valid)
  ok = valid.astype(bool) & positives.any(axis=1) & negatives.any(axis=1)
  return ok.astype(jnp.float32)


def batch_hard_indices(dist: jax.Array, labels: jax.Array, valid: jax.Array
                       ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Per anchor: index of its farthest positive, of its nearest negative, and validity."""
  positives, negatives = _masks(labels, valid)
  hardest_positive = jnp.argmax(jnp.where(positives, dist, -jnp.inf), axis=1)
  hardest_negative = jnp.argmin(jnp.where(negatives, dist, jnp.inf), axis=1)
  ok = valid.astype(bool) & positives.any(axis=1) & negatives.any(axis=1)
  return hardest_positive, hardest_negative, ok


def semi_hard_negative_indices(dist: jax.Array, labels: jax.Array, valid: jax.Array,
                               margin: float) -> tuple[jax.Array, jax.Array]:
  """For every (anchor, positive) pair: the chosen negative's index ``(B, B)``, and whether it
  is semi-hard (else it is the anchor's hardest negative).

  Uses a per-anchor sort of negative distances and a binary search, O(B^2 log B) memory-light,
  instead of the (B, B, B) comparison tensor.
  """
  _, negatives = _masks(labels, valid)
  dist = jax.lax.stop_gradient(dist)
  negative_dist = jnp.where(negatives, dist, jnp.inf)
  order = jnp.argsort(negative_dist, axis=1)
  sorted_dist = jnp.take_along_axis(negative_dist, order, axis=1)
  # first negative strictly farther than the positive, per (anchor, positive)
  first_farther = jax.vmap(lambda s, q: jnp.searchsorted(s, q, side="right"))(sorted_dist, dist)
  position = jnp.minimum(first_farther, dist.shape[1] - 1)
  candidate = jnp.take_along_axis(sorted_dist, position, axis=1)
  semi_hard = (first_farther < dist.shape[1]) & (candidate < dist + margin)
  chosen = jnp.where(semi_hard, jnp.take_along_axis(order, position, axis=1), order[:, :1])
  return chosen, semi_hard


def batch_hard_triplet_loss(embeddings: jax.Array, labels: jax.Array, valid: jax.Array,
                            margin: float = 0.5, *, squared: bool = False
                            ) -> dict[str, jax.Array]:
  """Per-anchor batch-hard triplet loss with the mined distances (see module doc)."""
  dist = pairwise_distances(embeddings, squared=squared)
  pos, neg, ok = batch_hard_indices(jax.lax.stop_gradient(dist), labels, valid)
  d_ap = jnp.take_along_axis(dist, pos[:, None], axis=1)[:, 0]
  d_an = jnp.take_along_axis(dist, neg[:, None], axis=1)[:, 0]
  ok = ok.astype(jnp.float32)
  loss = jnp.maximum(d_ap - d_an + margin, 0.0) * ok
  return {"loss": loss, "positive_distance": d_ap * ok, "negative_distance": d_an * ok,
          "active_triplets": (loss > 0).astype(jnp.float32)}


def semi_hard_triplet_loss(embeddings: jax.Array, labels: jax.Array, valid: jax.Array,
                           margin: float = 0.5, *, squared: bool = False
                           ) -> dict[str, jax.Array]:
  """Per-anchor semi-hard triplet loss: mean over the anchor's positives (see module doc)."""
  dist = pairwise_distances(embeddings, squared=squared)
  positives, _ = _masks(labels, valid)
  chosen, semi_hard = semi_hard_negative_indices(dist, labels, valid, margin)
  d_an = jnp.take_along_axis(dist, chosen, axis=1)                     # (B, B) per (a, p)
  pair_loss = jnp.maximum(dist - d_an + margin, 0.0)
  weight = positives.astype(jnp.float32)
  n_pos = weight.sum(axis=1)
  ok = triplet_anchor_mask(labels, valid)
  per_anchor = lambda x: (x * weight).sum(axis=1) / jnp.maximum(n_pos, 1.0) * ok
  return {"loss": per_anchor(pair_loss), "positive_distance": per_anchor(dist),
          "negative_distance": per_anchor(d_an),
          "semi_hard_fraction": per_anchor(semi_hard.astype(jnp.float32)),
          "active_triplets": per_anchor((pair_loss > 0).astype(jnp.float32))}


def make_contrastive_loss(margin: float = 1.0, *, label_key: str = "pair_label") -> LossFn:
  """Loss function for a two-input ``SiameseNetwork``: ``outputs = (emb_a, emb_b)``.

  Metrics: ``distance`` and ``pair_accuracy`` at the fixed threshold ``margin / 2`` (a cheap
  training signal; the reported verification accuracy chooses its threshold on held-out
  pairs, see ``siamese_eval.best_threshold``).
  """

  def loss_fn(outputs, batch):
    emb_a, emb_b = outputs
    same = batch[label_key]
    loss, d = contrastive_loss(emb_a, emb_b, same, margin)
    correct = (d < margin / 2) == (same > 0)
    return {"loss": loss, "distance": d, "pair_accuracy": correct.astype(jnp.float32)}

  return loss_fn


def make_triplet_loss(mining: str = "batch_hard", margin: float = 0.5, *, squared: bool = False,
                      label_key: str = "label") -> LossFn:
  """Loss function for a one-input ``SiameseNetwork`` whose output is the batch's embeddings.

  Candidates for positives/negatives are the batch's real rows (``batch["example_mask"]``
  when the preprocess saved it, else ``batch["mask"]``).
  """
  if mining not in MINING:
    raise ValueError(f"mining={mining!r}; choose one of {MINING}")
  loss = batch_hard_triplet_loss if mining == "batch_hard" else semi_hard_triplet_loss

  def loss_fn(embeddings, batch):
    valid = batch.get("example_mask", batch["mask"])
    return loss(embeddings, batch[label_key], valid, margin, squared=squared)

  return loss_fn


def make_siamese_preprocess(image_keys: Sequence[str] = ("image",), image_scale: float = 255.0,
                            *, triplet: bool = False, label_key: str = "label"
                            ) -> Callable[[Mapping[str, jax.Array]], dict[str, jax.Array]]:
  """In-step preprocessing: uint8 images -> float32 / ``image_scale``.

  With ``triplet``, ``mask`` becomes the anchor mask (``triplet_anchor_mask``) and the original
  one is kept as ``example_mask``; the steps then average over anchors that have a triplet.
  A batch without labels (embedding extraction) is left unmasked.
  """

  def preprocess(batch):
    out = dict(batch)
    for key in image_keys:
      out[key] = batch[key].astype(jnp.float32) / image_scale
    if triplet and label_key in batch:
      out["example_mask"] = batch["mask"]
      out["mask"] = triplet_anchor_mask(batch[label_key], batch["mask"]) * batch["mask"]
    return out

  return preprocess

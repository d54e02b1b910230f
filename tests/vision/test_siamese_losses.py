"""Siamese losses and mining against hand-computed numpy values on tiny hand-made batches."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ycng_jax.vision import siamese as S

# Points on a line (1-D embeddings) make every distance readable: d(i, j) = |x_i - x_j|.
X = np.array([[0.0], [1.0], [3.0], [0.5], [2.0], [6.0]], np.float32)
LABELS = np.array([0, 0, 0, 1, 1, 1], np.int32)
ALL = np.ones(6, np.float32)


def test_contrastive_loss_matches_hand_values():
  a = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.0, 0.0]], np.float32)
  b = np.array([[3.0, 4.0], [0.3, 0.4], [1.0, 1.0], [0.6, 0.8]], np.float32)  # d = 5, .5, 0, 1
  same = np.array([1, 0, 0, 1], np.int32)
  loss, d = S.contrastive_loss(a, b, same, margin=2.0)
  np.testing.assert_allclose(d, [5.0, 0.5, 0.0, 1.0], atol=1e-6)
  # positive: d^2; negative: max(0, m - d)^2
  np.testing.assert_allclose(loss, [25.0, 1.5 ** 2, 2.0 ** 2, 1.0], rtol=1e-6)


def test_contrastive_gradient_is_finite_at_identical_points():
  a = jnp.ones((2, 3))
  grad = jax.grad(lambda x: S.contrastive_loss(x, jnp.ones((2, 3)), jnp.array([1, 0]))[0].sum())(a)
  assert np.isfinite(np.asarray(grad)).all()


def test_contrastive_loss_fn_metrics():
  fn = S.make_contrastive_loss(margin=1.0)
  out = fn((jnp.zeros((2, 2)), jnp.array([[0.1, 0.0], [0.9, 0.0]])),
           {"pair_label": jnp.array([1, 0]), "mask": jnp.ones(2)})
  np.testing.assert_allclose(out["loss"], [0.01, 0.01], rtol=1e-5)
  np.testing.assert_array_equal(out["pair_accuracy"], [1.0, 1.0])  # 0.1 < 0.5 same, 0.9 > 0.5


def test_pairwise_distances():
  d = np.asarray(S.pairwise_distances(X))
  np.testing.assert_allclose(d, np.abs(X - X.T), atol=1e-5)
  assert np.all(np.diag(d) == 0.0)
  np.testing.assert_allclose(S.pairwise_distances(X, squared=True), (X - X.T) ** 2, atol=1e-5)


def test_batch_hard_picks_farthest_positive_and_nearest_negative():
  dist = S.pairwise_distances(X)
  pos, neg, ok = S.batch_hard_indices(dist, LABELS, ALL)
  # anchor 0 (x=0): positives 1 (1), 2 (3) -> 2; negatives 0.5, 2, 6 -> 3
  # anchor 1 (x=1): positives 0 (1), 2 (2) -> 2; negatives .5, 1, 5 -> 3 (d=.5)
  # anchor 2 (x=3): positives 0 (3), 1 (2) -> 0; negatives 2.5, 1, 3 -> 4
  # anchor 3 (x=.5): positives 4 (1.5), 5 (5.5) -> 5; negatives .5, .5, 2.5 -> 0 (first tie)
  # anchor 4 (x=2): positives 3 (1.5), 5 (4) -> 5; negatives 2, 1, 1 -> 1 (first tie)
  # anchor 5 (x=6): positives 3 (5.5), 4 (4) -> 3; negatives 6, 5, 3 -> 2
  np.testing.assert_array_equal(pos, [2, 2, 0, 5, 5, 3])
  np.testing.assert_array_equal(neg, [3, 3, 4, 0, 1, 2])
  assert np.asarray(ok).all()
  out = S.batch_hard_triplet_loss(X, LABELS, ALL, margin=0.5)
  d = np.abs(X - X.T)
  expected = np.maximum(d[np.arange(6), [2, 2, 0, 5, 5, 3]] - d[np.arange(6), [3, 3, 4, 0, 1, 2]]
                        + 0.5, 0)
  np.testing.assert_allclose(out["loss"], expected, rtol=1e-5)


def test_semi_hard_picks_nearest_negative_beyond_the_positive_within_margin():
  # anchor 0 at 0: positive 1 at d=1, negatives at 0.5, 1.2, 1.8, 4 (labels 1)
  x = np.array([[0.0], [1.0], [0.5], [1.2], [1.8], [4.0]], np.float32)
  labels = np.array([0, 0, 1, 1, 1, 1], np.int32)
  dist = S.pairwise_distances(x)
  chosen, semi = S.semi_hard_negative_indices(dist, labels, np.ones(6), margin=0.5)
  chosen, semi = np.asarray(chosen), np.asarray(semi)
  assert chosen[0, 1] == 3 and semi[0, 1]            # 1.2 in (1, 1.5); 1.8 is too far
  # with margin 0.1 nothing lies in (1, 1.1): fall back to the hardest (nearest) negative, 2
  chosen, semi = S.semi_hard_negative_indices(dist, labels, np.ones(6), margin=0.1)
  assert np.asarray(chosen)[0, 1] == 2 and not np.asarray(semi)[0, 1]
  # anchor 1 at 1: positive 0 at d=1; negatives at .5, .2, .8, 3 -> none in (1, 1.5): hardest 3
  chosen, semi = S.semi_hard_negative_indices(dist, labels, np.ones(6), margin=0.5)
  assert np.asarray(chosen)[1, 0] == 3 and not np.asarray(semi)[1, 0]


def test_semi_hard_loss_is_mean_over_positives():
  dist = np.abs(X - X.T)
  out = S.semi_hard_triplet_loss(X, LABELS, ALL, margin=1.0)
  expected = []
  for a in range(6):
    losses = []
    for p in range(6):
      if p == a or LABELS[p] != LABELS[a]:
        continue
      negs = [n for n in range(6) if LABELS[n] != LABELS[a]]
      semi = [n for n in negs if dist[a, p] < dist[a, n] < dist[a, p] + 1.0]
      n = (min(semi, key=lambda n: dist[a, n]) if semi else min(negs, key=lambda n: dist[a, n]))
      losses.append(max(dist[a, p] - dist[a, n] + 1.0, 0.0))
    expected.append(np.mean(losses))
  np.testing.assert_allclose(out["loss"], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mining", ["batch_hard", "semi_hard"])
def test_anchors_without_positive_or_padding_are_masked(mining):
  labels = np.array([0, 0, 1, 2, 2, 0], np.int32)     # class 1 has a single example
  valid = np.array([1, 1, 1, 1, 1, 0], np.float32)     # row 5 is padding
  x = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
  np.testing.assert_array_equal(S.triplet_anchor_mask(labels, valid), [1, 1, 0, 1, 1, 0])
  out = S.make_triplet_loss(mining, 0.5)(x, {"label": labels, "mask": valid})
  assert out["loss"][2] == 0 and out["loss"][5] == 0
  # the padded row is never a positive: anchor 0's only positive is 1
  pos, _, _ = S.batch_hard_indices(S.pairwise_distances(x), labels, valid)
  assert pos[0] == 1
  pre = S.make_siamese_preprocess(("image",), 255.0, triplet=True)(
      {"image": np.zeros((6, 2, 2, 1), np.uint8), "label": labels, "mask": valid})
  np.testing.assert_array_equal(pre["mask"], [1, 1, 0, 1, 1, 0])
  np.testing.assert_array_equal(pre["example_mask"], valid)


def test_triplet_losses_have_finite_gradients_and_reject_unknown_mining():
  for mining in S.MINING:
    fn = S.make_triplet_loss(mining, 0.5)
    g = jax.grad(lambda x: fn(x, {"label": LABELS, "mask": ALL})["loss"].sum())(jnp.asarray(X))
    assert np.isfinite(np.asarray(g)).all() and np.abs(np.asarray(g)).sum() > 0
  with pytest.raises(ValueError, match="batch_hard"):
    S.make_triplet_loss("hardest", 0.5)

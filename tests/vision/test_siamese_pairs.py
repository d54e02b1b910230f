"""Pair and P x K samplers: balanced, correct, seeded and deterministic."""

import numpy as np
import pytest

from ycng_jax.vision import pairs as P

LABELS = np.repeat(np.arange(5), [7, 9, 6, 8, 10]).astype(np.int32)
IMAGES = np.arange(len(LABELS), dtype=np.uint8).reshape(-1, 1, 1, 1)  # pixel = example index


def test_balanced_pairs_are_half_positive_and_correct():
  first, second, same = P.balanced_pairs(LABELS, 101, seed=3)
  assert len(first) == 101 and same.sum() == 50
  assert np.all((LABELS[first] == LABELS[second]) == (same == 1))
  assert np.all(first != second)
  # each example is an anchor once before any is used twice
  assert len(np.unique(first[:len(LABELS)])) == len(LABELS)


def test_balanced_pairs_are_seeded():
  a = P.balanced_pairs(LABELS, 60, seed=1)
  b = P.balanced_pairs(LABELS, 60, seed=1)
  c = P.balanced_pairs(LABELS, 60, seed=2)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_negative_partners_cover_other_classes_evenly():
  index = P.ClassIndex(LABELS)
  anchors = np.zeros(4000, np.int64)                   # class 0 anchor
  other = LABELS[index.other_class_partners(anchors, np.random.default_rng(0))]
  counts = np.bincount(other, minlength=5)
  assert counts[0] == 0 and np.all(np.abs(counts[1:] - 1000) < 120)


def test_single_example_class_cannot_make_a_positive_pair():
  with pytest.raises(ValueError, match="single example"):
    P.balanced_pairs(np.array([0, 0, 1, 2, 2]), 10)


def test_pair_transform_is_deterministic_per_batch_and_varies_between_batches():
  transform = P.PairTransform(IMAGES, LABELS, seed=0)
  batch = {"image": IMAGES[:8], "label": LABELS[:8], "index": np.arange(8),
           "mask": np.ones(8, np.float32)}
  out1, out2 = transform(batch), transform(dict(batch))
  np.testing.assert_array_equal(out1["image_b"], out2["image_b"])
  assert "index" not in out1 and out1["pair_label"].sum() == 4
  partner = out1["image_b"].reshape(-1).astype(np.int64)
  assert np.all((LABELS[partner] == LABELS[:8]) == (out1["pair_label"] == 1))
  other = transform({**batch, "index": np.arange(8)[::-1].copy()})
  assert not np.array_equal(other["pair_label"], out1["pair_label"]) or not np.array_equal(
      other["image_b"], out1["image_b"])


def test_class_balanced_transform_gives_p_classes_of_k_distinct_examples():
  transform = P.ClassBalancedTransform(IMAGES, LABELS, classes_per_batch=3, examples_per_class=4,
                                       seed=0)
  out = transform({"index": np.arange(12), "mask": np.ones(12, np.float32)})
  chosen = out["image"].reshape(-1).astype(np.int64)
  np.testing.assert_array_equal(LABELS[chosen], out["label"])
  classes, counts = np.unique(out["label"], return_counts=True)
  assert len(classes) == 3 and np.all(counts == 4)
  assert len(np.unique(chosen)) == 12
  again = transform({"index": np.arange(12), "mask": np.ones(12, np.float32)})
  np.testing.assert_array_equal(again["image"], out["image"])


def test_class_balanced_transform_rejects_bad_settings():
  with pytest.raises(ValueError, match="examples_per_class"):
    P.ClassBalancedTransform(IMAGES, LABELS, 3, 7)      # class 2 has only 6
  with pytest.raises(ValueError, match="classes_per_batch"):
    P.ClassBalancedTransform(IMAGES, LABELS, 6, 2)
  transform = P.ClassBalancedTransform(IMAGES, LABELS, 2, 2)
  with pytest.raises(ValueError, match="global_batch_size"):
    transform({"index": np.arange(8)})

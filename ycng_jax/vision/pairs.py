"""Seeded pair and triplet-batch samplers for Siamese training and evaluation.

Every sampler is a pure function of ``(labels, seed or rng)``: the same call gives the same
pairs on any machine. The two Loader transforms draw from a generator seeded by the
experiment seed *and the example indices of the batch* that the Loader produced, so they are
deterministic, differ from batch to batch and epoch to epoch (the Loader reshuffles), are
thread safe in grain's workers, and replay exactly after a resume (the Loader's restored
state yields the same indices, hence the same pairs).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

Batch = dict[str, np.ndarray]


class ClassIndex:
  """Per-class lists of example indices, for vectorised same-/other-class draws."""

  def __init__(self, labels: np.ndarray):
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
      raise ValueError(f"labels must be a non-empty 1-D array; got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
      raise ValueError(f"labels must be integers; got dtype {labels.dtype}")
    self.labels = labels
    self.classes, self.class_of = np.unique(labels, return_inverse=True)  # class_of: 0..C-1
    self.num_classes = len(self.classes)
    order = np.argsort(self.class_of, kind="stable")
    self.counts = np.bincount(self.class_of, minlength=self.num_classes)
    self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
    self.members = order                                  # members[starts[c]:starts[c]+counts[c]]
    self.position = np.empty_like(order)
    self.position[order] = np.arange(len(order)) - self.starts[self.class_of[order]]

  def same_class_partners(self, anchors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each anchor, a uniformly drawn *other* example of its class."""
    cls = self.class_of[anchors]
    if np.any(self.counts[cls] < 2):
      lonely = self.classes[np.unique(cls[self.counts[cls] < 2])]
      raise ValueError(f"classes {lonely.tolist()} have a single example, so they cannot form a "
                       "positive pair; drop them or add examples")
    r = rng.integers(0, self.counts[cls] - 1)
    r = r + (r >= self.position[anchors])                 # skip the anchor itself
    return self.members[self.starts[cls] + r]

  def other_class_partners(self, anchors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each anchor, an example of a uniformly drawn other class (classes balanced)."""
    if self.num_classes < 2:
      raise ValueError("negative pairs need at least two classes; the labels have one")
    cls = self.class_of[anchors]
    other = rng.integers(0, self.num_classes - 1, size=len(anchors))
    other = other + (other >= cls)
    return self.members[self.starts[other] + rng.integers(0, self.counts[other])]


def balanced_pairs(labels: np.ndarray, num_pairs: int | None = None, *, seed: int = 0
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Fixed evaluation pairs: ``(first, second, same)`` index arrays, exactly half positive.

  Anchors run through seeded permutations of all examples (each example is an anchor once
  before any is used twice); ``num_pairs`` defaults to the number of examples. ``same`` is 1
  for a same-class pair and 0 otherwise; negative partners come from a uniformly drawn other
  class.
  """
  index = ClassIndex(labels)
  n = len(index.labels)
  num_pairs = n if num_pairs is None else int(num_pairs)
  if num_pairs < 2:
    raise ValueError(f"num_pairs={num_pairs}: need at least one positive and one negative pair")
  rng = np.random.default_rng(seed)
  repeats = -(-num_pairs // n)
  first = np.concatenate([rng.permutation(n) for _ in range(repeats)])[:num_pairs]
  return (first,) + _partners(index, first, rng)


def _partners(index: ClassIndex, anchors: np.ndarray, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray]:
  """Half positive partners (exactly ``len // 2`` ones, in random positions), half negative."""
  same = np.zeros(len(anchors), np.int32)
  same[rng.permutation(len(anchors))[:len(anchors) // 2]] = 1
  second = np.where(same == 1, index.same_class_partners(anchors, rng),
                    index.other_class_partners(anchors, rng))
  return second, same


def _batch_rng(seed: int, indices: np.ndarray) -> np.random.Generator:
  """A generator determined by the seed and the batch's example indices (see module doc)."""
  return np.random.default_rng([int(seed) & 0xFFFFFFFF] + np.asarray(indices, np.int64).tolist())


class PairTransform:
  """Loader transform: each anchor of the batch gets a partner; half the pairs are positive.

  The Loader's source must hold ``image``, ``label`` and ``index`` (``np.arange(N)``) of the
  same examples as ``images``/``labels`` here. The batch comes back with ``image`` (anchor),
  ``image_b`` (partner), ``pair_label`` (1 same class, 0 different), ``label`` and ``mask``.
  """

  def __init__(self, images: np.ndarray, labels: np.ndarray, seed: int = 0):
    self.images, self.index, self.seed = np.asarray(images), ClassIndex(labels), int(seed)

  def __call__(self, batch: Mapping[str, np.ndarray]) -> Batch:
    if "index" not in batch:
      raise KeyError("PairTransform needs an 'index' column in the Loader source "
                     "(np.arange(num_examples)) to seed its draws")
    anchors = np.asarray(batch["index"], np.int64)
    second, same = _partners(self.index, anchors, _batch_rng(self.seed, anchors))
    out = {k: v for k, v in batch.items() if k != "index"}
    out["image_b"] = self.images[second]
    out["pair_label"] = same
    return out


class ClassBalancedTransform:
  """Loader transform for triplet mining: replaces each batch by P classes x K examples.

  The Loader's source is ``{"index": np.arange(N)}`` with ``global_batch_size = P * K``;
  each batch draws P distinct classes and K distinct examples of each (so every anchor has
  K - 1 positives and (P - 1) * K negatives), seeded by the batch's indices. Output keys:
  ``image``, ``label`` (the original labels) and ``mask``.
  """

  def __init__(self, images: np.ndarray, labels: np.ndarray, classes_per_batch: int,
               examples_per_class: int, seed: int = 0):
    self.images, self.index, self.seed = np.asarray(images), ClassIndex(labels), int(seed)
    self.p, self.k = int(classes_per_batch), int(examples_per_class)
    if not 2 <= self.p <= self.index.num_classes:
      raise ValueError(f"classes_per_batch={self.p} must be between 2 and the number of classes "
                       f"({self.index.num_classes}): triplets need positives and negatives")
    if self.k < 2:
      raise ValueError(f"examples_per_class={self.k} must be >= 2 so every anchor has a positive")
    if self.index.counts.min() < self.k:
      small = self.index.classes[self.index.counts < self.k].tolist()
      raise ValueError(f"classes {small} have fewer than examples_per_class={self.k} examples; "
                       "lower examples_per_class")

  @property
  def batch_size(self) -> int:
    return self.p * self.k

  def sample_indices(self, rng: np.random.Generator) -> np.ndarray:
    """P x K example indices, class by class (shape ``(P * K,)``)."""
    classes = rng.choice(self.index.num_classes, size=self.p, replace=False)
    # K distinct examples per class (without replacement), positions within the class list.
    picks = [rng.choice(self.index.counts[c], size=self.k, replace=False) for c in classes]
    return np.concatenate([self.index.members[self.index.starts[c] + p]
                           for c, p in zip(classes, picks)])

  def __call__(self, batch: Mapping[str, np.ndarray]) -> Batch:
    if "index" not in batch:
      raise KeyError("ClassBalancedTransform needs the Loader source {'index': np.arange(N)}")
    if len(batch["index"]) != self.batch_size:
      raise ValueError(f"the Loader's global_batch_size is {len(batch['index'])} but P x K = "
                       f"{self.p} x {self.k} = {self.batch_size}; make them equal")
    chosen = self.sample_indices(_batch_rng(self.seed, batch["index"]))
    return {"image": self.images[chosen], "label": self.index.labels[chosen].astype(np.int32),
            "mask": np.ones(self.batch_size, np.float32)}

"""Fixed, seeded splits: of examples, or of groups of examples that must stay together.

Light on purpose (numpy only): the builders use it for their train/test splits, the text tasks
for validation and for the splits of a user's own file.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def seeded_partition(n: int, fractions: dict[str, float], seed: int) -> dict[str, np.ndarray]:
  """Sorted index arrays of a fixed random partition of range(n).

  ``fractions`` names the held-out parts in order, e.g. ``{"test": 0.2, "validation": 0.1}``
  (each a fraction of ``n``, rounded); what is left is ``"train"``. The first part takes the
  first indices of one seeded permutation, the next the following ones, so a part's content
  does not depend on the parts after it.
  """
  order = np.random.default_rng(seed).permutation(n)
  held_out, start = {}, 0
  for name, fraction in fractions.items():
    stop = start + int(round(n * fraction))
    held_out[name] = np.sort(order[start:stop])
    start = stop
  return {"train": np.sort(order[start:]), **held_out}


def group_partition(groups: Sequence, fractions: dict[str, float],
                    seed: int) -> dict[str, np.ndarray]:
  """As ``seeded_partition``, over the distinct ``groups`` (sorted): every example of a group
  lands in the same part. Returns sorted example index arrays."""
  names = sorted({str(g) for g in groups})
  parts = seeded_partition(len(names), fractions, seed)
  part_of_group = {}
  for part, group_indices in parts.items():
    part_of_group.update((names[i], part) for i in group_indices)
  example_parts = np.asarray([part_of_group[str(g)] for g in groups], object)
  return {part: np.flatnonzero(example_parts == part) for part in parts}


def seeded_subset(n: int, limit: int, seed: int) -> np.ndarray:
  """Sorted indices of ``limit`` of range(n) drawn with ``seed`` (all of them if ``limit`` is 0
  or at least n): a smaller run sees a fixed sample, not the file's first rows."""
  if limit <= 0 or limit >= n:
    return np.arange(n)
  return np.sort(np.random.default_rng(seed).permutation(n)[:limit])

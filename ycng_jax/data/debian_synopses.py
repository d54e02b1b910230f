"""The ``debian_synopses`` pair task: does synopsis *a* describe long description *b*?

Every tagged Debian package with a long description gives one positive (its own synopsis and
long description) and one negative (its synopsis beside another package's long description).
Half the negatives are random; the other half are hard: another package sharing at least two
debtags with it (the one sharing most, of a seeded sample of candidates). A negative never
comes from the same source package, nor repeats the package's own synopsis or description,
since siblings such as ``foo``, ``foo-dev`` and ``foo-doc`` share their text. Packages are
split by source package, so no source has packages in two splits.
"""

from __future__ import annotations

import functools

import numpy as np

from ycng_jax.data import readers, sources, splits

SPLITS = ("train", "validation", "test")
LABEL_NAMES = ["no", "yes"]  # label 1: the synopsis describes the description
HARD_MIN_SHARED_TAGS = 2
CANDIDATES = 64  # how many packages a negative is drawn among, before a full scan


def packages(records: list[dict] | None = None) -> list[dict]:
  """The packages of the task: ``readers.read_debtags()`` records with a long description.

  Read from apt's lists once per process and list version (the task and the retrieval pairs
  of one run read them once); treat the records as read-only.
  """
  if records is None:
    lists = sources.apt_lists()
    return _packages_of_lists(lists, tuple(p.stat().st_mtime_ns for p in lists))
  return [r for r in records if r["description"].strip()]


@functools.lru_cache(maxsize=1)
def _packages_of_lists(lists, mtimes) -> list[dict]:
  del lists, mtimes  # the cache key: another apt-get update, another read
  return packages(readers.read_debtags())


def split_packages(records: list[dict], *, validation_fraction: float, test_fraction: float,
                   seed: int) -> dict[str, list[dict]]:
  """Packages by split: a seeded partition of the source packages (test carved first)."""
  parts = splits.group_partition([r["source"] for r in records],
                                 {"test": test_fraction, "validation": validation_fraction}, seed)
  return {split: [records[i] for i in parts[split]] for split in SPLITS}


def _ids(values: list[str]) -> np.ndarray:
  """Equal values, equal ids (the ranks of the sorted distinct values)."""
  rank = {value: i for i, value in enumerate(sorted(set(values)))}
  return np.asarray([rank[v] for v in values], np.int64)


class _NegativeSampler:
  """Draws negatives for the packages of one split, from that split only."""

  def __init__(self, records: list[dict], rng: np.random.Generator):
    self.n, self.rng = len(records), rng
    self.source = _ids([r["source"] for r in records])
    self.synopsis = _ids([r["synopsis"] for r in records])
    self.description = _ids([r["description"] for r in records])
    tag_names = sorted({t for r in records for t in r["tags"]})
    tag_index = {t: i for i, t in enumerate(tag_names)}
    member = np.zeros((self.n, len(tag_names)), bool)
    tag_ids = [np.asarray([tag_index[t] for t in r["tags"]], np.int64) for r in records]
    for row, ids in enumerate(tag_ids):
      member[row, ids] = True
    # Tag sets as bits in 64-bit words: shared tags are the popcount of an AND.
    packed = np.packbits(member, axis=1)
    self.bits = np.pad(packed, ((0, 0), (0, -packed.shape[1] % 8))).view(np.uint64)
    postings = [np.flatnonzero(column) for column in member.T]  # tag -> its packages
    self.postings = np.concatenate(postings + [np.zeros(0, np.int64)])
    self.posting_size = np.asarray([len(p) for p in postings], np.int64)
    self.posting_start = np.cumsum(self.posting_size) - self.posting_size
    # A package sharing two tags with i holds one of i's tags beside i's most common one.
    self.other_tags = [ids[np.arange(len(ids)) != np.argmax(self.posting_size[ids])]
                       if len(ids) >= HARD_MIN_SHARED_TAGS else ids[:0] for ids in tag_ids]

  def _allowed(self, anchors, candidates: np.ndarray) -> np.ndarray:
    """Whether each candidate may be an anchor's negative (``anchors`` broadcast to them)."""
    return ((self.source[candidates] != self.source[anchors])
            & (self.synopsis[candidates] != self.synopsis[anchors])
            & (self.description[candidates] != self.description[anchors]))

  def _shared(self, anchors, candidates: np.ndarray) -> np.ndarray:
    """How many tags each candidate shares with its anchor (``anchors`` broadcast to them)."""
    return np.bitwise_count(self.bits[candidates] & self.bits[anchors]).sum(-1, dtype=np.int64)

  def random(self, anchors: np.ndarray) -> np.ndarray:
    """For each anchor a package drawn uniformly among those allowed (-1 if there is none)."""
    candidates = self.rng.integers(self.n, size=(len(anchors), CANDIDATES))
    allowed = self._allowed(anchors[:, None], candidates)
    out = np.where(allowed.any(1), candidates[np.arange(len(anchors)), allowed.argmax(1)], -1)
    for row in np.flatnonzero(out < 0):  # none in the sample: look at all
      pool = np.flatnonzero(self._allowed(anchors[row], np.arange(self.n)))
      out[row] = self.rng.choice(pool) if len(pool) else -1
    return out

  def hard_sampled(self) -> np.ndarray:
    """For each package, of a seeded sample of packages sharing one of its other tags, the
    allowed one sharing most tags, at least 2 (-1 if the sample holds none).

    A package is drawn once per such tag it holds: the sample favours those sharing more.
    """
    anchors = np.flatnonzero([len(t) for t in self.other_tags])
    out = np.full(self.n, -1)
    if not len(anchors):
      return out
    pair_tag = np.concatenate([self.other_tags[i] for i in anchors])  # (anchor, tag) pairs
    pair_end = np.cumsum(self.posting_size[pair_tag])
    pair_start = pair_end - self.posting_size[pair_tag]
    last_pair = np.cumsum([len(self.other_tags[i]) for i in anchors]) - 1
    first_pair = np.concatenate([[0], last_pair[:-1] + 1])
    # Draw positions in each anchor's stretch of its tags' postings laid end to end.
    draws = pair_start[first_pair, None] + self.rng.integers(
        0, (pair_end[last_pair] - pair_start[first_pair])[:, None], (len(anchors), CANDIDATES))
    pair = np.searchsorted(pair_end, draws, side="right")
    candidates = self.postings[self.posting_start[pair_tag[pair]] + draws - pair_start[pair]]
    shared = self._shared(anchors[:, None], candidates)
    shared[~self._allowed(anchors[:, None], candidates)] = -1
    best = shared.argmax(1)
    found = shared[np.arange(len(anchors)), best] >= HARD_MIN_SHARED_TAGS
    out[anchors[found]] = candidates[found, best[found]]
    return out

  def hard_full_scan(self, i: int) -> int:
    """As ``hard_sampled`` for one package, sampling among all those sharing >= 2 tags."""
    if not len(self.other_tags[i]):
      return -1
    candidates = np.unique(np.concatenate(
        [self.postings[self.posting_start[t]:self.posting_start[t] + self.posting_size[t]]
         for t in self.other_tags[i]]))
    shared = self._shared(i, candidates)
    keep = self._allowed(i, candidates) & (shared >= HARD_MIN_SHARED_TAGS)
    candidates, shared = candidates[keep], shared[keep]
    if len(candidates) > CANDIDATES:
      chosen = self.rng.choice(len(candidates), CANDIDATES, replace=False)
      candidates, shared = candidates[chosen], shared[chosen]
    return int(candidates[np.argmax(shared)]) if len(candidates) else -1


def pair_examples(records: list[dict], seed) -> dict[str, np.ndarray]:
  """The examples of one split, two per package (positive, then negative), in package order.

  ``text``: the synopsis; ``text_b``: a long description; ``label``: 1 when it is the
  package's own (int32); ``group``: the source package; and for inspection ``package``,
  ``package_b`` (whose description ``text_b`` is) and ``negative`` ("", "random" or "hard").
  Half the negatives are hard when enough packages have one; a package without an allowed
  negative (a split holding one source) gets none.
  """
  rng = np.random.default_rng(seed)
  sampler = _NegativeSampler(records, rng)
  negative_of, kind_of = np.full(len(records), -1), np.full(len(records), "", object)
  sampled = sampler.hard_sampled()
  hard_wanted = len(records) // 2
  for i in rng.permutation(len(records)):  # a seeded half of the packages get a hard one
    if not hard_wanted:
      break
    negative_of[i] = sampled[i] if sampled[i] >= 0 else sampler.hard_full_scan(i)
    if negative_of[i] >= 0:
      kind_of[i], hard_wanted = "hard", hard_wanted - 1
  rest = np.flatnonzero(negative_of < 0)
  negative_of[rest] = sampler.random(rest)
  kind_of[rest[negative_of[rest] >= 0]] = "random"
  rows = []
  for i, r in enumerate(records):
    rows.append((r["synopsis"], r["description"], 1, r["source"], r["package"], r["package"], ""))
    if negative_of[i] >= 0:
      b = records[negative_of[i]]
      rows.append((r["synopsis"], b["description"], 0, r["source"], r["package"], b["package"],
                   kind_of[i]))
  columns = list(zip(*rows)) if rows else [()] * 7
  out = {key: np.asarray(values, object) for key, values in
         zip(("text", "text_b", "label", "group", "package", "package_b", "negative"), columns)}
  out["label"] = out["label"].astype(np.int32)
  return out


def synopsis_pairs(split: str, *, validation_fraction: float = 0.1, test_fraction: float = 0.2,
                   seed: int = 0, limit: int = 0,
                   records: list[dict] | None = None) -> dict[str, np.ndarray]:
  """The (synopsis, long description) pairs of one split's packages, for retrieval.

  The same packages as ``load_task("debian_synopses", ...)`` with the same fractions and seed
  puts in ``split``, less those whose synopsis is not unique in the split (a query such as
  "transitional package" has no one right answer). ``description_id`` is equal for equal
  long descriptions (``foo1`` and ``foo-dev`` may share one): count a retrieved description as
  right when its id matches. ``limit`` keeps a seeded sample of that many packages.
  """
  if split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
  chosen = split_packages(packages(records), validation_fraction=validation_fraction,
                          test_fraction=test_fraction, seed=seed)[split]
  synopses, counts = np.unique([r["synopsis"] for r in chosen], return_counts=True)
  repeated = set(synopses[counts > 1])
  chosen = [r for r in chosen if r["synopsis"] not in repeated]
  chosen = [chosen[i] for i in splits.seeded_subset(len(chosen), limit, seed)]
  return {"package": np.asarray([r["package"] for r in chosen], object),
          "synopsis": np.asarray([r["synopsis"] for r in chosen], object),
          "description": np.asarray([r["description"] for r in chosen], object),
          "description_id": _ids([r["description"] for r in chosen]),
          "group": np.asarray([r["source"] for r in chosen], object)}

"""Debtags as a zero-shot problem (Yin et al. 2019): train an entailment model on the tags of some
facets, test it on the tags of the others, which it never saw.

- Hypotheses come from Debian's human-written tag descriptions (``/usr/share/debtags/vocabulary``):
  "<facet description>: <tag description>." (e.g. "User Interface: Command Line.").
- Packages are split by source package into a training half and an evaluation half, so that no
  evaluated description (nor a -dev/-doc sibling of it) was read in training.
- Training pairs: for a (package, training facet) with a tag of that facet, one positive (a tag
  it has) and one hard negative (a tag of the same facet it lacks), labelled ``entailment`` /
  ``not_entailment``; ``not_entailment`` comes second, so transformers' zero-shot pipeline
  contrasts entailment with it (its ``contradiction_id`` is the last label when entailment is 0).
- Evaluation: per held-out facet, packages of the evaluation half tagged in it, over the facet's
  tags with at least ``min_tag_count`` of them; a facet is single-choice when at least 90% of
  those packages have exactly one of its tags (then only those are scored, by accuracy).
"""

from __future__ import annotations

import collections
import dataclasses
import functools

import numpy as np

from ycng_jax.data import readers, splits as splitting
from ycng_jax.errors import UserError

LABEL_NAMES = ("entailment", "not_entailment")
SINGLE_CHOICE_SHARE = 0.9


def hypothesis(vocabulary: dict, tag: str) -> str:
  """The hypothesis of a tag: its facet's and its own one-line description."""
  entry = vocabulary["tags"][tag]
  facet = vocabulary["facets"].get(entry["facet"], {}).get("description", entry["facet"])
  return f"{facet}: {entry['description'].rstrip('.')}."


@dataclasses.dataclass
class Facet:
  """One held-out facet's evaluation set: texts, the facet's tags, multi-hot labels (N, T)."""
  name: str
  tags: list[str]
  hypotheses: list[str]
  texts: list[str]
  labels: np.ndarray
  single_choice: bool


@functools.lru_cache(maxsize=2)
def load(seed: int = 0):
  """(vocabulary, packages with a long description, train/eval package halves by source).

  Cached (parsing apt's lists takes seconds): callers read the result and never change it."""
  vocabulary = readers.read_debtags_vocabulary()
  records = [r for r in readers.read_debtags() if r["description"]]
  parts = splitting.group_partition([r["source"] for r in records], {"eval": 0.5}, seed)
  return vocabulary, records, {"train": [records[i] for i in parts["train"]],
                               "eval": [records[i] for i in parts["eval"]]}


def _facet_tags(records: list[dict], vocabulary: dict, facet: str, min_count: int) -> list[str]:
  counts = collections.Counter(t for r in records for t in r["tags"]
                               if vocabulary["tags"].get(t, {}).get("facet") == facet)
  return sorted(t for t, c in counts.items() if c >= min_count)


def check_facets(vocabulary: dict, facets) -> list[str]:
  unknown = sorted(set(facets) - set(vocabulary["facets"]))
  if unknown:
    raise UserError(f"unknown debtags facets {unknown}; the vocabulary has "
                    f"{sorted(vocabulary['facets'])}.")
  return list(facets)


def training_pairs(records: list[dict], vocabulary: dict, facets, *, num_pairs: int,
                   min_tag_count: int, seed: int) -> dict[str, np.ndarray]:
  """``num_pairs`` (description, hypothesis) pairs, half entailment, half hard negatives.

  (package, facet) combinations are drawn uniformly from the training facets' tagged packages,
  at most ``num_pairs // 2 // len(facets) * 4`` from one facet so that "role" (every package)
  does not crowd out the rest.
  """
  rng = np.random.default_rng(seed)
  facets = check_facets(vocabulary, facets)
  combos = []
  cap = max(1, num_pairs // 2 // len(facets) * 4)
  for facet in facets:
    tags = _facet_tags(records, vocabulary, facet, min_tag_count)
    if len(tags) < 2:
      continue
    tagged = [(r, sorted(set(r["tags"]) & set(tags))) for r in records]
    tagged = [(r, have) for r, have in tagged if have and len(have) < len(tags)]
    for i in rng.permutation(len(tagged))[:cap]:
      combos.append((facet, tags, *tagged[i]))
  if not combos:
    raise UserError(f"no package is tagged in the training facets {facets}.")
  order = rng.permutation(len(combos))[:max(1, num_pairs // 2)]
  text, text_b, label, group = [], [], [], []
  for i in order:
    facet, tags, record, have = combos[i]
    lacking = sorted(set(tags) - set(have))
    for tag, y in ((have[rng.integers(len(have))], 0), (lacking[rng.integers(len(lacking))], 1)):
      text.append(record["text"])
      text_b.append(hypothesis(vocabulary, tag))
      label.append(y)
      group.append(record["source"])
  return {"text": np.asarray(text, object), "text_b": np.asarray(text_b, object),
          "label": np.asarray(label, np.int32), "group": np.asarray(group, object)}


def eval_facets(records: list[dict], vocabulary: dict, facets, *, min_tag_count: int,
                max_texts: int, seed: int) -> list[Facet]:
  """The evaluation set of each held-out facet (see the module doc)."""
  out = []
  for facet in check_facets(vocabulary, facets):
    tags = _facet_tags(records, vocabulary, facet, min_tag_count)
    if len(tags) < 2:
      continue
    index = {t: j for j, t in enumerate(tags)}
    rows = [(r["text"], [index[t] for t in r["tags"] if t in index]) for r in records]
    rows = [(text, have) for text, have in rows if have]
    single = np.mean([len(have) == 1 for _, have in rows]) >= SINGLE_CHOICE_SHARE
    if single:
      rows = [(text, have) for text, have in rows if len(have) == 1]
    rows = [rows[i] for i in splitting.seeded_subset(len(rows), max_texts, seed)]
    labels = np.zeros((len(rows), len(tags)), np.float32)
    for i, (_, have) in enumerate(rows):
      labels[i, have] = 1.0
    keep = labels.sum(0) > 0  # a tag the sample lacks cannot be scored
    out.append(Facet(facet, [t for t, k in zip(tags, keep) if k],
                     [hypothesis(vocabulary, t) for t, k in zip(tags, keep) if k],
                     [text for text, _ in rows], labels[:, keep], bool(single)))
  return out

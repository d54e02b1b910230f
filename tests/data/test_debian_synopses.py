"""The debian_synopses pair task on the real apt lists: split by source package, balanced,
hard negatives, determinism, and the retrieval pairs. The lists are parsed once (cached)."""

import numpy as np
import pytest

from ycng_jax.data import debian_synopses
from ycng_jax.text.tasks import load_task, synopsis_pairs


@pytest.fixture(scope="module")
def records():
  return debian_synopses.packages()  # parsed once per process


@pytest.fixture(scope="module")
def task(records):
  del records  # parsed: load_task reuses them
  return load_task("debian_synopses")


def test_records_have_synopsis_and_source(records):
  by_name = {r["package"]: r for r in records}
  assert len(records) >= 30000
  assert all(r["text"] == f"{r['synopsis']}\n{r['description']}" for r in records)
  assert sum(r["source"] != r["package"] for r in records) > 10000  # -dev, -doc, lib... siblings
  assert by_name["0ad-data-common"]["source"] == "0ad-data"  # "Source: 0ad-data" in Packages
  assert by_name["0ad-data-common"]["synopsis"].startswith("Real-time strategy game")


def test_split_by_source_balanced_and_deterministic(task, records):
  assert (task.pair, task.label_names, task.problem_type) == (
      True, ["no", "yes"], "single_label_classification")
  sources = {name: set(split["group"]) for name, split in task.splits.items()}
  assert not (sources["train"] & sources["test"] or sources["train"] & sources["validation"]
              or sources["validation"] & sources["test"])
  packages = task.summary()["packages"]
  assert sum(packages.values()) == len(records) and 0.15 < packages["test"] / len(records) < 0.25
  for name, split in task.splits.items():
    assert split["label"].dtype == np.int32 and split["text_b"].dtype == object
    assert split["label"].sum() == packages[name] == len(split["label"]) - split["label"].sum()
    negatives = task.summary()["negatives"][name]
    assert abs(negatives["hard"] - negatives["random"]) <= 1
  # the same seed builds the same examples
  validation = debian_synopses.split_packages(records, validation_fraction=0.1, test_fraction=0.2,
                                              seed=0)["validation"]
  again = debian_synopses.pair_examples(validation, seed=[0, 1])
  for key in ("text", "text_b", "label", "group"):
    assert list(again[key]) == list(task.splits["validation"][key])


def test_negatives_hard_share_two_tags_never_a_sibling(records):
  validation = debian_synopses.split_packages(records, validation_fraction=0.1, test_fraction=0.2,
                                              seed=0)["validation"]
  examples = debian_synopses.pair_examples(validation, seed=[0, 1])
  by_name = {r["package"]: r for r in records}
  shared, random_shared = [], []
  for a, b, kind in zip(examples["package"], examples["package_b"], examples["negative"]):
    if not kind:
      assert a == b
      continue
    ra, rb = by_name[a], by_name[b]
    assert ra["source"] != rb["source"] and ra["description"] != rb["description"]
    (shared if kind == "hard" else random_shared).append(len(set(ra["tags"]) & set(rb["tags"])))
  assert min(shared) >= 2 and np.mean(shared) > np.mean(random_shared) + 1


def test_synopsis_pairs_are_the_split_packages(task):
  pairs = synopsis_pairs("test")
  assert set(pairs["group"]) <= set(task.splits["test"]["group"])
  test_packages = task.summary()["packages"]["test"]
  assert len(set(pairs["synopsis"])) == len(pairs["synopsis"]) > 0.9 * test_packages
  # equal ids for equal descriptions, and only for them
  id_and_text = set(zip(pairs["description_id"], pairs["description"]))
  assert len(id_and_text) == len(set(pairs["description_id"])) == len(set(pairs["description"]))
  assert len(synopsis_pairs("test", limit=50)["package"]) == 50

"""Topic 11 end to end at a tiny size: the entailment model trained on debtags facets (a tiny
random BERT, a few pairs), then the zero-shot evaluation of both modes on other facets."""

import json
import os

import numpy as np
import pytest

from ycng_jax import experiments
from ycng_jax.errors import UserError
from ycng_jax.text import zero_shot_data
from ycng_jax.text.zero_shot import load_model

from tiny_bert import write_tiny_bert


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
  return write_tiny_bert(tmp_path_factory.mktemp("tiny_bert"), layers=1, numpy_init=True)


def test_pairs_are_balanced_and_held_out_facets_unseen():
  vocabulary, _, halves = zero_shot_data.load(0)
  sources = {h: {r["source"] for r in halves[h]} for h in halves}
  assert not sources["train"] & sources["eval"]
  pairs = zero_shot_data.training_pairs(halves["train"], vocabulary, ("game", "web"),
                                        num_pairs=40, min_tag_count=20, seed=0)
  assert len(pairs["label"]) == 40 and pairs["label"].mean() == 0.5
  train_hypotheses = set(pairs["text_b"])
  assert all(h.startswith(("Games and Amusement: ", "World Wide Web: ")) for h in train_hypotheses)
  facet, = zero_shot_data.eval_facets(halves["eval"], vocabulary, ("scope",), min_tag_count=10,
                                      max_texts=30, seed=0)
  assert facet.single_choice and facet.labels.shape == (30, len(facet.tags))
  np.testing.assert_array_equal(facet.labels.sum(1), 1)
  assert not set(facet.hypotheses) & train_hypotheses
  assert zero_shot_data.hypothesis(vocabulary, "interface::commandline") == (
      "User Interface: Command Line.")
  with pytest.raises(UserError, match=r"unknown debtags facets \['nosuch'\]"):
    zero_shot_data.check_facets(vocabulary, ["scope", "nosuch"])


def test_train_then_evaluate_both_modes(tiny_folder, tmp_path):
  train_dir, eval_dir = str(tmp_path / "train"), str(tmp_path / "eval")
  experiments.run("topic11/debtags_nli_train", train_dir, overrides={
      "model": tiny_folder, "num_pairs": "48", "max_length": "64", "buckets": "(64,)",
      "batch_size": "8", "eval_batch_size": "16", "tensorboard": "False", "verbose": "0",
      "validation_fraction": "0.2", "test_fraction": "0.2"})
  model = load_model(os.path.join(train_dir, "model"))
  assert model.label_names == ("entailment", "not_entailment")
  final = experiments.run("topic11/debtags_zero_shot", eval_dir, overrides={
      "entailment_model": os.path.join(train_dir, "model"), "embedding_model": tiny_folder,
      "eval_facets": "('scope', 'sound')", "max_texts": "12", "rotten_tomatoes_texts": "8"})
  results = json.load(open(os.path.join(eval_dir, "results.json")))
  assert set(results["facets"]) == {"scope", "sound"}
  assert results["facets"]["scope"]["single_choice"] and not results["facets"]["sound"]["single_choice"]
  for mode in ("entailment", "embedding", "majority"):
    assert 0 <= final[f"{mode}_mean_macro_f1"] <= 1
  assert results["rotten_tomatoes"]["texts"] == 8
  for name in ("results.md", "per_label_f1.csv", "per_label_f1.png"):
    assert os.path.getsize(os.path.join(eval_dir, name)) > 0
  assert "**all held-out facets**" in open(os.path.join(eval_dir, "results.md")).read()

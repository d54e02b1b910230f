"""Training the entailment model of topic 11 on debtags (``ycng run topic11/debtags_nli_train``).

The pairs of ``zero_shot_data.training_pairs`` (training facets, training half of the packages)
become a two-way pair task (``entailment`` / ``not_entailment``) for the shared fine-tuning path
(``ycng_jax.text.finetune.train``): same trainer, checkpoints, resume and fingerprint, and the
workdir's ``model/`` is a Hugging Face folder that ``zero_shot_classify`` (entailment mode) and
transformers' zero-shot pipeline both load.
"""

from __future__ import annotations

import ml_collections
import numpy as np

from ycng_jax.checks import whole_number
from ycng_jax.data import splits as splitting
from ycng_jax.text import finetune, zero_shot_data
from ycng_jax.text.tasks import SINGLE, TextTask


def base_config() -> ml_collections.ConfigDict:
  config = finetune.base_config()
  config.runner = "ycng_jax.text.zero_shot_train:run"
  config.dataset = "debtags_nli"     # a name for the results: the pairs are built here
  config.train_facets = ("role",)    # whose tags the model is trained on
  config.num_pairs = 1000            # training pairs before validation and test are cut off
  config.min_tag_count = 20          # a tag needs this many tagged training packages
  config.validation_fraction = 0.05  # of the pairs' source packages
  config.test_fraction = 0.05
  return config


def build_task(config) -> TextTask:
  whole_number("config.num_pairs", config.num_pairs, 2)
  whole_number("config.min_tag_count", config.min_tag_count, 1)
  vocabulary, _, halves = zero_shot_data.load(config.seed)
  pairs = zero_shot_data.training_pairs(halves["train"], vocabulary, config.train_facets,
                                        num_pairs=config.num_pairs,
                                        min_tag_count=config.min_tag_count, seed=config.seed)
  parts = splitting.group_partition(pairs["group"], {"validation": config.validation_fraction,
                                                     "test": config.test_fraction}, config.seed)
  splits = {name: {k: v[rows] for k, v in pairs.items()} for name, rows in parts.items()}
  return TextTask(config.dataset, SINGLE, list(zero_shot_data.LABEL_NAMES), True, splits,
                  info={"source": "debtags descriptions x tag-description hypotheses",
                        "train_facets": list(config.train_facets),
                        "entailment_share": float(np.mean(pairs["label"] == 0))})


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
  return finetune.flat_test_metrics(finetune.train(config, workdir, task=build_task(config)))

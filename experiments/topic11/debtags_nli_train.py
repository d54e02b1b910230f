"""Topic 11: an entailment model for zero-shot classification, trained on debtags (Yin et al. 2019).

  ycng run topic11/debtags_nli_train [--workdir DIR]
  ycng run topic11/debtags_nli_train --config.num_pairs=400 --config.max_length=64   # quick

Pairs of (package description, hypothesis from a debtag's human description, e.g. "User
Interface: Command Line.") labelled entailment / not_entailment, one hard negative (a tag of
the same facet the package lacks) per positive, from the training half of the packages and the
tags of TRAIN_FACETS only: the facets of experiments/topic11/debtags_zero_shot.py (EVAL_FACETS)
stay unseen. all-MiniLM-L6-v2 with a 2-way head, fine-tuned by the shared path
(ycng_jax.text.finetune); workdirs/topic11/debtags_nli_train/model is a Hugging Face folder
with id2label {0: entailment, 1: not_entailment}. Sized to train in under an hour on the 2-core
CPU: 8,000 pairs, one epoch, 64 tokens (24 min at a load average of 7 to 12, the run recorded in
docs/zero_shot.md). The issue's full size, 128 tokens and 10,000 pairs, is one command away (about
up to 2.5x the compute; not recorded yet):

  ycng run topic11/debtags_nli_train --config.num_pairs=10000 --config.max_length=128 \
      --config.buckets="(32, 64, 128)" --workdir workdirs/topic11/debtags_nli_train_128

Runner: ycng_jax.text.zero_shot_train.
"""

from ycng_jax.text.zero_shot_train import base_config

# Facets with at least two tags of 40+ packages, by package count, alternately to training and
# evaluation (the evaluation half is in debtags_zero_shot.py).
TRAIN_FACETS = ("role", "implemented-in", "use", "works-with", "x11", "made-of",
                "works-with-format", "protocol", "hardware", "game", "system", "web",
                "accessibility")


def get_config():
  config = base_config()
  config.train_facets = TRAIN_FACETS
  config.num_pairs = 8000
  config.max_length = 64
  config.buckets = (32, 64)
  config.epochs = 1
  config.learning_rate = 1e-4  # few steps, a new head
  config.log_every_steps = 20
  config.backup_every_steps = 50  # a CPU epoch is long: back up within it
  return config

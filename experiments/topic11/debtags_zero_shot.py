"""Topic 11: zero-shot classification into debtags never seen in training, both modes.

  ycng run topic11/debtags_nli_train          # first: the entailment model (under an hour)
  ycng run topic11/debtags_zero_shot [--workdir DIR]
  ycng run topic11/debtags_zero_shot --config.max_texts=50 --config.rotten_tomatoes_texts=100

The packages of the evaluation half (never read in training), on the tags of EVAL_FACETS (never
seen in training): zero_shot_classify in entailment mode (the model trained by
topic11/debtags_nli_train) and in embedding mode (all-MiniLM-L6-v2), with the same hypotheses
("<facet>: <tag description>.", from Debian's tag descriptions), against the majority tag.
Single-choice facets (90%+ of their packages have one of its tags): accuracy and macro-F1 of the
argmax; the others: micro / macro-F1 of scores above 0.5. Also rotten_tomatoes' fresh / rotten
test reviews ("This review is positive." / "This review is negative."), a task neither saw.
Writes results.md, results.json, per_label_f1.csv and per_label_f1.png.
Runner: ycng_jax.text.zero_shot_experiment.
"""

from ycng_jax.text.zero_shot_experiment import base_config

# The other half of the facets of debtags_nli_train.py (TRAIN_FACETS).
EVAL_FACETS = ("devel", "interface", "uitoolkit", "scope", "suite", "admin", "field", "network",
               "culture", "security", "sound", "mail")


def get_config():
  config = base_config()
  config.eval_facets = EVAL_FACETS
  return config

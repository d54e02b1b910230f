"""Topic 7, the quick example: multi-label Reuters news (corn, grain), MiniLM fine-tuned vs TF-IDF.

  ycng run topic7/reuters_corn_grain [--workdir DIR]

The Reuters-21578 ModApte articles about grain and corn (2 labels, 1554 train / 604 test
articles), all-MiniLM-L6-v2 with a fresh sigmoid head fine-tuned for 3 epochs (binary
cross-entropy), thresholds tuned on a validation split carved from train, against TF-IDF +
one-vs-rest logistic regression tuned the same way. Writes results.md (the table), figures,
per_label_f1.csv and model/ (a Hugging Face folder). Runner: ycng_jax.text.finetune.
"""

from ycng_jax.text.finetune import base_config


def get_config():
  config = base_config()
  config.dataset = "reuters_corn_grain"
  config.epochs = 3
  config.learning_rate = 5e-5
  config.baselines = True
  return config

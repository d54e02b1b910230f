"""Topic 6: semantic textual similarity (STS-B) regression, your copy of the GLUE tsv files.

  ycng run topic6/stsb --config.dataset=PATH/STS-B/train.tsv \
      --config.test_file=PATH/STS-B/dev.tsv

STS-B cannot be downloaded here: give the files of its GLUE release (sentence1, sentence2,
score in [0, 5]). all-MiniLM-L6-v2 reads both sentences as one pair and a one-output head is
fine-tuned with mean squared error; reports Pearson and Spearman on the test file, beside the
cosine of frozen MiniLM embeddings (published: Spearman 0.82 on STS-B test) and TF-IDF cosine.
Runner: ycng_jax.text.finetune.
"""

from ycng_jax.text.finetune import base_config


def get_config():
  config = base_config()
  config.dataset = ""  # required: the path of train.tsv
  config.epochs = 4
  config.learning_rate = 5e-5
  config.baselines = True
  return config

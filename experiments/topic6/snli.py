"""Topic 6: 3-way natural language inference on SNLI or MNLI (your copy of the published jsonl).

  ycng run topic6/snli --config.dataset=PATH/snli_1.0_train.jsonl \
      --config.test_file=PATH/snli_1.0_test.jsonl [--config.limit=20000]

SNLI and MNLI cannot be downloaded here: give the files of their published releases
(sentence1, sentence2, gold_label per line; pairs without a gold label are skipped).
all-MiniLM-L6-v2 reads [CLS] premise [SEP] hypothesis [SEP] and is fine-tuned with a 3-way
softmax head (entailment, neutral, contradiction); reports accuracy, macro-F1 and the
confusion matrix. The saved model/ is an entailment model for zero-shot classification.
Runner: ycng_jax.text.finetune.
"""

from ycng_jax.text.finetune import base_config


def get_config():
  config = base_config()
  config.dataset = ""  # required: the path of the training jsonl
  config.epochs = 1
  config.learning_rate = 5e-5
  config.log_every_steps = 200
  config.backup_every_steps = 500
  return config

"""A tiny BERT folder (2 layers, hidden 32, random weights, a letter-level WordPiece vocabulary)
that every Hugging Face loader accepts: fast fine-tuning tests of the real code paths."""

import os
import string

import jax
import numpy as np

from numpy_variables import numpy_variables

WORDS = ("good", "bad", "great", "awful", "movie", "film", "plot", "the", "a", "is", "was",
         "not", "very", "corn", "grain", "wheat", "price", "cat", "dog", "sat", "mat")


def write_tiny_bert(folder, *, seed: int = 0, layers: int = 2, numpy_init: bool = False,
                    max_position_embeddings: int = 64) -> str:
  """Write config.json, model.safetensors (our save_pretrained) and a fast tokenizer.

  ``numpy_init``: draw the weights with numpy (``random_params``) instead of Flax's init, which
  compiles for seconds."""
  import transformers
  from ycng_jax.models.bert import BertConfig, BertModel
  from ycng_jax.models.hf_weights import save_pretrained
  folder = os.fspath(folder)
  os.makedirs(folder, exist_ok=True)
  letters = list(string.ascii_lowercase + string.digits)
  vocab = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "!", "?"] + list(WORDS)
           + letters + [f"##{c}" for c in letters])
  with open(os.path.join(folder, "vocab.txt"), "w", encoding="utf-8") as f:
    f.write("\n".join(vocab) + "\n")
  transformers.BertTokenizerFast(os.path.join(folder, "vocab.txt"),
                                 do_lower_case=True).save_pretrained(folder)
  config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=layers,
                      num_attention_heads=4, intermediate_size=37,
                      max_position_embeddings=max_position_embeddings)
  module = BertModel(config)
  params = (random_params(module, config, seed) if numpy_init else
            module.init(jax.random.PRNGKey(seed), np.zeros((1, 4), np.int32))["params"])
  save_pretrained(params, config, folder)
  return folder


def random_params(module, config, seed: int):
  """Random params of every kind of ``module`` (biases and LayerNorm scales too, so each tensor's
  mapping is tested), drawn by numpy (``numpy_variables``): Flax's own init costs seconds of
  compiling. With ``initializer_range`` 0.2 the logits are of order 1, so a 1e-5 match means
  something."""
  return numpy_variables(module, np.zeros((1, 4), np.int32), seed=seed,
                         scale=config.initializer_range)["params"]


def random_classifier_params(config, seed: int):
  """``random_params`` of a ``BertForSequenceClassification``."""
  from ycng_jax.models.bert import BertForSequenceClassification
  return random_params(BertForSequenceClassification(config), config, seed)

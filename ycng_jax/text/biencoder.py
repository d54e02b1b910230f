"""A sentence-transformers-style bi-encoder: one BERT tower, mean pooling, unit vectors.

``BiEncoder`` embeds the two sides of a pair with the same tower (one parameter tree, called
twice), so a batch of (anchor, positive) pairs trains it with in-batch negatives
(``ycng_jax.train.ranking_loss``). Inputs are token ids padded to a fixed length per side
(``tokenize_fixed``): the trainer compiles one step shape, and a pair's two sides may have
different lengths (a one-line synopsis, a long description).

``save_sentence_transformer`` writes the tower as a sentence-transformers folder in the layout
of the packaged all-MiniLM-L6-v2 (``config.json`` + ``model.safetensors`` of the ``BertModel``,
the tokenizer files, ``modules.json``, ``1_Pooling/config.json``, ``sentence_bert_config.json``,
``config_sentence_transformers.json``), which ``ycng_jax.text.Encoder.from_pretrained`` and the
``sentence-transformers`` library both load, with equal embeddings.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ycng_jax.models.bert import BertConfig, BertModel, pool_tokens, pooling_mode_from_folder
from ycng_jax.models.hf_weights import load_params, resolve_model_folder, save_pretrained
from ycng_jax.models.siamese import l2_normalize

Array = jax.Array

# Files of a tokenizer that a model folder carries: copied as they are.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt",
                   "special_tokens_map.json")
# sentence-transformers' module list of a BERT + pooling + normalize model.
MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {"idx": 2, "name": "2", "path": "2_Normalize",
     "type": "sentence_transformers.models.Normalize"},
]
POOLING_FLAGS = {"mean": "pooling_mode_mean_tokens", "cls": "pooling_mode_cls_token",
                 "max": "pooling_mode_max_tokens",
                 "mean_sqrt_len": "pooling_mode_mean_sqrt_len_tokens"}


class BiEncoder(nn.Module):
  """``(ids, mask)`` -> unit sentence vectors; ``(ids, mask, ids_b, mask_b)`` -> both sides'.

  The tower is ``BertModel`` (no pooler) under the name ``bert``; ``pool_tokens`` pools as the
  sentence-transformers ``Pooling`` module and the vectors are L2-normalised, as ``Normalize``.
  """
  config: BertConfig
  pooling: str = "mean"
  dtype: Any = jnp.float32
  matmul_dtype: Any = None
  remat: bool = False

  @nn.compact
  def __call__(self, input_ids: Array, attention_mask: Array, input_ids_b: Array | None = None,
               attention_mask_b: Array | None = None, *, train: bool = False):
    tower = BertModel(self.config, add_pooler=False, dtype=self.dtype,
                      matmul_dtype=self.matmul_dtype, remat=self.remat, name="bert")

    def embed(ids, mask):
      hidden, _ = tower(ids, mask, deterministic=not train)
      return l2_normalize(pool_tokens(hidden, mask, self.pooling))

    first = embed(input_ids, attention_mask)
    if input_ids_b is None:
      return first
    return first, embed(input_ids_b, attention_mask_b)


def tokenize_fixed(tokenizer: Any, texts: Sequence[str], length: int) -> dict[str, np.ndarray]:
  """``input_ids`` and ``attention_mask`` (len(texts), length) int32: truncated, then padded.

  ``tokenizer`` is a ``tokenizers.Tokenizer`` with padding off and truncation at ``length`` or
  more (``ycng_jax.text.encoder``'s loader sets both). Texts are stripped first, as
  ``Encoder.encode`` does, so training and inference see the same tokens.
  """
  ids = np.zeros((len(texts), length), np.int32)
  mask = np.zeros((len(texts), length), np.int32)
  for row, encoding in enumerate(tokenizer.encode_batch([t.strip() for t in texts])):
    tokens = encoding.ids[:length]
    if len(encoding.ids) > length:  # keep [SEP] last, as truncation by the tokenizer would
      tokens = tokens[:-1] + encoding.ids[-1:]
    ids[row, :len(tokens)] = tokens
    mask[row, :len(tokens)] = 1
  return {"input_ids": ids, "attention_mask": mask}


def load_tower(name_or_path: str | os.PathLike) -> tuple[str, BertConfig, Any, str]:
  """A sentence-transformers (or plain BERT) folder -> (folder, config, tower params, pooling).

  The params are those of ``BiEncoder``'s ``bert`` tower (a pooler in the checkpoint is unused).
  """
  folder = resolve_model_folder(name_or_path)
  config = BertConfig.from_hf(folder)
  module = BertModel(config, add_pooler=False)
  shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), np.zeros((1, 2), np.int32))
  params, _ = load_params(folder, config, shapes["params"], head="none",
                          allow_unexpected=("pooler.*",))
  return folder, config, params, pooling_mode_from_folder(folder)


def _write_json(path: str, value: Any) -> None:
  with open(path, "w", encoding="utf-8") as f:
    json.dump(value, f, indent=2)
    f.write("\n")


def _read_json(path: str) -> dict:
  if not os.path.isfile(path):
    return {}
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def save_sentence_transformer(tower_params: Any, config: BertConfig, folder: str | os.PathLike,
                              *, tokenizer_folder: str | os.PathLike, max_seq_length: int,
                              pooling: str = "mean") -> str:
  """Write a sentence-transformers folder: the tower, the tokenizer of ``tokenizer_folder``, the
  pooling, normalisation and ``max_seq_length``. Returns the folder's path.

  The layout is the packaged all-MiniLM-L6-v2's (sentence-transformers 2.x), which later
  sentence-transformers versions read as well.
  """
  if pooling not in POOLING_FLAGS:
    raise ValueError(f"pooling={pooling!r}; expected one of {sorted(POOLING_FLAGS)}")
  folder, source = os.fspath(folder), resolve_model_folder(tokenizer_folder)
  os.makedirs(os.path.join(folder, "1_Pooling"), exist_ok=True)
  os.makedirs(os.path.join(folder, "2_Normalize"), exist_ok=True)  # Normalize has no files
  save_pretrained(tower_params, config, folder, head="none")
  copied = [name for name in TOKENIZER_FILES if os.path.isfile(os.path.join(source, name))]
  if "tokenizer.json" not in copied and "vocab.txt" not in copied:
    raise FileNotFoundError(f"{source!r} has neither tokenizer.json nor vocab.txt to copy.")
  for name in copied:
    shutil.copyfile(os.path.join(source, name), os.path.join(folder, name))
  _write_json(os.path.join(folder, "modules.json"), MODULES)
  _write_json(os.path.join(folder, "1_Pooling", "config.json"),
              {"word_embedding_dimension": config.hidden_size,
               **{flag: mode == pooling for mode, flag in POOLING_FLAGS.items()}})
  lower = _read_json(os.path.join(source, "sentence_bert_config.json")).get("do_lower_case", False)
  _write_json(os.path.join(folder, "sentence_bert_config.json"),
              {"max_seq_length": int(max_seq_length), "do_lower_case": lower})
  versions = _read_json(os.path.join(source, "config_sentence_transformers.json")).get(
      "__version__", {"sentence_transformers": "2.0.0"})
  from ycng_jax import __version__  # pylint: disable=import-outside-toplevel
  _write_json(os.path.join(folder, "config_sentence_transformers.json"),
              {"__version__": {**versions, "ycng_jax": __version__}, "prompts": {},
               "default_prompt_name": None, "similarity_fn_name": "cosine"})
  return folder

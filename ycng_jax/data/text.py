"""Tokenization for the pipeline: a local Hugging Face tokenizer, dynamic padding to length buckets.

Padding each batch only up to the smallest bucket that holds its longest text keeps the
number of distinct shapes (and so of jit compilations) small while wasting little compute.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

DEFAULT_BUCKETS = (16, 32, 64, 128, 256, 512)


def load_tokenizer(name_or_path: str | os.PathLike):
  """A fast tokenizer from a local folder, with the folder's own padding/truncation turned off."""
  from transformers import AutoTokenizer  # pylint: disable=import-outside-toplevel
  path = os.fspath(name_or_path)
  if not os.path.isdir(path):
    raise FileNotFoundError(f"Tokenizer folder '{path}' does not exist; pass a local Hugging Face "
                            "model folder (with tokenizer.json or vocab.txt).")
  tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
  backend = getattr(tokenizer, "_tokenizer", None)
  if backend is not None:  # a shipped tokenizer.json may force padding to a fixed length
    backend.no_padding()
    backend.no_truncation()
  return tokenizer


def bucket_length(longest: int, buckets: Sequence[int], max_length: int) -> int:
  """The smallest bucket >= ``longest``, capped at ``max_length``."""
  for b in sorted(buckets):
    if b >= longest:
      return min(b, max_length)
  return max_length


class Tokenize:
  """Pipeline transform: ``text`` (and optionally ``text_pair``) strings -> int32 token arrays.

  Adds ``input_ids``, ``attention_mask``, ``token_type_ids`` of shape (batch, bucket) and
  removes the string features. Rows that are batch padding (``mask`` 0) cost nothing extra.
  """

  def __init__(self, tokenizer, *, text_key: str = "text", pair_key: str | None = None,
               max_length: int = 128, buckets: Sequence[int] = DEFAULT_BUCKETS,
               drop_keys: Sequence[str] = ()):
    self.tokenizer = load_tokenizer(tokenizer) if isinstance(tokenizer, (str, os.PathLike)) else tokenizer
    self.text_key, self.pair_key = text_key, pair_key
    self.max_length, self.buckets = int(max_length), tuple(buckets)
    self.drop_keys = tuple(drop_keys)

  def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    texts = [str(t) for t in batch[self.text_key]]
    pairs = [str(t) for t in batch[self.pair_key]] if self.pair_key else None
    encoded = self.tokenizer(texts, pairs, truncation=True, max_length=self.max_length,
                             padding=False, return_token_type_ids=True)
    ids = encoded["input_ids"]
    length = bucket_length(max(len(x) for x in ids), self.buckets, self.max_length)
    pad_id = self.tokenizer.pad_token_id or 0
    input_ids = np.full((len(ids), length), pad_id, np.int32)
    attention = np.zeros((len(ids), length), np.int32)
    token_types = np.zeros((len(ids), length), np.int32)
    for row, (tokens, types) in enumerate(zip(ids, encoded["token_type_ids"])):
      input_ids[row, :len(tokens)] = tokens
      attention[row, :len(tokens)] = 1
      token_types[row, :len(types)] = types
    out = {k: v for k, v in batch.items()
           if k not in (self.text_key, self.pair_key) and k not in self.drop_keys}
    out.update(input_ids=input_ids, attention_mask=attention, token_type_ids=token_types)
    return out

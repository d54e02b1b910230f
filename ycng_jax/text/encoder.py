"""Sentence embeddings with our Flax BERT: ``Encoder.from_pretrained(...).encode(texts)``.

What makes it fast and still exact:
- texts are tokenized once (Rust ``tokenizers``, no padding, truncation at ``max_seq_length``)
  and sorted by length;
- they are grouped by length bucket (64 to 128 tokens in steps of 16, then 160 to 256 in steps
  of 32, for a 256-token model) and each group is packed, best-fit decreasing, into rows of its
  bucket's length, several short texts to a row, each text attending only to itself with
  positions restarting at 0 (``packed_attention_mask``). Compute is spent on tokens, not on
  padding (on 5k Debian descriptions the model computes 1.15x the real token count, where
  sentence-transformers' batches, sorted by characters and padded to their longest text, come
  to 1.34x), short texts never pay long-row attention, and jit compiles one shape per bucket
  instead of one per batch length;
- the rows of a step are a power of two times the device count and sharded over the mesh's data
  axis; steps are dispatched asynchronously, so the host assembles step i+1 while devices run i;
- a text's vector does not depend on its row neighbours: masking makes the packing exact (to
  float rounding, ~1e-7).
The packing itself (``RowPlan``) lives in ``ycng_jax.text.packing``, shared with ``TextClassifier``.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ycng_jax.checks import whole_number
from ycng_jax.models.bert import (BertConfig, BertModel, packed_attention_mask,
                                  pooling_mode_from_folder)
from ycng_jax.models.hf_weights import load_params, resolve_model_folder
from ycng_jax.text.packing import RowPlan, length_buckets, pack_rows  # pylint: disable=unused-import
from ycng_jax.train.mesh import data_sharding, make_mesh, replicated


def _check_texts(texts: Any) -> list[str]:
  if isinstance(texts, str):
    return [texts]
  if isinstance(texts, (bytes, bytearray)) or not isinstance(texts, Iterable):
    raise TypeError(f"encode() takes a list of str (or one str); got {type(texts).__name__}.")
  texts = list(texts)
  for i, t in enumerate(texts):
    if not isinstance(t, str):
      raise TypeError(f"encode() takes str items; texts[{i}] is {type(t).__name__} ({t!r:.60}). "
                      "Convert it with str() or drop it.")
  return texts


def load_fast_tokenizer(folder: str, max_length: int):
  """The folder's fast tokenizer with padding off and truncation at ``max_length``.

  The packaged ``tokenizer.json`` pads and truncates to 128; left on, mean pooling would average
  padding and long texts would be cut short, so both settings are replaced as sentence-transformers
  does when it calls the tokenizer.
  """
  path = os.path.join(folder, "tokenizer.json")
  if os.path.isfile(path):
    from tokenizers import Tokenizer
    tokenizer = Tokenizer.from_file(path)
  else:
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(folder).backend_tokenizer
  tokenizer.no_padding()
  tokenizer.enable_truncation(max_length=max_length)
  return tokenizer


def _read_json(path: str) -> dict:
  if not os.path.isfile(path):
    return {}
  with open(path, encoding="utf-8") as f:
    return json.load(f)


# Named precisions for the command line and configs: keyword arguments of ``from_pretrained``.
PRECISIONS = {
    "float32": {},
    "bf16-matmul": {"matmul_dtype": jnp.bfloat16},  # the fast CPU setting (AVX512-BF16, AMX)
    "bfloat16": {"dtype": jnp.bfloat16},  # GPUs and TPUs
}


def max_seq_length_of_folder(folder: str, default: int) -> int:
  """The length a sentence-transformers folder truncates at: ``sentence_bert_config.json``'s
  ``max_seq_length``, or (sentence-transformers >= 6 moved it) ``tokenizer_config.json``'s
  ``model_max_length``; else ``default``."""
  length = _read_json(os.path.join(folder, "sentence_bert_config.json")).get("max_seq_length")
  if length is None:
    length = _read_json(os.path.join(folder, "tokenizer_config.json")).get("model_max_length")
  # Tokenizers without a limit store a huge sentinel as model_max_length.
  return int(length) if length is not None and int(length) <= default else default


def precision_kwargs(precision: str) -> dict:
  """``from_pretrained`` keyword arguments of a named precision (see ``PRECISIONS``)."""
  if precision not in PRECISIONS:
    raise ValueError(f"unknown precision {precision!r}; choose one of {sorted(PRECISIONS)}.")
  return dict(PRECISIONS[precision])


class Encoder:
  """Texts -> float32, L2-normalised sentence vectors of shape (n, dim).

  ``encode`` accepts a list (or any iterable) of str, or a single str, which is treated as a
  list of one text and returns shape (1, dim): the output is always 2-D, one row per text.
  """

  def __init__(self, module: BertModel, params: Any, tokenizer: Any, *, max_seq_length: int,
               pooling: str = "mean", mesh: jax.sharding.Mesh | None = None,
               buckets: Sequence[int] | None = None, max_texts_per_row: int = 32):
    self._module = module
    self._tokenizer = tokenizer
    self._max_seq_length = int(max_seq_length)
    if pooling not in ("mean", "cls", "max", "mean_sqrt_len"):
      raise ValueError(f"pooling={pooling!r}; expected mean, cls, max or mean_sqrt_len.")
    self._pooling = pooling
    self._mesh = mesh if mesh is not None else make_mesh()
    self._plan = RowPlan(buckets if buckets is not None else length_buckets(self._max_seq_length),
                         self._max_seq_length, max_texts_per_row, self._mesh.size)
    self._params = jax.device_put(params, replicated(self._mesh))
    rows = data_sharding(self._mesh)
    self._embed = jax.jit(self._embed_rows,
                          in_shardings=(replicated(self._mesh), rows, rows, rows),
                          out_shardings=rows)

  @classmethod
  def from_pretrained(cls, name_or_path: str | os.PathLike = "all-MiniLM-L6-v2", *,
                      max_seq_length: int | None = None, dtype: Any = jnp.float32,
                      matmul_dtype: Any = None, mesh: jax.sharding.Mesh | None = None,
                      buckets: Sequence[int] | None = None) -> "Encoder":
    """A packaged model name ("all-MiniLM-L6-v2") or a local Hugging Face / sentence-transformers
    folder. ``max_seq_length`` defaults to ``sentence_bert_config.json`` (else the model's
    position limit); ``dtype=jnp.bfloat16`` computes in bf16 (GPU/TPU), parameters stay float32;
    ``matmul_dtype=jnp.bfloat16`` keeps float32 activations but multiplies in bf16 with float32
    sums, the fast setting on CPUs with AVX512-BF16 or AMX (``ycng_jax.models.bert.bf16_matmul``).
    """
    folder = resolve_model_folder(name_or_path)
    config = BertConfig.from_hf(folder)
    if max_seq_length is None:
      max_seq_length = max_seq_length_of_folder(folder, config.max_position_embeddings)
    if not 2 <= max_seq_length <= config.max_position_embeddings:
      raise ValueError(f"max_seq_length={max_seq_length} must be in [2, "
                       f"{config.max_position_embeddings}] for this model.")
    module = BertModel(config, add_pooler=False, dtype=dtype, matmul_dtype=matmul_dtype)
    shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), np.zeros((1, 2), np.int32))
    params, _ = load_params(folder, config, shapes["params"], head="none",
                            allow_unexpected=("pooler.*",))
    return cls(module, params, load_fast_tokenizer(folder, max_seq_length),
               max_seq_length=max_seq_length, pooling=pooling_mode_from_folder(folder),
               mesh=mesh, buckets=buckets)

  @property
  def config(self) -> BertConfig:
    """The model's ``BertConfig`` (layer sizes, vocabulary size, maximum length)."""
    return self._module.config

  @property
  def dim(self) -> int:
    return self._module.config.hidden_size

  @property
  def max_seq_length(self) -> int:
    return self._max_seq_length

  def _embed_rows(self, params, input_ids, position_ids, segment_ids):
    """(rows, seq) packed rows -> (rows, max_texts_per_row, dim) normalised text vectors."""
    mask = packed_attention_mask(segment_ids)
    hidden, _ = self._module.apply({"params": params}, input_ids, mask, position_ids=position_ids)
    hidden = hidden.astype(jnp.float32)
    rows, seq, dim = hidden.shape
    slots = self._plan.max_texts_per_row
    # Every token of text s in row r feeds slot r * slots + s - 1; padding feeds a spare slot.
    slot = jnp.where(segment_ids > 0,
                     jnp.arange(rows)[:, None] * slots + segment_ids - 1, rows * slots)
    slot, flat = slot.reshape(-1), hidden.reshape(-1, dim)
    count = rows * slots + 1
    if self._pooling == "max":
      pooled = jax.ops.segment_max(flat, slot, count)
    else:
      if self._pooling == "cls":
        flat = flat * (position_ids.reshape(-1, 1) == 0)
      summed = jax.ops.segment_sum(flat, slot, count)
      tokens = jax.ops.segment_sum(jnp.ones_like(slot, jnp.float32), slot, count)[:, None]
      pooled = (summed if self._pooling == "cls" else
                summed / jnp.sqrt(jnp.maximum(tokens, 1.0)) if self._pooling == "mean_sqrt_len"
                else summed / jnp.maximum(tokens, 1e-9))
    pooled = pooled[:-1].reshape(rows, slots, dim)
    pooled = jnp.where(jnp.isfinite(pooled), pooled, 0.0)  # Empty slots of segment_max.
    norm = jnp.linalg.norm(pooled, axis=-1, keepdims=True)
    return pooled / jnp.maximum(norm, 1e-12)

  def tokenize(self, texts: Sequence[str]) -> tuple[list[list[int]], int]:
    """Token ids of each text (with [CLS]/[SEP]) and how many texts were truncated."""
    encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=True)
    truncated = sum(1 for e in encodings if e.overflowing)
    return [e.ids for e in encodings], truncated

  def encode(self, texts: Iterable[str] | str, batch_size: int = 64,
             show_progress: bool = False) -> np.ndarray:
    """Embeds ``texts``: returns float32 (len(texts), dim), rows L2-normalised, in input order.

    ``batch_size`` is the number of texts a device step holds on average: a step gets the token
    positions of ``batch_size`` texts of its length bucket's middle length, as packed rows. Texts longer
    than ``max_seq_length`` tokens are truncated (one warning gives the count).
    """
    texts = _check_texts(texts)
    batch_size = whole_number("batch_size", batch_size, 1)
    out = np.zeros((len(texts), self.dim), np.float32)
    if not texts:
      return out
    ids, lengths, truncated = self._tokenize_stripped(texts)
    if truncated:
      warnings.warn(f"{truncated} of {len(texts)} texts were longer than max_seq_length="
                    f"{self._max_seq_length} tokens and were truncated.", stacklevel=2)
    progress = None
    if show_progress:
      from tqdm.auto import tqdm
      progress = tqdm(total=len(texts), unit="text", desc="encode")
    pending = None  # (rows' text indices, device result): fetched once the next step is queued.
    for seq, step in self._plan.steps(lengths, batch_size):
      rows = self._plan.fill(step, seq, ids)
      result = self._embed(self._params, rows["input_ids"], rows["position_ids"],
                           rows["segment_ids"])
      if pending is not None:
        self._collect(out, *pending, progress)
      pending = ([row for row in step if row], result)
    self._collect(out, *pending, progress)
    if progress is not None:
      progress.close()
    return out

  def token_positions(self, texts: Sequence[str], batch_size: int = 64) -> tuple[int, int]:
    """``(real tokens, token positions the model computes)`` for ``encode(texts, batch_size)``:
    the second counts the padding that packing into length-bucket rows leaves."""
    batch_size = whole_number("batch_size", batch_size, 1)
    _, lengths, _ = self._tokenize_stripped(_check_texts(texts))
    computed = sum(seq * len(step) for seq, step in self._plan.steps(lengths, batch_size))
    return int(lengths.sum()), int(computed)

  def _tokenize_stripped(self, texts: Sequence[str]) -> tuple[list[list[int]], np.ndarray, int]:
    """What ``encode`` embeds: token ids of the stripped texts, their lengths, the truncated count."""
    ids, truncated = self.tokenize([t.strip() for t in texts])
    return ids, np.fromiter((len(x) for x in ids), np.int64, len(ids)), truncated

  def precompile(self, batch_size: int = 64) -> "Encoder":
    """Compiles the full-size step of every length bucket now, so no later call waits on jit.

    A large ``encode`` call then runs without a compile; small calls (fewer rows than a full
    step) still compile their smaller shapes on first use. Worth it before timing, or before
    serving queries; on an accelerator each shape takes seconds to compile.
    """
    if batch_size < 1:
      raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
    for seq in self._plan.row_lengths():
      rows = self._plan.step_rows(int(seq), batch_size)
      zeros = np.zeros((rows, int(seq)), np.int32)
      jax.block_until_ready(self._embed(self._params, zeros, zeros, zeros))
    return self

  @staticmethod
  def _collect(out: np.ndarray, step: list[list[int]], result: jax.Array, progress) -> None:
    vectors = np.asarray(result)
    for r, row in enumerate(step):
      out[row] = vectors[r, :len(row)]
      if progress is not None:
        progress.update(len(row))

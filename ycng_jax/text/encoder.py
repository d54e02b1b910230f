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
"""

from __future__ import annotations

import bisect
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
from ycng_jax.train.mesh import data_sharding, make_mesh, replicated


def length_buckets(max_length: int) -> tuple[int, ...]:
  """Row lengths: steps of 16 up to 128, of 32 up to 256, of 64 beyond, ending at ``max_length``.

  A text goes into rows of the smallest bucket that holds it, so short texts get short rows
  (attention cost grows with row length) and jit sees a bounded set of shapes. A text longer
  than half its row has it to itself, so the steps bound the padding: on 5k debtags texts the
  model computes 1.15x the real tokens, against 1.23x with steps of 32 from 64 and of 64 from
  128 (``encode_vs_sentence_transformers.py --buckets 16,32,48,64,96,128,192,256`` runs those).
  """
  buckets, n = [], 16
  while n < max_length:
    buckets.append(n)
    n += 16 if n < 128 else 32 if n < 256 else 64
  buckets.append(max_length)
  return tuple(buckets)


_SHORTEST_ROW = 64  # tokens: shorter rows save little attention and cost another compile


def _round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def pack_rows(lengths: np.ndarray, capacity: int, max_segments: int) -> list[list[int]]:
  """Best-fit-decreasing packing: indices of texts per row, each row <= ``capacity`` tokens and
  <= ``max_segments`` texts. Longest texts first; each text goes to the row whose free space fits
  it most tightly (a new row if none does). O(n log n) through a sorted list of free spaces.
  """
  order = np.argsort(-np.asarray(lengths), kind="stable")
  rows: list[list[int]] = []
  free: list[tuple[int, int]] = []  # Sorted (free tokens, row id) of rows still open.
  for i in order:
    need = int(lengths[i])
    if need > capacity:
      raise ValueError(f"A text of {need} tokens does not fit rows of {capacity}.")
    at = bisect.bisect_left(free, (need, -1))
    if at < len(free):
      space, row = free.pop(at)
    else:
      space, row = capacity, len(rows)
      rows.append([])
    rows[row].append(int(i))
    space -= need
    if space >= 2 and len(rows[row]) < max_segments:  # Every text has >= 2 tokens ([CLS] [SEP]).
      bisect.insort(free, (space, row))
  return rows


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
    if buckets is not None and (not buckets or any(int(b) != b or b < 1 for b in buckets)):
      raise ValueError(f"buckets={tuple(buckets)!r}: give positive whole numbers of tokens, "
                       f"e.g. (64, 128, 256), or None for length_buckets(max_seq_length).")
    self._buckets = (tuple(sorted({int(b) for b in buckets})) if buckets is not None
                     else length_buckets(self._max_seq_length))
    if self._buckets[-1] < self._max_seq_length:
      raise ValueError(f"The largest bucket {self._buckets[-1]} is below max_seq_length="
                       f"{self._max_seq_length}: add a bucket of {self._max_seq_length} tokens.")
    if max_texts_per_row < 1:
      raise ValueError(f"max_texts_per_row must be >= 1; got {max_texts_per_row}.")
    self._max_texts_per_row = int(max_texts_per_row)
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
    slots = self._max_texts_per_row
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
    for seq, step in self._packed_steps(lengths, batch_size):
      input_ids = np.zeros((len(step), seq), np.int32)
      position_ids = np.zeros((len(step), seq), np.int32)
      segment_ids = np.zeros((len(step), seq), np.int32)
      for r, row in enumerate(step):
        at = 0
        for s, i in enumerate(row):
          n = lengths[i]
          input_ids[r, at:at + n] = ids[i]
          position_ids[r, at:at + n] = np.arange(n)
          segment_ids[r, at:at + n] = s + 1
          at += n
      result = self._embed(self._params, input_ids, position_ids, segment_ids)
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
    computed = sum(seq * len(step) for seq, step in self._packed_steps(lengths, batch_size))
    return int(lengths.sum()), int(computed)

  def _tokenize_stripped(self, texts: Sequence[str]) -> tuple[list[list[int]], np.ndarray, int]:
    """What ``encode`` embeds: token ids of the stripped texts, their lengths, the truncated count."""
    ids, truncated = self.tokenize([t.strip() for t in texts])
    return ids, np.fromiter((len(x) for x in ids), np.int64, len(ids)), truncated

  def _packed_steps(self, lengths: np.ndarray, batch_size: int):
    """Yields ``(row_length, rows)`` steps; ``rows`` lists text indices per row (``[]`` = padding).

    Texts are grouped by the smallest bucket that holds them (at least the first bucket of
    ``_SHORTEST_ROW`` tokens, below which attention is a small share of the cost), and each group
    is packed into rows of its own length: a corpus with a few long texts does not pay
    long-row attention (cost per token grows with the row length) for all the short ones.

    Only full steps (``_step_rows``: the shapes ``precompile`` compiles) run until the last
    group: the texts of a group's rows that do not fill a whole step move on to the next longer
    group, whose rows hold them too. The last group's remainder is padded to a full step, or,
    when the whole call is smaller than one step, to the next power of two of rows (a few search
    queries should not pay a full step). A large call thus compiles nothing new, where a short
    step per group cost one compile each (on an H200, seconds apiece: 5,000 texts took 4.2 s
    instead of ~0.4).
    """
    usable = self._row_lengths()
    row_length = usable[np.searchsorted(usable, lengths)]
    groups = np.unique(row_length)
    carried: list[int] = []
    emitted = False
    for g, seq in enumerate(groups):
      members = np.concatenate([np.asarray(carried, np.int64), np.flatnonzero(row_length == seq)])
      rows = [[int(members[i]) for i in row]
              for row in pack_rows(lengths[members], int(seq), self._max_texts_per_row)]
      full = self._step_rows(int(seq), batch_size)
      last = g == len(groups) - 1
      whole = len(rows) if last else len(rows) // full * full
      carried = [i for row in rows[whole:] for i in row]
      for start in range(0, whole, full):
        step = rows[start:start + full]
        if len(step) < full and not emitted:  # The whole call is smaller than one step.
          size = _round_up(min(full, 1 << (len(step) - 1).bit_length()), self._mesh.size)
        else:
          size = full
        emitted = True
        yield int(seq), step + [[]] * (size - len(step))

  def _row_lengths(self) -> np.ndarray:
    """The buckets that rows are packed to: at least ``_SHORTEST_ROW`` tokens."""
    floor = next((b for b in self._buckets if b >= _SHORTEST_ROW), self._buckets[-1])
    return np.asarray([b for b in self._buckets if b >= floor])

  def _step_rows(self, seq: int, batch_size: int) -> int:
    """Rows of a full step of row length ``seq``: ``batch_size`` texts of the bucket's middle length.

    It depends on the bucket alone (not a call's lengths), so every call with this batch_size
    reuses one compiled shape per bucket.
    """
    usable = self._row_lengths()
    shorter = usable[usable < seq]
    typical = (seq + (shorter[-1] if len(shorter) else 0)) / 2
    wanted = max(1, int(np.ceil(batch_size * typical / seq)))
    return _round_up(1 << (wanted - 1).bit_length(), self._mesh.size)

  def precompile(self, batch_size: int = 64) -> "Encoder":
    """Compiles the full-size step of every length bucket now, so no later call waits on jit.

    A large ``encode`` call then runs without a compile; small calls (fewer rows than a full
    step) still compile their smaller shapes on first use. Worth it before timing, or before
    serving queries; on an accelerator each shape takes seconds to compile.
    """
    if batch_size < 1:
      raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
    for seq in self._row_lengths():
      rows = self._step_rows(int(seq), batch_size)
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

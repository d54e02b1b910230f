"""A pure-functional BERT encoder (Flax Linen) built from a Hugging Face ``config.json``.

transformers 5 ships no Flax models, so the model is ours; transformers gives the config, the
tokenizer and the reference implementation the parity tests compare against.

Design choices, and why:
- Post-LN layers exactly as in BERT, so that Hugging Face checkpoints load by a name map
  (``ycng_jax.models.hf_weights``) and reproduce the PyTorch outputs to 1e-4.
- Attention projections are ``DenseGeneral`` kernels of shape (hidden, heads, head_dim) and the
  output projection (heads, head_dim, hidden): the heads axis is explicit, so tensor parallelism
  over heads is a ``PartitionSpec`` away, with no reshapes of parameters.
- Attention runs through ``ycng_jax.models.attention.attention``: ``jax.nn.dot_product_attention``
  (fused / cuDNN flash attention where the backend has it), or an explicit softmax with dropout
  on the probabilities when training with ``attention_probs_dropout_prob > 0``, so the model
  trains as the checkpoint was trained. On the CPU it runs over chunks of ``attention_chunk``
  rows (default: 4 on the CPU backend, off elsewhere), which keeps the scores in the cache.
- ``dtype`` is the compute dtype (bf16 on accelerators), ``param_dtype`` stays float32; LayerNorm
  statistics and softmax are computed in float32 whatever ``dtype`` is.
- ``matmul_dtype=jnp.bfloat16`` (with ``dtype`` float32) is the CPU recipe: only the operands of
  the encoder's matmuls are bf16, products and everything else float32 (``bf16_matmul``).
- ``remat=True`` rematerialises each layer in the backward pass (memory for long sequences).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from ycng_jax.models.attention import attention, default_chunk
from ycng_jax.models.layers import Dropout

Array = jax.Array
Dtype = Any

_ACTIVATIONS = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),  # HF "gelu" is the exact erf form.
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_fast": lambda x: jax.nn.gelu(x, approximate=True),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
}
PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")


@dataclasses.dataclass(frozen=True)
class BertConfig:
  """The architecture hyperparameters of a BERT checkpoint (the fields of HF ``config.json``).

  Frozen and hashable, so it can be a Flax module attribute and a static jit argument.
  """
  vocab_size: int = 30522
  hidden_size: int = 768
  num_hidden_layers: int = 12
  num_attention_heads: int = 12
  intermediate_size: int = 3072
  hidden_act: str = "gelu"
  hidden_dropout_prob: float = 0.1
  attention_probs_dropout_prob: float = 0.1
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12
  initializer_range: float = 0.02
  pad_token_id: int = 0
  num_labels: int = 2
  problem_type: str | None = None
  classifier_dropout: float | None = None
  label_names: tuple[str, ...] | None = None

  def __post_init__(self):
    if self.hidden_size % self.num_attention_heads:
      raise ValueError(f"hidden_size={self.hidden_size} is not divisible by "
                       f"num_attention_heads={self.num_attention_heads}.")
    if self.hidden_act not in _ACTIVATIONS:
      raise ValueError(f"hidden_act={self.hidden_act!r} is not supported; "
                       f"expected one of {sorted(_ACTIVATIONS)}.")
    if self.problem_type is not None and self.problem_type not in PROBLEM_TYPES:
      raise ValueError(f"problem_type={self.problem_type!r}; expected one of {PROBLEM_TYPES}.")
    if self.label_names is not None and len(self.label_names) != self.num_labels:
      raise ValueError(f"{len(self.label_names)} label_names for num_labels={self.num_labels}.")

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_attention_heads

  @classmethod
  def from_hf(cls, source: Mapping[str, Any] | str | os.PathLike, **overrides) -> "BertConfig":
    """From a HF config dict, a ``config.json`` path, or a model folder holding one.

    ``overrides`` replace fields (e.g. ``num_labels=3`` for a new classification head).
    """
    if not isinstance(source, Mapping):
      path = os.fspath(source)
      if os.path.isdir(path):
        path = os.path.join(path, "config.json")
      if not os.path.isfile(path):
        raise FileNotFoundError(f"No config.json at {path!r}: pass a Hugging Face model folder.")
      with open(path, encoding="utf-8") as f:
        source = json.load(f)
    hf = dict(source)
    model_type = hf.get("model_type", "bert")
    if model_type != "bert":
      raise ValueError(f"config.json has model_type={model_type!r}; this model is a BERT.")
    position_type = hf.get("position_embedding_type", "absolute")
    if position_type != "absolute":
      raise ValueError(f"position_embedding_type={position_type!r} is not supported (absolute only).")
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in hf.items() if k in names and k not in ("label_names",)}
    id2label = hf.get("id2label")
    if id2label:
      ordered = sorted(((int(k), v) for k, v in id2label.items()))
      kwargs["label_names"] = tuple(v for _, v in ordered)
      kwargs.setdefault("num_labels", len(ordered))
    if "num_labels" in overrides and "label_names" not in overrides:
      kwargs.pop("label_names", None)
    kwargs.update(overrides)
    return cls(**kwargs)

  def to_hf(self, architecture: str = "BertModel") -> dict[str, Any]:
    """The HF ``config.json`` dict that ``transformers.BertConfig`` reads back."""
    out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
           if f.name not in ("label_names", "num_labels")}
    labels = self.label_names or tuple(f"LABEL_{i}" for i in range(self.num_labels))
    out["id2label"] = {str(i): name for i, name in enumerate(labels)}
    out["label2id"] = {name: i for i, name in enumerate(labels)}
    out.update(model_type="bert", architectures=[architecture], position_embedding_type="absolute")
    return out


def _einsum_specs(lhs_ndim: int, rhs_ndim: int, dimension_numbers) -> tuple[str, str, str]:
  """Einsum subscripts (lhs, rhs, out) of a batch-free ``dot_general`` (what Dense uses)."""
  (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = dimension_numbers
  if lhs_batch or rhs_batch:
    raise NotImplementedError("bf16_matmul supports dot_generals without batch dimensions.")
  letters = iter("abcdefghijklmnopqrstuvwxyz")
  lhs = [next(letters) for _ in range(lhs_ndim)]
  rhs = [None] * rhs_ndim
  for i, j in zip(lhs_contract, rhs_contract):
    rhs[j] = lhs[i]
  rhs = [r or next(letters) for r in rhs]
  out = ([lhs[i] for i in range(lhs_ndim) if i not in lhs_contract]
         + [rhs[j] for j in range(rhs_ndim) if j not in rhs_contract])
  return "".join(lhs), "".join(rhs), "".join(out)


@functools.lru_cache(maxsize=None)  # one function per dtype: modules stay equal, jit caches hit
def bf16_matmul(matmul_dtype: Any = jnp.bfloat16):
  """A ``dot_general`` for Flax ``Dense`` layers: operands cast to ``matmul_dtype``, products
  accumulated and returned in float32, in the forward and the backward pass.

  On CPUs with AVX512-BF16 (or AMX), XLA runs bf16 x bf16 -> f32 matmuls about twice as fast
  as f32 ones, but not bf16 -> bf16 ones, and bf16 element-wise work gains nothing there; so
  the fast recipe on those CPUs is float32 activations with bf16 matmul operands. JAX's own
  transpose would multiply the float32 gradient by a bf16 operand (a slow mixed matmul): the
  custom VJP casts the gradient to ``matmul_dtype`` first.
  """
  low = jnp.dtype(matmul_dtype)

  def product(spec, a, b):
    return jnp.einsum(spec, a.astype(low), b.astype(low), preferred_element_type=jnp.float32)

  @functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
  def matmul(lhs, rhs, dimension_numbers):
    l, r, o = _einsum_specs(lhs.ndim, rhs.ndim, dimension_numbers)
    return product(f"{l},{r}->{o}", lhs, rhs)

  def forward(lhs, rhs, dimension_numbers):
    # Residuals: the bf16 operands (half the memory) and zero-size dtype carriers.
    lhs_low, rhs_low = lhs.astype(low), rhs.astype(low)
    return (matmul(lhs, rhs, dimension_numbers),
            (lhs_low, rhs_low, jnp.zeros((0,), lhs.dtype), jnp.zeros((0,), rhs.dtype)))

  def backward(dimension_numbers, residuals, g):
    lhs_low, rhs_low, lhs_dtype, rhs_dtype = residuals
    l, r, o = _einsum_specs(lhs_low.ndim, rhs_low.ndim, dimension_numbers)
    d_lhs = product(f"{o},{r}->{l}", g, rhs_low).astype(lhs_dtype.dtype)
    d_rhs = product(f"{l},{o}->{r}", lhs_low, g).astype(rhs_dtype.dtype)
    return d_lhs, d_rhs

  matmul.defvjp(forward, backward)

  def dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None):
    del precision, preferred_element_type  # fixed: matmul_dtype operands, float32 products
    return matmul(lhs, rhs, tuple(tuple(tuple(d) for d in p) for p in dimension_numbers))

  return dot_general


def _dense_init(config: BertConfig):
  return nn.initializers.normal(stddev=config.initializer_range)


class BertEmbeddings(nn.Module):
  """Word + position + token-type embeddings, then LayerNorm and dropout."""
  config: BertConfig
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  deterministic: bool = True

  @nn.compact
  def __call__(self, input_ids: Array, token_type_ids: Array, position_ids: Array) -> Array:
    cfg = self.config
    embed = lambda n, size: nn.Embed(size, cfg.hidden_size, embedding_init=_dense_init(cfg),
                                     dtype=jnp.float32, param_dtype=self.param_dtype, name=n)
    x = (embed("word_embeddings", cfg.vocab_size)(input_ids)
         + embed("position_embeddings", cfg.max_position_embeddings)(position_ids)
         + embed("token_type_embeddings", cfg.type_vocab_size)(token_type_ids))
    x = nn.LayerNorm(epsilon=cfg.layer_norm_eps, dtype=jnp.float32, param_dtype=self.param_dtype,
                     name="LayerNorm")(x)
    x = Dropout(cfg.hidden_dropout_prob)(x, deterministic=self.deterministic)
    return x.astype(self.dtype)


def _gather_positions(x: Array, positions: Array) -> Array:
  """``x[b, positions[b, j]]`` for (batch, seq, ...) ``x`` and (batch, k) ``positions``."""
  index = positions.reshape(positions.shape + (1,) * (x.ndim - 2))
  return jnp.take_along_axis(x, index, axis=1)


class BertSelfAttention(nn.Module):
  """Multi-head self-attention with a padding mask; returns the output projection's result.

  With ``query_positions`` (batch, k), only the tokens at those positions attend (to every
  token): the output is (batch, k, hidden).
  """
  config: BertConfig
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  deterministic: bool = True
  matmul_dtype: Dtype | None = None
  attention_chunk: int | None = None

  @nn.compact
  def __call__(self, x: Array, attention_mask: Array, query_positions: Array | None = None
               ) -> Array:
    cfg = self.config
    heads, head_dim = cfg.num_attention_heads, cfg.head_dim
    dot_general = bf16_matmul(self.matmul_dtype) if self.matmul_dtype else None
    proj = lambda n, y: nn.DenseGeneral((heads, head_dim), dtype=self.dtype,
                                        param_dtype=self.param_dtype, dot_general=dot_general,
                                        kernel_init=_dense_init(cfg), name=n)(y)
    queries = x if query_positions is None else _gather_positions(x, query_positions)
    # (batch, q_seq, heads, head_dim) and (batch, seq, heads, head_dim)
    q, k, v = proj("query", queries), proj("key", x), proj("value", x)
    if attention_mask.ndim == 2:  # Padding mask (batch, kv_seq).
      mask = attention_mask[:, None, :].astype(bool)
    else:  # Pairwise mask (batch, q_seq, kv_seq), e.g. several texts packed in one row.
      mask = attention_mask.astype(bool)
      if query_positions is not None:
        mask = _gather_positions(mask, query_positions)
    rate = 0.0 if self.deterministic else cfg.attention_probs_dropout_prob
    chunk = default_chunk() if self.attention_chunk is None else self.attention_chunk
    context = attention(q, k, v, mask, chunk=chunk, dropout_rate=rate,
                        dropout_key=self.make_rng("dropout") if rate > 0 else None)
    return nn.DenseGeneral(cfg.hidden_size, axis=(-2, -1), dtype=self.dtype,
                           param_dtype=self.param_dtype, kernel_init=_dense_init(cfg),
                           dot_general=dot_general, name="output")(context)


class BertLayer(nn.Module):
  """One post-LN transformer layer: x = LN(x + Attn(x)); x = LN(x + FFN(x)).

  With ``query_positions`` (batch, k) it computes only the outputs at those positions,
  (batch, k, hidden): what a last layer needs when only some tokens' states are read.
  """
  config: BertConfig
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  deterministic: bool = True
  matmul_dtype: Dtype | None = None
  attention_chunk: int | None = None

  @nn.compact
  def __call__(self, x: Array, attention_mask: Array, query_positions: Array | None = None
               ) -> Array:
    cfg = self.config
    dropout = lambda y: Dropout(cfg.hidden_dropout_prob)(y, deterministic=self.deterministic)
    norm = lambda n: nn.LayerNorm(epsilon=cfg.layer_norm_eps, dtype=jnp.float32,
                                  param_dtype=self.param_dtype, name=n)
    dot_general = bf16_matmul(self.matmul_dtype) if self.matmul_dtype else None
    dense = lambda size, n: nn.Dense(size, dtype=self.dtype, param_dtype=self.param_dtype,
                                     kernel_init=_dense_init(cfg), dot_general=dot_general,
                                     name=n)
    attn = BertSelfAttention(cfg, self.dtype, self.param_dtype, self.deterministic,
                             self.matmul_dtype, self.attention_chunk,
                             name="attention")(x, attention_mask, query_positions)
    if query_positions is not None:
      x = _gather_positions(x, query_positions)
    x = norm("attention_norm")(x + dropout(attn)).astype(self.dtype)
    h = _ACTIVATIONS[cfg.hidden_act](dense(cfg.intermediate_size, "intermediate")(x))
    x = norm("output_norm")(x + dropout(dense(cfg.hidden_size, "output")(h)))
    return x.astype(self.dtype)


class BertPooler(nn.Module):
  """BERT's pooler: tanh(Dense(hidden state of [CLS]))."""
  config: BertConfig
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, hidden: Array) -> Array:
    dense = nn.Dense(self.config.hidden_size, dtype=self.dtype, param_dtype=self.param_dtype,
                     kernel_init=_dense_init(self.config), name="dense")
    return jnp.tanh(dense(hidden[:, 0]))


class BertModel(nn.Module):
  """The BERT encoder: ``(input_ids, attention_mask) -> (last_hidden_state, pooled or None)``.

  ``attention_mask`` is (batch, seq), 1 for real tokens and 0 for padding, or (batch, seq, seq),
  which tokens each token may attend to (see ``packed_attention_mask``); ``token_type_ids``
  default to 0 and ``position_ids`` to 0..seq-1. Pass ``deterministic=False`` and a ``"dropout"``
  rng to train.

  ``output_positions`` (batch, k) asks for the last layer's states at those positions only
  (e.g. each packed text's [CLS]): the last layer then computes its queries, output projection
  and feed-forward for those k tokens alone (its keys and values still for all), and
  last_hidden_state is (batch, k, hidden); the pooler reads its first position.
  """
  config: BertConfig
  add_pooler: bool = True
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  remat: bool = False
  matmul_dtype: Dtype | None = None
  attention_chunk: int | None = None

  @nn.compact
  def __call__(self, input_ids: Array, attention_mask: Array | None = None,
               token_type_ids: Array | None = None, position_ids: Array | None = None,
               deterministic: bool = True, output_positions: Array | None = None
               ) -> tuple[Array, Array | None]:
    cfg = self.config
    if input_ids.ndim != 2:
      raise ValueError(f"input_ids must be (batch, seq) token ids; got shape {input_ids.shape}.")
    seq_len = input_ids.shape[1]
    if seq_len > cfg.max_position_embeddings:
      raise ValueError(f"Sequence length {seq_len} exceeds max_position_embeddings="
                       f"{cfg.max_position_embeddings}: truncate the input.")
    if attention_mask is None:
      attention_mask = jnp.ones_like(input_ids)
    if token_type_ids is None:
      token_type_ids = jnp.zeros_like(input_ids)
    if position_ids is None:
      position_ids = jnp.broadcast_to(jnp.arange(seq_len), input_ids.shape)
    x = BertEmbeddings(cfg, self.dtype, self.param_dtype, deterministic, name="embeddings")(
        input_ids, token_type_ids, position_ids)
    layer_cls = nn.remat(BertLayer) if self.remat else BertLayer
    for i in range(cfg.num_hidden_layers):
      last = i == cfg.num_hidden_layers - 1
      x = layer_cls(cfg, self.dtype, self.param_dtype, deterministic, self.matmul_dtype,
                    self.attention_chunk, name=f"layer_{i}")(
                        x, attention_mask, output_positions if last else None)
    pooled = (BertPooler(cfg, self.dtype, self.param_dtype, name="pooler")(x)
              if self.add_pooler else None)
    return x, pooled


def packed_attention_mask(segment_ids: Array) -> Array:
  """(batch, seq, seq) mask for rows that hold several texts: a token attends only to tokens of
  its own text. ``segment_ids`` numbers the texts of a row 1, 2, ...; 0 marks padding. With
  ``position_ids`` restarting at 0 for each text, every text gets exactly the result it would get
  alone, and no compute is spent on padding short texts to a common length.
  """
  same = segment_ids[:, :, None] == segment_ids[:, None, :]
  return same & (segment_ids[:, None, :] > 0)


def pool_tokens(hidden: Array, attention_mask: Array, mode: str = "mean") -> Array:
  """Sentence vectors from token states, as sentence-transformers' ``Pooling`` module.

  ``mode``: "mean" (mean over real tokens), "cls", "max" (over real tokens), or
  "mean_sqrt_len" (sum / sqrt(length)). Computed in float32.
  """
  hidden = hidden.astype(jnp.float32)
  mask = attention_mask.astype(jnp.float32)[..., None]
  if mode == "cls":
    return hidden[:, 0]
  if mode == "max":
    return jnp.max(jnp.where(mask > 0, hidden, -1e9), axis=1)
  summed = jnp.sum(hidden * mask, axis=1)
  counts = jnp.maximum(jnp.sum(mask, axis=1), 1e-9)
  if mode == "mean":
    return summed / counts
  if mode == "mean_sqrt_len":
    return summed / jnp.sqrt(counts)
  raise ValueError(f"Unknown pooling mode {mode!r}; expected mean, cls, max or mean_sqrt_len.")


_POOLING_MODE_NAMES = {"mean": "mean", "cls": "cls", "max": "max",
                       "mean_sqrt_len_tokens": "mean_sqrt_len", "mean_sqrt_len": "mean_sqrt_len"}


def pooling_mode_from_folder(folder: str | os.PathLike) -> str:
  """The pooling a sentence-transformers folder declares in ``1_Pooling/config.json`` (mean if none)."""
  path = os.path.join(os.fspath(folder), "1_Pooling", "config.json")
  if not os.path.isfile(path):
    return "mean"
  with open(path, encoding="utf-8") as f:
    cfg = json.load(f)
  # sentence-transformers >= 6 names the mode in one key; older folders set one flag per mode.
  if isinstance(cfg.get("pooling_mode"), str):
    mode = _POOLING_MODE_NAMES.get(cfg["pooling_mode"])
    if mode is None:
      raise ValueError(f"{path} asks for pooling_mode={cfg['pooling_mode']!r}; this encoder "
                       f"supports {sorted(_POOLING_MODE_NAMES)}.")
    return mode
  for key, mode in (("pooling_mode_mean_tokens", "mean"), ("pooling_mode_cls_token", "cls"),
                    ("pooling_mode_max_tokens", "max"),
                    ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len")):
    if cfg.get(key):
      return mode
  raise ValueError(f"{path} enables no pooling mode this encoder supports.")


class BertForSequenceClassification(nn.Module):
  """BERT + pooler + dropout + a linear head, as HF ``BertForSequenceClassification``.

  ``num_labels == 1`` is regression (one score); otherwise logits over ``num_labels`` classes
  (single- or multi-label, see ``sequence_classification_loss``). The pooler reads [CLS] alone,
  so the last layer computes that token's state only (``output_positions``): the same logits
  for a sixth less of the feed-forward work of a 6-layer model, in training too.
  """
  config: BertConfig
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  remat: bool = False
  matmul_dtype: Dtype | None = None
  attention_chunk: int | None = None

  @nn.compact
  def __call__(self, input_ids: Array, attention_mask: Array | None = None,
               token_type_ids: Array | None = None, position_ids: Array | None = None,
               deterministic: bool = True) -> Array:
    cfg = self.config
    _, pooled = BertModel(cfg, add_pooler=True, dtype=self.dtype, param_dtype=self.param_dtype,
                          remat=self.remat, matmul_dtype=self.matmul_dtype,
                          attention_chunk=self.attention_chunk, name="bert")(
                              input_ids, attention_mask, token_type_ids, position_ids,
                              deterministic,
                              output_positions=jnp.zeros((input_ids.shape[0], 1), jnp.int32))
    rate = cfg.classifier_dropout if cfg.classifier_dropout is not None else cfg.hidden_dropout_prob
    pooled = Dropout(rate)(pooled, deterministic=deterministic)
    logits = nn.Dense(cfg.num_labels, dtype=self.dtype, param_dtype=self.param_dtype,
                      kernel_init=_dense_init(cfg), name="classifier")(pooled)
    return logits.astype(jnp.float32)


def problem_type_of(config: BertConfig) -> str:
  """The loss a classification config implies, by HF's rule when ``problem_type`` is unset."""
  if config.problem_type is not None:
    return config.problem_type
  return "regression" if config.num_labels == 1 else "single_label_classification"


def sequence_classification_loss(logits: Array, labels: Array, config: BertConfig) -> Array:
  """Mean loss as HF computes it: MSE (regression), cross-entropy, or sigmoid BCE (multi-label)."""
  import optax  # Local: models stay importable where optax is missing.
  kind = problem_type_of(config)
  if kind == "regression":
    return jnp.mean((logits.squeeze(-1) - labels.astype(jnp.float32)) ** 2)
  if kind == "single_label_classification":
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
  return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, labels.astype(jnp.float32)))

"""Multi-head attention that a CPU runs fast: the batch in small chunks, one after another.

XLA:CPU computes ``softmax(q k^T) v`` for a whole batch as a few huge batched operations: for
64 rows of 128 tokens and 12 heads, 50 MB of attention scores go to memory and come back for
each of the score product, the mask, the softmax and the context product. Run through
``lax.map`` over chunks of a few rows, each chunk's scores (4 rows: 3 MB) stay in the cache;
measured on a 2-core AVX-512 CPU (``scripts/bench/attention_cpu.py``, 64 x 128 tokens, 12
heads) that is 2.7x faster forward and 1.3x forward + backward (3.1x and 1.6x with dropout).
The backward pass is a custom VJP that recomputes each chunk's forward and takes its gradient
chunk by chunk as well, so it never holds the whole batch's probabilities either.

Accelerators have fused (flash) attention kernels instead: ``attention`` only chunks when the
chunk size asks for it, and the BERT model asks only on the CPU backend.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from ycng_jax.models.layers import keep_mask

# Rows per chunk on the CPU: 2, 4 and 8 measured within 35% of each other; 4 was the best
# forward + backward, 2 the best forward alone.
CPU_CHUNK = 4


def default_chunk() -> int:
  """Rows per attention chunk for the current default backend: ``CPU_CHUNK`` on the CPU, else
  0 (no chunking; GPUs and TPUs have fused attention)."""
  return CPU_CHUNK if jax.default_backend() == "cpu" else 0


def _largest_divisor_at_most(n: int, limit: int) -> int:
  return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def _attend(q, k, v, mask, key, rate: float):
  """Attention of one chunk: q, k, v (rows, seq, heads, head_dim), mask (rows, 1 or q_seq,
  kv_seq) of booleans, dropout on the probabilities at ``rate`` with ``key`` (raw uint32)."""
  if rate == 0.0:
    return jax.nn.dot_product_attention(q, k, v, mask=mask[:, None])
  logits = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32) / jnp.sqrt(q.shape[-1])
  logits = jnp.where(mask[:, None], logits, jnp.finfo(jnp.float32).min)
  probs = jax.nn.softmax(logits, axis=-1)
  keep, keep_prob = keep_mask(key, rate, probs.shape)
  probs = jnp.where(keep, probs / keep_prob, 0.0)
  return jnp.einsum("bhqk,bkhd->bqhd", probs.astype(v.dtype), v)


def _chunks(x, n_chunks: int):
  return x.reshape(n_chunks, x.shape[0] // n_chunks, *x.shape[1:])


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def _chunked(q, k, v, mask, keys, n_chunks: int, rate: float):
  parts = (_chunks(q, n_chunks), _chunks(k, n_chunks), _chunks(v, n_chunks),
           _chunks(mask, n_chunks), keys)
  out = jax.lax.map(lambda a: _attend(*a, rate), parts)
  return out.reshape(q.shape)


def _chunked_forward(q, k, v, mask, keys, n_chunks, rate):
  return _chunked(q, k, v, mask, keys, n_chunks, rate), (q, k, v, mask, keys)


def _chunked_backward(n_chunks, rate, residuals, g):
  q, k, v, mask, keys = residuals

  def one_chunk(a):
    qc, kc, vc, mc, key, gc = a
    _, vjp = jax.vjp(lambda x, y, z: _attend(x, y, z, mc, key, rate), qc, kc, vc)
    return vjp(gc)

  parts = (_chunks(q, n_chunks), _chunks(k, n_chunks), _chunks(v, n_chunks),
           _chunks(mask, n_chunks), keys, _chunks(g, n_chunks))
  dq, dk, dv = jax.lax.map(one_chunk, parts)
  return dq.reshape(q.shape), dk.reshape(k.shape), dv.reshape(v.shape), None, None


_chunked.defvjp(_chunked_forward, _chunked_backward)


def attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array, *, chunk: int = 0,
              dropout_rate: float = 0.0, dropout_key: jax.Array | None = None) -> jax.Array:
  """Scaled dot-product attention with a boolean ``mask``, optionally chunked over the batch.

  Args:
    q, k, v: (batch, seq, heads, head_dim).
    mask: (batch, 1, kv_seq) (padding) or (batch, q_seq, kv_seq) (pairwise), True = attend.
    chunk: rows per chunk (0: the whole batch at once). A chunk size that does not divide the
      batch becomes the largest one that does.
    dropout_rate, dropout_key: dropout on the attention probabilities (training).
  Returns: the context (batch, seq, heads, head_dim).
  """
  batch = q.shape[0]
  if dropout_rate > 0.0 and dropout_key is None:
    raise ValueError("attention dropout needs a dropout_key.")
  n_chunks = batch // _largest_divisor_at_most(batch, chunk) if chunk > 0 else 1
  if dropout_rate > 0.0:
    if jnp.issubdtype(dropout_key.dtype, jax.dtypes.prng_key):
      dropout_key = jax.random.key_data(dropout_key)
    keys = jax.vmap(lambda i: jax.random.fold_in(dropout_key, i))(jnp.arange(n_chunks))
  else:
    keys = jnp.zeros((n_chunks, 2), jnp.uint32)  # unused without dropout
  if n_chunks == 1:
    return _attend(q, k, v, mask, keys[0], dropout_rate)
  return _chunked(q, k, v, mask, keys, n_chunks, float(dropout_rate))

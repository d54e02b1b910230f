"""Chunked attention equals whole-batch attention, forward and backward, with and without dropout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ycng_jax.models import attention as attn


def _qkv(batch=6, seq=9, heads=2, head_dim=4, seed=0):
  rng = np.random.default_rng(seed)
  q, k, v = (jnp.asarray(rng.normal(size=(batch, seq, heads, head_dim)), jnp.float32)
             for _ in range(3))
  lengths = rng.integers(2, seq + 1, batch)
  padding = jnp.asarray(np.arange(seq)[None, None, :] < lengths[:, None, None])  # (b, 1, s)
  segments = rng.integers(0, 3, (batch, seq))
  pairwise = jnp.asarray((segments[:, :, None] == segments[:, None, :]) | np.eye(seq, dtype=bool))
  return q, k, v, padding, pairwise


def _loss(fn):
  return lambda q, k, v: jnp.sum(jnp.sin(fn(q, k, v)))


@pytest.mark.parametrize("mask_kind", ["padding", "pairwise"])
@pytest.mark.parametrize("chunk", [1, 2, 4])  # 4 does not divide 6: chunks of 3
def test_chunked_equals_whole_batch(mask_kind, chunk):
  q, k, v, padding, pairwise = _qkv()
  mask = padding if mask_kind == "padding" else pairwise
  whole = lambda q, k, v: attn.attention(q, k, v, mask, chunk=0)
  chunked = lambda q, k, v: attn.attention(q, k, v, mask, chunk=chunk)
  np.testing.assert_allclose(jax.jit(chunked)(q, k, v), whole(q, k, v), atol=1e-6)
  grads = jax.grad(_loss(chunked), (0, 1, 2))(q, k, v)
  expected = jax.grad(_loss(whole), (0, 1, 2))(q, k, v)
  for g, e in zip(grads, expected):
    np.testing.assert_allclose(g, e, atol=1e-5)


def test_chunked_dropout_matches_a_plain_loop_over_the_same_chunks():
  q, k, v, padding, _ = _qkv()
  key, rate, n_chunks = jax.random.key(3), 0.3, 3
  chunked = lambda q, k, v: attn.attention(q, k, v, padding, chunk=2, dropout_rate=rate,
                                           dropout_key=key)
  raw = jax.random.key_data(key)

  def loop(q, k, v):  # the same chunks and keys, differentiated by plain autodiff
    parts = [attn._attend(q[2 * i:2 * i + 2], k[2 * i:2 * i + 2], v[2 * i:2 * i + 2],
                          padding[2 * i:2 * i + 2], jax.random.fold_in(raw, i), rate)
             for i in range(n_chunks)]
    return jnp.concatenate(parts)

  np.testing.assert_allclose(chunked(q, k, v), loop(q, k, v), atol=1e-6)
  for g, e in zip(jax.grad(_loss(chunked), (0, 1, 2))(q, k, v),
                  jax.grad(_loss(loop), (0, 1, 2))(q, k, v)):
    np.testing.assert_allclose(g, e, atol=1e-5)
  assert not np.allclose(chunked(q, k, v), attn.attention(q, k, v, padding, chunk=2))


def test_dropout_drops_about_rate_of_the_probabilities():
  # Zero queries and keys: every probability is 1/16. With v the identity over the keys, the
  # context row is the (dropped, rescaled) probability row.
  mask = jnp.ones((8, 1, 16), bool)
  eye = jnp.broadcast_to(jnp.eye(16)[None, :, None, :], (8, 16, 2, 16))
  out = attn.attention(jnp.zeros((8, 16, 2, 16)), jnp.zeros((8, 16, 2, 16)), eye, mask, chunk=4,
                       dropout_rate=0.25, dropout_key=jax.random.key(0))
  dropped = float(jnp.mean(out == 0))
  assert 0.22 < dropped < 0.28
  np.testing.assert_allclose(out[out > 0], 1 / 16 / 0.75, rtol=1e-4)


def test_dropout_needs_a_key():
  q, k, v, padding, _ = _qkv()
  with pytest.raises(ValueError, match="dropout_key"):
    attn.attention(q, k, v, padding, dropout_rate=0.1)


def test_default_chunk_is_on_for_cpu_only():
  assert attn.default_chunk() == (attn.CPU_CHUNK if jax.default_backend() == "cpu" else 0)

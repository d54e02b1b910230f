"""Small layers with their own parameters and initialisers (topic 2: custom layers).

Flax's ``self.param(name, init_fn, shape)`` is Keras' ``add_weight``: the initialiser is a
function ``(key, shape, dtype) -> array`` and the parameter lives in the params pytree,
so optimizers, checkpoints and sharding treat it like any built-in layer's.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

Initializer = Callable[[jax.Array, tuple[int, ...], Any], jax.Array]


def scaled_normal(scale: float = 1.0) -> Initializer:
  """Normal init with std ``scale / sqrt(fan_in)`` (fan-in = all but the last axis)."""

  def init(key, shape, dtype=jnp.float32):
    fan_in = 1
    for d in shape[:-1]:
      fan_in *= d
    return jax.random.normal(key, shape, dtype) * (scale / jnp.sqrt(max(fan_in, 1)))

  return init


class Linear(nn.Module):
  """``x @ w + b`` written out: the minimal custom layer with two parameters."""
  features: int
  kernel_init: Initializer = scaled_normal(1.0)
  bias_init: Initializer = nn.initializers.zeros

  @nn.compact
  def __call__(self, x):
    w = self.param("w", self.kernel_init, (x.shape[-1], self.features))
    b = self.param("b", self.bias_init, (self.features,))
    return x @ w.astype(x.dtype) + b.astype(x.dtype)


class LearnedScaleSwish(nn.Module):
  """``x * sigmoid(beta * x)`` with one learnable ``beta`` per feature, initialised to ``beta0``."""
  beta0: float = 1.0

  @nn.compact
  def __call__(self, x):
    beta = self.param("beta", nn.initializers.constant(self.beta0), (x.shape[-1],))
    return x * nn.sigmoid(beta.astype(x.dtype) * x)


class Rescaling(nn.Module):
  """``x * scale + offset`` after a cast to float (Keras' Rescaling; no parameters)."""
  scale: float = 1.0 / 255.0
  offset: float = 0.0

  @nn.compact
  def __call__(self, x):
    dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
    return x.astype(dtype) * self.scale + self.offset


class Flatten(nn.Module):
  """Keep the batch axis, flatten the rest."""

  @nn.compact
  def __call__(self, x):
    return x.reshape(x.shape[0], -1)


class PatchConv(nn.Module):
  """A stride-1 ``SAME`` 2-D convolution computed as one matmul over its input's shifted copies
  (im2col): ``nn.Conv``'s parameters (``kernel`` (kh, kw, in, out), ``bias``), initialisers and
  results (to float rounding), so checkpoints move between the two.

  Why: under ``jax.vmap`` over a population's members (``ycng_jax.tuning.population``), each
  member's inputs and kernel differ, and ``nn.Conv`` becomes a grouped convolution that
  XLA:CPU runs 2.5-3x slower per member than one convolution alone; this layer becomes a
  batched matmul, which runs per member about as fast as alone. On its own it is about 15%
  slower than ``nn.Conv`` on XLA:CPU (the gradient of topic 9's CNN: 64 against 54 ms), so
  keep ``nn.Conv`` outside populations; GPUs and TPUs run grouped convolutions well.
  """
  features: int
  kernel_size: tuple[int, int] = (3, 3)
  use_bias: bool = True
  kernel_init: Initializer = nn.linear.default_kernel_init
  bias_init: Initializer = nn.initializers.zeros

  @nn.compact
  def __call__(self, x):
    kh, kw = self.kernel_size
    if kh % 2 == 0 or kw % 2 == 0:
      raise ValueError(f"PatchConv takes odd kernel sizes (centred SAME padding); got "
                       f"{self.kernel_size}: use nn.Conv")
    kernel = self.param("kernel", self.kernel_init, (kh, kw, x.shape[-1], self.features))
    bias = self.param("bias", self.bias_init, (self.features,)) if self.use_bias else None
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias)  # as nn.Conv: no silent downcast
    h, w = x.shape[-3:-1]
    pads = [(0, 0)] * (x.ndim - 3) + [(kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)]
    padded = jnp.pad(x, pads)
    # (..., h, w, kh * kw * in), ordered like the kernel's flattened (kh, kw, in) axes.
    patches = jnp.concatenate([padded[..., i:i + h, j:j + w, :]
                               for i in range(kh) for j in range(kw)], axis=-1)
    y = patches @ kernel.reshape(-1, self.features)
    return y if bias is None else y + bias


def max_pool(x: jax.Array, window_shape: tuple[int, ...] = (2, 2),
             strides: tuple[int, ...] | None = None, padding: str = "VALID") -> jax.Array:
  """``flax.linen.max_pool`` with a fast path for non-overlapping windows.

  When the windows tile the input (``strides == window_shape``, ``VALID``
  padding), the pool is a crop, a reshape and a ``max``. Its gradient is an
  elementwise compare, where ``nn.max_pool``'s ``reduce_window`` gradient is a
  ``select_and_scatter`` that XLA:CPU runs slowly: on a 2-core CPU this
  alone makes a small CNN's train step ~1.7x faster. Values are identical;
  gradients differ only on exact ties inside a window, which this splits
  evenly instead of giving to one element (after a ReLU, tied zeros get no
  gradient either way). ``x`` is ``(batch, *spatial, features)``.
  """
  strides = tuple(window_shape) if strides is None else tuple(strides)
  window_shape = tuple(window_shape)
  if padding != "VALID" or strides != window_shape or x.ndim != len(window_shape) + 2:
    return nn.max_pool(x, window_shape, strides, padding)
  spatial = x.shape[1:-1]
  kept = tuple(size // window * window for size, window in zip(spatial, window_shape))
  x = x[(slice(None),) + tuple(slice(0, size) for size in kept)]
  split: list[int] = [x.shape[0]]
  for size, window in zip(kept, window_shape):
    split += [size // window, window]
  x = x.reshape(*split, x.shape[-1])
  return x.max(axis=tuple(range(2, 2 * len(window_shape) + 1, 2)))


_HALF_WORD = 1 << 16


def _fmix32(x: jax.Array) -> jax.Array:
  """MurmurHash3's 32-bit finaliser: every input bit flips each output bit with p ~ 1/2."""
  x = x ^ (x >> 16)
  x = x * jnp.uint32(0x85EBCA6B)
  x = x ^ (x >> 13)
  x = x * jnp.uint32(0xC2B2AE35)
  return x ^ (x >> 16)


def hashed_bits(key: jax.Array, size: int) -> jax.Array:
  """``size`` pseudo-random uint32 words: two seeds from ``key`` (threefry), then a counter
  hashed twice by MurmurHash3's finaliser, each round keyed by one seed.

  Threefry costs ~13 ns per word on a 2-core CPU, which made dropout's random bits a tenth of
  a BERT train step there; the hash costs ~0.2 ns. It is not a cryptographic or
  simulation-grade generator, but its words are uniform and uncorrelated to within what
  dropout can tell (the tests check frequencies and neighbour correlations); keys from
  ``jax.random.split`` / ``fold_in`` still give independent-looking streams.
  """
  seeds = jax.random.bits(key, (2,), jnp.uint32)
  counter = jnp.arange(size, dtype=jnp.uint32) * jnp.uint32(0x9E3779B9)  # golden-ratio stride
  return _fmix32(_fmix32(counter + seeds[0]) ^ seeds[1])


def keep_mask(key: jax.Array, rate: float, shape: tuple[int, ...]) -> tuple[jax.Array, float]:
  """A Bernoulli keep mask from 16 random bits per element; returns ``(mask, keep_prob)``.

  ``jax.random.bernoulli`` draws a 32-bit threefry uniform per element; dropout needs far
  less: each 32-bit word of :func:`hashed_bits` here gives two 16-bit draws. ``rate`` is
  rounded to a multiple of 2^-16 (error < 8e-6) and ``keep_prob`` is the exact probability
  the mask keeps an element.
  """
  size = 1
  for d in shape:
    size *= d
  drop_below = round(rate * _HALF_WORD)
  words = hashed_bits(key, (size + 1) // 2)
  halves = jnp.concatenate([words & 0xFFFF, words >> 16])[:size]
  return (halves >= drop_below).reshape(shape), 1.0 - drop_below / _HALF_WORD


class Dropout(nn.Dropout):
  """``flax.linen.Dropout`` (same fields and ``deterministic`` handling) drawing its mask
  with :func:`keep_mask`: two dropout decisions per 32 random bits."""

  @nn.compact
  def __call__(self, inputs, deterministic: bool | None = None, rng: jax.Array | None = None):
    deterministic = nn.merge_param("deterministic", self.deterministic, deterministic)
    if self.rate == 0.0 or deterministic:
      return inputs
    if self.rate == 1.0:
      return jnp.zeros_like(inputs)
    rng = self.make_rng(self.rng_collection) if rng is None else rng
    shape = list(inputs.shape)
    for dim in self.broadcast_dims:
      shape[dim] = 1
    keep, keep_prob = keep_mask(rng, self.rate, tuple(shape))
    keep = jnp.broadcast_to(keep, inputs.shape)
    return jnp.where(keep, inputs / keep_prob, jnp.zeros_like(inputs))

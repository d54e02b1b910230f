"""Stacked (fully connected) autoencoder, as used by DEC and IDEC.

``Autoencoder(input_dim=784, hidden_dims=(500, 500, 2000, 10))`` is the d-500-500-2000-10
network of Xie et al. (2016): ReLU everywhere except the embedding layer and the
reconstruction layer, which stay linear so the embedding keeps full information and the
output can reach any input value.

Layers are named ``encoder_i`` / ``decoder_i`` so that a greedy layer-wise pretraining
(see :func:`greedy_pair_params`) can write each trained pair into the full model:
pair ``i`` is ``encoder_i`` (``dims[i] -> dims[i+1]``) with ``decoder_{L-1-i}``
(``dims[i+1] -> dims[i]``).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

# DEC-keras's initialiser for MNIST-like data: uniform with variance 1/(3 fan_in).
default_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


class Autoencoder(nn.Module):
  """Mirror-symmetric MLP autoencoder; ``__call__`` returns ``(embedding, reconstruction)``.

  Attributes:
    input_dim: features of the data (the reconstruction has as many).
    hidden_dims: encoder widths, the last one being the embedding size.
    dropout_rate: dropout on the input of every layer while training (0 disables it);
      the paper's denoising pretraining uses 0.2, end-to-end fine-tuning uses none.
  """
  input_dim: int
  hidden_dims: Sequence[int] = (500, 500, 2000, 10)
  dropout_rate: float = 0.0

  def setup(self):
    if not self.hidden_dims:
      raise ValueError("hidden_dims must name at least the embedding size, e.g. (500, 500, 2000, 10).")
    self.encoder_layers = [
        nn.Dense(width, kernel_init=default_kernel_init, name=f"encoder_{i}")
        for i, width in enumerate(self.hidden_dims)]
    decoder_widths = list(reversed(self.hidden_dims[:-1])) + [self.input_dim]
    self.decoder_layers = [
        nn.Dense(width, kernel_init=default_kernel_init, name=f"decoder_{i}")
        for i, width in enumerate(decoder_widths)]
    self.dropout = nn.Dropout(self.dropout_rate)

  def _stack(self, layers, h, deterministic: bool):
    for i, layer in enumerate(layers):
      if self.dropout_rate > 0:
        h = self.dropout(h, deterministic=deterministic)
      h = layer(h)
      if i < len(layers) - 1:
        h = nn.relu(h)
    return h

  def encode(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
    return self._stack(self.encoder_layers, x, deterministic)

  def decode(self, z: jax.Array, deterministic: bool = True) -> jax.Array:
    return self._stack(self.decoder_layers, z, deterministic)

  def __call__(self, x: jax.Array, deterministic: bool = True, *,
               train: bool | None = None) -> tuple[jax.Array, jax.Array]:
    """``train`` (the shared train step's flag) overrides ``deterministic`` when given."""
    deterministic = deterministic if train is None else not train
    if x.shape[-1] != self.input_dim:
      raise ValueError(f"Autoencoder expects {self.input_dim} input features, got shape {x.shape}.")
    z = self.encode(x, deterministic)
    return z, self.decode(z, deterministic)


class DenoisingPair(nn.Module):
  """One encoder/decoder pair of the greedy layer-wise pretraining (Vincent et al. 2010).

  The input is corrupted with dropout, encoded and decoded; the hidden dropout of the
  paper is applied to the code as well.  ``encoder_relu`` / ``decoder_relu`` let the first
  pair reconstruct raw data linearly and the last pair keep a linear embedding.
  """
  input_dim: int
  hidden_dim: int
  encoder_relu: bool = True
  decoder_relu: bool = True
  dropout_rate: float = 0.2

  def setup(self):
    self.encoder = nn.Dense(self.hidden_dim, kernel_init=default_kernel_init)
    self.decoder = nn.Dense(self.input_dim, kernel_init=default_kernel_init)
    self.dropout = nn.Dropout(self.dropout_rate)

  def __call__(self, x: jax.Array, deterministic: bool = True, *,
               train: bool | None = None) -> tuple[jax.Array, jax.Array]:
    deterministic = deterministic if train is None else not train
    h = self.encoder(self.dropout(x, deterministic=deterministic))
    code = nn.relu(h) if self.encoder_relu else h
    h = self.decoder(self.dropout(code, deterministic=deterministic))
    return code, (nn.relu(h) if self.decoder_relu else h)

  def encode(self, x: jax.Array) -> jax.Array:
    """The clean (dropout-free) code, the input of the next pair."""
    h = self.encoder(x)
    return nn.relu(h) if self.encoder_relu else h


def greedy_pairs(input_dim: int, hidden_dims: Sequence[int],
                 dropout_rate: float = 0.2) -> list[DenoisingPair]:
  """The pairs that build ``Autoencoder(input_dim, hidden_dims)`` layer by layer."""
  dims = [input_dim, *hidden_dims]
  n = len(hidden_dims)
  return [DenoisingPair(dims[i], dims[i + 1], encoder_relu=i < n - 1, decoder_relu=i > 0,
                        dropout_rate=dropout_rate) for i in range(n)]


def greedy_pair_params(pair_params: Sequence[dict]) -> dict:
  """Assembles trained pair parameters into ``Autoencoder`` parameters ({"params": ...})."""
  n = len(pair_params)
  params = {}
  for i, pair in enumerate(pair_params):
    pair = pair["params"] if "params" in pair else pair
    params[f"encoder_{i}"] = pair["encoder"]
    params[f"decoder_{n - 1 - i}"] = pair["decoder"]
  return {"params": params}


def reconstruction_loss(x: jax.Array, reconstruction: jax.Array) -> jax.Array:
  """Per-example mean squared error (the paper's and DEC-keras's loss)."""
  return jnp.mean((x - reconstruction) ** 2, axis=-1)

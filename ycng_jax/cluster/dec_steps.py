"""Pure functions of Deep Embedded Clustering: losses, target distribution and train steps.

Everything here is a pure function of (state, batch) so that the DEC fit loop and, later,
the shared trainer can jit it over the mesh: the batch arrives sharded along ``data``,
parameters and optimiser state are replicated, and XLA inserts the gradient all-reduce.
Learning rates live in the optimiser state (``optax.inject_hyperparams``) and the IDEC
weight ``gamma`` is an argument, so both stay traced values, not compiled-in constants.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ycng_jax.models.autoencoder import reconstruction_loss

PyTree = Any


class StepState(NamedTuple):
  """What one train step reads and returns: parameters, optimiser state, step count."""
  params: PyTree
  opt_state: PyTree
  step: jax.Array


def init_step_state(params: PyTree, optimizer: optax.GradientTransformation) -> StepState:
  return StepState(params, optimizer.init(params), jnp.zeros((), jnp.int32))


def make_optimizer(name: str, learning_rate: float, momentum: float = 0.9):
  """``"adam"`` or ``"sgd"`` (with momentum), learning rate injected as a traced hyperparameter."""
  if name == "adam":
    return optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate)
  if name == "sgd":
    return optax.inject_hyperparams(optax.sgd)(learning_rate=learning_rate, momentum=momentum)
  raise ValueError(f"unknown optimizer {name!r}; use 'adam' or 'sgd'.")


# ----------------------------------------------------------------------------- DEC maths


def soft_assignment(z: jax.Array, centers: jax.Array, alpha: float = 1.0) -> jax.Array:
  """Student's t similarity q_ij of embeddings (n, e) to centres (k, e); rows sum to 1.

  q_ij is proportional to (1 + |z_i - mu_j|^2 / alpha)^(-(alpha + 1) / 2)  (DEC eq. 1).
  """
  d2 = jnp.sum((z[:, None, :] - centers[None, :, :]) ** 2, axis=-1)
  logits = -(alpha + 1.0) / 2.0 * jnp.log1p(d2 / alpha)
  return jax.nn.softmax(logits, axis=-1)


def target_distribution(q: jax.Array) -> jax.Array:
  """DEC's auxiliary target p_ij = (q_ij^2 / f_j) / sum_j' (q_ij'^2 / f_j'), f_j = sum_i q_ij.

  Squaring sharpens confident assignments; dividing by the cluster frequency keeps large
  clusters from swallowing the others (DEC eq. 3).  Needs q over the whole data set.
  """
  weight = q ** 2 / jnp.sum(q, axis=0)
  return weight / jnp.sum(weight, axis=1, keepdims=True)


def kl_divergence(p: jax.Array, q: jax.Array) -> jax.Array:
  """Per-row KL(P || Q) = sum_j p_ij log(p_ij / q_ij), with 0 log 0 = 0."""
  eps = jnp.finfo(q.dtype).tiny
  return jnp.sum(jnp.where(p > 0, p * (jnp.log(jnp.maximum(p, eps)) - jnp.log(jnp.maximum(q, eps))),
                           0.0), axis=-1)


def _weighted_mean(values: jax.Array, weights: jax.Array) -> jax.Array:
  """Mean over the real rows of a padded batch (weights are 1 for real rows, 0 for padding)."""
  return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1.0)


# ----------------------------------------------------------------------------- train steps


def make_pretrain_step(model: nn.Module, optimizer: optax.GradientTransformation) -> Callable:
  """Reconstruction (MSE) step for any module returning ``(code, reconstruction)``.

  ``step(state, x, weights, dropout_key) -> (state, loss)``; ``x`` is (B, d), ``weights``
  (B,) marks the real rows of a padded last batch.
  """

  def step(state: StepState, x: jax.Array, weights: jax.Array, dropout_key: jax.Array):
    key = jax.random.fold_in(dropout_key, state.step)

    def loss_fn(params):
      _, recon = model.apply(params, x, deterministic=False, rngs={"dropout": key})
      return _weighted_mean(reconstruction_loss(x, recon), weights)

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return StepState(params, opt_state, state.step + 1), loss

  return step


def make_cluster_step(model: nn.Module, optimizer: optax.GradientTransformation, *,
                      alpha: float = 1.0, keep_reconstruction: bool = False) -> Callable:
  """KL(P || Q) step on ``params = {"autoencoder": ..., "centers": (k, e)}``.

  ``step(state, x, p, weights, gamma) -> (state, metrics)``.  DEC minimises KL alone; with
  ``keep_reconstruction`` (IDEC, Guo et al. 2017) the loss is ``MSE + gamma * KL``, which
  keeps the decoder training so the embedding does not drift from the data.
  """

  def step(state: StepState, x: jax.Array, p: jax.Array, weights: jax.Array, gamma: jax.Array):

    def loss_fn(params):
      ae_params = params["autoencoder"]
      if keep_reconstruction:
        z, recon = model.apply(ae_params, x)
        rec = _weighted_mean(reconstruction_loss(x, recon), weights)
      else:
        z = model.apply(ae_params, x, method=model.encode)
        rec = jnp.zeros((), x.dtype)
      q = soft_assignment(z, params["centers"], alpha)
      kl = _weighted_mean(kl_divergence(p, q), weights)
      loss = rec + gamma * kl if keep_reconstruction else kl
      return loss, {"loss": loss, "kl": kl, "reconstruction": rec}

    grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return StepState(params, opt_state, state.step + 1), metrics

  return step


def make_embed_fn(model: nn.Module) -> Callable:
  """``embed(ae_params, x) -> z`` (the encoder only, no dropout)."""
  return lambda params, x: model.apply(params, x, method=model.encode)


def make_assign_fn(model: nn.Module, alpha: float = 1.0) -> Callable:
  """``assign(params, x) -> q`` soft assignments of ``x`` under DEC params."""

  def assign(params, x):
    z = model.apply(params["autoencoder"], x, method=model.encode)
    return soft_assignment(z, params["centers"], alpha)

  return assign

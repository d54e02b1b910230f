"""Pure functions of Deep Embedded Clustering: losses, target distribution and train steps.

The train steps are the shared trainer's (``ycng_jax.train.steps.make_train_step``) with
DEC's model and losses, jitted over the mesh by ``jit_train_step``: the batch arrives sharded
along ``data``, parameters and optimiser state are replicated, and XLA inserts the gradient
all-reduce. Learning rates live in the optimiser state (``optax.inject_hyperparams``), so
they stay traced values, not compiled-in constants.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ycng_jax.models.autoencoder import Autoencoder, reconstruction_loss
from ycng_jax.train.state import TrainState, create_train_state
from ycng_jax.train.steps import make_train_step

PyTree = Any


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


# ----------------------------------------------------------------------------- train steps
# DEC trains with the shared trainer's pure step (ycng_jax.train.steps.make_train_step): a
# model whose outputs feed a per-example loss over a batch dict {"image", "target", "mask"}.


class ClusteringNet(nn.Module):
  """The autoencoder and the cluster centres as one model, for the shared train step.

  Params: ``{"autoencoder": <Autoencoder params>, "centers": (k, e)}``. Returns
  ``{"q": soft assignments}``, plus ``"reconstruction"`` with ``keep_reconstruction`` (IDEC);
  without it the decoder is not run, gets zero gradients and stays as pretrained.
  """
  input_dim: int
  hidden_dims: tuple[int, ...]
  n_clusters: int
  alpha: float = 1.0
  keep_reconstruction: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> dict[str, jax.Array]:
    autoencoder = Autoencoder(input_dim=self.input_dim, hidden_dims=tuple(self.hidden_dims),
                              name="autoencoder")
    centers = self.param("centers", nn.initializers.zeros,
                         (self.n_clusters, self.hidden_dims[-1]))
    if self.keep_reconstruction:
      z, reconstruction = autoencoder(x, train=train)
      return {"q": soft_assignment(z, centers, self.alpha), "reconstruction": reconstruction}
    return {"q": soft_assignment(autoencoder.encode(x), centers, self.alpha)}


def reconstruction_objective(outputs: tuple[jax.Array, jax.Array], batch) -> dict[str, jax.Array]:
  """Per-example MSE of an ``(embedding, reconstruction)`` model: the pretraining loss."""
  _, reconstruction = outputs
  return {"loss": reconstruction_loss(batch["image"], reconstruction)}


def clustering_objective(gamma: float = 0.1, keep_reconstruction: bool = False) -> Callable:
  """Per-example KL(P || Q) against ``batch["target"]``; IDEC's ``MSE + gamma * KL``."""

  def loss_fn(outputs, batch):
    kl = kl_divergence(batch["target"], outputs["q"])
    if not keep_reconstruction:
      return {"loss": kl, "kl": kl, "reconstruction": jnp.zeros_like(kl)}
    reconstruction = reconstruction_loss(batch["image"], outputs["reconstruction"])
    return {"loss": reconstruction + gamma * kl, "kl": kl, "reconstruction": reconstruction}

  return loss_fn


def make_pretrain_step(model: nn.Module, optimizer: optax.GradientTransformation) -> Callable:
  """The shared train step on reconstruction, for an ``Autoencoder`` or a ``DenoisingPair``.

  ``step(state, {"image", "mask"}) -> (state, {"loss", "count"} sums)``.
  """
  return make_train_step(model, reconstruction_objective, optimizer)


def make_cluster_step(model: ClusteringNet, optimizer: optax.GradientTransformation,
                      gamma: float = 0.1) -> Callable:
  """The shared train step on KL(P || Q) (DEC) or ``MSE + gamma * KL`` (IDEC, when
  ``model.keep_reconstruction``). ``step(state, {"image", "target", "mask"}) ->
  (state, {"loss", "kl", "reconstruction", "count"} sums)``.
  """
  return make_train_step(model, clustering_objective(gamma, model.keep_reconstruction),
                         optimizer)


def init_state(params: PyTree, optimizer: optax.GradientTransformation,
               rng: jax.Array | None = None) -> TrainState:
  """A shared-trainer ``TrainState`` (no mutable collections) for DEC's params; ``rng`` (a
  typed or raw key) seeds dropout."""
  rng = jax.random.PRNGKey(0) if rng is None else rng
  if jnp.issubdtype(rng.dtype, jax.dtypes.prng_key):
    rng = jax.random.key_data(rng)
  return create_train_state(params, {}, optimizer, rng)


def make_embed_fn(model: nn.Module) -> Callable:
  """``embed(ae_params, x) -> z`` (the encoder only, no dropout)."""
  return lambda params, x: model.apply(params, x, method=model.encode)


def make_assign_fn(model: nn.Module, alpha: float = 1.0) -> Callable:
  """``assign(params, x) -> q`` soft assignments of ``x`` under DEC params."""

  def assign(params, x):
    z = model.apply(params["autoencoder"], x, method=model.encode)
    return soft_assignment(z, params["centers"], alpha)

  return assign

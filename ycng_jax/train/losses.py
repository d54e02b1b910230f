"""Per-example losses and metrics.

A loss function maps ``(model_outputs, batch)`` to a dict of per-example arrays of shape
``(B,)`` with at least ``"loss"``; the steps weight them by ``batch["mask"]`` and sum, so
padded examples never count and evaluation averages are exact over the data set.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from ycng_jax.checks import real_number
from ycng_jax.errors import UserError

LossFn = Callable[[Any, Mapping[str, jax.Array]], dict[str, jax.Array]]


def classification_loss(logits: jax.Array, labels: jax.Array, *, label_smoothing: float = 0.0,
                        prefix: str = "") -> dict[str, jax.Array]:
  """Softmax cross-entropy and accuracy for integer labels, per example."""
  logits = logits.astype(jnp.float32)
  num_classes = logits.shape[-1]
  onehot = jax.nn.one_hot(labels, num_classes)
  if label_smoothing:
    onehot = optax.smooth_labels(onehot, label_smoothing)
  loss = optax.softmax_cross_entropy(logits, onehot)
  accuracy = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
  return {f"{prefix}loss": loss, f"{prefix}accuracy": accuracy}


def batch_labels(batch: Mapping[str, jax.Array], label_key: str) -> jax.Array:
  """``batch[label_key]``, or an error naming the keys the batch has (raised while tracing)."""
  if label_key not in batch:
    raise UserError(f"the loss reads the labels from batch[{label_key!r}], but the batches have "
                    f"keys {sorted(batch)}; add {label_key!r} to the data, or name the key that "
                    "holds the labels (make_classification_loss(label_key=...))")
  return batch[label_key]


def make_classification_loss(label_key: str = "label", label_smoothing: float = 0.0) -> LossFn:
  """The loss function of a single-output classifier whose labels are ``batch[label_key]``."""
  real_number("label_smoothing", label_smoothing, 0.0, 1.0, high_open=False)

  def loss_fn(logits, batch):
    return classification_loss(logits, batch_labels(batch, label_key),
                                label_smoothing=label_smoothing)

  return loss_fn


def make_weighted_loss(parts: Mapping[str, tuple[str, float, str]]) -> LossFn:
  """A weighted sum of classification losses for a multi-output model.

  Args:
    parts: ``{output_name: (label_key, weight, kind)}`` where the model returns a dict of
      outputs and ``kind`` is ``"classification"`` (integer labels) or ``"regression"``
      (mean squared error against a float target).
  """

  def loss_fn(outputs, batch):
    total = 0.0
    metrics = {}
    for name, (label_key, weight, kind) in parts.items():
      if kind == "classification":
        part = classification_loss(outputs[name], batch_labels(batch, label_key),
                                   prefix=f"{name}_")
      elif kind == "regression":
        target = batch_labels(batch, label_key)
        pred = outputs[name].astype(jnp.float32).reshape(target.shape)
        err = (pred - target.astype(jnp.float32)) ** 2
        part = {f"{name}_loss": err.reshape(err.shape[0], -1).mean(-1)}
      else:
        raise ValueError(f"loss kind {kind!r} for output {name!r}: use classification/regression")
      total = total + weight * part[f"{name}_loss"]
      metrics.update(part)
    return {"loss": total, **metrics}

  return loss_fn

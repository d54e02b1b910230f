"""The model, loss and optimizer of ``ycng_jax.text.finetune``: BERT with a fresh head on the
shared Trainer, the losses transformers' ``BertForSequenceClassification`` computes, and AdamW as
transformers' ``Trainer`` sets it up by default."""

from __future__ import annotations

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ycng_jax.errors import UserError
from ycng_jax.models.bert import BertConfig, BertForSequenceClassification
from ycng_jax.train.trainer import Trainer

class SequenceClassifier(BertForSequenceClassification):
  """``BertForSequenceClassification`` called as the Trainer calls models: ``train=`` switches
  dropout on. A subclass, not a wrapper, so the parameter names stay those of the HF map."""

  def __call__(self, input_ids, attention_mask, token_type_ids, train: bool = False):
    return super().__call__(input_ids, attention_mask, token_type_ids, deterministic=not train)


def per_example_loss(problem_type: str, pos_weight: float = 0.0):
  """``(logits, labels) -> (B,)`` losses, each the mean transformers takes over one example:
  MSE, softmax cross-entropy, or sigmoid BCE over the labels (positives weighted by
  ``pos_weight`` when > 0, as ``BCEWithLogitsLoss(pos_weight=...)``)."""

  def loss(logits, labels):
    logits = logits.astype(jnp.float32)
    if problem_type == "regression":
      return (logits[:, 0] - labels.astype(jnp.float32)) ** 2
    if problem_type == "single_label_classification":
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    y = labels.astype(jnp.float32)
    weight = pos_weight if pos_weight > 0 else 1.0
    return -jnp.mean(weight * y * jax.nn.log_sigmoid(logits)
                     + (1.0 - y) * jax.nn.log_sigmoid(-logits), axis=-1)

  return loss


def make_loss(problem_type: str, pos_weight: float = 0.0):
  """The Trainer's loss function: per-example loss, plus accuracy for single-label tasks."""
  loss = per_example_loss(problem_type, pos_weight)

  def loss_fn(logits, batch):
    out = {"loss": loss(logits, batch["label"])}
    if problem_type == "single_label_classification":
      out["accuracy"] = (jnp.argmax(logits, -1) == batch["label"]).astype(jnp.float32)
    return out

  return loss_fn


def decay_mask(params):
  """True where AdamW decays: everything but biases and LayerNorm scales (transformers' rule)."""
  flat = flax.traverse_util.flatten_dict(params)
  return flax.traverse_util.unflatten_dict({k: k[-1] not in ("bias", "scale") for k in flat})


def head_mask(params):
  """True on the classification head (``classifier``), False on the pretrained encoder."""
  flat = flax.traverse_util.flatten_dict(params)
  return flax.traverse_util.unflatten_dict({k: k[0] == "classifier" for k in flat})


def linear_warmup_decay(peak: float, warmup_steps: int, total_steps: int) -> optax.Schedule:
  """0 -> ``peak`` over ``warmup_steps``, then linearly to 0 at ``total_steps`` (transformers'
  ``get_linear_schedule_with_warmup``; the first update, at step 0, has rate 0 in both)."""
  return optax.join_schedules(
      [optax.linear_schedule(0.0, peak, max(warmup_steps, 1)),
       optax.linear_schedule(peak, 0.0, max(total_steps - warmup_steps, 1))], [warmup_steps])


def make_optimizer(config, total_steps: int) -> optax.GradientTransformation:
  """AdamW (transformers' betas and eps) on ``linear_warmup_decay``, after gradient clipping."""
  schedule = linear_warmup_decay(config.learning_rate,
                                 int(np.ceil(config.warmup_ratio * total_steps)), total_steps)
  adamw = optax.inject_hyperparams(optax.adamw, static_args=("mask",))(
      learning_rate=schedule, b1=0.9, b2=0.999, eps=1e-8, weight_decay=config.weight_decay,
      mask=decay_mask)
  steps = [adamw]
  if config.head_lr_multiplier != 1.0:
    # The head starts from scratch while the encoder is pretrained: a larger step for the head
    # alone lets rare labels' weights move in the few updates they get.
    steps.append(optax.masked(optax.scale(config.head_lr_multiplier), head_mask))
  if config.clip_norm:
    steps.insert(0, optax.clip_by_global_norm(config.clip_norm))
  return steps[0] if len(steps) == 1 else optax.chain(*steps)


def model_folder(name_or_path: str) -> str:
  from ycng_jax.models.hf_weights import resolve_model_folder
  try:
    return resolve_model_folder(name_or_path)
  except FileNotFoundError as e:
    raise UserError(f"config.model={name_or_path!r}: {e}") from None


def classifier_config(folder: str, task) -> BertConfig:
  """The folder's BERT config with the task's head: label count, names and problem type."""
  regression = task.problem_type == "regression"
  names = tuple(task.label_names) if task.label_names else None
  if regression and (names is None or len(names) != 1):
    names = None
  return BertConfig.from_hf(folder, num_labels=1 if regression else len(task.label_names),
                            problem_type=task.problem_type, label_names=names)


def load_pretrained_into(trainer: Trainer, folder: str, config: BertConfig):
  """Put the folder's encoder (and pooler, if it has one) into the trainer's params; the
  classification head keeps the trainer's seeded initialisation."""
  from ycng_jax.models.hf_weights import load_params, read_state_dict
  state = read_state_dict(folder)
  missing = ["classifier.*"]
  if not any(k.endswith("pooler.dense.weight") for k in state):
    missing.append("pooler.*")  # sentence-transformers folders may have none: trained fresh
  params, _ = load_params(state, config, trainer.state.params, head="classification",
                          allow_missing=missing, allow_unexpected=("cls.*", "classifier.*"))
  params = jax.device_put(params, trainer.state_sharding.params)
  trainer.state = trainer.state.replace(params=params)


def prior_log_odds(labels: np.ndarray, eps: float = 1e-4) -> np.ndarray:
  """Each label's log-odds in a multi-hot (N, L) array, the frequencies clipped to
  [eps, 1 - eps] so that a label never (or always) seen stays finite."""
  prior = np.clip(np.asarray(labels, np.float64).mean(axis=0), eps, 1.0 - eps)
  return np.log(prior / (1.0 - prior)).astype(np.float32)


def set_head_bias(trainer: Trainer, bias: np.ndarray) -> None:
  """Start the classification head's bias at ``bias`` (the prior initialisation of Lin et al.
  2017: a sigmoid per label then starts at its label's frequency, not at 0.5, and AdamW, whose
  steps are about the learning rate in size, need not walk each bias down to about -4)."""
  params = flax.core.unfreeze(trainer.state.params)
  current = params["classifier"]["bias"]
  if current.shape != bias.shape:
    raise ValueError(f"head bias has shape {current.shape}, the prior {bias.shape}")
  params["classifier"]["bias"] = jax.device_put(jnp.asarray(bias, current.dtype), current.sharding)
  trainer.state = trainer.state.replace(params=params)

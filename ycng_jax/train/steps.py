"""Pure train and eval steps, and their jitted, sharded forms.

``make_train_step`` returns a pure ``(state, batch) -> (state, metric_sums)``: the hand-written
loop of topic 2, ``fit`` and a later vmapped tuner all call the same function. Metrics come back
as sums over real examples (``batch["mask"]``) plus ``count``, so averages over many batches,
devices and processes are exact.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from ycng_jax.train.losses import LossFn
from ycng_jax.train.mesh import data_sharding, replicated
from ycng_jax.train.state import TrainState

PyTree = Any
Batch = Mapping[str, jax.Array]
Preprocess = Callable[[Batch], Batch]
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def resolve_dtype(dtype: str | Any) -> Any:
  if isinstance(dtype, str):
    if dtype not in DTYPES:
      raise ValueError(f"compute_dtype={dtype!r}; choose one of {sorted(DTYPES)}")
    return DTYPES[dtype]
  return dtype


def cast_floating(tree: PyTree, dtype: Any) -> PyTree:
  """Cast the floating leaves of ``tree`` (params, inputs) to ``dtype``; others unchanged."""
  return jax.tree.map(
      lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def _model_call(model: nn.Module, variables: PyTree, batch: Batch, input_keys: Sequence[str],
                train: bool, rng: jax.Array | None, mutable: Sequence[str], dtype: Any):
  """Apply the model in ``dtype`` (params and float inputs cast; the fp32 params stay fp32)."""
  inputs = [batch[k] for k in input_keys]
  if dtype != jnp.float32:
    variables = cast_floating(variables, dtype)
    inputs = cast_floating(inputs, dtype)
  rngs = {"dropout": rng} if rng is not None else None
  if mutable:
    return model.apply(variables, *inputs, train=train, rngs=rngs, mutable=list(mutable))
  return model.apply(variables, *inputs, train=train, rngs=rngs), {}


def _sums(per_example: Mapping[str, jax.Array], mask: jax.Array) -> dict[str, jax.Array]:
  out = {k: jnp.sum(v.astype(jnp.float32) * mask) for k, v in per_example.items()}
  out["count"] = jnp.sum(mask)
  return out


def _check_loss_output(per_example: Mapping[str, jax.Array], batch_size: int):
  if "loss" not in per_example:
    raise ValueError(f"the loss function must return a dict with key 'loss'; got {sorted(per_example)}")
  for k, v in per_example.items():
    if v.shape != (batch_size,):
      raise ValueError(f"loss output {k!r} has shape {v.shape}; expected per-example ({batch_size},)")


def _microbatches(batch: Batch, k: int) -> Batch:
  """(B, ...) -> (k, B/k, ...) taking every k-th example, so each device's rows stay local."""
  def split(x):
    if x.shape[0] % k:
      raise ValueError(f"batch size {x.shape[0]} is not divisible by grad_accum_steps={k}")
    return jnp.swapaxes(x.reshape(x.shape[0] // k, k, *x.shape[1:]), 0, 1)
  return jax.tree.map(split, dict(batch))


def make_train_step(model: nn.Module, loss_fn: LossFn, tx: optax.GradientTransformation, *,
                    input_keys: Sequence[str] = ("image",), preprocess: Preprocess | None = None,
                    compute_dtype: str | Any = "float32", grad_accum_steps: int = 1,
                    ema_decay: float | None = None
                    ) -> Callable[[TrainState, Batch], tuple[TrainState, dict[str, jax.Array]]]:
  """The pure training step.

  Args:
    model: a Flax module whose ``__call__(*inputs, train=...)`` takes ``batch[k] for k in
      input_keys``.
    loss_fn: ``(outputs, batch) -> {"loss": (B,), metric: (B,), ...}`` per example.
    tx: the optax optimizer (from ``make_optimizer`` to keep hyperparameters injectable).
    preprocess: applied to the batch inside the step (e.g. uint8 -> float), so the host sends
      compact data.
    compute_dtype: "bfloat16" computes forward and backward in bf16; params, optimizer state
      and the update stay fp32.
    grad_accum_steps: split each batch into this many microbatches and sum their gradients
      (same update as the whole batch, less activation memory).
    ema_decay: keep ``state.ema_params`` as an EMA of the params with this decay.
  """
  dtype = resolve_dtype(compute_dtype)
  k = int(grad_accum_steps)
  if k < 1:
    raise ValueError(f"grad_accum_steps={k} must be >= 1")

  def grads_and_sums(params, model_state, batch, rng, total_count):
    mutable = tuple(model_state)

    def objective(p):
      outputs, new_model_state = _model_call(model, {"params": p, **model_state}, batch,
                                             input_keys, True, rng, mutable, dtype)
      per_example = loss_fn(outputs, batch)
      _check_loss_output(per_example, batch["mask"].shape[0])
      sums = _sums(per_example, batch["mask"])
      return sums["loss"] / total_count, (sums, new_model_state)

    (_, (sums, new_model_state)), grads = jax.value_and_grad(objective, has_aux=True)(params)
    new_model_state = jax.tree.map(lambda n, o: n.astype(o.dtype), dict(new_model_state),
                                   dict(model_state))
    return grads, sums, new_model_state

  def train_step(state: TrainState, batch: Batch):
    batch = dict(batch)
    if preprocess is not None:
      batch = dict(preprocess(batch))
    rng = jax.random.fold_in(state.rng, state.step)
    total_count = jnp.maximum(jnp.sum(batch["mask"]), 1.0)
    if k == 1:
      grads, sums, model_state = grads_and_sums(state.params, state.model_state, batch, rng,
                                                total_count)
    else:
      micro = _microbatches(batch, k)

      def body(carry, inputs):
        grads_acc, sums_acc, model_state = carry
        index, mb = inputs
        g, s, model_state = grads_and_sums(state.params, model_state, mb,
                                           jax.random.fold_in(rng, index), total_count)
        return (jax.tree.map(jnp.add, grads_acc, g), jax.tree.map(jnp.add, sums_acc, s),
                model_state), None

      zero_grads = jax.tree.map(jnp.zeros_like, state.params)
      first_mb = jax.tree.map(lambda x: x[0], micro)
      zero_sums = jax.tree.map(jnp.zeros_like, jax.eval_shape(
          lambda: grads_and_sums(state.params, state.model_state, first_mb, rng, total_count)[1]))
      (grads, sums, model_state), _ = jax.lax.scan(
          body, (zero_grads, zero_sums, state.model_state), (jnp.arange(k), micro))
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ema = state.ema_params
    if ema is not None:
      decay = 0.999 if ema_decay is None else ema_decay
      ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                              model_state=model_state, ema_params=ema)
    return new_state, sums

  return train_step


def make_eval_step(model: nn.Module, loss_fn: LossFn, *, input_keys: Sequence[str] = ("image",),
                   preprocess: Preprocess | None = None, compute_dtype: str | Any = "float32",
                   use_ema: bool = True) -> Callable[[TrainState, Batch], dict[str, jax.Array]]:
  """The pure evaluation step: metric sums over the real examples of one batch.

  With ``use_ema`` and EMA on, the EMA params are evaluated (Keras' SwapEMAWeights behaviour).
  """
  dtype = resolve_dtype(compute_dtype)

  def eval_step(state: TrainState, batch: Batch):
    batch = dict(batch)
    if preprocess is not None:
      batch = dict(preprocess(batch))
    variables = state.eval_variables if use_ema else state.variables
    outputs, _ = _model_call(model, variables, batch, input_keys, False, None, (), dtype)
    per_example = loss_fn(outputs, batch)
    _check_loss_output(per_example, batch["mask"].shape[0])
    return _sums(per_example, batch["mask"])

  return eval_step


def make_predict_step(model: nn.Module, *, input_keys: Sequence[str] = ("image",),
                      preprocess: Preprocess | None = None, compute_dtype: str | Any = "float32",
                      use_ema: bool = True) -> Callable[[TrainState, Batch], Any]:
  """Model outputs in inference mode (for predict / feature extraction)."""
  dtype = resolve_dtype(compute_dtype)

  def predict_step(state: TrainState, batch: Batch):
    batch = dict(batch)
    if preprocess is not None:
      batch = dict(preprocess(batch))
    variables = state.eval_variables if use_ema else state.variables
    outputs, _ = _model_call(model, variables, batch, input_keys, False, None, (), dtype)
    return jax.tree.map(lambda x: x.astype(jnp.float32), outputs)

  return predict_step


def jit_train_step(train_step, mesh: Mesh, state_sharding: PyTree):
  """``train_step`` compiled with explicit shardings; the old state's buffers are donated."""
  return jax.jit(train_step, in_shardings=(state_sharding, data_sharding(mesh)),
                 out_shardings=(state_sharding, replicated(mesh)), donate_argnums=(0,))


def jit_eval_step(eval_step, mesh: Mesh, state_sharding: PyTree):
  return jax.jit(eval_step, in_shardings=(state_sharding, data_sharding(mesh)),
                 out_shardings=replicated(mesh))


def jit_predict_step(predict_step, mesh: Mesh, state_sharding: PyTree):
  return jax.jit(predict_step, in_shardings=(state_sharding, data_sharding(mesh)),
                 out_shardings=data_sharding(mesh))

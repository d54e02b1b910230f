"""``Trainer``: one model, its loss, optimizer and mesh, with compiled steps and a ``fit``.

The Trainer is a thin owner of the pure steps in ``steps.py`` and of the current
``TrainState``; everything it computes can also be done by calling those steps directly
(topic 2's hand-written loop does).
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Iterable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from ycng_jax.train import optim, steps
from ycng_jax.train.dispatch import DispatchLimit, add_sums
from ycng_jax.train.losses import LossFn
from ycng_jax.train.mesh import DATA_AXIS, make_mesh
from ycng_jax.train.partition import state_shardings
from ycng_jax.train.state import TrainState, count_params, create_train_state

PyTree = Any


def batch_spec(batch: Mapping[str, Any]) -> dict[str, tuple[tuple[int, ...], str]]:
  """Per key: the shape without the batch axis, and the dtype name."""
  return {k: (tuple(v.shape[1:]), np.dtype(v.dtype).name) for k, v in batch.items()}


@contextlib.contextmanager
def rewound(data: Any):
  """Put a stateful loader back where it was, so one eval Loader serves every evaluation."""
  start = data.get_state() if hasattr(data, "get_state") and hasattr(data, "set_state") else None
  try:
    yield data
  finally:
    if start is not None:
      data.set_state(start)


def peek(data: Any) -> Mapping[str, Any]:
  """The first batch of ``data`` without consuming it (for shapes at init)."""
  with rewound(data):
    return next(iter(data))


def averages(sums: Mapping[str, Any]) -> dict[str, float]:
  """Metric sums (with ``count``) -> per-example averages as Python floats."""
  host = jax.device_get(dict(sums))
  count = float(host.pop("count"))
  return {k: float(v) / max(count, 1.0) for k, v in host.items()}


class Trainer:
  """Trains and evaluates a Flax model on a device mesh.

  Example::

    trainer = Trainer(CNN(num_classes=10), make_classification_loss(),
                      make_optimizer("adam", 1e-3), preprocess=scale_images)
    trainer.init(next(iter(train_loader)))
    history = trainer.fit(train_loader, epochs=5, validation_data=test_loader)
    print(trainer.evaluate(test_loader))
  """

  def __init__(self, model: nn.Module, loss_fn: LossFn, optimizer: optax.GradientTransformation,
               *, mesh: Mesh | None = None, input_keys: Sequence[str] = ("image",),
               preprocess: steps.Preprocess | None = None, param_sharding: str = "replicated",
               compute_dtype: str = "float32", grad_accum_steps: int = 1,
               ema_decay: float | None = None, eval_with_ema: bool = True, seed: int = 0,
               variable_length_keys: Sequence[str] = ()):
    self.model = model
    self.loss_fn = loss_fn
    self.optimizer = optimizer
    self.mesh = mesh if mesh is not None else make_mesh()
    self.input_keys = tuple(input_keys)
    self.preprocess = preprocess
    self.param_sharding = param_sharding
    self.compute_dtype = compute_dtype
    self.ema_decay = ema_decay
    self.seed = int(seed)
    # Token arrays padded to length buckets change shape from batch to batch (one compile per
    # bucket); for these keys only the rank and dtype must match the init batch.
    self.variable_length_keys = frozenset(variable_length_keys)
    self.state: TrainState | None = None
    self.state_sharding = None
    self.input_spec: dict[str, tuple[tuple[int, ...], str]] | None = None
    self.stop_training = False
    self.nonfinite_step: int | None = None
    self.loop = None  # the running FitLoop, set by fit()
    self.history = None
    self._pure_train_step = steps.make_train_step(
        model, loss_fn, optimizer, input_keys=self.input_keys, preprocess=preprocess,
        compute_dtype=compute_dtype, grad_accum_steps=grad_accum_steps, ema_decay=ema_decay)
    self._pure_eval_step = steps.make_eval_step(
        model, loss_fn, input_keys=self.input_keys, preprocess=preprocess,
        compute_dtype=compute_dtype, use_ema=eval_with_ema)
    self._pure_predict_step = steps.make_predict_step(
        model, input_keys=self.input_keys, preprocess=preprocess, compute_dtype=compute_dtype,
        use_ema=eval_with_ema)

  # --- set-up ----------------------------------------------------------------------------------

  @property
  def num_shards(self) -> int:
    return self.mesh.shape[DATA_AXIS]

  def init(self, sample_batch: Mapping[str, Any]) -> TrainState:
    """Create the sharded state from a batch that fixes input shapes and dtypes.

    Only shapes and dtypes of ``sample_batch`` are used; ``mask`` is added if absent.
    """
    spec = batch_spec(sample_batch)
    spec.setdefault("mask", ((), "float32"))
    missing = [k for k in self.input_keys if k not in spec]
    if missing:
      raise ValueError(f"the model reads batch keys {list(self.input_keys)} but the batch has "
                       f"{sorted(spec)}; set input_keys to the keys that hold the model inputs")
    self.input_spec = spec

    def init_variables(rng):
      batch = {k: jnp.zeros((1,) + shape, dtype) for k, (shape, dtype) in spec.items()}
      if self.preprocess is not None:
        batch = dict(self.preprocess(batch))
      params_rng, dropout_rng, state_rng = jax.random.split(rng, 3)
      variables = self.model.init({"params": params_rng, "dropout": dropout_rng},
                                  *[batch[k] for k in self.input_keys], train=False)
      variables = dict(variables)
      return variables.pop("params"), variables, state_rng

    def init_state(params, variables, state_rng):
      return create_train_state(params, variables, self.optimizer, state_rng,
                                ema=self.ema_decay is not None)

    rng = jax.random.PRNGKey(self.seed)
    abstract = jax.eval_shape(lambda r: init_state(*init_variables(r)), rng)
    self.state_sharding = state_shardings(abstract, self.mesh, self.param_sharding)
    # Two programs: the model's random init (seconds of compiling: a sampler per parameter)
    # does not depend on the optimizer, so runs of one model with other optimizers (transfer
    # learning's frozen blueprints, tuning trials) find it in the compilation cache.
    sharding = self.state_sharding
    variables = jax.jit(init_variables, out_shardings=(
        sharding.params, sharding.model_state, sharding.rng))(rng)
    self.state = jax.jit(init_state, out_shardings=sharding, donate_argnums=(0, 1))(*variables)
    self._train_step = steps.jit_train_step(self._pure_train_step, self.mesh, self.state_sharding)
    self._eval_step = steps.jit_eval_step(self._pure_eval_step, self.mesh, self.state_sharding)
    self._predict_step = steps.jit_predict_step(self._pure_predict_step, self.mesh,
                                                self.state_sharding)
    return self.state

  def _require_state(self):
    if self.state is None:
      raise RuntimeError("call trainer.init(sample_batch) (or fit) before training/evaluating")

  def check_batch(self, batch: Mapping[str, Any]):
    """Raise a clear error when a batch does not match the shapes/dtypes the model was built for."""
    self._require_state()
    got = batch_spec(batch)
    problems = []
    for key, (shape, dtype) in self.input_spec.items():
      if key not in got:
        problems.append(f"missing key {key!r}")
      elif key in self.variable_length_keys:
        if (len(got[key][0]), got[key][1]) != (len(shape), dtype):
          problems.append(f"{key!r}: expected {len(shape)} axes per example, dtype {dtype}, got "
                          f"shape {got[key][0]} dtype {got[key][1]}")
      elif got[key] != (shape, dtype):
        problems.append(f"{key!r}: expected per-example shape {shape} dtype {dtype}, got shape "
                        f"{got[key][0]} dtype {got[key][1]}")
    size = next(iter(batch.values())).shape[0]
    if size % self.num_shards:
      problems.append(f"batch size {size} is not divisible by the {self.num_shards} devices")
    if problems:
      raise ValueError("batch does not match the model's input spec: " + "; ".join(problems) +
                       ". Build the loader with the same preprocessing as the sample batch "
                       "given to init().")

  # --- steps -----------------------------------------------------------------------------------

  def train_step(self, batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """One update on ``batch``; returns metric sums (device arrays, not synced)."""
    self.check_batch(batch)
    self.state, sums = self._train_step(self.state, batch)
    return sums

  def eval_step(self, batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    self.check_batch(batch)
    return self._eval_step(self.state, batch)

  def evaluate(self, data: Iterable[Mapping[str, jax.Array]], steps: int | None = None,
               callbacks: Any = None) -> dict[str, float]:
    """Exact per-example averages over ``data`` (padding masked out)."""
    self._require_state()
    if callbacks is not None:
      callbacks.on_eval_begin()
    total, limit = None, DispatchLimit()
    with rewound(data):
      for i, batch in enumerate(data):
        if steps is not None and i >= steps:
          break
        sums = self.eval_step(batch)
        total = sums if total is None else add_sums(total, sums)
        limit(total)
    if total is None:
      raise ValueError("evaluation data yielded no batches")
    logs = averages(total)
    if callbacks is not None:
      callbacks.on_eval_end(logs)
    return logs

  def predict(self, data: Iterable[Mapping[str, jax.Array]]) -> Any:
    """Model outputs (numpy, fp32) for the real (mask 1) examples of ``data``, in order."""
    self._require_state()
    chunks = []
    with rewound(data):
      for batch in data:
        self.check_batch(batch)
        out = jax.device_get(self._predict_step(self.state, batch))
        keep = np.asarray(jax.device_get(batch["mask"])) > 0
        chunks.append(jax.tree.map(lambda x: x[keep], out))
    return jax.tree.map(lambda *xs: np.concatenate(xs), *chunks)

  # --- hyperparameters -------------------------------------------------------------------------

  @property
  def learning_rate(self) -> float:
    self._require_state()
    return float(optim.get_hyperparams(self.state.opt_state)["learning_rate"])

  @learning_rate.setter
  def learning_rate(self, value: float):
    self.set_hyperparam("learning_rate", value)

  def set_hyperparam(self, name: str, value: float):
    """Change an injected hyperparameter in the state; the compiled step is reused."""
    self._require_state()
    self.state = self.state.replace(
        opt_state=optim.set_hyperparam(self.state.opt_state, name, value))

  # --- misc ------------------------------------------------------------------------------------

  @property
  def num_params(self) -> int:
    self._require_state()
    return count_params(self.state.params)

  def fit(self, train_data, **kwargs):
    """Keras-style training loop; see ``ycng_jax.train.fit.fit``."""
    from ycng_jax.train.fit import fit
    return fit(self, train_data, **kwargs)

  def free(self):
    """Drop the device buffers of this run (state and compiled steps) so a next run has room."""
    if self.state is not None:
      for x in jax.tree.leaves(self.state):
        if isinstance(x, jax.Array) and not x.is_deleted():
          x.delete()
    self.state = None
    for name in ("_train_step", "_eval_step", "_predict_step"):
      if hasattr(self, name):
        delattr(self, name)


def is_finite(value: Any) -> bool:
  try:
    return math.isfinite(float(value))
  except (TypeError, ValueError):
    return True

"""Populations of trials in one compiled program: ``jax.vmap`` over hyperparameters.

P trials of one model (same shapes) that differ only in continuous hyperparameters (learning
rate, weight decay, dropout rate) and in their initialisation seed train together: the
project's own train step (``ycng_jax.train.steps.make_train_step``) is vmapped over a leading
population axis of the ``TrainState``, and that axis is sharded over the devices of the mesh,
so each device trains P / devices members. The hyperparameters are traced inputs, never
constants of the compiled program:

- learning rate and weight decay are ``optax.inject_hyperparams`` values in each member's
  ``opt_state`` (``ycng_jax.train.optim.make_optimizer`` builds every optimizer that way);
- the dropout rate arrives as per-member keep probabilities (``layer_rates``) that the step
  hands to every ``nn.Dropout`` of the model through ``flax.linen.intercept_methods``: a layer
  built with rate ``r`` at the model's ``dropout`` setting ``base`` drops at
  ``r * member_rate / base`` (the CNN's head, built at twice the model's rate, stays at twice
  the member's), drawing its mask from the same random bits and with the same formula as
  ``nn.Dropout``;
- the seed gives each member the parameters and dropout masks ``Trainer(seed=...)`` gives.

Data order: every member trains on the same batches, in the same order (one loader; each
batch is copied to every device of the population's mesh). That is what makes a member's
result equal to the same trial trained alone (``tests/tuning/test_population.py`` checks it),
and it removes data order from the comparison between members: they differ only in what the
search varies.

Programs compile once per population size: successive halving (``population_search``)
compiles once per rung.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, Iterable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ycng_jax.checks import real_number, whole_number
from ycng_jax.errors import UserError
from ycng_jax.models import layers as ycng_layers
from ycng_jax.train import optim, steps
from ycng_jax.train.dispatch import DispatchLimit, add_sums
from ycng_jax.train.losses import LossFn
from ycng_jax.train.mesh import DATA_AXIS, replicated
from ycng_jax.train.state import TrainState, create_train_state

PyTree = Any
HPARAMS = ("learning_rate", "weight_decay", "dropout", "seed")


# --- hyperparameters of a population ------------------------------------------------------------

def check_hparams(hparams: Mapping[str, Sequence[float]]) -> dict[str, np.ndarray]:
  """``{name: (P,) values}`` for the four HPARAMS, checked; ``seed`` as int32, others float64."""
  unknown = sorted(set(hparams) - set(HPARAMS))
  missing = [k for k in HPARAMS if k not in hparams]
  if unknown or missing:
    raise UserError(f"a population needs exactly the hyperparameters {list(HPARAMS)}; "
                    f"unknown: {unknown}, missing: {missing}")
  sizes = {k: len(v) for k, v in hparams.items()}
  if len(set(sizes.values())) != 1 or not next(iter(sizes.values())):
    raise UserError(f"every hyperparameter needs one value per member (same, non-zero length); "
                    f"got lengths {sizes}")
  for name, low, high in (("learning_rate", 0.0, math.inf), ("weight_decay", 0.0, math.inf),
                          ("dropout", 0.0, 1.0)):
    for i, v in enumerate(hparams[name]):
      real_number(f"member {i}'s {name}", v, low, high, low_open=name == "learning_rate")
  for i, s in enumerate(hparams["seed"]):
    whole_number(f"member {i}'s seed", int(s) if float(s).is_integer() else s, 0, 2**31 - 1)
  # float64 on the host: the values as a trial alone gets them from Python floats.
  out = {k: np.asarray(hparams[k], np.float64) for k in HPARAMS if k != "seed"}
  out["seed"] = np.asarray(hparams["seed"], np.int32)
  return out


def population_mesh(size: int, devices: Sequence[Any] | None = None) -> Mesh:
  """A 1-D ``data`` mesh over the most devices that divide the population evenly.

  Each device then holds ``size / devices`` whole members; a population of 6 on 8 devices
  uses 6, one of 4 uses 4 (``successive_halving`` makes a mesh per rung).
  """
  devices = list(devices if devices is not None else jax.devices())
  n = max(d for d in range(1, min(size, len(devices)) + 1) if size % d == 0)
  return Mesh(np.asarray(devices[:n]), (DATA_AXIS,))


# --- dropout rate as a traced input -------------------------------------------------------------

def layer_rates(rates: np.ndarray, scales: Sequence[float]) -> dict[str, dict[str, np.ndarray]]:
  """Per layer scale (a layer's rate over the model's ``dropout``), what its dropout needs of
  each member's rate, computed on the host in float64 as ``nn.Dropout`` computes it from a
  Python float: ``keep`` (float32 of ``1 - scale x rate``) and, for
  ``ycng_jax.models.layers.Dropout``, ``drop_below`` (its 16-bit threshold). So the masks and
  scalings are bit for bit those of the model built at each member's rate."""
  rates = np.asarray(rates, np.float64)
  return {f"{s:g}": {"keep": (1.0 - s * rates).astype(np.float32),
                     "drop_below": np.round(s * rates * ycng_layers._HALF_WORD)  # pylint: disable=protected-access
                     .astype(np.uint32)} for s in sorted(set(scales))}


def _dropout(module: nn.Dropout, inputs, deterministic, rng, keep_prob, drop_below):
  """``module``'s dropout with a member's traced ``keep_prob`` (and ``drop_below``): the random
  bits and the arithmetic of ``nn.Dropout`` (of ``ycng_jax.models.layers.Dropout``'s
  ``keep_mask`` for that layer), so a member draws the masks the same model built at its rate
  draws. A rate of 0 keeps everything (the uniform draws are below 1)."""
  deterministic = nn.merge_param("deterministic", module.deterministic, deterministic)
  if deterministic:
    return inputs
  rng = module.make_rng(module.rng_collection) if rng is None else rng
  shape = list(inputs.shape)
  for dim in module.broadcast_dims:
    shape[dim] = 1
  if isinstance(module, ycng_layers.Dropout):
    size = int(np.prod(shape))
    words = ycng_layers.hashed_bits(rng, (size + 1) // 2)
    halves = jnp.concatenate([words & 0xFFFF, words >> 16])[:size]
    keep_prob = 1.0 - drop_below.astype(jnp.float32) / ycng_layers._HALF_WORD  # pylint: disable=protected-access
    keep = jnp.broadcast_to((halves >= drop_below).reshape(shape), inputs.shape)
    return jnp.where(keep, inputs / keep_prob.astype(inputs.dtype), jnp.zeros_like(inputs))
  mask = jnp.broadcast_to(jax.random.bernoulli(rng, p=keep_prob, shape=shape), inputs.shape)
  return jax.lax.select(mask, inputs / keep_prob.astype(inputs.dtype), jnp.zeros_like(inputs))


def dropout_interceptor(rates: Mapping[str, Mapping[str, jax.Array]] | None, base: float,
                        seen: list | None = None) -> Callable:
  """A ``flax.linen.intercept_methods`` interceptor: every ``nn.Dropout`` built at rate ``r``
  drops at ``r / base`` times the member's rate (``base``: the model's ``dropout`` setting),
  reading that from ``rates`` (one member's slice of ``layer_rates``). With ``rates=None`` the
  layers run as built and ``seen`` collects each one's ``r / base``."""

  def interceptor(next_fun, args, kwargs, context):
    module = context.module
    if not isinstance(module, nn.Dropout) or context.method_name != "__call__":
      return next_fun(*args, **kwargs)
    scale = module.rate / base  # a Python float: 1.0 for the usual layer, 2.0 for the CNN head
    if seen is not None:
      seen.append(scale)
    if rates is None:
      return next_fun(*args, **kwargs)
    deterministic = kwargs.get("deterministic", args[1] if len(args) > 1 else None)
    rng = kwargs.get("rng", args[2] if len(args) > 2 else None)
    layer = rates[f"{scale:g}"]
    return _dropout(module, args[0], deterministic, rng, layer["keep"], layer["drop_below"])

  return interceptor


def _with_hyperparams(opt_state: PyTree, values: Mapping[str, jax.Array]) -> PyTree:
  """``opt_state`` with the injected hyperparameters in ``values`` replaced (traced values)."""
  def has(node):
    return hasattr(node, "hyperparams") and isinstance(node.hyperparams, dict)

  def replace(node):
    if not has(node):
      return node
    missing = [k for k in values if k not in node.hyperparams]
    if missing:
      raise UserError(f"the optimizer has no hyperparameter {missing[0]!r} to vary (it has "
                      f"{sorted(node.hyperparams)}); use an optimizer that takes it, e.g. "
                      "'adamw' for weight_decay")
    for k in values:
      if node.hyperparams_states.get(k) is not None:
        raise UserError(f"{k!r} follows a schedule; a population varies constant values only")
    new = {k: jnp.asarray(v, node.hyperparams[k].dtype) for k, v in values.items()}
    return node._replace(hyperparams={**node.hyperparams, **new})

  return jax.tree.map(replace, opt_state, is_leaf=has)


# --- the population trainer -------------------------------------------------------------------

@dataclasses.dataclass
class PopulationTrainer:
  """Trains P members of one model at once; each member is one trial.

  Args:
    model: the Flax module, built with its ``dropout`` at a non-zero ``dropout_base`` when
      members' dropout rates vary (a model built without dropout layers cannot get them).
    loss_fn, input_keys, preprocess, compute_dtype: as for ``steps.make_train_step``.
    optimizer: an optax optimizer name (``make_optimizer``); it must take ``weight_decay``
      when members' weight decays are not all 0 (``adamw``).
    optimizer_kwargs: its other (fixed) arguments.
    dropout_base: the rate the model's ``dropout`` setting was built with (0: no dropout
      layers; then every member's rate must be 0).
    devices: the devices to shard the population over (all by default).
  """
  model: nn.Module
  loss_fn: LossFn
  optimizer: str = "adamw"
  optimizer_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  input_keys: Sequence[str] = ("image",)
  preprocess: Callable | None = None
  compute_dtype: str = "float32"
  dropout_base: float = 0.0
  devices: Sequence[Any] | None = None

  def __post_init__(self):
    self.input_keys = tuple(self.input_keys)
    # The values given here are placeholders: each member's own live in its opt_state.
    self.tx = optim.make_optimizer(self.optimizer, 1e-3, **dict(self.optimizer_kwargs))
    probe = optim.get_hyperparams(jax.eval_shape(self.tx.init, {"w": jnp.zeros(())}))
    self._has_wd = "weight_decay" in probe
    self.states: TrainState | None = None
    self.hparams: dict[str, np.ndarray] | None = None
    self.mesh: Mesh | None = None
    self._spec: dict | None = None
    self._init_one = None
    self._scales: list[float] = []
    self._compiled: dict[tuple, Any] = {}
    self._train_step = steps.make_train_step(
        self.model, self.loss_fn, self.tx, input_keys=self.input_keys,
        preprocess=self.preprocess, compute_dtype=self.compute_dtype)
    self._eval_step = steps.make_eval_step(
        self.model, self.loss_fn, input_keys=self.input_keys, preprocess=self.preprocess,
        compute_dtype=self.compute_dtype)

  @property
  def size(self) -> int:
    return 0 if self.hparams is None else len(self.hparams["seed"])

  # --- one member's functions (vmapped in _programs) -----------------------------------------

  def _member_init(self, spec, seed, learning_rate, weight_decay):
    """One member's state as ``Trainer(seed=seed).init`` makes it, with its hyperparameters."""
    batch = {k: jnp.zeros((1,) + shape, dtype) for k, (shape, dtype) in spec.items()}
    if self.preprocess is not None:
      batch = dict(self.preprocess(batch))
    params_rng, dropout_rng, state_rng = jax.random.split(jax.random.PRNGKey(seed), 3)
    variables = dict(self.model.init({"params": params_rng, "dropout": dropout_rng},
                                     *[batch[k] for k in self.input_keys], train=False))
    params = variables.pop("params")
    state = create_train_state(params, variables, self.tx, state_rng)
    values = {"learning_rate": learning_rate}
    if self._has_wd:
      values["weight_decay"] = weight_decay
    return state.replace(opt_state=_with_hyperparams(state.opt_state, values))

  def _member_train(self, state, dropout, batch):
    if not self.dropout_base:
      return self._train_step(state, batch)
    with nn.intercept_methods(dropout_interceptor(dropout, self.dropout_base)):
      return self._train_step(state, batch)

  # --- set-up and compiled steps --------------------------------------------------------------

  def _set_mesh(self, size) -> NamedSharding:
    """The mesh for ``size`` members; returns the sharding of the population axis."""
    self.mesh = population_mesh(size, self.devices)
    return NamedSharding(self.mesh, P(DATA_AXIS))

  def init(self, sample_batch: Mapping[str, Any], hparams: Mapping[str, Sequence[float]]):
    """The members' states, sharded over the population axis, from a batch's shapes."""
    self.hparams = check_hparams(hparams)
    if not self.dropout_base and np.any(self.hparams["dropout"] != 0):
      raise UserError("members' dropout rates vary but the model has no dropout layers "
                      "(dropout_base=0): build the model with a non-zero dropout (its rate "
                      "is replaced by each member's) and give it as dropout_base")
    if not self._has_wd and np.any(self.hparams["weight_decay"] != 0):
      raise UserError(f"members' weight decays are not all 0 but optax.{self.optimizer} takes "
                      "no weight_decay; use an optimizer that does (e.g. 'adamw')")
    spec = {k: (tuple(v.shape[1:]), np.dtype(v.dtype).name) for k, v in sample_batch.items()}
    spec.setdefault("mask", ((), "float32"))
    if self.dropout_base:
      self._check_dropout(spec)
    population = self._set_mesh(self.size)
    self._programs(spec)
    h = self.hparams
    # One member at a time with one compiled program, then stacked: the vmapped init took
    # about twice as long to compile (2.9 s CPU at P=1, 5.5 at P=8, 6.5 at P=32) as running
    # this one P times, and it gives each member exactly the state Trainer(seed=...) makes.
    if self._init_one is None or self._init_one[0] != spec:
      self._init_one = (spec, jax.jit(functools.partial(self._member_init, spec)))
    members = [jax.device_get(self._init_one[1](np.int32(s), np.float32(lr), np.float32(wd)))
               for s, lr, wd in zip(h["seed"], h["learning_rate"], h["weight_decay"])]
    self.states = jax.device_put(jax.tree.map(lambda *xs: np.stack(xs), *members), population)
    self._place_dropout()
    return self.states

  def _place_dropout(self) -> None:
    """The members' dropout inputs of the step, sharded like the states (none without
    dropout layers)."""
    rates = layer_rates(self.hparams["dropout"], self._scales) if self.dropout_base else {}
    self._dropout = jax.device_put(rates, NamedSharding(self.mesh, P(DATA_AXIS)))

  def _check_dropout(self, spec) -> None:
    """Every layer's rate below 1 for every member (the CNN's head drops at twice the rate)."""
    scales: list[float] = []

    def trace():  # the model's forward pass in training mode, shapes only
      batch = {k: jnp.zeros((2,) + shape, dtype) for k, (shape, dtype) in spec.items()}
      if self.preprocess is not None:
        batch = dict(self.preprocess(batch))
      key = jax.random.PRNGKey(0)
      with nn.intercept_methods(dropout_interceptor(None, self.dropout_base, scales)):
        return self.model.init({"params": key, "dropout": key},
                               *[batch[k] for k in self.input_keys], train=True)

    jax.eval_shape(trace)  # traces, computes nothing
    if not scales:
      raise UserError("members' dropout rates were given but the model has no nn.Dropout "
                      "layer; build it with its dropout setting at dropout_base")
    self._scales = sorted(set(scales))
    worst = float(np.max(self.hparams["dropout"])) * max(scales)
    if worst >= 1.0:
      raise UserError(f"a member's dropout {np.max(self.hparams['dropout']):.3g} makes a layer "
                      f"built at {max(scales):g}x the model's rate drop {worst:.3g} >= 1 of its "
                      f"inputs; keep the dropout range below {1 / max(scales):.3g}")

  def _programs(self, spec=None):
    """train and eval compiled for this population size and mesh (one compile each, reused
    by every later population of the same size: a sequential run of P=1 trials compiles once).

    A population of one runs the step unvmapped (the state's axis of one squeezed out inside
    the program): that is one trial alone, the sequential baseline of the benchmark.
    """
    spec = spec if spec is not None else self._spec
    self._spec = spec
    key = (self.size, tuple(self.mesh.devices.flat), tuple(sorted(spec.items())))
    if key in self._compiled:
      return self._compiled[key]
    pop, rep = NamedSharding(self.mesh, P(DATA_AXIS)), replicated(self.mesh)

    if self.size == 1:
      squeeze = lambda tree: jax.tree.map(lambda x: x[0], tree)
      expand = lambda tree: jax.tree.map(lambda x: x[None], tree)
      train_fn = lambda s, d, b: expand(self._member_train(squeeze(s), squeeze(d), b))
      eval_fn = lambda s, b: expand(self._eval_step(squeeze(s), b))
    else:
      train_fn = jax.vmap(self._member_train, in_axes=(0, 0, None))
      eval_fn = jax.vmap(self._eval_step, in_axes=(0, None))
    programs = (jax.jit(train_fn, in_shardings=(pop, pop, rep), out_shardings=(pop, pop),
                        donate_argnums=(0,)),
                jax.jit(eval_fn, in_shardings=(pop, rep), out_shardings=pop))
    # Only the current size's programs are kept: a rung's survivors never grow back.
    self._compiled = {key: programs}
    return programs

  def _place(self, batch: Mapping[str, Any]) -> dict[str, Any]:
    """The batch on every device of the population's mesh (a loader on another mesh, e.g.
    one device, is copied over; one already there is used as it is)."""
    rep = replicated(self.mesh)
    out = {}
    for k, x in batch.items():
      if isinstance(x, jax.Array) and not x.sharding.is_equivalent_to(rep, x.ndim):
        x = jax.device_put(x, rep)
      out[k] = x
    return out

  def train_step(self, batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """One update of every member on the same ``batch``; metric sums of shape (P,)."""
    if self.states is None:
      raise RuntimeError("call init(sample_batch, hparams) before training")
    train, _ = self._programs()
    self.states, sums = train(self.states, self._dropout, self._place(batch))
    return sums

  def fit_steps(self, batches: Iterable[Mapping[str, jax.Array]], num_steps: int
                ) -> dict[str, np.ndarray]:
    """``num_steps`` updates from ``batches``; per-member average train metrics."""
    totals, limit = None, DispatchLimit()
    it = iter(batches)
    for _ in range(num_steps):
      sums = self.train_step(next(it))
      totals = sums if totals is None else add_sums(totals, sums)
      limit(totals)
    return averages(totals)

  def evaluate(self, batches: Iterable[Mapping[str, jax.Array]]) -> dict[str, np.ndarray]:
    """Per-member averages over ``batches`` (padding masked out): ``{metric: (P,)}``."""
    _, evaluate = self._programs()
    totals, limit = None, DispatchLimit()
    for batch in batches:
      sums = evaluate(self.states, self._place(batch))
      totals = sums if totals is None else add_sums(totals, sums)
      limit(totals)
    if totals is None:
      raise ValueError("evaluation data yielded no batches")
    return averages(totals)

  def select(self, members: Sequence[int]) -> None:
    """Keep only ``members`` (indices into the current population), in that order: their
    states are sliced out of the population axis and resharded for the new size."""
    index = np.asarray(members, np.int64)
    if index.ndim != 1 or not len(index) or index.min() < 0 or index.max() >= self.size:
      raise ValueError(f"members must be indices in [0, {self.size}); got {list(members)}")
    host = jax.device_get(self.states)
    kept = jax.tree.map(lambda x: np.asarray(x)[index], host)
    self.hparams = {k: v[index] for k, v in self.hparams.items()}
    self.states = jax.device_put(kept, self._set_mesh(len(index)))
    self._place_dropout()

  def member_params(self, i: int) -> PyTree:
    """Member ``i``'s parameters as numpy arrays."""
    return jax.tree.map(lambda x: np.asarray(x[i]), jax.device_get(self.states.params))

  def free(self) -> None:
    """Drop the device buffers and compiled programs of this population."""
    if self.states is not None:
      for x in jax.tree.leaves(self.states):
        if isinstance(x, jax.Array) and not x.is_deleted():
          x.delete()
    self.states, self._compiled, self._init_one = None, {}, None


def averages(sums: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """Per-member metric sums with ``count`` -> per-member averages (numpy, (P,))."""
  host = {k: np.asarray(v, np.float64) for k, v in jax.device_get(dict(sums)).items()}
  count = np.maximum(host.pop("count"), 1.0)
  return {k: v / count for k, v in host.items()}

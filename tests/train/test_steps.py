"""The pure steps: same numbers on 1 and 8 devices, FSDP, bf16, accumulation, clear errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ycng_jax.data as ydata
from ycng_jax.data.pipeline import Loader
from ycng_jax.models.cnn import CNN
from ycng_jax.models.mlp import MLP
from ycng_jax.train.losses import make_classification_loss
from ycng_jax.train.mesh import make_mesh
from ycng_jax.train.optim import make_optimizer
from ycng_jax.train.state import create_train_state
from ycng_jax.train.trainer import Trainer


def _scale(batch):
  return {**batch, "image": batch["image"].astype(jnp.float32) / 255.0}


@pytest.fixture(scope="module")
def digits():
  arrays = ydata.load("digits", "train")
  return {"image": arrays["image"][:256], "label": arrays["label"][:256].astype(np.int32)}


def _train(arrays, num_devices, steps=3, model=None, **kwargs):
  mesh = make_mesh(num_devices)
  loader = Loader(arrays, global_batch_size=64, mesh=mesh, shuffle=True, seed=1)
  trainer = Trainer(model or MLP(hidden=(32,), dropout=0.0), make_classification_loss(),
                    make_optimizer("sgd", 0.1, momentum=0.9), mesh=mesh, preprocess=_scale,
                    **kwargs)
  trainer.init(next(iter(Loader(arrays, global_batch_size=64, mesh=mesh))))
  losses = []
  for _ in range(steps):
    sums = trainer.train_step(next(loader))
    losses.append(float(sums["loss"] / sums["count"]))
  return trainer, np.array(losses)


@pytest.fixture(scope="module")
def baseline(digits):
  """Replicated params on 8 devices: the reference the other layouts must match."""
  return _train(digits, 8)


def test_same_loss_and_params_on_1_and_8_devices(digits, baseline):
  t1, l1 = _train(digits, 1)
  t8, l8 = baseline
  np.testing.assert_allclose(l1, l8, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(t1.state.params), jax.tree.leaves(t8.state.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
  assert l8[-1] < l8[0]


def test_fsdp_shards_params_and_matches_replicated(digits, baseline):
  rep, l_rep = baseline
  fsdp, l_fsdp = _train(digits, 8, param_sharding="fsdp")
  kernel = fsdp.state.params["dense_0"]["kernel"]  # (64, 32): split over 8 devices
  assert kernel.sharding.spec != jax.sharding.PartitionSpec()
  assert kernel.addressable_shards[0].data.size == kernel.size // 8
  np.testing.assert_allclose(l_rep, l_fsdp, rtol=1e-5)


def test_gradient_accumulation_equals_whole_batch(digits, baseline):
  whole, l_whole = baseline
  accum, l_accum = _train(digits, 8, grad_accum_steps=4)
  np.testing.assert_allclose(l_whole, l_accum, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(whole.state.params), jax.tree.leaves(accum.state.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_bf16_compute_keeps_fp32_params_and_learns(digits):
  trainer, losses = _train(digits, 8, steps=4, compute_dtype="bfloat16",
                           model=CNN(features=(4,), dense=16, dropout=0.0, convs_per_block=1))
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(trainer.state.params))
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(trainer.state.model_state))
  assert losses[-1] < losses[0]


@pytest.fixture(scope="module")
def ema_trainer(digits):
  return _train(digits, 8, steps=1, ema_decay=0.5)[0]


def test_ema_params_follow_params(ema_trainer):
  trainer = ema_trainer
  ema, params = trainer.state.ema_params, trainer.state.params
  diff = [float(jnp.abs(e - p).max()) for e, p in zip(jax.tree.leaves(ema), jax.tree.leaves(params))]
  assert max(diff) > 0  # lags behind the params


def test_batch_shape_or_dtype_mismatch_is_a_clear_error(digits, ema_trainer):
  trainer = ema_trainer
  mesh = trainer.mesh
  wrong = {"image": digits["image"][:64, :4], "label": digits["label"][:64]}
  with pytest.raises(ValueError, match=r"'image': expected per-example shape \(8, 8, 1\)"):
    trainer.train_step(next(iter(Loader(wrong, global_batch_size=64, mesh=mesh))))
  wrong = {"image": digits["image"][:64].astype(np.float32), "label": digits["label"][:64]}
  with pytest.raises(ValueError, match="dtype uint8"):
    trainer.train_step(next(iter(Loader(wrong, global_batch_size=64, mesh=mesh))))


def test_loss_function_must_return_per_example_loss(digits):
  mesh = make_mesh(8)
  bad_loss = lambda logits, batch: {"loss": jnp.mean(logits)}  # a scalar, not (B,)
  trainer = Trainer(MLP(hidden=(8,)), bad_loss, make_optimizer("sgd", 0.1), mesh=mesh,
                    preprocess=_scale)
  batch = next(iter(Loader(digits, global_batch_size=64, mesh=mesh)))
  trainer.init(batch)
  with pytest.raises(ValueError, match="per-example"):
    trainer.train_step(batch)


def test_learning_rate_change_does_not_recompile(digits, ema_trainer):
  trainer = ema_trainer
  mesh = trainer.mesh
  loader = Loader(digits, global_batch_size=64, mesh=mesh)
  trainer.train_step(next(loader))
  compiled = trainer._train_step._cache_size()
  trainer.learning_rate = 0.01
  trainer.train_step(next(loader))
  assert trainer.learning_rate == pytest.approx(0.01)
  assert trainer._train_step._cache_size() == compiled


def test_init_gives_the_values_of_one_default_compiled_program(digits):
  """Trainer.init compiles the model's initialisation on its own at -O2 (faster to compile, and
  free of the learning rate, so tuning trials share it): the state must be bit for bit the one
  a single default-compiled program gives, the old way."""
  mesh = make_mesh(2)
  model = MLP(hidden=(16,), dropout=0.1)
  tx = make_optimizer("adam", 3e-3)
  trainer = Trainer(model, make_classification_loss(), tx, mesh=mesh, preprocess=_scale,
                    ema_decay=0.9, seed=3)
  state = trainer.init(next(iter(Loader(digits, global_batch_size=64, mesh=mesh))))

  def one_program(rng):
    params_rng, dropout_rng, state_rng = jax.random.split(rng, 3)
    variables = dict(model.init({"params": params_rng, "dropout": dropout_rng},
                                _scale({"image": jnp.zeros((1, 8, 8, 1), jnp.uint8)})["image"],
                                train=False))
    params = variables.pop("params")
    return create_train_state(params, variables, tx, state_rng, ema=True)

  reference = jax.jit(one_program)(jax.random.PRNGKey(3))
  assert jax.tree.structure(state) == jax.tree.structure(reference)
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(reference)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

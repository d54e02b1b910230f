"""DEC's maths and pure train steps: soft assignment, target distribution, padding, sharding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ycng_jax.cluster import dec_steps
from ycng_jax.models.autoencoder import Autoencoder
from ycng_jax.train.mesh import data_sharding, make_mesh, replicated
from ycng_jax.train.steps import jit_train_step


def test_soft_assignment_is_students_t_and_rows_sum_to_one():
  z = jax.random.normal(jax.random.key(0), (7, 3))
  mu = jax.random.normal(jax.random.key(1), (4, 3))
  for alpha in (1.0, 2.5):
    q = dec_steps.soft_assignment(z, mu, alpha)
    d2 = ((np.asarray(z)[:, None] - np.asarray(mu)[None]) ** 2).sum(-1)
    kernel = (1 + d2 / alpha) ** (-(alpha + 1) / 2)
    np.testing.assert_allclose(q, kernel / kernel.sum(1, keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(q.sum(1), 1.0, rtol=1e-6)


def test_soft_assignment_is_one_hot_at_far_apart_centres():
  mu = jnp.array([[0.0, 0.0], [1e4, 0.0]])
  q = dec_steps.soft_assignment(jnp.array([[0.0, 0.0], [1e4, 1.0]]), mu)
  np.testing.assert_allclose(q, np.eye(2), atol=1e-6)


def test_target_distribution_by_hand():
  q = jnp.array([[0.6, 0.4], [0.2, 0.8]])
  f = np.array([0.8, 1.2])
  w = np.asarray(q) ** 2 / f
  np.testing.assert_allclose(dec_steps.target_distribution(q), w / w.sum(1, keepdims=True),
                             rtol=1e-6)


def test_target_distribution_sharpens_and_balances():
  q = jax.nn.softmax(jax.random.normal(jax.random.key(0), (200, 5)), axis=1)
  p = dec_steps.target_distribution(q)
  np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)
  assert (p >= 0).all()
  # With equal cluster frequencies, P is a per-row sharpening of Q: same argmax, higher peak.
  balanced = jnp.array([[0.7, 0.2, 0.1], [0.1, 0.7, 0.2], [0.2, 0.1, 0.7]])
  p_bal = dec_steps.target_distribution(balanced)
  np.testing.assert_array_equal(p_bal.argmax(1), balanced.argmax(1))
  assert (p_bal.max(1) > balanced.max(1)).all()
  # A big cluster is down-weighted by its frequency: a point split 50/50 leans to the small one.
  skewed = jnp.array([[0.9, 0.1]] * 8 + [[0.5, 0.5]])
  assert dec_steps.target_distribution(skewed)[-1, 1] > 0.5


def test_kl_divergence():
  p = jnp.array([[0.5, 0.5, 0.0]])
  q = jnp.array([[0.25, 0.25, 0.5]])
  np.testing.assert_allclose(dec_steps.kl_divergence(p, q), [np.log(2.0)], rtol=1e-6)
  np.testing.assert_allclose(dec_steps.kl_divergence(q, q), [0.0], atol=1e-7)


CENTERS = [[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]


def _setup(mesh, keep_reconstruction=False, optimizer="sgd", gamma=0.1):
  net = dec_steps.ClusteringNet(input_dim=6, hidden_dims=(8, 2), n_clusters=3,
                                keep_reconstruction=keep_reconstruction)
  ae = Autoencoder(input_dim=6, hidden_dims=(8, 2)).init(jax.random.key(0), jnp.zeros((1, 6)))
  params = {"autoencoder": ae["params"], "centers": jnp.array(CENTERS)}
  opt = dec_steps.make_optimizer(optimizer, 0.05)
  state = jax.device_put(dec_steps.init_state(params, opt), replicated(mesh))
  step = jit_train_step(dec_steps.make_cluster_step(net, opt, gamma), mesh, replicated(mesh))
  return net, state, step


def _means(sums):
  return {k: float(v) / float(sums["count"]) for k, v in sums.items() if k != "count"}


def _batch(n=16):
  x = jax.random.uniform(jax.random.key(3), (n, 6))
  p = jax.nn.softmax(jax.random.normal(jax.random.key(4), (n, 3)) * 3, axis=1)
  return np.asarray(x), np.asarray(p)


def test_cluster_step_sharded_equals_single_device():
  x, p = _batch()
  w = np.ones(16, np.float32)
  results = []
  for n_dev in (1, 8):
    mesh = make_mesh(n_dev)
    _, state, step = _setup(mesh)
    put = lambda a: jax.device_put(a, data_sharding(mesh))
    for _ in range(3):
      state, sums = step(state, {"image": put(x), "target": put(p), "mask": put(w)})
    results.append((jax.device_get(state.params), _means(sums)["kl"]))
  (params_1, kl_1), (params_8, kl_8) = results
  np.testing.assert_allclose(kl_1, kl_8, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(params_1), jax.tree.leaves(params_8)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_padding_rows_have_no_effect():
  """A batch padded with garbage rows of weight 0 trains exactly like the real rows alone."""
  x, p = _batch(16)
  mesh = make_mesh(8)
  put = lambda a: jax.device_put(a, data_sharding(mesh))
  _, state_a, step = _setup(mesh, keep_reconstruction=True)
  _, state_b, _ = _setup(mesh, keep_reconstruction=True)
  # 8 real rows + 8 padding rows vs the 8 real rows repeated (same mean) with weight 1.
  w_pad = np.r_[np.ones(8), np.zeros(8)].astype(np.float32)
  x_pad = np.r_[x[:8], np.full((8, 6), 100.0, np.float32)]
  p_pad = np.r_[p[:8], np.full((8, 3), 1 / 3, np.float32)]
  state_a, m_a = step(state_a, {"image": put(x_pad), "target": put(p_pad), "mask": put(w_pad)})
  state_b, m_b = step(state_b, {"image": put(np.r_[x[:8], x[:8]]),
                                "target": put(np.r_[p[:8], p[:8]]),
                                "mask": put(np.ones(16, np.float32))})
  np.testing.assert_allclose(_means(m_a)["loss"], _means(m_b)["loss"], rtol=1e-5)
  for a, b in zip(jax.tree.leaves(state_a.params), jax.tree.leaves(state_b.params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_idec_step_keeps_reconstruction_and_weighs_kl_by_gamma():
  x, p = _batch()
  mesh = make_mesh(8)
  put = lambda a: jax.device_put(a, data_sharding(mesh))
  batch = {"image": put(x), "target": put(p), "mask": put(np.ones(16, np.float32))}
  _, state, step = _setup(mesh, keep_reconstruction=True, gamma=0.3)
  _, m = step(state, batch)
  m = _means(m)
  assert m["reconstruction"] > 0
  np.testing.assert_allclose(m["loss"], m["reconstruction"] + 0.3 * m["kl"], rtol=1e-5)
  # DEC's step never touches the decoder: its gradient there is exactly zero.
  _, dec_state, dec_step = _setup(mesh, keep_reconstruction=False)
  before = jax.device_get(dec_state.params["autoencoder"]["decoder_0"])
  dec_state, m_dec = dec_step(dec_state, batch)
  after = jax.device_get(dec_state.params["autoencoder"]["decoder_0"])
  assert _means(m_dec)["reconstruction"] == 0.0
  jax.tree.map(np.testing.assert_array_equal, before, after)


def test_pretrain_step_lowers_reconstruction_loss():
  model = Autoencoder(input_dim=6, hidden_dims=(8, 2))
  params = model.init(jax.random.key(0), jnp.zeros((1, 6)))["params"]
  opt = dec_steps.make_optimizer("adam", 1e-2)
  mesh = make_mesh(8)
  state = jax.device_put(dec_steps.init_state(params, opt), replicated(mesh))
  step = jit_train_step(dec_steps.make_pretrain_step(model, opt), mesh, replicated(mesh))
  x, _ = _batch()
  batch = {"image": jax.device_put(x, data_sharding(mesh)),
           "mask": jax.device_put(np.ones(16, np.float32), data_sharding(mesh))}
  losses = []
  for _ in range(30):
    state, sums = step(state, batch)
    losses.append(_means(sums)["loss"])
  assert losses[-1] < 0.5 * losses[0]
  assert int(state.step) == 30


def test_unknown_optimizer_is_an_error():
  with pytest.raises(ValueError, match="'adam' or 'sgd'"):
    dec_steps.make_optimizer("rmsprop", 0.1)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_hyperparameters_live_in_the_state(name):
  """A step built with placeholder hyperparameters updates like the real optimiser (DEC caches
  its compiled steps on this)."""
  net = dec_steps.ClusteringNet(input_dim=6, hidden_dims=(8, 2), n_clusters=3)
  ae = Autoencoder(input_dim=6, hidden_dims=(8, 2)).init(jax.random.key(0), jnp.zeros((1, 6)))
  params = {"autoencoder": ae["params"], "centers": jnp.eye(3, 2)}
  real = dec_steps.make_optimizer(name, 0.05, 0.9)
  placeholder = dec_steps.make_optimizer(name, 0.0, 0.0)
  x, p = _batch()
  batch = {"image": x, "target": p, "mask": np.ones(16, np.float32)}
  outs = []
  for opt in (real, placeholder):
    state = dec_steps.init_state(params, real)
    step = jax.jit(dec_steps.make_cluster_step(net, opt))
    for _ in range(2):
      state, _ = step(state, batch)
    outs.append(state.params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), *outs)
  assert not np.allclose(outs[0]["centers"], params["centers"])

"""The Siamese tower: one parameter tree, identical branches, gradients through every branch;
and the sampled Loader streams are seeded and resumable."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ycng_jax.data.pipeline import Loader
from ycng_jax.models.siamese import EmbeddingTower, SiameseNetwork
from ycng_jax.train.mesh import make_mesh
from ycng_jax.vision import pairs as P
from ycng_jax.vision import siamese as S

from numpy_variables import numpy_variables  # Flax's eager init compiles a sampler per shape

KW = dict(features=(4,), dense=8, embedding_dim=3)


def _inputs(n=4, seed=0):
  rng = np.random.default_rng(seed)
  return [jnp.asarray(rng.random((n, 8, 8, 1)), jnp.float32) for _ in range(3)]


def test_one_param_tree_shared_by_every_branch():
  a, b, c = _inputs()
  model = SiameseNetwork(**KW)
  params = numpy_variables(model, a, b)["params"]
  assert list(params) == ["tower"]
  assert set(params["tower"]) == {"conv_0", "dense", "embedding"}
  # the same tree serves one, two and three inputs
  single = model.apply({"params": params}, a)
  ea, eb, ec = model.apply({"params": params}, a, b, c)
  tower = EmbeddingTower(**KW)
  np.testing.assert_allclose(ea, single, atol=1e-6)
  np.testing.assert_allclose(eb, tower.apply({"params": params["tower"]}, b), atol=1e-6)
  np.testing.assert_allclose(ec, tower.apply({"params": params["tower"]}, c), atol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(ea, axis=1), 1.0, rtol=1e-5)  # L2-normalised


def test_gradients_flow_through_both_branches():
  a, b, _ = _inputs()
  model = SiameseNetwork(**KW)
  params = numpy_variables(model, a, b)["params"]

  def branch_loss(p, which):
    ea, eb = model.apply({"params": p}, a, b)
    return jnp.sum((ea if which == 0 else eb) * jnp.arange(3.0))

  for which in (0, 1):
    grads = jax.grad(branch_loss)(params, which)
    norms = [float(jnp.abs(g).sum()) for g in jax.tree.leaves(grads)]
    assert all(n > 0 for n in norms), (which, norms)
  # and the two branches' gradients add up to the gradient of the sum (one shared tree)
  g0, g1 = (jax.grad(branch_loss)(params, w) for w in (0, 1))
  both = jax.grad(lambda p: branch_loss(p, 0) + branch_loss(p, 1))(params)
  for x, y, z in zip(jax.tree.leaves(g0), jax.tree.leaves(g1), jax.tree.leaves(both)):
    np.testing.assert_allclose(x + y, z, rtol=1e-4, atol=1e-6)


def test_unnormalised_embeddings_and_shape_errors():
  a, b, _ = _inputs()
  model = SiameseNetwork(**KW, normalize=False)
  params = numpy_variables(model, a)["params"]
  assert not np.allclose(np.linalg.norm(model.apply({"params": params}, a), axis=1), 1.0)
  with pytest.raises(ValueError, match="same shape"):
    model.apply({"params": params}, a, b[:2])
  with pytest.raises(ValueError, match="NHWC"):
    model.apply({"params": params}, a[..., 0])


def _collect(loader, n):
  it = iter(loader)
  return [{k: np.asarray(v) for k, v in next(it).items()} for _ in range(n)]


def test_pair_loader_is_seeded_and_resumes_exactly():
  labels = np.repeat(np.arange(4), 8).astype(np.int32)
  images = np.arange(32, dtype=np.uint8).reshape(-1, 1, 1, 1)
  mesh = make_mesh()

  def loader():
    return Loader({"image": images, "label": labels, "index": np.arange(32)},
                  global_batch_size=8, mesh=mesh, seed=5,
                  transform=P.PairTransform(images, labels, seed=5))

  first = _collect(loader(), 8)                        # two epochs of 4 batches
  again = _collect(loader(), 8)
  for x, y in zip(first, again):
    np.testing.assert_array_equal(x["image_b"], y["image_b"])
  assert all(b["pair_label"].sum() == 4 for b in first)
  # epoch 2 draws other partners
  assert not all(np.array_equal(x["image_b"], y["image_b"]) for x, y in zip(first[:4], first[4:]))
  resumed = loader()
  it = iter(resumed)
  for _ in range(3):
    next(it)
  state = resumed.get_state()
  fresh = loader()
  fresh.set_state(state)
  for expected in first[3:6]:
    got = next(iter(fresh))
    np.testing.assert_array_equal(np.asarray(got["image_b"]), expected["image_b"])


def test_triplet_preprocess_and_loss_under_jit_on_the_mesh():
  """The mining runs on the global batch even when it is sharded over 8 devices."""
  mesh = make_mesh()
  labels = np.repeat(np.arange(4), 4).astype(np.int32)
  emb = np.random.default_rng(0).normal(size=(16, 5)).astype(np.float32)
  batch = {"label": labels, "mask": np.ones(16, np.float32)}
  sharded = jax.device_put(batch, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data")))
  emb_sharded = jax.device_put(emb, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data")))
  for mining in S.MINING:
    fn = jax.jit(S.make_triplet_loss(mining, 0.5))
    np.testing.assert_allclose(fn(emb_sharded, sharded)["loss"],
                               S.make_triplet_loss(mining, 0.5)(emb, batch)["loss"], rtol=1e-5)

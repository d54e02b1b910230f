"""BERT model, heads and HF weight conversion on a tiny random config (fast)."""

import functools
import json

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ycng_jax.models.bert import (BertConfig, BertForSequenceClassification, BertModel,
                                  packed_attention_mask, sequence_classification_loss)
from ycng_jax.models.hf_weights import (WeightLoadError, load_params, load_pretrained,
                                        params_to_state_dict, save_pretrained)

from numpy_variables import numpy_variables

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
            intermediate_size=37, max_position_embeddings=64, type_vocab_size=2)


def _batch(rng, batch=3, seq=10, vocab=99):
  ids = rng.integers(1, vocab, (batch, seq)).astype(np.int32)
  mask = np.ones((batch, seq), np.int32)
  mask[1, 6:] = 0
  mask[2, 3:] = 0
  return ids, mask


def _init(module, ids):
  """Random parameters of ``module``'s shapes, drawn by numpy (``numpy_variables``): Flax's
  eager ``init`` compiles one sampler per parameter shape (~5 CPU-s for this file). Biases and
  LayerNorm parameters are random too, so every tensor's name mapping is tested. (The jitted
  Flax init of the classifier runs in tests/text/test_finetune.py, through the Trainer.)"""
  return numpy_variables(module, ids, scale=0.02)["params"]  # BERT's initializer_range


def _apply(module, params, *args, **kwargs):
  return module.apply({"params": params}, *args, **kwargs)


def test_config_from_hf_dict_and_errors(tmp_path):
  cfg = BertConfig.from_hf({**TINY, "model_type": "bert", "id2label": {"0": "neg", "1": "pos"}})
  assert cfg.num_labels == 2 and cfg.label_names == ("neg", "pos") and cfg.head_dim == 8
  assert BertConfig.from_hf(cfg.to_hf(), num_labels=3).label_names is None
  (tmp_path / "config.json").write_text(json.dumps(cfg.to_hf()))
  assert BertConfig.from_hf(tmp_path) == cfg
  with pytest.raises(ValueError, match="model_type"):
    BertConfig.from_hf({"model_type": "gpt2"})
  with pytest.raises(ValueError, match="divisible"):
    BertConfig(hidden_size=30, num_attention_heads=4)
  with pytest.raises(ValueError, match="position_embedding_type"):
    BertConfig.from_hf({"position_embedding_type": "relative_key"})


def test_param_shapes_are_head_split_for_sharding():
  cfg = BertConfig(**TINY)
  params = jax.eval_shape(BertModel(cfg).init, jax.random.PRNGKey(0), jnp.zeros((1, 4), jnp.int32))
  attn = params["params"]["layer_0"]["attention"]
  assert attn["query"]["kernel"].shape == (32, 4, 8)
  assert attn["query"]["bias"].shape == (4, 8)
  assert attn["output"]["kernel"].shape == (4, 8, 32)


def test_padding_does_not_change_real_tokens():
  cfg = BertConfig(**TINY)
  module = BertModel(cfg)
  ids, mask = _batch(np.random.default_rng(0))
  params = _init(module, ids)
  full, _ = _apply(module, params, ids, mask)
  short, _ = _apply(module, params, ids[2:3, :3], mask[2:3, :3])
  np.testing.assert_allclose(np.asarray(full)[2, :3], np.asarray(short)[0], atol=1e-5)


def test_packed_rows_equal_separate_texts_and_output_positions_pick_states():
  cfg = BertConfig(**TINY)
  module = BertModel(cfg, add_pooler=False)
  rng = np.random.default_rng(1)
  a, b = rng.integers(1, 99, 5).astype(np.int32), rng.integers(1, 99, 3).astype(np.int32)
  params = _init(module, a[None])
  ids = np.concatenate([a, b, [0, 0]])[None]
  positions = np.concatenate([np.arange(5), np.arange(3), [0, 0]])[None]
  segments = np.array([[1] * 5 + [2] * 3 + [0, 0]])
  packed, _ = _apply(module, params, ids, packed_attention_mask(segments), position_ids=positions)
  alone_a, _ = _apply(module, params, a[None])
  alone_b, _ = _apply(module, params, b[None])
  np.testing.assert_allclose(np.asarray(packed)[0, :5], np.asarray(alone_a)[0], atol=1e-5)
  np.testing.assert_allclose(np.asarray(packed)[0, 5:8], np.asarray(alone_b)[0], atol=1e-5)
  # output_positions: the last layer computes only the asked-for tokens, each as it was.
  starts, start_states = np.array([[0, 5]]), np.asarray(packed)[:, [0, 5]]
  picked, _ = _apply(module, params, ids, packed_attention_mask(segments), position_ids=positions,
                     output_positions=starts)
  np.testing.assert_allclose(np.asarray(picked), start_states, atol=1e-5)
  padded_ids, padding_mask = _batch(rng)
  full, _ = _apply(module, params, padded_ids, padding_mask)
  at = np.array([[0, 4], [5, 1], [2, 0]])
  picked, _ = _apply(module, params, padded_ids, padding_mask, output_positions=at)
  np.testing.assert_allclose(np.asarray(picked), np.take_along_axis(np.asarray(full), at[..., None], 1),
                             atol=1e-5)


def test_classification_forward_backward_shapes():
  cfg = BertConfig(**TINY, num_labels=3)
  module = BertForSequenceClassification(cfg)
  ids, mask = _batch(np.random.default_rng(2))
  params = _init(module, ids)
  labels = np.array([0, 2, 1])

  def loss_fn(p, rng):
    logits = module.apply({"params": p}, ids, mask, deterministic=False, rngs={"dropout": rng})
    return sequence_classification_loss(logits, labels, cfg), logits

  # Jitted: eagerly, a backward pass compiles each op on its own (~13 CPU-s, ~3.5 jitted).
  grad_fn = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))
  (loss, logits), grads = grad_fn(params, jax.random.PRNGKey(1))
  assert logits.shape == (3, 3) and np.isfinite(float(loss))
  assert jax.tree.map(jnp.shape, grads) == jax.tree.map(jnp.shape, params)
  assert float(jnp.abs(grads["classifier"]["kernel"]).sum()) > 0
  # Dropout makes training forward passes differ; inference is deterministic.
  (_, logits2), _ = grad_fn(params, jax.random.PRNGKey(2))
  assert not np.allclose(logits, logits2)


# The regression head (num_labels=1, MSE) runs in the remat and bf16-matmul tests below, the
# cross-entropy head in the test above.
REGRESSION = BertConfig(**TINY, num_labels=1)
SCORES = np.array([0.5, -1.0, 2.0], np.float32)


@functools.partial(jax.jit, static_argnums=0)
def _loss_and_grads(module, params, ids, mask, labels):
  """One jitted backward pass per module (eagerly, each op compiles on its own: ~13 CPU-s a
  model); the float32 model's program serves both tests below."""
  def loss(p):
    logits = module.apply({"params": p}, ids, mask)
    return sequence_classification_loss(logits, labels, module.config), logits
  return jax.value_and_grad(loss, has_aux=True)(params)


def test_remat_gives_the_same_gradients():
  ids, mask = _batch(np.random.default_rng(3))
  plain = BertForSequenceClassification(REGRESSION)
  remat = BertForSequenceClassification(REGRESSION, remat=True)
  params = _init(plain, ids)
  assert (jax.eval_shape(remat.init, jax.random.PRNGKey(0), ids) ==
          jax.eval_shape(plain.init, jax.random.PRNGKey(0), ids))
  (loss, logits), grads = _loss_and_grads(plain, params, ids, mask, SCORES)
  assert logits.shape == (3, 1) and np.isfinite(float(loss))
  assert jax.tree.map(jnp.shape, grads) == jax.tree.map(jnp.shape, params)
  assert float(jnp.abs(grads["classifier"]["kernel"]).sum()) > 0
  _, remat_grads = _loss_and_grads(remat, params, ids, mask, SCORES)
  for g1, g2 in zip(jax.tree.leaves(grads), jax.tree.leaves(remat_grads)):
    np.testing.assert_allclose(g1, g2, atol=1e-6)


def test_state_dict_round_trip_and_load_errors():
  cfg = BertConfig(**TINY, num_labels=3)
  module = BertForSequenceClassification(cfg)
  ids, _ = _batch(np.random.default_rng(4))
  params = _init(module, ids)
  state = params_to_state_dict(params, cfg, head="classification")
  assert state["bert.encoder.layer.0.attention.self.query.weight"].shape == (32, 32)
  assert state["classifier.weight"].shape == (3, 32)
  back, report = load_params(state, cfg, params, head="classification")
  assert not report.missing and not report.unexpected
  flat_a = flax.traverse_util.flatten_dict(params)
  flat_b = flax.traverse_util.flatten_dict(back)
  for key in flat_a:
    np.testing.assert_array_equal(flat_a[key], flat_b[key])

  broken = dict(state)
  del broken["bert.encoder.layer.0.output.dense.bias"]
  broken["cls.predictions.bias"] = np.zeros(99, np.float32)
  with pytest.raises(WeightLoadError) as err:
    load_params(broken, cfg, params, head="classification")
  assert "encoder.layer.0.output.dense.bias" in str(err.value)
  assert "cls.predictions.bias" in str(err.value)
  broken["bert.encoder.layer.0.output.dense.bias"] = np.zeros(7, np.float32)
  with pytest.raises(WeightLoadError, match="shape"):
    load_params(broken, cfg, params, head="classification", allow_unexpected=("cls.*",))


def test_save_pretrained_loads_in_transformers(tmp_path):
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  cfg = BertConfig(**TINY, num_labels=3, hidden_act="gelu")
  module = BertForSequenceClassification(cfg)
  ids, mask = _batch(np.random.default_rng(5))
  params = _init(module, ids)
  save_pretrained(params, cfg, tmp_path / "clf", head="classification")
  ref = transformers.BertForSequenceClassification.from_pretrained(tmp_path / "clf").eval()
  with torch.no_grad():
    theirs = ref(input_ids=torch.from_numpy(ids).long(),
                 attention_mask=torch.from_numpy(mask).long()).logits.numpy()
  ours = np.asarray(_apply(module, params, ids, mask))
  np.testing.assert_allclose(ours, theirs, atol=1e-5)

  # The encoder of the fine-tuned model as a plain BertModel folder, and back into our model.
  save_pretrained(params["bert"], cfg, tmp_path / "base", head="pooler")
  base = transformers.BertModel.from_pretrained(tmp_path / "base").eval()
  with torch.no_grad():
    hidden = base(input_ids=torch.from_numpy(ids).long(),
                  attention_mask=torch.from_numpy(mask).long()).last_hidden_state.numpy()
  # A new head on the saved encoder: only the classifier may be missing.
  module2, params2, report = load_pretrained(tmp_path / "base", head="classification",
                                             config=BertConfig.from_hf(tmp_path / "base",
                                                                       num_labels=5),
                                             allow_missing=("classifier.*",))
  assert sorted(report.missing) == ["classifier.bias", "classifier.weight"]
  assert params2["classifier"]["kernel"].shape == (32, 5)
  ours_hidden, _ = _apply(BertModel(cfg), params2["bert"], ids, mask)
  real = mask.astype(bool)
  np.testing.assert_allclose(np.asarray(ours_hidden)[real], hidden[real], atol=1e-5)
  with pytest.raises(WeightLoadError, match="classifier"):
    load_pretrained(tmp_path / "base", head="classification")


def test_bf16_matmul_products_and_gradients_stay_close_to_float32():
  from ycng_jax.models.bert import bf16_matmul
  assert bf16_matmul(jnp.bfloat16) is bf16_matmul(jnp.bfloat16)  # modules stay equal: no retrace
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(4, 5, 6)), jnp.float32)
  for w, dims in ((rng.normal(size=(6, 3, 2)), (((2,), (0,)), ((), ()))),  # DenseGeneral out
                  (rng.normal(size=(5, 6, 7)), (((1, 2), (0, 1)), ((), ())))):  # axis=(-2, -1)
    w = jnp.asarray(w, jnp.float32)
    exact = lambda a, b: jax.lax.dot_general(a, b, dims)
    fast = lambda a, b: bf16_matmul(jnp.bfloat16)(a, b, dims)
    out = fast(x, w)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, exact(x, w), atol=0.05 * float(jnp.abs(exact(x, w)).max()))
    loss = lambda f: lambda a, b: jnp.sum(jnp.sin(f(a, b)))
    for g, e in zip(jax.grad(loss(fast), (0, 1))(x, w), jax.grad(loss(exact), (0, 1))(x, w)):
      assert g.dtype == jnp.float32
      assert float(jnp.abs(g - e).max()) < 0.05 * float(jnp.abs(e).max())
  with pytest.raises(NotImplementedError, match="batch"):
    bf16_matmul()(x, x, (((2,), (2,)), ((0,), (0,))))


def test_matmul_dtype_model_trains_close_to_float32():
  ids, mask = _batch(np.random.default_rng(3))  # the remat test's batch and float32 program
  exact = BertForSequenceClassification(REGRESSION)
  fast = BertForSequenceClassification(REGRESSION, matmul_dtype=jnp.bfloat16)
  params = _init(exact, ids)
  (_, fast_logits), fast_grads = _loss_and_grads(fast, params, ids, mask, SCORES)
  (_, exact_logits), exact_grads = _loss_and_grads(exact, params, ids, mask, SCORES)
  np.testing.assert_allclose(fast_logits, exact_logits, atol=0.02)
  for g, e in zip(jax.tree.leaves(fast_grads), jax.tree.leaves(exact_grads)):
    assert g.dtype == jnp.float32
    assert float(jnp.abs(g - e).max()) <= 0.05 * float(jnp.abs(e).max()) + 1e-6

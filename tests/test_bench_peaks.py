"""The BERT benchmarks' arithmetic: FLOP counts, the peaks they divide by, their arguments."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "scripts" / "bench"))

import argparse  # noqa: E402  pylint: disable=wrong-import-position
import types  # noqa: E402  pylint: disable=wrong-import-position

import pytest  # noqa: E402  pylint: disable=wrong-import-position

import bench_utils  # noqa: E402  pylint: disable=wrong-import-position
import bert_train_step  # noqa: E402  pylint: disable=wrong-import-position
import encode_vs_sentence_transformers  # noqa: E402  pylint: disable=wrong-import-position


def test_float32_dots_count_against_the_tf32_peak_unless_full_precision_is_asked_for():
  peak = bert_train_step.matmul_peak
  assert peak("NVIDIA H200", "float32", None) == (494e12, "tf32")
  assert peak("NVIDIA H100 80GB HBM3", "float32", "highest") == (67e12, "float32")
  assert peak("NVIDIA A100-SXM4-40GB", "float32", "float32") == (19.5e12, "float32")
  assert peak("NVIDIA H100 80GB HBM3", "bfloat16", "highest") == (989e12, "bfloat16")
  assert peak("TPU v5 lite", "bfloat16", None) is None


def test_flop_counts_match_a_hand_count():
  # MiniLM-L6 layer: Q, K, V, O (384 x 384 each) and the 384 x 1536 feed-forward pair.
  assert bench_utils.bert_layer_weights(384, 1536) == 4 * 147_456 + 2 * 589_824
  # 2 layers of h=4, i=8 (128 weights each), pooler 16 + classifier 12 weights; batch 1 x 2
  # tokens: 6 FLOPs per weight per token, plus QK^T and PV (2 x 2*h*seq^2 per layer) x 3.
  config = types.SimpleNamespace(hidden_size=4, intermediate_size=8, num_hidden_layers=2,
                                 num_labels=3)
  assert bert_train_step.train_flops_per_step(config, batch=1, seq=2) == 6 * 284 * 2 + 3 * 128


def test_bucket_argument_errors_name_the_bad_value():
  assert encode_vs_sentence_transformers.bucket_list("64,128,256") == (64, 128, 256)
  with pytest.raises(argparse.ArgumentTypeError, match="comma-separated"):
    encode_vs_sentence_transformers.bucket_list("64;128")
  with pytest.raises(argparse.ArgumentTypeError, match="at least 1 token"):
    encode_vs_sentence_transformers.bucket_list("0,128")


def test_attention_diagnostic_swaps_attention_only_inside_and_restores_it():
  from ycng_jax.models import attention, bert
  import jax.numpy as jnp
  q, k, v = jnp.ones((1, 2, 1, 2)), jnp.ones((1, 2, 1, 2)), jnp.arange(4.0).reshape(1, 2, 1, 2)
  mask = jnp.ones((1, 1, 2), bool)
  with pytest.raises(RuntimeError):
    with bench_utils.attention_replaced_by_values():
      assert (bert.attention(q, k, v, mask, chunk=0) == v).all()
      raise RuntimeError("a failed timing must not leave the model without attention")
  assert bert.attention is attention.attention
  # Real attention with equal scores averages the values over the two positions.
  assert jnp.allclose(bert.attention(q, k, v, mask), jnp.array([1.0, 2.0]))


def test_attention_diagnostic_keeps_the_query_and_key_projections():
  """Only attention's own two products leave the compiled layer: XLA must not drop the q and k
  projections as dead code, or their matmuls would be billed to attention."""
  import jax
  import jax.numpy as jnp
  from ycng_jax.models.bert import BertConfig, BertModel
  config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=64)
  model, ids = BertModel(config), jnp.ones((2, 8), jnp.int32)
  # Shapes suffice to lower and compile; Flax's eager init would compile a sampler per shape.
  params = jax.eval_shape(model.init, jax.random.key(0), ids, jnp.ones_like(ids))

  def compiled_dots():
    forward = jax.jit(lambda p: jax.tree.leaves(model.apply(p, ids, jnp.ones_like(ids)))[0])
    return forward.lower(params).compile().as_text().count(" dot(")

  real = compiled_dots()
  with bench_utils.attention_replaced_by_values():
    replaced = compiled_dots()
  assert real >= 8 and replaced == real - 2

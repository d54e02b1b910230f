"""EfficientNet-Lite0 module: shapes, padding, feature taps, train mode, name map (no torch)."""

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ycng_jax.models import efficientnet_weights as ew
from ycng_jax.models.efficientnet import EfficientNetLite, depthwise_shifted, tf_same_padding


def jit_apply(model):
  """Jitted ``model.apply``: eager op-by-op dispatch of a 16-block network is slow."""
  return jax.jit(model.apply, static_argnames=("train", "return_features", "mutable"))


def random_variables(seed=0):
  """Fan-in scaled random variables of the right shapes, drawn with numpy.

  ``model.init`` compiles one sampler per parameter (tens of seconds on a busy
  2-core CI box); the tests only need plausible values of the right shapes.
  """
  shapes = jax.eval_shape(EfficientNetLite().init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  rng = np.random.default_rng(seed)
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(shapes))
  out = {}
  for path, leaf in flat.items():
    name = path[-1]
    if name == "kernel":
      value = rng.normal(size=leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1]))
    elif name in ("scale", "var"):
      value = rng.uniform(0.5, 1.5, size=leaf.shape)
    else:  # bias, mean
      value = rng.normal(scale=0.1, size=leaf.shape)
    out[path] = jnp.asarray(value, jnp.float32)
  return flax.traverse_util.unflatten_dict(out)


def _normal(seed, shape):
  """numpy's draw: an eager jax.random.normal of a rank-4 shape compiles for ~2 CPU-s
  (scripts/bench/threefry_compile.py)."""
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.fixture(scope="module")
def variables():
  return random_variables()


def test_tf_same_padding_matches_xla_same_for_any_size():
  for size in range(1, 40):
    for kernel in (1, 3, 5):
      for stride in (1, 2):
        want = jax.lax.padtype_to_pads((size,), (kernel,), (stride,), "SAME")[0]
        assert tf_same_padding(size, kernel, stride) == tuple(want), (size, kernel, stride)
  # The odd extra row goes after, as in TF (PyTorch's symmetric padding would differ).
  assert tf_same_padding(224, 3, 2) == (0, 1)
  assert tf_same_padding(225, 5, 2) == (2, 2)


def test_shifted_depthwise_equals_grouped_conv():
  rng = np.random.default_rng(4)
  for size, kernel, stride in [(9, 3, 1), (9, 3, 2), (10, 5, 2), (7, 5, 1)]:
    x = jnp.asarray(rng.normal(size=(2, size, size + 1, 6)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(kernel, kernel, 1, 6)), jnp.float32)
    pads = [tf_same_padding(size, kernel, stride), tf_same_padding(size + 1, kernel, stride)]
    want = jax.lax.conv_general_dilated(x, w, (stride, stride), pads, feature_group_count=6,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    got = depthwise_shifted(x, w[:, :, 0, :], stride, pads)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_depthwise_implementations_share_parameters_and_results(variables):
  images = _normal(5, (2, 32, 32, 3))
  feats = lambda impl: jit_apply(EfficientNetLite(depthwise_impl=impl))(
      variables, images, return_features=("stage3",))["stage3"]
  np.testing.assert_allclose(feats("shifted"), feats("conv"), rtol=1e-4, atol=1e-4)
  with pytest.raises(ValueError, match="depthwise_impl"):
    EfficientNetLite(depthwise_impl="fft").apply(variables, images)


def test_parameter_count_is_lite0(variables):
  count = sum(x.size for x in jax.tree.leaves(variables["params"]))
  assert count == 4_652_008  # 3.37M backbone + 1280*1000+1000 classifier
  assert set(variables) == {"params", "batch_stats"}


IMAGES = _normal(1, (2, 64, 48, 3))
FEATURES = ("stem", "stage2", "stage3", "stage5", "head", "pooled", "logits")


@pytest.fixture(scope="module")
def outputs(variables):
  """The full model's features and the two headless variants' outputs, from one jitted program:
  XLA merges the three identical backbones, so it compiles about as long as one model (~4
  CPU-s instead of ~3 each)."""
  def run(variables, images):
    backbone = {"params": {k: v for k, v in variables["params"].items() if k != "classifier"},
                "batch_stats": variables["batch_stats"]}
    return (EfficientNetLite().apply(variables, images, return_features=FEATURES),
            EfficientNetLite(include_top=False).apply(backbone, images),
            EfficientNetLite(include_top=False, pooling=None).apply(backbone, images))
  return jax.jit(run)(variables, IMAGES)


def test_output_shapes_with_and_without_top(outputs):
  feats, pooled, feature_map = outputs
  assert feats["logits"].shape == (2, 1000) and feats["logits"].dtype == jnp.float32
  assert pooled.shape == (2, 1280)
  assert feature_map.shape == (2, 2, 2, 1280)
  np.testing.assert_allclose(pooled, feature_map.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(pooled, feats["pooled"], rtol=1e-5, atol=1e-6)


def test_features_dict_shapes_and_early_exit(variables, outputs):
  feats = outputs[0]
  assert {k: v.shape for k, v in feats.items()} == {
      "stem": (2, 32, 24, 32), "stage2": (2, 16, 12, 24), "stage3": (2, 8, 6, 40),
      "stage5": (2, 4, 3, 112), "head": (2, 2, 2, 1280), "pooled": (2, 1280), "logits": (2, 1000)}
  np.testing.assert_allclose(feats["pooled"], feats["head"].mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
  early = jit_apply(EfficientNetLite())(variables, IMAGES, return_features=("stage2",))
  assert list(early) == ["stage2"] and early["stage2"].shape == (2, 16, 12, 24)
  # The early exit computes the same values as the full run up to that stage.
  np.testing.assert_allclose(early["stage2"], feats["stage2"], rtol=1e-5, atol=1e-5)


def test_bad_requests_say_what_is_wrong(variables):
  with pytest.raises(ValueError, match="3 channels"):
    jit_apply(EfficientNetLite())(variables, jnp.ones((1, 32, 32, 1)))
  with pytest.raises(ValueError, match="choose from"):
    jit_apply(EfficientNetLite())(variables, jnp.ones((1, 32, 32, 3)), return_features=("stage9",))
  with pytest.raises(ValueError, match="include_top"):
    jit_apply(EfficientNetLite(include_top=False))(variables, jnp.ones((1, 32, 32, 3)),
                                              return_features=("logits",))


def test_train_mode_updates_batch_stats_and_uses_dropout(variables):
  images = _normal(2, (4, 32, 32, 3))
  apply = jit_apply(EfficientNetLite())
  run = lambda seed: apply(variables, images, train=True, mutable="batch_stats",
                           rngs={"dropout": jax.random.key(seed)})
  (logits_a, state), (logits_b, _) = run(0), run(1)
  before = variables["batch_stats"]["stem_bn"]["mean"]
  after = state["batch_stats"]["stem_bn"]["mean"]
  # The stem conv output by hand, with TF SAME padding (0 before, 1 after at 32/2).
  conv = jax.lax.conv_general_dilated(
      images, variables["params"]["stem_conv"]["conv"]["kernel"], (2, 2), [(0, 1), (0, 1)],
      dimension_numbers=("NHWC", "HWIO", "NHWC"))
  # Momentum 0.99 is the weight of the old average (TF and Flax; PyTorch stores 0.01).
  np.testing.assert_allclose(after, 0.99 * before + 0.01 * conv.mean(axis=(0, 1, 2)),
                             rtol=1e-4, atol=1e-5)
  assert not np.allclose(logits_a, logits_b)  # dropout / drop-connect draw differently


def test_bfloat16_compute_stays_close_to_float32(variables):
  # The float32 program is test_depthwise_implementations_share_parameters_and_results's
  # (same shapes and request): compiled once for the file.
  images = _normal(3, (2, 32, 32, 3))
  request = ("stage3",)
  full = jit_apply(EfficientNetLite())(variables, images, return_features=request)["stage3"]
  half = jit_apply(EfficientNetLite(dtype=jnp.bfloat16))(variables, images,
                                                          return_features=request)["stage3"]
  assert half.dtype == jnp.bfloat16
  rel = np.linalg.norm(np.asarray(half, np.float32) - full) / np.linalg.norm(full)
  assert rel < 0.05


def _as_torch_state_dict(variables):
  """Inverse of the name map: flax variables laid out as EfficientNet-PyTorch keys."""
  flat = flax.traverse_util.flatten_dict(variables)
  state = {}
  for torch_key, ((collection, path), _) in ew.torch_name_map().items():
    value = np.asarray(flat[(collection,) + path])
    if value.ndim == 4:
      value = np.transpose(value, (3, 2, 0, 1))
    elif value.ndim == 2:
      value = value.T
    state[torch_key] = value
  return state


def test_name_map_round_trip_and_errors_on_doctored_state_dict(variables):
  state = _as_torch_state_dict(variables)
  assert len(state) == 296 - 49  # the packaged file also has 49 num_batches_tracked
  state["_bn0.num_batches_tracked"] = np.array(3)  # known bookkeeping key: ignored
  converted = ew.convert_state_dict(state, expected=variables)
  jax.tree.map(np.testing.assert_array_equal, converted, flax.core.unfreeze(variables))

  doctored = dict(state)
  del doctored["_blocks.7._bn1.running_var"]
  doctored["_blocks.16._project_conv.weight"] = np.zeros((8, 8, 1, 1), np.float32)
  with pytest.raises(ew.WeightMismatchError) as err:
    ew.convert_state_dict(doctored)
  assert "missing (1): ['_blocks.7._bn1.running_var']" in str(err.value)
  assert "left over (1): ['_blocks.16._project_conv.weight']" in str(err.value)

  wrong = dict(state)
  wrong["_fc.weight"] = np.zeros((10, 1280), np.float32)
  with pytest.raises(ew.WeightMismatchError, match=r"_fc.weight -> params/classifier/kernel"):
    ew.convert_state_dict(wrong, expected=variables)

  without_top = {k: v for k, v in state.items() if not k.startswith("_fc")}
  backbone = ew.convert_state_dict(without_top, include_top=False)
  assert "classifier" not in backbone["params"]
  with pytest.raises(ew.WeightMismatchError, match="missing"):
    ew.convert_state_dict(without_top, include_top=True)


def test_preprocess_grey_uint8_to_normalised_rgb():
  grey = np.full((2, 28, 28), 255, np.uint8)
  x = ew.preprocess(grey, 32)
  assert x.shape == (2, 32, 32, 3) and x.dtype == jnp.float32
  np.testing.assert_allclose(x, (255 - 127) / 128, rtol=1e-6)
  unit = ew.preprocess(np.zeros((1, 8, 8, 3), np.float32), None, pixel_range=1.0)
  np.testing.assert_allclose(unit, -127 / 128)
  with pytest.raises(ValueError, match="expected images"):
    ew.preprocess(np.zeros((2, 8, 8, 2)))

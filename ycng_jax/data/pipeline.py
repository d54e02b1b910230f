"""The one input pipeline: grain index batches -> gathered numpy -> global jax.Arrays on the mesh.

``Loader`` is deterministic for a seed (grain reshuffles each epoch from it), splits each
global batch across processes, places it on the mesh sharded along ``data`` and keeps a
few batches in flight so the step never waits on input. Its state (``get_state``) is a
small JSON dict: saved with a checkpoint and restored, the next batches are exactly those
an uninterrupted run would have seen.
"""

from __future__ import annotations

import collections
import copy
from typing import Any, Callable, Iterator, Mapping

import grain
import jax
import numpy as np
from jax.sharding import Mesh

from ycng_jax.checks import whole_number
from ycng_jax.errors import UserError
from ycng_jax.train import mesh as mesh_lib

Batch = dict[str, np.ndarray]


class _ArraySource:
  """Gathers whole batches from equal-length numpy arrays by fancy indexing."""

  def __init__(self, arrays: Mapping[str, np.ndarray]):
    lengths = {k: len(v) for k, v in arrays.items()}
    if not arrays or len(set(lengths.values())) != 1:
      raise ValueError(f"source arrays must be non-empty and of equal length; got {lengths}.")
    self.arrays = {k: np.asarray(v) for k, v in arrays.items()}
    self.length = next(iter(lengths.values()))

  def gather(self, indices: np.ndarray) -> Batch:
    return {k: v[indices] for k, v in self.arrays.items()}


class _RecordSource:
  """Gathers from a random-access source of dict records (e.g. ``tfds.data_source``)."""

  def __init__(self, source):
    self.source, self.length = source, len(source)

  def gather(self, indices: np.ndarray) -> Batch:
    records = (self.source.__getitems__(list(indices)) if hasattr(self.source, "__getitems__")
               else [self.source[int(i)] for i in indices])
    out = {}
    for key in records[0]:
      values = [r[key] for r in records]
      if isinstance(values[0], (bytes, str)):
        out[key] = np.asarray([v.decode() if isinstance(v, bytes) else v for v in values], object)
      else:
        out[key] = np.stack([np.asarray(v) for v in values])
    return out


class Loader:
  """Iterator of global, mesh-sharded batches with a saveable position.

  Args:
    source: dict of equal-length numpy arrays, or a random-access source of dict records.
    global_batch_size: examples per step over all processes; divisible by the device count.
    mesh: the device mesh (all devices by default); batches are split along its ``data`` axis.
    shuffle, seed: seeded shuffling, a new order each epoch.
    num_epochs: ``None`` repeats forever (training); 1 for evaluation.
    drop_remainder: drop the short final batch of an epoch; if False it is padded and every
      batch carries ``mask`` (1.0 real, 0.0 padding), so evaluation sees each example once.
      A source smaller than one batch then gives one batch of its examples, padded only to a
      multiple of the devices (``global_batch_size`` shrinks to that).
    transform: ``fn(batch) -> batch`` on host numpy arrays of the *global* batch (e.g.
      tokenization), run in grain's threads; applied before the split across processes, so
      every process gets the same shapes (length buckets agree).
    prefetch: batches placed on the devices ahead of the one being consumed.
  """

  def __init__(self, source, *, global_batch_size: int, mesh: Mesh | None = None,
               shuffle: bool = True, seed: int = 0, num_epochs: int | None = None,
               drop_remainder: bool = True, transform: Callable[[Batch], Batch] | None = None,
               prefetch: int = 2, num_threads: int = 2):
    self._source = _ArraySource(source) if isinstance(source, Mapping) else _RecordSource(source)
    self.mesh = mesh if mesh is not None else mesh_lib.make_mesh()
    self.global_batch_size = whole_number("global_batch_size", global_batch_size, 1)
    n_devices, n_processes = self.mesh.devices.size, jax.process_count()
    if self.global_batch_size % n_devices:
      raise UserError(
          f"global_batch_size={global_batch_size} must be a positive multiple of the number of "
          f"devices in the mesh ({n_devices}); e.g. use {(global_batch_size // n_devices + 1) * n_devices}.")
    if drop_remainder and self._source.length < self.global_batch_size:
      raise UserError(f"The source has {self._source.length} examples, fewer than one batch of "
                       f"{self.global_batch_size} with drop_remainder=True: lower the batch size.")
    self.num_examples = self._source.length
    if not drop_remainder and self.num_examples < self.global_batch_size:
      # One batch holds the whole split: pad it only up to the devices, not to the batch size
      # (300 validation images at an eval batch of 1000 would compute 3.3 times the work).
      self.global_batch_size = max(1, -(-self.num_examples // n_devices)) * n_devices
    self.local_batch_size = self.global_batch_size // n_processes
    self.steps_per_epoch = (self.num_examples // self.global_batch_size if drop_remainder
                            else -(-self.num_examples // self.global_batch_size))
    self.sharding = mesh_lib.data_sharding(self.mesh)
    self._transform, self._prefetch = transform, max(0, int(prefetch))

    indices = grain.MapDataset.range(self.num_examples)
    if shuffle:
      indices = indices.shuffle(seed=seed)
    indices = indices.batch(self.global_batch_size, drop_remainder=drop_remainder)
    if num_epochs != 1:
      indices = indices.repeat(num_epochs)
    self._dataset = indices.map(self._host_batch).to_iter_dataset(
        grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=max(2, 2 * prefetch)))
    self._iterator = iter(self._dataset)
    self._in_flight: collections.deque = collections.deque()

  def _host_batch(self, indices: np.ndarray) -> Batch:
    """Gather and transform one global batch on the host, then keep this process's part."""
    indices = np.asarray(indices, np.int64)
    n_real = len(indices)
    padded = np.concatenate([indices, np.zeros(self.global_batch_size - n_real, np.int64)])
    batch = self._source.gather(padded)
    batch["mask"] = (np.arange(self.global_batch_size) < n_real).astype(np.float32)
    if self._transform is not None:
      batch = self._transform(batch)
    start = jax.process_index() * self.local_batch_size
    return {k: v[start:start + self.local_batch_size] for k, v in batch.items()}

  def _to_device(self, batch: Batch) -> dict[str, jax.Array]:
    out = {}
    for key, value in batch.items():
      if value.dtype == object or value.dtype.kind in "SU":
        raise TypeError(f"Batch feature '{key}' holds strings; give the Loader a transform that "
                        "turns it into numbers (e.g. ycng_jax.data.text.Tokenize) or drop it.")
      out[key] = jax.make_array_from_process_local_data(self.sharding, value)
    return out

  def _fill(self):
    while len(self._in_flight) <= self._prefetch:
      state = self._iterator.get_state()
      try:
        host_batch = next(self._iterator)
      except StopIteration:
        self._in_flight.append((state, None))
        return
      self._in_flight.append((state, self._to_device(host_batch)))

  def __iter__(self) -> Iterator[dict[str, jax.Array]]:
    return self

  def __next__(self) -> dict[str, jax.Array]:
    if not self._in_flight or self._in_flight[-1][1] is not None:
      self._fill()
    state, batch = self._in_flight[0]
    if batch is None:
      raise StopIteration
    self._in_flight.popleft()
    self._fill()
    return batch

  def get_state(self) -> dict[str, Any]:
    """Position of the next batch ``next()`` returns (prefetched batches are not counted)."""
    state = self._in_flight[0][0] if self._in_flight else self._iterator.get_state()
    return copy.deepcopy(state)

  def set_state(self, state: Mapping[str, Any]) -> None:
    self._in_flight.clear()
    self._iterator.set_state(copy.deepcopy(dict(state)))

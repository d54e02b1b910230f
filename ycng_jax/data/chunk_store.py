"""Row chunks of a large float32 matrix on disk: resumable, verifiable, memory-bounded.

Embedding a corpus or extracting image features at scale writes one ``.npy`` per chunk of
rows and a JSON manifest (with each chunk's SHA-256). Every file goes through a temporary
file and a rename, so a killed run never leaves half a chunk: run again and finished chunks
are verified and skipped, a damaged one is computed again. A fingerprint of the run (model,
data, chunk size) guards against mixing chunks of different runs in one folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import tempfile
from typing import Any, Callable, Iterator

import numpy as np
from tqdm.auto import tqdm

MANIFEST = "manifest.json"
CONSOLIDATED = "features.npy"
FORMAT_VERSION = 1


def atomic_write(path: pathlib.Path, write: Callable[[Any], None], suffix: str) -> None:
  """Writes through a temporary file and a rename: a kill never leaves half a file."""
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp_", suffix=suffix)
  try:
    with os.fdopen(fd, "wb") as f:
      write(f)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def sha256(array: np.ndarray) -> str:
  return hashlib.sha256(np.ascontiguousarray(array).data).hexdigest()


def read_manifest(directory: str | os.PathLike) -> dict[str, Any] | None:
  path = pathlib.Path(directory) / MANIFEST
  return json.loads(path.read_text()) if path.is_file() else None


class ChunkStore:
  """One folder of row chunks of an (N, dim) float32 matrix, written in any order."""

  def __init__(self, directory: str | os.PathLike, fingerprint: dict[str, Any]):
    self.directory = pathlib.Path(directory)
    self.directory.mkdir(parents=True, exist_ok=True)
    fingerprint = {**fingerprint, "version": FORMAT_VERSION}
    manifest = read_manifest(self.directory)
    if manifest is not None and manifest["fingerprint"] != fingerprint:
      raise ValueError(f"{self.directory} holds the output of another run "
                       f"({manifest['fingerprint']}), not {fingerprint}: use another directory "
                       "or delete it.")
    self.manifest = manifest or {"fingerprint": fingerprint, "chunks": [], "complete": False}
    self._records = {r["index"]: r for r in self.manifest["chunks"]}

  def record(self, index: int) -> dict[str, Any] | None:
    return self._records.get(index)

  def is_valid(self, index: int, dim: int | None = None, check_hash: bool = True) -> bool:
    """Whether chunk ``index`` is on disk, whole, with the rows, dim and hash recorded."""
    record = self._records.get(index)
    if record is None:
      return False
    try:
      array = np.load(self.directory / record["file"], mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
      return False
    dim = record.get("dim", dim)
    if array.dtype != np.float32 or array.shape != (record["rows"], dim):
      return False
    return not check_hash or sha256(array) == record["sha256"]

  def write(self, index: int, array: np.ndarray) -> dict[str, Any]:
    array = np.ascontiguousarray(array, np.float32)
    if array.ndim != 2:
      raise ValueError(f"a chunk must be (rows, dim), got shape {array.shape}")
    record = {"index": index, "file": f"chunk_{index:06d}.npy", "rows": int(array.shape[0]),
              "dim": int(array.shape[1]), "sha256": sha256(array)}
    atomic_write(self.directory / record["file"], lambda f: np.save(f, array), ".npy")
    (self.directory / CONSOLIDATED).unlink(missing_ok=True)  # stale once any chunk changes
    self._records[index] = record
    self.manifest["complete"] = False
    self._save()
    return record

  def finish(self, num_chunks: int) -> dict[str, Any]:
    """Marks chunks 0..num_chunks-1 as the whole matrix; drops any chunk beyond them."""
    for stale in [i for i in self._records if i >= num_chunks]:
      (self.directory / self._records.pop(stale)["file"]).unlink(missing_ok=True)
    missing = [i for i in range(num_chunks) if i not in self._records]
    if missing:
      raise ValueError(f"cannot finish {self.directory}: chunks {missing[:10]} were never written.")
    records = [self._records[i] for i in range(num_chunks)]
    self.manifest.update(rows=sum(r["rows"] for r in records),
                         dim=records[0]["dim"] if records else 0, complete=True)
    self._save()
    return self.manifest

  def _save(self) -> None:
    self.manifest["chunks"] = sorted(self._records.values(), key=lambda r: r["index"])
    text = json.dumps(self.manifest, indent=1, sort_keys=True).encode()
    atomic_write(self.directory / MANIFEST, lambda f: f.write(text), ".json")


def build(directory: str | os.PathLike, fingerprint: dict[str, Any], total: int, chunk_size: int,
          compute: Callable[[int, int], np.ndarray], *, progress: bool = True,
          desc: str = "chunks", verify_hash: bool = True) -> dict[str, Any]:
  """Fills ``directory`` with ``compute(start, stop)`` for every chunk of ``range(total)``.

  Resumes: chunks already written (and verified) are skipped. Memory holds one chunk.
  """
  if chunk_size <= 0:
    raise ValueError(f"chunk_size must be positive, got {chunk_size}")
  store = ChunkStore(directory, {**fingerprint, "total": int(total), "chunk_size": int(chunk_size)})
  num_chunks = -(-total // chunk_size)
  with tqdm(total=total, desc=desc, disable=not progress) as bar:
    for index in range(num_chunks):
      start, stop = index * chunk_size, min(total, (index + 1) * chunk_size)
      if not store.is_valid(index, check_hash=verify_hash):
        rows = compute(start, stop)
        if len(rows) != stop - start:
          raise ValueError(f"compute({start}, {stop}) gave {len(rows)} rows, not {stop - start}")
        store.write(index, rows)
      bar.update(stop - start)
  return store.finish(num_chunks)


def _finished(directory: pathlib.Path) -> dict[str, Any]:
  manifest = read_manifest(directory)
  if manifest is None or not manifest.get("complete"):
    raise FileNotFoundError(f"no finished output in {directory}: run the command that writes it "
                            "again (it resumes where it stopped).")
  return manifest


def iter_chunks(directory: str | os.PathLike) -> Iterator[np.ndarray]:
  """The chunks in order, each memory-mapped (shape-checked, not hashed)."""
  directory = pathlib.Path(directory)
  manifest = _finished(directory)
  store = ChunkStore(directory, manifest["fingerprint"])
  for record in manifest["chunks"]:
    if not store.is_valid(record["index"], manifest["dim"], check_hash=False):
      raise ValueError(f"{directory / record['file']} is damaged (not {record['rows']} x "
                       f"{manifest['dim']} float32): run the same command again to recompute it.")
    yield np.load(directory / record["file"], mmap_mode="r")


def load(directory: str | os.PathLike) -> np.ndarray:
  """All rows as one read-only memory-mapped (N, dim) float32 array.

  The chunks are joined once into ``features.npy`` (chunk by chunk, so memory stays
  bounded); later calls map that file directly.
  """
  directory = pathlib.Path(directory)
  manifest = _finished(directory)
  path, shape = directory / CONSOLIDATED, (manifest["rows"], manifest["dim"])
  if path.is_file():
    try:
      array = np.load(path, mmap_mode="r")
      if array.shape == shape and array.dtype == np.float32:
        return array
    except (OSError, ValueError, EOFError):
      pass

  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp_", suffix=".npy")
  os.close(fd)
  try:
    joined = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
    offset = 0
    for chunk in iter_chunks(directory):
      joined[offset:offset + len(chunk)] = chunk
      offset += len(chunk)
    joined.flush()
    del joined
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  return np.load(path, mmap_mode="r")

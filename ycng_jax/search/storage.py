"""The on-disk container of a saved :class:`~ycng_jax.search.Index`.

Layout (little endian)::

  8 bytes   magic  b"YCNGIDX\\0"
  4 bytes   uint32 format version
  4 bytes   uint32 header length H
  H bytes   UTF-8 JSON header: index settings, payload length and CRC-32
  ...       payload (backend specific: raw float32 rows or a faiss index)

The magic tells a foreign file apart, the version lets a later release read
(or refuse with a clear message) an older file, and the payload length and
checksum turn a truncated or damaged file into an error instead of a silently
wrong index.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from typing import Any
from ycng_jax.errors import UserError, UserFileError

MAGIC = b"YCNGIDX\x00"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sII")


class IndexFormatError(ValueError):
  """A file is not a (complete, readable) saved ycng_jax index."""


def write_container(path: str | os.PathLike, header: dict[str, Any], payload: bytes) -> None:
  """Writes ``header`` and ``payload`` atomically (temp file, then rename).

  Raises:
    ValueError: ``path`` is a directory.
    FileNotFoundError: the directory ``path`` names does not exist.
  """
  header = dict(header, payload_nbytes=len(payload), payload_crc32=zlib.crc32(payload))
  header_bytes = json.dumps(header, sort_keys=True).encode("utf-8")
  path = os.fspath(path)
  if os.path.isdir(path):
    raise UserError(f"cannot save the index to {path!r}: it is a directory; give a file path, "
                     f"e.g. {os.path.join(path, 'index.ycng')!r}.")
  folder = os.path.dirname(path) or "."
  if not os.path.isdir(folder):
    raise UserFileError(f"cannot save the index to {path!r}: the directory {folder!r} does not "
                            "exist; create it first.")
  tmp_path = f"{path}.tmp-{os.getpid()}"
  try:
    with open(tmp_path, "wb") as f:
      f.write(_PREFIX.pack(MAGIC, FORMAT_VERSION, len(header_bytes)))
      f.write(header_bytes)
      f.write(payload)
    os.replace(tmp_path, path)
  except BaseException:  # a full disk, a kill: no half-written file stays next to the index
    if os.path.exists(tmp_path):
      os.remove(tmp_path)
    raise


def read_container(path: str | os.PathLike) -> tuple[dict[str, Any], bytes]:
  """Reads and checks a container; returns ``(header, payload)``.

  Raises:
    FileNotFoundError: no such file.
    IndexFormatError: not our format, a newer version, truncated or corrupted.
  """
  path = os.fspath(path)
  with open(path, "rb") as f:
    data = f.read()
  if len(data) < _PREFIX.size or data[:len(MAGIC)] != MAGIC:
    raise IndexFormatError(
        f"{path!r} is not a ycng_jax search index (missing the {MAGIC!r} magic); "
        "load only files written by ycng_jax.search.Index.save.")
  _, version, header_nbytes = _PREFIX.unpack_from(data)
  if version > FORMAT_VERSION:
    raise IndexFormatError(
        f"{path!r} uses index format version {version}, but this ycng_jax reads up to "
        f"version {FORMAT_VERSION}; upgrade ycng_jax to load it.")
  header_end = _PREFIX.size + header_nbytes
  if len(data) < header_end:
    raise IndexFormatError(
        f"{path!r} is truncated: its header needs {header_nbytes} bytes but the file has "
        f"only {len(data) - _PREFIX.size} after the prefix; save the index again.")
  try:
    header = json.loads(data[_PREFIX.size:header_end].decode("utf-8"))
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise IndexFormatError(f"{path!r} has an unreadable header ({e}); the file is damaged.") from e
  payload = data[header_end:]
  expected = header.get("payload_nbytes")
  if len(payload) != expected:
    raise IndexFormatError(
        f"{path!r} is truncated or padded: the header announces {expected} payload bytes but "
        f"{len(payload)} follow; save the index again.")
  if zlib.crc32(payload) != header.get("payload_crc32"):
    raise IndexFormatError(f"{path!r} is corrupted: the payload checksum does not match.")
  return header, payload

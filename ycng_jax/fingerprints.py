"""Records of what a result depends on, kept with what was saved so resumed work is never mixed.

DEC's phase checkpoints, the chunk store and the trainers' backups each keep the settings
(and a digest of the data) their output came from. Work resumes only when a new run's record
matches; otherwise the error names what changed (``differences``).
"""

from __future__ import annotations

import json
import zlib
from typing import Any, Mapping

import numpy as np


def fingerprint(settings: dict[str, Any], *arrays: Any) -> str:
  """A short, process-independent digest of JSON-able ``settings`` and numpy-able arrays."""
  digest = zlib.crc32(json.dumps(settings, sort_keys=True, default=str).encode())
  for array in arrays:
    array = np.ascontiguousarray(array)
    digest = zlib.crc32(f"{array.dtype}{array.shape}".encode(), digest)
    digest = zlib.crc32(memoryview(array).cast("B"), digest)
  return f"{digest:08x}"


def flatten(settings: Mapping[str, Any]) -> dict[str, Any]:
  """Nested mappings as one level of dotted keys, with values as JSON reads them back.

  A record compared after a round trip through a JSON file must compare equal to the
  record it was made from: tuples become lists, other objects their ``str``.
  """
  out: dict[str, Any] = {}

  def walk(node: Mapping[str, Any], prefix: str):
    for key, value in node.items():
      if isinstance(value, Mapping) and value:
        walk(value, f"{prefix}{key}.")
      else:
        out[f"{prefix}{key}"] = value

  walk(json.loads(json.dumps(dict(settings), default=str)), "")
  return dict(sorted(out.items()))


def differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
  """``key: saved -> current`` for each key of two ``flatten``ed records that differs."""
  absent = object()
  lines = []
  for key in sorted(set(saved) | set(current)):
    old, new = saved.get(key, absent), current.get(key, absent)
    if old != new:
      show = lambda v: "(absent)" if v is absent else json.dumps(v)
      lines.append(f"{key}: {show(old)} -> {show(new)}")
  return lines

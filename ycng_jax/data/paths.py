"""Cache and data directories (one place, overridable by environment)."""

from __future__ import annotations

import os
import pathlib


def cache_dir() -> pathlib.Path:
  """Root of everything ycng-jax writes for itself: `$YCNG_JAX_CACHE` or ~/.cache/ycng_jax."""
  return pathlib.Path(os.environ.get("YCNG_JAX_CACHE", "~/.cache/ycng_jax")).expanduser()


def data_dir(override: str | os.PathLike | None = None) -> pathlib.Path:
  """Where prepared TFDS datasets live: the argument, `$YCNG_JAX_DATA_DIR`, or <cache>/datasets."""
  if override:
    return pathlib.Path(override).expanduser()
  env = os.environ.get("YCNG_JAX_DATA_DIR")
  return pathlib.Path(env).expanduser() if env else cache_dir() / "datasets"


def raw_dir() -> pathlib.Path:
  """Where raw sources unpacked by hand (npm tarballs, ...) are looked for."""
  return cache_dir() / "raw"

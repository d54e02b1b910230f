"""Cache and data directories (one place, overridable by environment)."""

from __future__ import annotations

import os
import pathlib

from ycng_jax.errors import UserFileError


def cache_dir() -> pathlib.Path:
  """Root of everything ycng-jax writes for itself: `$YCNG_JAX_CACHE` or ~/.cache/ycng_jax."""
  return pathlib.Path(os.environ.get("YCNG_JAX_CACHE", "~/.cache/ycng_jax")).expanduser()


def data_dir(override: str | os.PathLike | None = None) -> pathlib.Path:
  """Where prepared TFDS datasets live: the argument, `$YCNG_JAX_DATA_DIR`, or <cache>/datasets."""
  env = os.environ.get("YCNG_JAX_DATA_DIR")
  if override:
    path, given = pathlib.Path(override).expanduser(), "--data-dir"
  elif env:
    path, given = pathlib.Path(env).expanduser(), "$YCNG_JAX_DATA_DIR"
  else:
    path, given = cache_dir() / "datasets", "the cache's datasets folder"
  if path.exists() and not path.is_dir():
    raise UserFileError(f"the data folder {path} ({given}) is a file, not a folder; give a folder "
                        "(it is created if missing)")
  return path


def raw_dir() -> pathlib.Path:
  """Where raw sources unpacked by hand (npm tarballs, ...) are looked for."""
  return cache_dir() / "raw"

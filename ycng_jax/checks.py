"""Checks of arguments at the public boundaries, and seeds as ``jax.random`` keys.

A wrong type or range is an error at the boundary that names the argument, what it must be
and what it got, instead of a comparison error or a failed trace deep inside a compiled
program (a float ``n_clusters`` would first fail as a shape). The errors are ``UserError``s
(``UserTypeError`` for a wrong type: also a TypeError), so ``ycng`` prints them as one line.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from ycng_jax.errors import UserError, UserTypeError


def whole_number(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
  """``value`` as an int, if it is an integer (not a bool) in ``[minimum, maximum]``."""
  bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise UserTypeError(f"{name} must be an integer {bounds}, got {value!r} "
                        f"({type(value).__name__}).")
  if value < minimum or (maximum is not None and value > maximum):
    raise UserError(f"{name} must be an integer {bounds}, got {value}.")
  return int(value)


def real_number(name: str, value: Any, low: float, high: float = math.inf, *,
                low_open: bool = False, high_open: bool = True) -> float:
  """``value`` as a float, if it is a real number (not a bool) in the interval from ``low`` to
  ``high``, each end included unless ``*_open``; NaN is never in range."""
  interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    raise UserTypeError(f"{name} must be a number in {interval}, got {value!r} "
                        f"({type(value).__name__}).")
  value = float(value)
  above = value > low if low_open else value >= low
  below = value < high if high_open else value <= high
  if not (above and below):
    raise UserError(f"{name} must be a number in {interval}, got {value}.")
  return value


def check_mesh(mesh: Any) -> Mesh | None:
  if mesh is not None and not isinstance(mesh, Mesh):
    raise UserTypeError(f"mesh must be a jax.sharding.Mesh or None, got "
                        f"{type(mesh).__name__}; make one with ycng_jax.train.mesh.make_mesh().")
  return mesh


def check_seed(seed: Any) -> int:
  """``seed`` as an int, if it is one of jax.random.key's 64-bit seeds (a signed 64-bit integer)."""
  what = "seed must be an integer in [-2**63, 2**63)"
  if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
    raise UserTypeError(f"{what}, got {seed!r} ({type(seed).__name__}).")
  if not -2**63 <= seed < 2**63:
    raise UserError(f"{what}, got {seed}.")
  return int(seed)


def seed_key(seed: Any) -> jax.Array:
  """``jax.random.key(seed)`` for any 64-bit ``seed``, as jax gives it with ``jax_enable_x64``.

  Without x64 (the default) ``jax.random.key`` keeps only a seed's low 32 bits, so ``2**32``
  would give the key of 0; a threefry key is the seed's two 32-bit words, high word first, so
  seeds below ``2**32`` keep the keys they always had.
  """
  seed = check_seed(seed)
  words = np.array([(seed >> 32) & 0xFFFFFFFF, seed & 0xFFFFFFFF], np.uint32)
  return jax.random.wrap_key_data(words, impl="threefry2x32")

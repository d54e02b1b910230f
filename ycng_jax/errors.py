"""Errors that a user's input caused, and the checks that raise them at the public boundaries.

A ``UserError`` says what was wrong and what to do instead; the ``ycng`` command prints it as
one ``ycng: error: ...`` line (exit status 2) instead of a traceback, which stays for bugs.
Checks run where a value enters (a config, an argument), so a bad value fails before any
work is done, naming the setting, the value it got and the values it accepts.
"""

from __future__ import annotations

import math
import numbers
from typing import Any


class UserError(ValueError):
  """Bad input: a wrong config value, argument or path. The message says how to fix it."""


class UserTypeError(UserError, TypeError):
  """A value of the wrong kind (a float where a whole number is needed)."""


class UserFileError(UserError, FileNotFoundError):
  """A path that does not hold what it should (a missing index folder, a file for a folder)."""


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
  """``value`` as a float, if it is a real number (not a bool) between ``low`` and ``high``,
  each end included unless ``*_open``; NaN is never in range."""
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

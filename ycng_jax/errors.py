"""Errors that a user's input caused.

A ``UserError`` says what was wrong and what to do instead; the ``ycng`` command prints it as
one ``ycng: error: ...`` line (exit status 2) instead of a traceback, which stays for bugs.
``ycng_jax.checks`` raises them where a value enters (a config, an argument).
"""

from __future__ import annotations


class UserError(ValueError):
  """Bad input: a wrong config value, argument or path. The message says how to fix it."""


class UserTypeError(UserError, TypeError):
  """A value of the wrong kind (a float where a whole number is needed)."""


class UserFileError(UserError, FileNotFoundError):
  """A path that does not hold what it should (a missing index folder, a file for a folder)."""

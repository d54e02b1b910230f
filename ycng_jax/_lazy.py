"""Package names imported on first use (PEP 562) that ``dir()`` and tab completion still list."""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any],
                                                                 Callable[[], list[str]]]:
  """``(__getattr__, __dir__)`` for ``package``, whose ``exports`` map a name to its submodule.

  Use: ``__getattr__, __dir__ = lazy_exports(__name__, {"Trainer": "trainer", ...})``.
  Without ``__dir__`` a lazy name is invisible until it has been used once.
  """

  def __getattr__(name: str) -> Any:
    if name in exports:
      return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
    raise AttributeError(f"module {package!r} has no attribute {name!r}")

  def __dir__() -> list[str]:
    return sorted(set(vars(sys.modules[package])) | set(exports))

  return __getattr__, __dir__

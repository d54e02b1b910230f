"""Packages that import their names lazily (PEP 562) still list them for dir() and completion."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("package, heavy", [("ycng_jax.train", "ycng_jax.train.trainer"),
                                            ("ycng_jax.text", "jax"), ("ycng_jax.tuning", "optuna")])
def test_dir_lists_lazy_names_without_importing_them(package, heavy):
  # A fresh interpreter: here other tests have imported the submodules already.
  code = (f"import sys, {package} as p; names = dir(p); "
          "assert set(p.__all__) <= set(names), sorted(set(p.__all__) - set(names)); "
          f"assert {heavy!r} not in sys.modules; print('ok')")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
  assert result.stdout.strip() == "ok", result.stderr


def test_lazy_names_resolve_and_unknown_names_fail():
  import ycng_jax.train as train
  from ycng_jax.train.trainer import Trainer
  assert train.Trainer is Trainer
  # dir() keeps listing what the module really holds, such as an imported submodule.
  assert {"Trainer", "EarlyStopping", "trainer", "__doc__"} <= set(dir(train))
  with pytest.raises(AttributeError, match="has no attribute 'Trainr'"):
    train.Trainr  # pylint: disable=pointless-statement

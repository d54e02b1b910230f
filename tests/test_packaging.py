"""A wheel, not only an editable install, carries the experiment configs: `ycng list` lists them."""

import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

REPO = pathlib.Path(__file__).resolve().parents[1]


def _pip(*args, cwd):
  result = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=300, cwd=cwd)
  assert result.returncode == 0, result.stdout + result.stderr


def test_wheel_ships_the_experiments(tmp_path):
  # Build from a copy: setuptools writes build/ and *.egg-info beside the sources it builds.
  src = tmp_path / "src"
  for folder in ("ycng_jax", "experiments"):
    shutil.copytree(REPO / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
  for name in ("setup.py", "setup.cfg", "pyproject.toml", "README.md"):
    shutil.copy(REPO / name, src / name)
  _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp_path / "dist"),
       str(src), cwd=tmp_path)
  [wheel] = (tmp_path / "dist").glob("ycng_jax-*.whl")
  shipped = set(zipfile.ZipFile(wheel).namelist())
  for config in (REPO / "experiments").rglob("*.py"):
    assert f"ycng_jax_experiments/{config.relative_to(REPO / 'experiments').as_posix()}" in shipped

  site = tmp_path / "site"
  _pip("install", "--no-deps", "--no-index", "--target", str(site), str(wheel), cwd=tmp_path)
  env = {k: v for k, v in os.environ.items() if k != "YCNG_EXPERIMENTS_DIR"}
  env["PYTHONPATH"] = str(site)  # ahead of the editable install of the checkout
  code = ("import sys, ycng_jax; from ycng_jax import cli, experiments; print(ycng_jax.__file__); "
          "print(experiments.experiments_dir()); sys.exit(cli.main(['list']))")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env=env)
  assert result.returncode == 0, result.stderr
  module_file, configs_dir, *listing = result.stdout.splitlines()
  assert module_file.startswith(str(site)) and configs_dir == str(site / "ycng_jax_experiments")
  names = {line.split()[0] for line in listing}
  assert {"quickstart/mlp_digits", "topic1/sequential_mlp", "topic5/triplet_mnist"} <= names

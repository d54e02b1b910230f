"""fit's arguments and inputs: clear errors before a step is compiled."""

import jax.numpy as jnp
import numpy as np
import pytest

import ycng_jax.data as ydata
from ycng_jax.data.pipeline import Loader
from ycng_jax.errors import UserError
from ycng_jax.models.mlp import MLP
from ycng_jax.train.losses import make_classification_loss
from ycng_jax.train.optim import make_optimizer
from ycng_jax.train.trainer import Trainer


@pytest.fixture(scope="module")
def images():
  return ydata.load("digits", "train")["image"][:128]


def _trainer():
  scale = lambda batch: {**batch, "image": batch["image"].astype(jnp.float32) / 255.0}
  return Trainer(MLP(hidden=(8,), num_classes=10), make_classification_loss(),
                 make_optimizer("adam", 1e-3), preprocess=scale)


@pytest.mark.parametrize("epochs", [0, -2])
def test_fit_needs_at_least_one_epoch(images, epochs):
  loader = Loader({"image": images, "label": np.zeros(len(images), np.int32)}, global_batch_size=64)
  with pytest.raises(UserError, match=rf"^epochs must be an integer >= 1, got {epochs}\.$"):
    _trainer().fit(loader, epochs=epochs, verbose=0)


def test_fit_on_batches_without_labels_names_their_keys(images):
  loader = Loader({"image": images}, global_batch_size=64)
  with pytest.raises(UserError, match=r"^the loss reads the labels from batch\['label'\], but the "
                     r"batches have keys \['image', 'mask'\]; add 'label' to the data, or name"):
    _trainer().fit(loader, epochs=1, verbose=0)

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


def test_variable_length_keys_accept_other_lengths_but_not_other_ranks():
  import flax.linen as nn

  class MeanEmbedding(nn.Module):  # token ids (batch, length) -> 3 logits, any length
    @nn.compact
    def __call__(self, ids, train=False):
      return nn.Dense(3)(nn.Embed(10, 4)(ids).mean(1))

  ids = lambda length: np.ones((8, length), np.int32)
  batch = lambda x: {"ids": x, "label": np.zeros(8, np.int32), "mask": np.ones(8, np.float32)}
  fixed = Trainer(MeanEmbedding(), make_classification_loss(), make_optimizer("adam", 1e-3),
                  input_keys=("ids",))
  fixed.init(batch(ids(16)))
  with pytest.raises(ValueError, match=r"'ids': expected per-example shape \(16,\)"):
    fixed.check_batch(batch(ids(32)))
  bucketed = Trainer(MeanEmbedding(), make_classification_loss(), make_optimizer("adam", 1e-3),
                     input_keys=("ids",), variable_length_keys=("ids",))
  bucketed.init(batch(ids(16)))
  bucketed.check_batch(batch(ids(32)))
  with pytest.raises(ValueError, match=r"'ids': expected 1 axes per example, dtype int32"):
    bucketed.check_batch(batch(np.ones((8, 2, 16), np.int32)))

"""Loss construction checks its arguments."""

import pytest

from ycng_jax.errors import UserError
from ycng_jax.train.losses import make_classification_loss


def test_label_smoothing_must_be_a_fraction():
  with pytest.raises(UserError, match=r"^label_smoothing must be a number in \[0\.0, 1\.0\], got "
                     r"2\.0\.$"):
    make_classification_loss(label_smoothing=2.0)

"""TFDS's progress bars and absl's log lines held back while we prepare or look up a dataset.

Preparing one of our offline datasets, TFDS nests a bar per split and per shuffle and absl
warns about the folder it is about to write; we show one line and one bar of our own instead.
Both switches are global, so they are put back as they were (a notebook keeps its settings).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import tensorflow_datasets as tfds
from absl import logging as absl_logging
from tensorflow_datasets.core.utils import tqdm_utils


@contextlib.contextmanager
def tfds_quiet() -> Iterator[None]:
  """TFDS progress bars off and absl logging at ERROR inside the block; restored on exit."""
  # TFDS has a setter for its bars (display_progress_bar) but no getter: its flag is the record.
  bars_were_on = getattr(tqdm_utils, "_active", True)
  verbosity = absl_logging.get_verbosity()
  tfds.disable_progress_bar()
  absl_logging.set_verbosity(absl_logging.ERROR)
  try:
    yield
  finally:
    tfds.display_progress_bar(bars_were_on)
    absl_logging.set_verbosity(verbosity)

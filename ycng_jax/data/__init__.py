"""Offline datasets (TFDS builders over installed packages) and the sharded input pipeline."""

from ycng_jax.data.registry import builder, data_source, info, label_names, list_datasets, load
from ycng_jax.data.sources import MissingSourceError

__all__ = ["builder", "data_source", "info", "label_names", "list_datasets", "load",
           "MissingSourceError"]

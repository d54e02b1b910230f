"""Shardings of the train state: replicated, or FSDP-style split along the ``data`` axis.

The FSDP rule depends only on a leaf's shape, so a parameter and its optimizer slots
(Adam's mu and nu) get the same sharding and the update needs no communication beyond
the all-gathers XLA inserts for the forward pass.
"""

from __future__ import annotations

from typing import Any

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ycng_jax.train.mesh import DATA_AXIS

PyTree = Any
PARAM_SHARDINGS = ("replicated", "fsdp")


def fsdp_spec(shape: tuple[int, ...], num_shards: int, min_size: int = 2 ** 10) -> P:
  """Split the largest dimension divisible by ``num_shards``; small leaves stay replicated."""
  size = 1
  for d in shape:
    size *= d
  if num_shards == 1 or size < min_size:
    return P()
  for axis in sorted(range(len(shape)), key=lambda a: -shape[a]):
    if shape[axis] % num_shards == 0:
      spec = [None] * len(shape)
      spec[axis] = DATA_AXIS
      return P(*spec)
  return P()


def state_shardings(abstract_state: PyTree, mesh: Mesh, mode: str = "replicated") -> PyTree:
  """A NamedSharding for every leaf of ``abstract_state`` (from ``jax.eval_shape``)."""
  if mode not in PARAM_SHARDINGS:
    raise ValueError(f"param_sharding={mode!r}; choose one of {PARAM_SHARDINGS}")
  num_shards = mesh.shape[DATA_AXIS]

  def leaf_sharding(x):
    if mode == "replicated" or not hasattr(x, "shape"):
      return NamedSharding(mesh, P())
    return NamedSharding(mesh, fsdp_spec(tuple(x.shape), num_shards))

  return jax.tree.map(leaf_sharding, abstract_state)

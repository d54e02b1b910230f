"""Random Flax variables drawn by numpy, for tests that need a model's values, not its init."""

import jax
import numpy as np


def numpy_variables(model, *inputs, seed: int = 0, scale: float = 0.1):
  """The tree ``model.init(key, *inputs)`` returns, drawn by numpy: Flax's eager init compiles
  a sampler per parameter shape (~0.3 CPU-s each, ~2.3 for a conv kernel's rank-4 shape:
  scripts/bench/threefry_compile.py). LayerNorm/BatchNorm scales are 1 + noise, BatchNorm
  variances positive."""
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    noise = rng.standard_normal(leaf.shape).astype(leaf.dtype) * scale
    name = path[-1].key
    return 1 + np.abs(noise) if name == "var" else 1 + noise if name == "scale" else noise

  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), *inputs)
  return jax.tree_util.tree_map_with_path(draw, shapes)

"""XLA:CPU compile time of random draws: jax's default (partitionable) threefry vs the classic one.

  python scripts/bench/threefry_compile.py [--quick] [--json PATH]

For each case it compiles the same jitted function twice, with ``jax_threefry_partitionable``
True (jax 0.10's default) and False, and prints the CPU seconds of each compile and their ratio
(above 1: the classic threefry compiles faster). The cases: ``jax.random.bits`` of one 1-D and
one rank-4 shape of the same size (a conv kernel's), the Flax init of the test suite's small
CNN, and its training forward pass with dropout (``flax.linen.Dropout`` draws a uniform per
activation). Compiles only; nothing runs. The persistent compilation cache is off, and every
compile traces a new function, so nothing is reused. Why: a conv net's init and dropout pay
the partitionable threefry's compile per kernel or activation shape (docs/testing.md).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)

from bench_utils import add_json_argument, result_row, write_json  # noqa: E402


def cases(quick: bool):
  import jax
  import jax.numpy as jnp
  from ycng_jax.models.cnn import CNN

  key = jax.random.PRNGKey(0)
  cnn = CNN(num_classes=10, features=(8, 16), dense=32, convs_per_block=1)
  images = jnp.zeros((8, 28, 28, 1))
  variables = jax.eval_shape(cnn.init, key, images)
  out = {
      "bits (288,)": (lambda: (lambda k: jax.random.bits(k, (288,))), (key,)),
      "bits (3, 3, 4, 8)": (lambda: (lambda k: jax.random.bits(k, (3, 3, 4, 8))), (key,)),
      "CNN init": (lambda: (lambda k, x: cnn.init(k, x)), (key, images)),
  }
  if not quick:
    out["CNN forward, dropout"] = (
        lambda: (lambda v, k, x: cnn.apply(v, x, train=True, rngs={"dropout": k},
                                           mutable=["batch_stats"])), (variables, key, images))
  return out


def compile_seconds(make, args, partitionable: bool) -> float:
  import jax
  jax.config.update("jax_threefry_partitionable", partitionable)
  start = time.process_time()
  jax.jit(make()).lower(*args).compile()
  return time.process_time() - start


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="three cases instead of four")
  add_json_argument(parser)
  args = parser.parse_args()
  import jax
  jax.jit(lambda x: x + 1)(1.0)  # the backend's start-up is not a compile of either side
  rows = []
  print(f"{'case':<24}{'partitionable s':>16}{'classic s':>11}{'ratio':>7}")
  for name, (make, call_args) in cases(args.quick).items():
    default = compile_seconds(make, call_args, True)
    classic = compile_seconds(make, call_args, False)
    print(f"{name:<24}{default:>16.2f}{classic:>11.2f}{default / classic:>7.2f}")
    rows.append(result_row(f"threefry compile: {name}", "compile CPU s", classic, default,
                           "jax_threefry_partitionable=True", higher_is_better=False))
  write_json(args.json, rows)


if __name__ == "__main__":
  main()

"""Helpers shared by the benchmarks in this folder (run them as ``python scripts/bench/NAME.py``)."""

from __future__ import annotations

import os
import time


def call_times(fn, repeats: int) -> list[float]:
  """Seconds of ``repeats`` calls of ``fn()`` after one untimed warm-up call (compiles, lazy init)."""
  fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return times


def set_cpu_threads(threads: int) -> None:
  """Same intra-op thread count for XLA:CPU and torch; must run before jax is imported."""
  if threads <= 0:
    return
  if threads == 1:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen="
                               "false intra_op_parallelism_threads=1").strip()
  else:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" intra_op_parallelism_threads={threads}").strip()
  import torch  # pylint: disable=import-outside-toplevel
  torch.set_num_threads(threads)


def debtags_texts(limit: int) -> list[str]:
  """The first ``limit`` distinct package descriptions of the ``debtags`` training split."""
  from ycng_jax import data  # pylint: disable=import-outside-toplevel
  texts, seen = [], set()
  for text in data.load("debtags", "train")["text"]:
    if text not in seen:
      seen.add(text)
      texts.append(text)
      if len(texts) == limit:
        break
  return texts

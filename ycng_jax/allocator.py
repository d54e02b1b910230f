"""glibc's malloc set for XLA:CPU's large buffers, with ``YCNG_JAX_MALLOC=reuse``: on ``import
ycng_jax``.

XLA:CPU allocates each program's temporaries with ``malloc`` on every run. With glibc's
defaults, blocks above the (dynamic, at most 32 MiB) mmap threshold, and every block of a
worker thread's arena, are fresh pages from the kernel each time, and touching them page-faults:
about 30,000 faults (120 MB) per train step of topic 9's CNN at batch 128, 190,000 for a
population of 6 of them. Keeping such blocks in the main heap (one arena, no mmap below 2 GiB,
no trimming of the heap's top) reuses the same pages run after run: that step went from 71 to
39 ms, the population's from 74 to 44 ms a member (2-core machine, 2026-12-04; see
docs/training.md, "On a CPU: YCNG_JAX_MALLOC=reuse, or tcmalloc"). The cost: memory a process
frees stays with it (its peak) unless ``malloc_trim(0)`` hands it back, as the tuner does
between trials.

Not the default: with one arena, many threads' allocations queue on its lock, and small
workloads slow down (32 MLP trials as one population: 17,494 trials/hour with glibc's defaults,
12,403-14,320 with these settings), mostly in XLA's compiles, which run on many threads.
tcmalloc (``LD_PRELOAD=libtcmalloc_minimal.so.4``) reuses the large blocks too, without that
loss: the better choice where it is installed. Without the variable (or ``system``) glibc's
defaults stay. Other C libraries (musl, macOS) are left alone. Arena settings reach only
threads that have not allocated yet, so the variable must be set before the process starts.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
_LARGEST = 2**31 - 1  # mallopt takes an int
_tuned: bool | None = None


def tune() -> bool:
  """Applies the settings above once per process; True if glibc took them."""
  global _tuned  # pylint: disable=global-statement
  if _tuned is None:
    _tuned = _apply()
  return _tuned


def _apply() -> bool:
  if os.environ.get("YCNG_JAX_MALLOC", "system").lower() != "reuse":
    return False
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
  except OSError:
    return False
  if not hasattr(libc, "gnu_get_libc_version"):  # not glibc: mallopt's options differ
    return False
  return all(libc.mallopt(option, value) == 1 for option, value in (
      (_M_ARENA_MAX, 1), (_M_MMAP_THRESHOLD, _LARGEST), (_M_TRIM_THRESHOLD, _LARGEST)))

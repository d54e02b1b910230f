"""Bounded asynchronous dispatch for loops that run compiled steps without reading results.

Why: XLA:CPU (seen in jaxlib 0.10.2) lets at most 32 computations be in flight per
device. A multi-device computation is launched by one thread-pool task per device, each
taking a slot of its device's semaphore, and those tasks run in no fixed order. With more
than 32 computations queued, the launches of later steps can take all 32 slots of one
device while they wait (through their inputs) for an earlier step whose launch on that
device is still queued behind the semaphore. The earlier step's other devices then wait in
its all-reduce for a participant that can never come (gdb: that launch blocked in
the semaphore, seven device threads in the all-reduce), and XLA aborts the process after 40 s
("Termination timeout for `all reduce` ... Expected 8 threads to join the rendezvous, but
only 6 of them arrived on time"). Which launch task a thread picks up first depends on the
OS scheduler, so this happens at random, more often when other processes take the cores
for a moment. Keeping a few steps in flight keeps the device busy and the deadlock away.

Measured (``scripts/dispatch_deadlock.py``: 8 simulated devices on 2 cores, a train step
and a metric sum per iteration, 3,000 iterations, other work on the machine): unbounded,
10 of 12 runs aborted (6 of 6 with one busy process beside them); waiting 8 steps back,
none of 14, at the same speed.
"""

from __future__ import annotations

import collections
from typing import Any

import jax

# Steps a loop may run ahead of the results it has waited for. Each iteration of our loops
# dispatches one step and at most one jitted metric sum, so 4 steps keep well under the
# 32 computations per device at which the launch order can deadlock.
DEFAULT_DEPTH = 4


class DispatchLimit:
  """Waits for the step ``depth`` iterations back before a loop dispatches more.

  Call it with a value that depends on everything the iteration dispatched (the running
  metric sums, or the new state)::

    limit = DispatchLimit()
    for batch in batches:
      state, sums = step(state, batch)
      totals = add_sums(totals, sums)
      limit(totals)
  """

  def __init__(self, depth: int = DEFAULT_DEPTH):
    if not isinstance(depth, int) or depth < 1:
      raise ValueError(f"depth must be a positive int; got {depth!r}")
    self.depth = depth
    self._pending: collections.deque[Any] = collections.deque()

  def __call__(self, value: Any) -> None:
    self._pending.append(value)
    if len(self._pending) > self.depth:
      jax.block_until_ready(self._pending.popleft())


@jax.jit
def add_sums(a: Any, b: Any) -> Any:
  """Running metric sums: one computation for the whole tree, not one per metric."""
  return jax.tree.map(lambda x, y: x + y, a, b)

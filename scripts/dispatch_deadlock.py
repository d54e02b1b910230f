"""Reproduces XLA:CPU's launch-order deadlock and shows that ``DispatchLimit`` prevents it.

  python scripts/dispatch_deadlock.py --runs 6 --depths 0 4    # 0: unbounded dispatch
  python scripts/dispatch_deadlock.py --runs 6 --busy          # one CPU-bound process beside

Each run is a fresh process with 8 simulated CPU devices that dispatches ``--iters`` data-
parallel train steps (a gradient all-reduce) and a running metric sum without reading a
result, as a training loop does; with ``--depths N`` it waits for the step N iterations back
(``ycng_jax.train.dispatch.DispatchLimit``). A deadlocked run is ended by XLA's collective
timeout, set here to 15 s (XLA's default is 40 s; a healthy step takes milliseconds). The
table counts the runs that aborted and the median time of those that finished.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker(iters: int, depth: int) -> None:
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P  # pylint: disable=import-outside-toplevel
  from ycng_jax.train.dispatch import DispatchLimit, add_sums  # pylint: disable=import-outside-toplevel

  mesh = Mesh(np.array(jax.devices()), ("data",))
  sharded, replicated = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())

  def step(w, x):
    loss, grad = jax.value_and_grad(lambda w: jnp.mean(jnp.tanh(x @ w) ** 2))(w)
    return w - 0.01 * grad, {"loss": loss, "count": jnp.float32(x.shape[0])}

  step = jax.jit(step, in_shardings=(replicated, sharded), out_shardings=(replicated, replicated))
  rng = np.random.default_rng(0)
  batches = [jax.device_put(rng.normal(size=(256, 64)).astype(np.float32), sharded)
             for _ in range(8)]
  w = jax.device_put(jnp.full((64, 64), 0.01), replicated)
  limit = DispatchLimit(depth) if depth else None
  sums = None
  for i in range(iters):
    w, step_sums = step(w, batches[i % len(batches)])
    sums = step_sums if sums is None else add_sums(sums, step_sums)
    if limit is not None:
      limit(sums)
  print(float(sums["loss"]))


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--runs", type=int, default=6, help="processes per depth")
  parser.add_argument("--iters", type=int, default=3000, help="steps per process")
  parser.add_argument("--depths", type=int, nargs="+", default=[0, 4],
                      help="DispatchLimit depths to compare; 0 is unbounded")
  parser.add_argument("--devices", type=int, default=8, help="simulated CPU devices")
  parser.add_argument("--busy", action="store_true",
                      help="run one CPU-bound process beside the runs")
  parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker is not None:
    worker(args.iters, args.worker)
    return 0
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT, XLA_FLAGS=(
      f"--xla_force_host_platform_device_count={args.devices} "
      "--xla_cpu_collective_call_terminate_timeout_seconds=15"))
  busy = (subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None)
  results = {d: {"aborted": 0, "seconds": []} for d in args.depths}
  try:
    for run in range(args.runs):
      for depth in args.depths:  # interleaved, so both depths see the same machine load
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--worker", str(depth), "--iters",
                               str(args.iters)], env=env, capture_output=True, text=True,
                              check=False)
        seconds = time.perf_counter() - start
        if proc.returncode == 0:
          results[depth]["seconds"].append(seconds)
        else:
          results[depth]["aborted"] += 1
          reason = next((line for line in proc.stderr.splitlines() if "Termination" in line),
                        f"exit {proc.returncode}")
          print(f"run {run} depth {depth}: {reason[:160]}", flush=True)
  finally:
    if busy:
      busy.kill()
  print(f"\n{args.runs} runs per depth, {args.iters} steps each, {args.devices} devices"
        f"{', one busy process beside' if args.busy else ''}")
  print("| depth | aborted | median s (finished runs) |\n|---|---|---|")
  for depth, r in results.items():
    median = f"{statistics.median(r['seconds']):.1f}" if r["seconds"] else "-"
    print(f"| {depth or 'unbounded'} | {r['aborted']} / {args.runs} | {median} |")
  return 0


if __name__ == "__main__":
  sys.exit(main())

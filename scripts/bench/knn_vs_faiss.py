"""Our sharded XLA kNN vs faiss, side by side in one process.

For each database size it prints one row per method: build time,
queries/s, recall@k against exact search, and the speed ratio to faiss
``IndexFlatIP`` (ours / faiss; above 1 means faster). Every method goes
through the same ``ycng_jax.search.Index`` API, is warmed up (compiled) first,
and is timed over whole ``search`` calls that return numpy arrays, so device
work is finished inside the timing.

  python scripts/bench/knn_vs_faiss.py            # 100k x 128 and 200k x 384, 1000 queries
  python scripts/bench/knn_vs_faiss.py --small    # a quick run (~1 minute); also --quick
  python scripts/bench/knn_vs_faiss.py --large    # GPU/TPU sizes (see gpu_search.sh)
  python scripts/bench/knn_vs_faiss.py --cpu-devices 2   # shard over 2 CPU devices

The data are gaussian clusters (like ``make_blobs``): ANN indexes are built for
data with structure, and uniform noise would make them all look bad.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

from bench_utils import add_json_argument, result_row, write_json


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  size = parser.add_mutually_exclusive_group()
  size.add_argument("--small", "--quick", action="store_true",
                    help="20k x 64 and 40k x 128: a quick run (the `ycng bench` preset).")
  size.add_argument("--large", action="store_true",
                    help="1M x 128 and 1M x 384 with 10k queries, for an accelerator.")
  parser.add_argument("--sizes", type=str, default=None,
                      help="comma-separated NxD databases, e.g. 100000x128,200000x384.")
  parser.add_argument("--queries", type=int, default=None, help="queries per search.")
  parser.add_argument("--faiss-queries", type=int, default=None,
                      help="faiss searches only the first N queries (default: all); its exact "
                      "answer on them is the truth for every recall. Per-query rates are still "
                      "compared: at accelerator sizes, 16 host cores need minutes for all of them.")
  parser.add_argument("--k", type=int, default=10)
  parser.add_argument("--repeats", type=int, default=5, help="timed searches; the best is kept.")
  parser.add_argument("--cpu-devices", type=int, default=None,
                      help="simulated CPU devices to shard over (sets XLA_FLAGS; CPU only).")
  parser.add_argument("--single-thread", action="store_true",
                      help="one thread for both faiss and XLA: compares work per query, which a "
                           "busy shared CPU distorts far less than multi-threaded wall time.")
  parser.add_argument("--omp-passive", action="store_true",
                      help="set OMP_WAIT_POLICY=PASSIVE for faiss: idle OpenMP threads sleep "
                           "instead of spinning, which helps a lot on a shared, busy CPU.")
  parser.add_argument("--no-ann", action="store_true", help="skip the faiss ANN backends.")
  parser.add_argument("--bf16", action="store_true",
                      help="also time compute_dtype=bfloat16 (on by default with --large).")
  parser.add_argument("--seed", type=int, default=0)
  add_json_argument(parser)
  args = parser.parse_args(argv)
  if args.sizes is None:
    args.sizes = ("20000x64,40000x128" if args.small else
                  "1000000x128,1000000x384" if args.large else "100000x128,200000x384")
  if args.queries is None:
    args.queries = 200 if args.small else 10_000 if args.large else 1000
  args.bf16 = args.bf16 or args.large
  return args


def clustered(n: int, dim: int, num_queries: int, seed: int):
  """Gaussian blobs: database and queries drawn from the same clusters."""
  import numpy as np
  rng = np.random.default_rng(seed)
  num_clusters = max(10, n // 1000)
  centers = rng.standard_normal((num_clusters, dim), dtype=np.float32) * 3.0
  def draw(count):
    labels = rng.integers(0, num_clusters, count)
    return centers[labels] + rng.standard_normal((count, dim), dtype=np.float32)
  return draw(n), draw(num_queries)


def _cpu_seconds() -> float:
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def time_search(index, queries, k: int, repeats: int):
  """Best and median wall time, and the least process CPU time, of ``repeats``
  searches after one warm-up (compilation, caches).

  CPU time (all threads) is reported next to wall time because on a shared
  machine wall time mostly measures the neighbours; note that idle OpenMP
  threads that spin count as CPU time too (see ``OMP_WAIT_POLICY``).
  """
  import numpy as np
  result = index.search(queries, k)
  times, cpu_times = [], []
  for _ in range(repeats):
    cpu_start, start = _cpu_seconds(), time.perf_counter()
    result = index.search(queries, k)
    times.append(time.perf_counter() - start)
    cpu_times.append(_cpu_seconds() - cpu_start)
  return min(times), float(np.median(times)), min(cpu_times), result


def methods(n: int, dim: int, args):
  """(label, backend, build params, search-param sweep): exact first, then approximate."""
  import jax.numpy as jnp
  rows = [("faiss IndexFlatIP", "faiss-flat", {}, [{}]),
          ("ours exact f32", "exact", {}, [{}])]
  if args.bf16:
    rows.append(("ours exact bf16", "exact", {"compute_dtype": jnp.bfloat16}, [{}]))
  rows.append(("ours approx", "approx", {}, [{"recall_target": r} for r in (0.95, 0.8)]))
  if args.no_ann:
    return rows
  nlist = 1 << max(4, round(0.5 * (n.bit_length() - 1)))  # ~sqrt(n), a power of two
  probes = [{"nprobe": p} for p in (4, 16, 64) if p <= nlist]
  rows.append((f"faiss IVF-flat nlist={nlist}", "faiss-ivf", {"nlist": nlist}, probes))
  if not args.large:  # an HNSW graph of 1M points takes too long to build for the time box
    rows.append(("faiss HNSW M=32 efC=40", "faiss-hnsw", {"M": 32, "ef_construction": 40},
                 [{"ef_search": ef} for ef in (32, 128)]))
  m = next(m for m in (32, 16, 8, 4, 2, 1) if dim % m == 0 and dim // m >= 4)
  rows.append((f"faiss IVF-PQ nlist={nlist} m={m} nbits=8", "faiss-ivfpq",
               {"nlist": nlist, "m": m, "nbits": 8}, probes[1:] or probes))
  return rows


def run(args) -> None:
  import faiss
  import jax
  import numpy as np
  from ycng_jax.search import Index

  if args.single_thread:
    faiss.omp_set_num_threads(1)

  print(f"jax {jax.__version__} on {len(jax.devices())} x {jax.devices()[0].device_kind}; "
        f"{os.cpu_count()} CPU cores (load average {os.getloadavg()[0]:.1f}); "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'default')}; k={args.k}; "
        f"best of {args.repeats} searches")
  rows = []  # --json: our exact searches against faiss' exact one
  for spec in args.sizes.split(","):
    n, dim = (int(v) for v in spec.lower().split("x"))
    database, queries = clustered(n, dim, args.queries, args.seed)
    print(f"\n== database {n} x {dim} float32, {args.queries} queries ==")
    print(f"{'method':<52} {'build s':>8} {'queries/s':>10} {'median q/s':>10} "
          f"{'recall@%d' % args.k:>9} {'vs flat':>8} {'GFLOP/s':>8} {'CPU s':>6} "
          f"{'CPU vs flat':>11}")
    truth, flat_qps, flat_cpu = None, None, None
    for label, backend, params, sweep in methods(n, dim, args):
      start = time.perf_counter()
      index = Index(dim, metric="ip", backend=backend, **params).add(database)
      build = time.perf_counter() - start
      batch = queries[:args.faiss_queries] if backend.startswith("faiss") else queries
      for search_params in sweep:
        index.set_search_params(**search_params)
        best, median, cpu, (_, ids) = time_search(index, batch, args.k, args.repeats)
        if truth is None:
          truth = ids  # faiss IndexFlatIP: the exact answer
        recall = np.mean([len(set(a) & set(b)) / args.k for a, b in zip(ids, truth)])
        qps = len(batch) / best
        cpu *= len(queries) / len(batch)  # CPU seconds for the full query set
        flat_qps = flat_qps or qps
        flat_cpu = flat_cpu or cpu
        name = " ".join([label] + [f"{k}={v}" for k, v in search_params.items()])
        # Matmul rate of the brute-force methods (2 n d FLOPs a query), to
        # compare with the hardware's peak; meaningless for the ANN indexes.
        gflops = (f"{2 * n * dim * qps / 1e9:8.1f}"
                  if backend in ("exact", "approx", "faiss-flat") else f"{'-':>8}")
        print(f"{name:<52} {build:>8.2f} {qps:>10.0f} {len(batch) / median:>10.0f} "
              f"{recall:>9.3f} {qps / flat_qps:>7.2f}x {gflops} {cpu:>6.2f} "
              f"{flat_cpu / max(cpu, 1e-9):>10.2f}x", flush=True)
        if backend == "exact":
          dtype = "bfloat16" if "compute_dtype" in params else "float32"
          rows.append(result_row(
              f"exact kNN {dtype}, {n} x {dim}", "queries/s", qps, flat_qps,
              f"faiss {faiss.__version__} IndexFlatIP",
              notes=f"{args.queries} queries, k={args.k}, recall@{args.k} {recall:.3f}, "
                    f"best of {args.repeats}"))
      del index
  write_json(args.json, rows)


def main(argv=None) -> None:
  args = parse_args(argv)
  if args.omp_passive:  # read by the OpenMP runtime when faiss loads
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
  if args.single_thread:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
  if args.cpu_devices:
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={args.cpu_devices}"
  run(args)


if __name__ == "__main__":
  main()

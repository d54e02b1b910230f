"""Shared runner of the DEC / IDEC experiments (``experiments/clustering/*.py``).

For every seed: k-means on the pixels, the autoencoder + k-means baseline, DEC and (if
``config.idec``) IDEC from the same pretrained autoencoder. With ``config.init = "n2d"`` the
table gains N2D (autoencoder + UMAP + Gaussian mixture) and DEC and IDEC start from its
clusters instead of k-means'.  Writes to the workdir:
``metrics.jsonl`` (pretraining losses, DEC history, one row per method and seed),
``results.json`` (the table: mean and standard deviation over seeds of acc / NMI / ARI),
``embedding.png`` (a 2-D PCA projection of the DEC embedding coloured by cluster) and
``clusters.png`` (a grid of samples per DEC cluster), and ``seed_<s>.json`` per finished
seed. A killed run started again with the same workdir reads the finished seeds and resumes
the one it was in from its last checkpoint (``checkpoints/``, at most
``config.checkpoint_seconds`` old).
"""

from __future__ import annotations

import json
import pathlib
import shutil
import time

import ml_collections
import numpy as np

from ycng_jax import data
from ycng_jax.cluster import metrics
from ycng_jax.cluster.dec import DEC
from ycng_jax.cluster.dec_checkpoint import fingerprint
from ycng_jax.cluster.kmeans import KMeans
from ycng_jax.data.chunk_store import atomic_write
from ycng_jax.vision.augment import flat_image_augmenter

METHODS = ("kmeans_pixels", "autoencoder_kmeans", "autoencoder_umap_gmm", "dec", "idec")


def base_config() -> ml_collections.ConfigDict:
  """DEC-keras's hyperparameters; the experiment files set the dataset and budget."""
  config = ml_collections.ConfigDict()
  config.runner = "ycng_jax.cluster.experiment:run"
  config.dataset = "mnist"
  config.limit = 0  # 0: every image; N: a fixed random subset of N (for a quick look)
  config.n_clusters = 10
  config.seeds = (0, 1, 2)
  # Autoencoder and its pretraining.
  config.hidden_dims = (500, 500, 2000, 10)
  config.pretrain_epochs = 200
  config.pretrain_batch_size = 256
  config.pretrain_optimizer = "adam"  # DEC-keras: "sgd", learning rate 1, momentum 0.9
  config.pretrain_learning_rate = 1e-3
  config.pretrain_momentum = 0.9  # "sgd" only
  config.greedy_epochs = 0  # > 0: the paper's greedy layer-wise denoising pretraining first
  config.greedy_dropout = 0.2
  # DEC-DA (Guo et al. 2018): random rotations and shifts of the images, in pretraining and
  # in the clustering phase (targets still come from the clean images).
  config.augment = False
  config.augment_rotation = 10.0  # degrees
  config.augment_shift = 0.1  # fraction of height and width
  # Clustering.
  config.kmeans_n_init = 20
  config.init = "kmeans"  # or "n2d": start DEC / IDEC from UMAP + Gaussian-mixture clusters
  config.n2d_neighbors = 20  # UMAP's n_neighbors for init="n2d"
  config.alpha = 1.0
  config.batch_size = 256
  config.max_iter = 20_000
  config.update_interval = 140
  config.tol = 1e-3
  config.optimizer = "sgd"
  config.learning_rate = 0.01
  config.momentum = 0.9
  config.idec = True
  config.gamma = 0.1
  config.verbose = True
  # A killed run resumes inside the seed it was in (orbax checkpoints under
  # workdir/checkpoints, removed once the seed is done), saved at most this often.
  config.checkpoint_seconds = 60.0
  return config


def load_flat(name: str, limit: int = 0) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
  """All splits of an image dataset as rows in [0, 1], labels, and the image shape."""
  parts = [data.load(name, split) for split in ("train", "test")]
  images = np.concatenate([p["image"] for p in parts])
  labels = np.concatenate([p["label"] for p in parts]).astype(np.int32)
  if limit:
    keep = np.random.default_rng(0).permutation(len(images))[:limit]
    images, labels = images[keep], labels[keep]
  x = images.reshape(len(images), -1).astype(np.float32)
  return x / max(float(x.max()), 1.0), labels, images.shape[1:]


def dec_kwargs(config: ml_collections.ConfigDict, image_shape=None) -> dict:
  augment = None
  if config.get("augment"):
    if image_shape is None:
      raise ValueError("config.augment needs the image shape of the data set.")
    augment = flat_image_augmenter(image_shape, config.augment_rotation, config.augment_shift)
  return dict(augment=augment,
      hidden_dims=tuple(config.hidden_dims), alpha=config.alpha,
      pretrain_epochs=config.pretrain_epochs, pretrain_batch_size=config.pretrain_batch_size,
      pretrain_learning_rate=config.pretrain_learning_rate,
      pretrain_optimizer=config.pretrain_optimizer, pretrain_momentum=config.pretrain_momentum,
      greedy_epochs=config.greedy_epochs,
      greedy_dropout=config.greedy_dropout, batch_size=config.batch_size,
      max_iter=config.max_iter, update_interval=config.update_interval, tol=config.tol,
      optimizer=config.optimizer, learning_rate=config.learning_rate, momentum=config.momentum,
      kmeans_n_init=config.kmeans_n_init, init=config.get("init", "kmeans"),
      n2d_neighbors=config.get("n2d_neighbors", 20), verbose=config.verbose)


def _figures(workdir: pathlib.Path, dec: DEC, x: np.ndarray, image_shape, seed: int) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(seed)
  sample = rng.permutation(len(x))[:5000]
  z = dec.transform(x[sample])
  z = z - z.mean(0)
  _, _, vt = np.linalg.svd(z, full_matrices=False)
  xy = z @ vt[:2].T
  fig, ax = plt.subplots(figsize=(6, 6))
  ax.scatter(xy[:, 0], xy[:, 1], c=dec.labels_[sample], cmap="tab10", s=2)
  ax.set_title("DEC embedding (PCA of 5000 samples), coloured by cluster")
  fig.savefig(workdir / "embedding.png", dpi=120)
  plt.close(fig)
  per_cluster = 10
  fig, axes = plt.subplots(dec.n_clusters, per_cluster,
                           figsize=(per_cluster, dec.n_clusters), squeeze=False)
  for c in range(dec.n_clusters):
    members = np.flatnonzero(dec.labels_ == c)
    picks = rng.permutation(members)[:per_cluster]
    for j in range(per_cluster):
      ax = axes[c, j]
      ax.axis("off")
      if j < len(picks):
        ax.imshow(x[picks[j]].reshape(image_shape[:2]), cmap="gray")
  fig.suptitle("samples per DEC cluster (one row a cluster)")
  fig.savefig(workdir / "clusters.png", dpi=100)
  plt.close(fig)


def _settings(config: ml_collections.ConfigDict) -> dict:
  """The settings a seed's results depend on (all but the seed list and verbosity)."""
  settings = json.loads(config.to_json())
  for key in ("seeds", "verbose", "checkpoint_seconds"):
    settings.pop(key, None)
  return settings


def _run_seed(config: ml_collections.ConfigDict, x: np.ndarray, y: np.ndarray,
              image_shape, seed: int, record, checkpoints: pathlib.Path | None = None
              ) -> tuple[list[dict], DEC]:
  """The four methods for one seed; returns their result rows and the fitted DEC. DEC and
  IDEC checkpoint under ``checkpoints`` (if given) and resume from there."""
  resumable = lambda name: dict(
      checkpoint_dir=None if checkpoints is None else checkpoints / name,
      checkpoint_seconds=config.get("checkpoint_seconds", 60.0))
  rows = []
  start = time.perf_counter()
  km = KMeans(config.n_clusters, n_init=config.kmeans_n_init, seed=seed).fit(x)
  rows.append({"method": "kmeans_pixels", "seed": seed, **metrics.all_metrics(y, km.labels_),
               "seconds": time.perf_counter() - start})
  dec = DEC(config.n_clusters, seed=seed, **dec_kwargs(config, image_shape),
            **resumable("dec")).fit(x)
  for epoch, loss in enumerate(dec.pretrain_history_):
    record({"seed": seed, "phase": "pretrain", "epoch": epoch + 1, "loss": loss})
  for entry in dec.history_:
    record({"seed": seed, "phase": "dec", **entry})
  rows.append({"method": "autoencoder_kmeans", "seed": seed,
               **metrics.all_metrics(y, dec.kmeans_labels_),
               "seconds": dec.timings_["pretrain_s"] + dec.timings_["kmeans_s"]})
  n2d = config.get("init", "kmeans") == "n2d"
  if n2d:
    rows.append({"method": "autoencoder_umap_gmm", "seed": seed,
                 **metrics.all_metrics(y, dec.init_labels_),
                 "seconds": dec.timings_["pretrain_s"] + dec.timings_["n2d_s"]})
  rows.append({"method": "dec", "seed": seed, **metrics.all_metrics(y, dec.labels_),
               "seconds": dec.timings_["cluster_s"], "iterations": dec.n_iter_})
  if config.idec:
    idec = DEC(config.n_clusters, seed=seed, idec=True, gamma=config.gamma,
               **dec_kwargs(config, image_shape), **resumable("idec")).fit(
                   x, autoencoder_params=dec.autoencoder_params_,
                   init_labels=dec.init_labels_ if n2d else None)
    for entry in idec.history_:
      record({"seed": seed, "phase": "idec", **entry})
    rows.append({"method": "idec", "seed": seed, **metrics.all_metrics(y, idec.labels_),
                 "seconds": idec.timings_["cluster_s"], "iterations": idec.n_iter_})
  for row in rows:
    record({"phase": "result", **row})
  return rows, dec


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs every seed not finished yet: a killed run resumes at the seed it was in.

  Each finished seed leaves ``seed_<s>.json`` in the workdir; a rerun with the same
  workdir and settings reads those instead of recomputing, and the interrupted seed goes on
  from its last checkpoint. A seed finished under other settings is run again.
  """
  settings = _settings(config)
  workdir = pathlib.Path(workdir)
  x, y, image_shape = load_flat(config.dataset, config.limit)
  rows: list[dict] = []
  figures_made = False  # by the first seed this call runs, so they match its settings
  with (workdir / "metrics.jsonl").open("a") as log:
    def record(row: dict) -> None:
      log.write(json.dumps(row) + "\n")
      log.flush()

    for seed in config.seeds:
      done = workdir / f"seed_{seed}.json"
      if done.exists():
        saved = json.loads(done.read_text())
        if saved.get("settings") == settings:
          rows += saved["rows"]
          print(f"seed {seed}: finished earlier, results read from {done}")
          continue
        print(f"seed {seed}: {done} was made with other settings; running it again")
      # One folder per seed and settings: checkpoints of other settings never get in the way.
      checkpoints = workdir / "checkpoints" / f"seed_{seed}_{fingerprint(settings)}"
      seed_rows, dec = _run_seed(config, x, y, image_shape, seed, record, checkpoints)
      rows += seed_rows
      text = json.dumps({"settings": settings, "rows": seed_rows}, indent=1).encode()
      atomic_write(done, lambda f: f.write(text), ".json")  # a kill leaves no half file
      shutil.rmtree(checkpoints, ignore_errors=True)
      if not any(checkpoints.parent.iterdir()):
        checkpoints.parent.rmdir()
      if not figures_made:
        _figures(workdir, dec, x, image_shape, seed)
        figures_made = True

  table = {}
  for method in METHODS:
    mine = [r for r in rows if r["method"] == method]
    if mine:
      table[method] = {
          f"{m}_{stat}": float(fn([r[m] for r in mine]))
          for m in ("acc", "nmi", "ari") for stat, fn in (("mean", np.mean), ("std", np.std))}
      table[method]["seeds"] = len(mine)
  (workdir / "results.json").write_text(json.dumps({"table": table, "runs": rows}, indent=2))
  return {f"{method}_{key}": value for method, stats in table.items()
          for key, value in stats.items() if key.endswith("_mean")}

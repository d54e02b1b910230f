"""Runner of topic 4's visual similarity search over all of Fashion-MNIST (70k images).

``config.runner = "ycng_jax.vision.similarity_experiment:run"``. Steps:

1. Stream every image (train then test) through the frozen ImageNet EfficientNet-Lite0 into a
   resumable chunk store (``features/``, progress bar; a killed run continues where it stopped).
2. Represent each image by its backbone features, its raw pixels and, when
   ``config.siamese_experiment`` names a topic-5 experiment, the embedding of that Siamese tower
   (trained once into ``siamese/``, resumable; "" leaves that row out).
3. Queries: a seeded sample of ``num_queries`` test images (0: all); database: all images, the
   query itself excluded by id. Same-class precision@k per representation (exact search), and
   per search backend (exact, approx, faiss IVF / HNSW) on the backbone features with queries/s
   and recall against exact search.

Writes ``results.json``, ``results.md`` and ``neighbours_<representation>.png``.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import ml_collections
import numpy as np

from ycng_jax.search import Index
from ycng_jax.train.mesh import make_mesh
from ycng_jax.vision import features as vf
from ycng_jax.vision import similarity as sim

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
REPRESENTATIONS = ("efficientnet", "pixels", "siamese")


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.runner = "ycng_jax.vision.similarity_experiment:run"
  c.dataset = "fashion_mnist"
  c.image_size = 64                # backbone input side (grey 28x28 upsampled, made RGB)
  c.train_examples = 0             # 0: all of train; >0 the first N (tiny runs)
  c.test_examples = 0
  c.num_queries = 2000             # seeded sample of test images; 0: every test image
  c.seed = 0
  c.k = 10
  c.batch_size = 256
  c.chunk_size = 4096
  c.num_devices = 0
  c.representations = REPRESENTATIONS
  c.siamese_experiment = "topic5/triplet_mnist"   # "": no Siamese row
  c.siamese_overrides = ml_collections.ConfigDict({"dataset": "fashion_mnist", "num_epochs": 5})
  c.backends = ml_collections.ConfigDict({
      "exact": {"backend": "exact"},
      "approx": {"backend": "approx"},
      "faiss-ivf": {"backend": "faiss-ivf", "nlist": 256, "nprobe": 8},
      "faiss-hnsw": {"backend": "faiss-hnsw", "M": 32, "ef_search": 64},
  })
  c.figure_queries = 8
  c.progress = True
  return c


def check_config(config: ml_collections.ConfigDict) -> None:
  reference = base_config()
  for key in config.keys():
    if key not in reference:
      raise ValueError(f"unknown config key {key!r}; valid keys: {sorted(reference.keys())}")
  unknown = set(config.representations) - set(REPRESENTATIONS)
  if unknown:
    raise ValueError(f"config.representations has {sorted(unknown)}; choose from "
                     f"{REPRESENTATIONS}")
  if "siamese" in config.representations and not config.siamese_experiment:
    raise ValueError("the 'siamese' representation needs config.siamese_experiment (e.g. "
                     "'topic5/triplet_mnist'); or drop it from config.representations")
  if config.backends.get("exact", {}).get("backend") != "exact":
    raise ValueError("config.backends needs an entry 'exact' = {'backend': 'exact'}: the "
                     "reference that recall is measured against")


def load_images(config) -> dict[str, np.ndarray]:
  """All images (train then test), labels, and where the test part starts."""
  import ycng_jax.data as ydata  # pylint: disable=import-outside-toplevel
  parts = []
  for split, limit in (("train", config.train_examples), ("test", config.test_examples)):
    arrays = ydata.load(config.dataset, split)
    parts.append({k: np.asarray(arrays[k][:limit or None]) for k in ("image", "label")})
  return {"image": np.concatenate([p["image"] for p in parts]),
          "label": np.concatenate([p["label"] for p in parts]).astype(np.int64),
          "test_start": len(parts[0]["label"])}


def backbone_features(config, images: np.ndarray, workdir: str) -> tuple[np.ndarray, dict]:
  """Pooled ImageNet features of every image via the resumable chunk store."""
  directory = os.path.join(workdir, "features", f"efficientnet_pooled_{config.image_size}")
  start = time.perf_counter()
  manifest = vf.extract_features(images, directory,
                                 vf.efficientnet_features(image_size=config.image_size),
                                 batch_size=config.batch_size, chunk_size=config.chunk_size,
                                 mesh=make_mesh(config.num_devices or None),
                                 progress=config.progress)
  seconds = time.perf_counter() - start
  return vf.load_features(directory), {"extract_seconds_this_run": seconds,
                                       "rows": manifest["rows"], "dim": manifest["dim"]}


def siamese_embeddings(config, images: np.ndarray, workdir: str) -> tuple[np.ndarray, dict]:
  """Embeddings of every image by the topic-5 Siamese tower (trained once, then cached)."""
  from ycng_jax import experiments  # pylint: disable=import-outside-toplevel
  from ycng_jax.vision import siamese_experiment  # pylint: disable=import-outside-toplevel
  cache = os.path.join(workdir, "siamese_embeddings.npy")
  if os.path.exists(cache):
    cached = np.load(cache, mmap_mode="r")
    if len(cached) == len(images):
      return cached, {"cached": True}
  siamese_config = experiments.load_module(config.siamese_experiment).get_config()
  for key, value in config.siamese_overrides.items():
    if key not in siamese_config:
      raise ValueError(f"siamese_overrides.{key} is not a key of {config.siamese_experiment}")
    siamese_config[key] = value
  start = time.perf_counter()
  result = siamese_experiment.train(siamese_config, os.path.join(workdir, "siamese"))
  embeddings = np.asarray(result.embed(images), np.float32)
  result.trainer.free()
  np.save(cache, embeddings)
  return embeddings, {"cached": False, "train_and_embed_seconds": time.perf_counter() - start,
                      "siamese_test_verification_accuracy":
                          result.metrics.get("test_verification_accuracy")}


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  check_config(config)
  os.makedirs(workdir, exist_ok=True)
  data = load_images(config)
  images, labels = data["image"], data["label"]
  test_ids = np.arange(data["test_start"], len(labels))
  rng = np.random.default_rng(config.seed)
  query_ids = (np.sort(rng.choice(test_ids, config.num_queries, replace=False))
               if config.num_queries and config.num_queries < len(test_ids) else test_ids)

  vectors, notes = {}, {}
  if "efficientnet" in config.representations:
    features, notes["efficientnet"] = backbone_features(config, images, workdir)
    vectors["efficientnet"] = sim.l2_normalize(features)
  if "pixels" in config.representations:
    vectors["pixels"] = sim.l2_normalize(images.reshape(len(images), -1).astype(np.float32) / 255)
  if "siamese" in config.representations:
    embeddings, notes["siamese"] = siamese_embeddings(config, images, workdir)
    vectors["siamese"] = sim.l2_normalize(embeddings)

  k = config.k
  representation_rows = []
  for name, x in vectors.items():
    index = Index(x.shape[1], metric="ip", backend="exact").add(x)
    ids, qps = sim.search_without_self(index, np.ascontiguousarray(x[query_ids]), query_ids, k)
    del index
    representation_rows.append({
        "representation": name, "dim": int(x.shape[1]), "queries_per_second": qps,
        f"precision_at_{k}": sim.precision_at_k(ids, labels[query_ids], labels, k)})
    shown = np.linspace(0, len(query_ids) - 1, config.figure_queries).astype(int)
    sim.plot_neighbours(images, labels, query_ids[shown], ids[shown],
                        os.path.join(workdir, f"neighbours_{name}.png"),
                        class_names=FASHION_CLASSES if config.dataset == "fashion_mnist" else None,
                        title=f"{name}: query (left) and its {k} nearest neighbours "
                              f"(green: same class)")
  backend_rows = []
  if "efficientnet" in vectors:
    backends = {name: dict(spec) for name, spec in config.backends.items()}
    backend_rows = sim.compare_backends(vectors["efficientnet"], labels, query_ids, backends, k)
  summary = {"config": config.to_dict(), "num_database": int(len(labels)),
             "num_queries": int(len(query_ids)), "k": k, "representations": representation_rows,
             "backends": backend_rows, "notes": notes}
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(summary, f, indent=2, default=float)
  with open(os.path.join(workdir, "results.md"), "w") as f:
    f.write(_markdown(summary, config))
  return summary


def _markdown(summary: dict[str, Any], config) -> str:
  k = summary["k"]
  lines = [f"{config.dataset}: {summary['num_queries']} test queries against all "
           f"{summary['num_database']} images (the query itself excluded); cosine similarity.", "",
           f"| representation | dim | precision@{k} (exact) | queries/s |", "|---|---|---|---|"]
  for r in summary["representations"]:
    lines.append(f"| {r['representation']} | {r['dim']} | {r[f'precision_at_{k}']:.4f} | "
                 f"{r['queries_per_second']:.0f} |")
  if "siamese" not in [r["representation"] for r in summary["representations"]]:
    lines.append("| siamese | - | not run (config.siamese_experiment / representations) | - |")
  if summary["backends"]:
    lines += ["", "Backends on the EfficientNet features:", "",
              f"| backend | params | precision@{k} | recall@{k} vs exact | queries/s | build s |",
              "|---|---|---|---|---|---|"]
    for r in summary["backends"]:
      recall = next(v for key, v in r.items() if key.startswith("recall_at_"))
      params = {p: v for p, v in r["params"].items() if p in ("nlist", "nprobe", "M", "ef_search",
                                                               "recall_target")}
      lines.append(f"| {r['name']} | {params} | {r[f'precision_at_{k}']:.4f} | {recall:.4f} | "
                   f"{r['queries_per_second']:.0f} | {r['build_seconds']:.1f} |")
  return "\n".join(lines) + "\n"

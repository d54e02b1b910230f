"""Runner of the semantic-similarity-at-scale experiments (course topic 10).

One corpus, end to end: embed it to disk (resumable), index it, answer sample queries, find
near-duplicates by a blocked self-join, map its topics with our k-means, and, where the
corpus has multi-hot labels, measure neighbour quality against a TF-IDF baseline. Writes
``results.json``, ``near_duplicates.tsv``, ``topics.json`` and ``topic_map.png`` to the workdir.
"""

from __future__ import annotations

import json
import pathlib

import ml_collections
import numpy as np

from ycng_jax.text import corpus as corpus_lib
from ycng_jax.text import semantic_index


def base_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.runner = "ycng_jax.text.similarity_experiment:run"
  config.dataset = "debtags"
  config.model = "all-MiniLM-L6-v2"
  config.limit = 0  # 0: the whole corpus
  config.batch_size = 64
  config.precision = "float32"  # "bf16-matmul": ~1.6x faster on CPUs with AVX512-BF16
  config.chunk_size = 4096
  config.duplicate_threshold = 0.95
  config.num_topics = 20
  config.neighbours = 10
  config.quality_queries = 2000  # held-out queries for the neighbour-label check
  config.queries = ("a tool to convert audio files", "a library for parsing XML",
                    "a game with spaceships")
  config.seed = 0
  return config


def _topic_map(embeddings, labels, topics, path):
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  from sklearn.decomposition import PCA  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  shown = rng.choice(len(embeddings), min(len(embeddings), 20000), replace=False)
  pca = PCA(2, random_state=0).fit(np.asarray(embeddings[shown]))
  xy = pca.transform(np.asarray(embeddings[shown]))
  fig, ax = plt.subplots(figsize=(11, 9))
  ax.scatter(xy[:, 0], xy[:, 1], c=labels[shown], cmap="tab20", s=3, alpha=0.5)
  for topic, terms in topics.items():
    members = xy[labels[shown] == topic]
    if len(members):
      cx, cy = np.median(members, 0)
      ax.annotate(", ".join(terms[:3]), (cx, cy), fontsize=8, ha="center",
                  bbox={"boxstyle": "round", "fc": "white", "alpha": 0.7})
  ax.set_title("Topic map: k-means clusters of sentence embeddings (PCA projection)")
  ax.set_xticks([])
  ax.set_yticks([])
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def neighbour_quality(embeddings, labels, texts, *, k: int, num_queries: int, seed: int) -> dict:
  """Mean tags shared with the k nearest neighbours: our embeddings vs TF-IDF vs random."""
  rng = np.random.default_rng(seed)
  order = rng.permutation(len(texts))
  queries, database = np.sort(order[:num_queries]), np.sort(order[num_queries:])
  index = corpus_lib.build_index(np.asarray(embeddings[database]))
  _, ours = index.search(np.asarray(embeddings[queries]), k)
  tfidf = corpus_lib.tfidf_neighbours([texts[i] for i in queries], [texts[i] for i in database], k)
  random_ids = rng.integers(0, len(database), size=(len(queries), k))
  score = lambda ids: corpus_lib.shared_labels_at_k(ids, labels[queries], labels[database])
  return {"k": k, "queries": int(len(queries)), "database": int(len(database)),
          "shared_labels_embeddings": score(ours), "shared_labels_tfidf": score(tfidf),
          "shared_labels_random": score(random_ids)}


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  from ycng_jax import data  # pylint: disable=import-outside-toplevel
  from ycng_jax.cluster import KMeans  # pylint: disable=import-outside-toplevel
  workdir = pathlib.Path(workdir)
  documents = semantic_index.corpus_documents(config.dataset, limit=config.limit or None)
  texts = documents["text"]
  embeddings = corpus_lib.embed_corpus(texts, workdir / "embeddings", model=config.model,
                                       batch_size=config.batch_size, chunk_size=config.chunk_size,
                                       precision=config.precision)
  index = corpus_lib.build_index(embeddings)
  results = {"dataset": config.dataset, "documents": len(texts), "dim": int(embeddings.shape[1])}

  from ycng_jax.text.encoder import (  # pylint: disable=import-outside-toplevel
      Encoder, precision_kwargs)
  encoder = Encoder.from_pretrained(config.model, **precision_kwargs(config.precision))
  scores, ids = index.search(encoder.encode(list(config.queries)), 5)
  results["sample_queries"] = {q: [{"score": float(s), "title": documents["title"][i]}
                                   for s, i in zip(row_s, row_i)]
                               for q, row_s, row_i in zip(config.queries, scores, ids)}

  pairs = corpus_lib.near_duplicates(embeddings, config.duplicate_threshold, index=index)
  with (workdir / "near_duplicates.tsv").open("w", encoding="utf-8") as f:
    f.write("i\tj\tscore\ttitle_i\ttitle_j\n")
    for i, j, s in pairs:
      f.write(f"{i}\t{j}\t{s:.4f}\t{documents['title'][i]}\t{documents['title'][j]}\n")
  results["near_duplicate_pairs"] = int(len(pairs))
  results["near_duplicate_threshold"] = config.duplicate_threshold

  kmeans = KMeans(n_clusters=config.num_topics, n_init=3, seed=config.seed).fit(np.asarray(embeddings))
  topics = corpus_lib.describe_clusters(texts, kmeans.labels_)
  sizes = np.bincount(kmeans.labels_, minlength=config.num_topics)
  (workdir / "topics.json").write_text(json.dumps(
      {str(t): {"size": int(sizes[t]), "terms": terms} for t, terms in topics.items()}, indent=1))
  _topic_map(embeddings, np.asarray(kmeans.labels_), topics, workdir / "topic_map.png")

  if config.dataset in data.list_datasets() and "labels" in data.load(config.dataset, "test"):
    labels = np.concatenate([data.load(config.dataset, s)["labels"] for s in ("train", "test")])
    labels = labels[:len(texts)]
    results["neighbour_quality"] = neighbour_quality(
        embeddings, labels, texts, k=config.neighbours,
        num_queries=min(config.quality_queries, len(texts) // 5), seed=config.seed)
  (workdir / "results.json").write_text(json.dumps(results, indent=1))
  with (workdir / "metrics.jsonl").open("a") as f:
    f.write(json.dumps({"step": 0, "final": True, **{k: v for k, v in results.items()
                                                     if not isinstance(v, dict)},
                        **results.get("neighbour_quality", {})}) + "\n")
  return results

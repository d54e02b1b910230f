"""Runner of the semantic-similarity-at-scale experiments (course topic 10).

One corpus, end to end: embed it to disk (resumable), index it, answer sample queries, find
near-duplicates by a blocked self-join, map its topics with our k-means, and, where the
corpus has multi-hot labels, measure neighbour quality against a TF-IDF baseline. Writes
``results.json``, ``near_duplicates.tsv``, ``topics.json`` (c-TF-IDF terms), ``topic_map.png``
and ``topic_map.json`` (the same map as data, for the report's interactive version) to the workdir.
"""

from __future__ import annotations

import json
import pathlib

import ml_collections
import numpy as np

from ycng_jax.text import corpus as corpus_lib
from ycng_jax.text import semantic_index
from ycng_jax.text import topic_map


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
  # The topic map: UMAP (BERTopic's projection) or "pca" (seconds, but piles topics up) of up
  # to `points` documents; n_epochs 0 lets UMAP choose (200 above 10k points).
  config.topic_map = ml_collections.ConfigDict({
      "projection": "umap", "points": 20000, "n_neighbors": 15, "min_dist": 0.1, "n_epochs": 0})
  config.seed = 0
  return config


def write_topic_map(config, workdir: pathlib.Path, texts, embeddings, labels, topics, sizes):
  """``topic_map.png`` and ``topic_map.json``: up to ``config.topic_map.points`` documents (a
  seeded subsample that keeps every topic) projected to 2-D, labelled by c-TF-IDF terms."""
  settings = config.topic_map
  rng = np.random.default_rng(config.seed)
  shown = np.arange(len(texts))
  if len(shown) > settings.points:
    shown = rng.choice(len(texts), settings.points, replace=False)
    missing = np.setdiff1d(np.unique(labels), labels[shown])  # a tiny topic the draw missed
    shown = np.concatenate([shown, [np.flatnonzero(labels == t)[0] for t in missing]])
    shown = np.sort(shown).astype(np.int64)
  xy = topic_map.project_2d(np.asarray(embeddings[shown]), method=settings.projection,
                            n_neighbors=settings.n_neighbors, min_dist=settings.min_dist,
                            n_epochs=settings.n_epochs or None, seed=config.seed)
  corpus_name = pathlib.Path(str(config.dataset)).name  # a dataset name or a corpus file
  title = (f"{len(sizes)} topics of {len(texts):,} {corpus_name} texts: k-means of "
           f"{config.model} embeddings, {settings.projection.upper()} projection, c-TF-IDF terms")
  topic_map.draw_topic_map(xy, labels[shown], topics, workdir / "topic_map.png", title=title)
  topic_map.write_topic_map_json(
      topic_map.topic_map_json(xy, labels[shown], [texts[i] for i in shown], topics,
                               dict(enumerate(sizes.tolist())), title=title, seed=config.seed),
      workdir / "topic_map.json")


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
  topic_map.check_projection(config.topic_map.projection)  # before hours of embedding
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
  topic_ids = np.asarray(kmeans.labels_)
  topics = topic_map.class_tfidf(texts, topic_ids, top_n=10, reduce_frequent_words=True)
  sizes = np.bincount(topic_ids, minlength=config.num_topics)
  (workdir / "topics.json").write_text(json.dumps(
      {str(t): {"size": int(sizes[t]), "label": topic_map.topic_label(terms), "terms": terms}
       for t, terms in topics.items()}, indent=1))
  write_topic_map(config, workdir, texts, embeddings, topic_ids, topics, sizes)

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

"""Semantic similarity at scale: embed a corpus to disk, near-duplicates, neighbour quality.

Everything here is bounded in memory by a chunk or a block, never by the corpus size: the
embeddings live in a resumable chunk store (memory-mapped when read back), and the
near-duplicate self-join asks the ``Index`` for a few neighbours per block of queries
instead of forming an n x n similarity matrix.
"""

from __future__ import annotations

import hashlib
import os
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from ycng_jax.data import chunk_store
from ycng_jax.errors import UserError, UserTypeError
from ycng_jax.search import Index


def texts_fingerprint(texts: Sequence[str]) -> str:
  digest = hashlib.sha256()
  for text in texts:
    digest.update(text.encode("utf-8", "surrogatepass") + b"\0")
  return digest.hexdigest()


def embed_corpus(texts: Sequence[str], directory: str | os.PathLike, *,
                 model: str = "all-MiniLM-L6-v2", encoder=None, chunk_size: int = 4096,
                 batch_size: int = 64, precision: str = "float32",
                 progress: bool = True) -> np.ndarray:
  """Embeds ``texts`` into ``directory`` chunk by chunk; returns the (N, dim) memory map.

  Run it again after a kill and it resumes at the first missing chunk. ``model`` names the
  encoder (and is part of the run's fingerprint), ``precision`` its arithmetic (a name from
  ``encoder.PRECISIONS``; also in the fingerprint unless float32); pass ``encoder`` to reuse a
  loaded one.
  """
  texts = list(texts)
  if not texts:
    raise UserError("The corpus is empty: nothing to embed.")
  bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
  if bad is not None:
    raise UserTypeError(f"texts[{bad}] is a {type(texts[bad]).__name__}, not a str.")
  from ycng_jax.text.encoder import precision_kwargs  # pylint: disable=import-outside-toplevel
  encoder_kwargs = precision_kwargs(precision)  # fails early on an unknown name
  fingerprint = {"model": str(model), "texts_sha256": texts_fingerprint(texts)}
  if precision != "float32":  # float32 runs keep the fingerprint they had before precisions
    fingerprint["precision"] = precision
  loaded = []

  def compute(start: int, stop: int) -> np.ndarray:
    if not loaded:  # load the model only when some chunk is missing
      from ycng_jax.text.encoder import Encoder  # pylint: disable=import-outside-toplevel
      loaded.append(encoder or Encoder.from_pretrained(model, **encoder_kwargs))
    return loaded[0].encode(texts[start:stop], batch_size=batch_size)

  chunk_store.build(directory, fingerprint, len(texts), chunk_size, compute,
                    progress=progress, desc="embedding")
  return chunk_store.load(directory)


def build_index(embeddings: np.ndarray, *, backend: str = "exact", block_rows: int = 65536,
                **params) -> Index:
  """An inner-product ``Index`` over (normalised) embeddings, added block by block."""
  index = Index(embeddings.shape[1], metric="ip", backend=backend, **params)
  for start in range(0, len(embeddings), block_rows):
    index.add(np.asarray(embeddings[start:start + block_rows]))
  return index


def near_duplicates(embeddings: np.ndarray, threshold: float, *, index: Index | None = None,
                    query_block: int = 2048, k: int = 16, progress: bool = True) -> np.ndarray:
  """All pairs (i < j) with cosine >= ``threshold``, as a structured array (i, j, score).

  A blocked self-join: each block of rows asks the index for its ``k`` nearest neighbours;
  rows whose k-th neighbour still passes the threshold are asked again with twice the k,
  so no pair is missed however many duplicates a row has. Memory: one block x k.
  """
  if not -1.0 <= threshold <= 1.0:
    raise UserError(f"threshold={threshold} is a cosine, so it must lie in [-1, 1].")
  n = len(embeddings)
  index = index or build_index(embeddings)
  if index.ntotal != n:
    raise UserError(f"The index holds {index.ntotal} vectors but there are {n} embeddings.")
  found_i, found_j, found_s = [], [], []
  for start in tqdm(range(0, n, query_block), desc="near-duplicates", disable=not progress):
    rows = np.arange(start, min(n, start + query_block))
    k_now = min(k, n)
    while len(rows):
      scores, ids = index.search(np.asarray(embeddings[rows]), k_now)
      # A row whose k-th neighbour still passes may have more: it is asked again, k doubled.
      done = (scores[:, -1] < threshold) | (k_now >= n)
      keep = (scores >= threshold) & (ids > rows[:, None]) & done[:, None]
      found_i.append(np.broadcast_to(rows[:, None], ids.shape)[keep])
      found_j.append(ids[keep])
      found_s.append(scores[keep])
      rows, k_now = rows[~done], min(2 * k_now, n)
  pairs = np.zeros(sum(len(a) for a in found_i),
                   dtype=[("i", np.int64), ("j", np.int64), ("score", np.float32)])
  if len(pairs):
    pairs["i"], pairs["j"] = np.concatenate(found_i), np.concatenate(found_j)
    pairs["score"] = np.concatenate(found_s)
  return np.sort(pairs, order=("i", "j"))


def shared_labels_at_k(neighbour_ids: np.ndarray, query_labels: np.ndarray,
                       database_labels: np.ndarray) -> float:
  """Mean number of labels a query shares with each of its neighbours (multi-hot labels)."""
  valid = neighbour_ids >= 0
  neighbours = database_labels[np.where(valid, neighbour_ids, 0)].astype(np.int32)
  shared = (neighbours * query_labels[:, None, :].astype(np.int32)).sum(-1)
  return float((shared * valid).sum() / valid.sum())


def tfidf_neighbours(query_texts: Sequence[str], database_texts: Sequence[str], k: int,
                     block: int = 1024) -> np.ndarray:
  """Ids of the ``k`` nearest database texts by TF-IDF cosine (the classic baseline)."""
  from sklearn.feature_extraction.text import TfidfVectorizer  # pylint: disable=import-outside-toplevel
  vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=2, stop_words="english")
  database = vectorizer.fit_transform(database_texts)
  queries = vectorizer.transform(query_texts)
  out = np.empty((len(query_texts), k), np.int64)
  for start in range(0, len(query_texts), block):
    scores = (queries[start:start + block] @ database.T).toarray()
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, 1), axis=1, kind="stable")
    out[start:start + block] = np.take_along_axis(top, order, 1)
  return out


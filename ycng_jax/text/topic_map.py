"""Topic maps as BERTopic draws them: c-TF-IDF terms, a UMAP projection, labels that never overlap.

The topics themselves come from elsewhere (k-means of sentence embeddings in the topic-10
experiments); this module describes and draws them:

- ``class_tfidf`` names each cluster by the terms that set it apart from the other clusters
  (c-TF-IDF), not by the terms that are merely frequent in it;
- ``project_2d`` lays the embeddings out in 2-D with UMAP (or PCA, for a quick look);
- ``draw_topic_map`` writes the PNG, with each topic's label put where it overlaps no other;
- ``topic_map_json`` is the same map as data, for the interactive version in the report.

  topics = class_tfidf(texts, labels)
  xy = project_2d(embeddings[shown])
  boxes = draw_topic_map(xy, labels[shown], topics, "topic_map.png", title="...")
"""

from __future__ import annotations

import json
import math
import os
from typing import Sequence

import numpy as np

from ycng_jax.errors import UserError

# Words of 3+ characters starting with a letter: drops numbers and stray punctuation
# ("2", "--") and two-letter words, keeps "x11", "mp3" and "command-line".
TOKEN_PATTERN = r"(?u)\b[a-zA-Z][a-zA-Z0-9+\-]{2,}\b"
MAX_JSON_POINTS = 5000
MAX_TEXT_CHARS = 200
LABEL_TERMS = 3
PROJECTIONS = ("umap", "pca")
FRAME_QUANTILE = 0.01  # the figure shows the 1st to 99th percentile of x and y


def class_tfidf_weights(texts: Sequence[str], labels, *, reduce_frequent_words: bool = False,
                        ngram_range: tuple[int, int] = (1, 1)):
  """c-TF-IDF weights: (clusters, vocabulary, weights of shape (clusters, vocabulary)).

  c-TF-IDF as BERTopic defines it (Grootendorst 2022, "BERTopic: Neural topic modeling with a
  class-based TF-IDF procedure", arXiv:2203.05794, eq. 1): all documents of a cluster are joined
  into one class document c, and a term t weighs

      W(t, c) = tf(t, c) * log(1 + A / f(t))

  with tf(t, c) the frequency of t in c divided by the number of words in c (l1-normalised, as
  BERTopic's ClassTfidfTransformer does), A the average number of words per class and f(t) the
  frequency of t over all classes. A term as common everywhere as in c gets little weight; one
  concentrated in c gets much. ``reduce_frequent_words`` takes the square root of tf first
  (BERTopic's option of that name), which damps words frequent in every class ("film" in film
  reviews). English stop words are removed; scikit-learn's CountVectorizer counts.
  """
  from scipy import sparse  # pylint: disable=import-outside-toplevel
  from sklearn.feature_extraction.text import CountVectorizer  # pylint: disable=import-outside-toplevel
  labels = np.asarray(labels)
  if labels.shape != (len(texts),) or not np.issubdtype(labels.dtype, np.integer):
    raise UserError(f"labels must be {len(texts)} integers (one cluster per text), got "
                    f"{labels.dtype} of shape {labels.shape}.")
  vectorizer = CountVectorizer(stop_words="english", token_pattern=TOKEN_PATTERN,
                               ngram_range=ngram_range)
  try:
    counts = vectorizer.fit_transform(texts)
  except ValueError as err:  # "empty vocabulary": only stop words, numbers or nothing
    raise UserError(f"No words to describe the clusters with ({err}); the texts hold only "
                    "stop words, numbers or nothing.") from err
  clusters, rows = np.unique(labels, return_inverse=True)
  # Counting each document and summing per cluster gives the counts of the joined class
  # document (BERTopic joins the texts with spaces first; no word spans two documents).
  membership = sparse.csr_matrix((np.ones(len(labels)), (rows, np.arange(len(labels)))),
                                 shape=(len(clusters), len(labels)))
  per_class = np.asarray((membership @ counts).todense(), np.float64)
  words_per_class = per_class.sum(1, keepdims=True)
  tf = per_class / np.maximum(words_per_class, 1)
  if reduce_frequent_words:
    tf = np.sqrt(tf)
  idf = np.log(1 + words_per_class.mean() / np.maximum(per_class.sum(0), 1))
  return clusters, vectorizer.get_feature_names_out(), tf * idf


def class_tfidf(texts: Sequence[str], labels, *, top_n: int = 10,
                reduce_frequent_words: bool = False,
                ngram_range: tuple[int, int] = (1, 1)) -> dict[int, list[str]]:
  """Each cluster's ``top_n`` terms by c-TF-IDF (``class_tfidf_weights``), best first."""
  clusters, vocabulary, weights = class_tfidf_weights(
      texts, labels, reduce_frequent_words=reduce_frequent_words, ngram_range=ngram_range)
  top = np.argsort(-weights, axis=1, kind="stable")[:, :top_n]
  return {int(c): [str(vocabulary[j]) for j in top[row] if weights[row, j] > 0]
          for row, c in enumerate(clusters)}


def topic_label(terms: Sequence[str], n: int = LABEL_TERMS) -> str:
  """The first ``n`` terms, less plurals of terms already taken ("movie, movies" says one thing)."""
  kept = []
  for term in terms:
    if not any(term in (k + "s", k + "es") or k in (term + "s", term + "es") for k in kept):
      kept.append(term)
    if len(kept) == n:
      break
  return ", ".join(kept)


def check_projection(method: str) -> None:
  if method not in PROJECTIONS:
    raise UserError(f"The topic map's projection must be one of {list(PROJECTIONS)}, got "
                    f"{method!r}.")


def project_2d(embeddings, *, method: str = "umap", n_neighbors: int = 15,
               min_dist: float = 0.1, n_epochs: int | None = None, seed: int = 0) -> np.ndarray:
  """(N, 2) float32 coordinates of the rows of ``embeddings`` for a scatter plot.

  UMAP with the cosine metric (BERTopic's choice for sentence embeddings) keeps neighbourhoods,
  so clusters stay apart; PCA is linear and fast but piles the clusters on one another.
  ``n_epochs`` None lets UMAP choose (200 above 10k points, 500 below).
  """
  x = np.asarray(embeddings, np.float32)
  if method == "pca":
    from sklearn.decomposition import PCA  # pylint: disable=import-outside-toplevel
    return PCA(2, random_state=seed).fit_transform(x).astype(np.float32)
  check_projection(method)
  from ycng_jax.cluster.manifold import umap_project  # pylint: disable=import-outside-toplevel
  return umap_project(x, 2, n_neighbors=max(2, min(n_neighbors, len(x) - 1)), min_dist=min_dist,
                      metric="cosine", n_epochs=n_epochs, seed=seed)


def anchors(xy: np.ndarray, labels: np.ndarray) -> dict[int, tuple[float, float]]:
  """Where each topic's label points: the member nearest the members' median.

  A median alone can fall between two islands of one topic in a UMAP layout; the nearest
  member lies on the topic.
  """
  out = {}
  for topic in np.unique(labels):
    members = xy[labels == topic]
    nearest = members[np.argmin(((members - np.median(members, 0)) ** 2).sum(1))]
    out[int(topic)] = (float(nearest[0]), float(nearest[1]))
  return out


def _overlaps(box, others, pad: float) -> bool:
  x0, y0, x1, y1 = box
  return any(x0 < b[2] + pad and b[0] < x1 + pad and y0 < b[3] + pad and b[1] < y1 + pad
             for b in others)


def _free_spot(size, anchor, placed, frame, pad: float):
  """The centre nearest ``anchor`` (display pixels) where a box of ``size`` overlaps nothing placed.

  Tries the anchor itself, then rings of growing radius, 24 positions a ring, first inside
  ``frame`` (the axes), then anywhere: space outside the axes is unbounded, so a spot is found.
  """
  w, h = size
  step = max(h, 4.0)
  for bounded in (True, False):
    radius = 0.0
    limit = math.hypot(frame[2] - frame[0], frame[3] - frame[1]) * (1 if bounded else 4)
    while radius <= limit:
      for k in range(1 if radius == 0 else 24):
        angle = 2 * math.pi * k / 24
        cx, cy = anchor[0] + radius * math.cos(angle), anchor[1] + radius * math.sin(angle)
        box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        inside = (box[0] >= frame[0] and box[1] >= frame[1] and box[2] <= frame[2]
                  and box[3] <= frame[3])
        if (inside or not bounded) and not _overlaps(box, placed, pad):
          return cx, cy, box
      radius += step
  raise AssertionError("unreachable: the unbounded search always finds a spot")


def _label_box(text, renderer):
  """A label's extent in display pixels, its rounded box included."""
  from matplotlib.transforms import Bbox  # pylint: disable=import-outside-toplevel
  boxes = [text.get_window_extent(renderer)]
  if text.get_bbox_patch() is not None:
    text.update_bbox_position_size(renderer)  # else the box is sized only when drawn
    boxes.append(text.get_bbox_patch().get_window_extent(renderer))
  return Bbox.union(boxes)


def draw_topic_map(xy: np.ndarray, labels: np.ndarray, topics: dict[int, list[str]],
                   path: str | os.PathLike, *, title: str, dpi: int = 110,
                   fontsize: float = 8.5, pad: float = 3.0) -> list[tuple[float, ...]]:
  """Writes the scatter to ``path`` (PNG); returns each label's box in the PNG's pixels.

  Labels are placed largest topic first, each at its anchor if free, else at the nearest free
  spot (a thin line joins it to its anchor): a deterministic search over the boxes the renderer
  measures, so no two labels overlap. Boxes are (left, top, right, bottom), y down, as in
  the saved image. Colours are tab20 by topic id, as in the interactive map.
  """
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  labels = np.asarray(labels)
  palette = plt.get_cmap("tab20")
  fig, ax = plt.subplots(figsize=(11, 9), dpi=dpi)
  try:
    dot = float(np.clip(30000 / max(len(xy), 1), 4, 12))  # bigger dots when there are fewer
    ax.scatter(xy[:, 0], xy[:, 1], c=palette(labels % 20), s=dot, alpha=0.6, linewidths=0)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    # The frame holds the bulk of the points: a few far islands (groups of near-copies, which
    # UMAP packs tightly and sets apart) would else shrink everything else to a corner. Fixing
    # the limits also freezes the data-to-pixel transform before the labels are measured.
    low, high = np.quantile(xy, [FRAME_QUANTILE, 1 - FRAME_QUANTILE], axis=0)
    margin = 0.06 * np.maximum(high - low, 1e-6)
    ax.set_xlim(low[0] - margin[0], high[0] + margin[0])
    ax.set_ylim(low[1] - margin[1], high[1] + margin[1])
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer).extents
    where = anchors(xy, labels)
    sizes = np.bincount(labels, minlength=max(where, default=0) + 1)
    placed, texts = [], []
    for topic in sorted(where, key=lambda t: (-sizes[t], t)):
      text = ax.text(*where[topic], topic_label(topics.get(topic, [])) or f"topic {topic}",
                     fontsize=fontsize, ha="center", va="center", zorder=4,
                     bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": palette(topic % 20),
                           "alpha": 0.92})
      box = _label_box(text, renderer)
      anchor_px = np.clip(ax.transData.transform(where[topic]), frame[:2], frame[2:])
      cx, cy, spot = _free_spot((box.width, box.height), anchor_px, placed, frame, pad)
      centre = ax.transData.inverted().transform((cx, cy))
      text.set_position(centre)
      if math.hypot(cx - anchor_px[0], cy - anchor_px[1]) > box.height / 2:
        ax.annotate("", where[topic], centre, zorder=3,
                    arrowprops={"arrowstyle": "-", "color": "0.3", "lw": 0.6})
      placed.append(spot)
      texts.append(text)
    fig.savefig(path, dpi=dpi)
    # Measured again after saving, at the saved resolution: the boxes of the PNG itself.
    renderer = fig.canvas.get_renderer()
    height = fig.bbox.height
    return [(b.x0, height - b.y1, b.x1, height - b.y0)
            for b in (_label_box(t, renderer) for t in texts)]
  finally:
    plt.close(fig)


def _short(text: str) -> str:
  text = " ".join(text.split())
  return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS - 1].rstrip() + "…"


def topic_map_json(xy: np.ndarray, labels: np.ndarray, texts: Sequence[str],
                   topics: dict[int, list[str]], sizes: dict[int, int], *, title: str,
                   max_points: int = MAX_JSON_POINTS, seed: int = 0) -> dict:
  """The map as data: ``{"title", "points": [{"x", "y", "topic", "text"}], "topics": [{"id",
  "label", "terms", "x", "y", "size"}]}``, at most ``max_points`` points (a seeded subsample),
  texts cut to ~200 characters. ``texts[i]`` is the text of ``xy[i]``; ``sizes`` counts each
  topic's documents in the whole corpus, not only those drawn.
  """
  labels = np.asarray(labels)
  if not len(xy) == len(labels) == len(texts):
    raise UserError(f"xy, labels and texts must have one row per point, got {len(xy)}, "
                    f"{len(labels)} and {len(texts)}.")
  keep = np.arange(len(xy))
  if len(keep) > max_points:
    keep = np.sort(np.random.default_rng(seed).choice(len(xy), max_points, replace=False))
  where = anchors(xy, labels)
  return {
      "title": title,
      "points": [{"x": round(float(xy[i, 0]), 4), "y": round(float(xy[i, 1]), 4),
                  "topic": int(labels[i]), "text": _short(texts[i])} for i in keep],
      "topics": [{"id": t, "label": topic_label(topics.get(t, [])) or f"topic {t}",
                  "terms": list(topics.get(t, [])), "x": round(where[t][0], 4),
                  "y": round(where[t][1], 4), "size": int(sizes.get(t, 0))}
                 for t in sorted(where)],
  }


def write_topic_map_json(data: dict, path: str | os.PathLike) -> None:
  with open(path, "w", encoding="utf-8") as f:
    json.dump(data, f, ensure_ascii=False, separators=(",", ":"))

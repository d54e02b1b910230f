"""Topic maps: c-TF-IDF terms, labels that do not overlap, the topic_map.json schema.

UMAP itself is tested in tests/cluster/test_manifold.py, whose process already pays numba's
compile; here the 2-D coordinates are made by hand.
"""

import json
import math

import numpy as np
import pytest

from ycng_jax.errors import UserError
from ycng_jax.text import topic_map


def test_class_tfidf_ranks_a_distinctive_term_over_a_frequent_shared_one():
  # "film" is three times as frequent as "zombie" inside cluster 0, but it is as frequent in
  # every cluster; "zombie", "heist" and "wedding" each belong to one cluster.
  texts = (["the film film film zombie"] * 5 + ["a film film film heist"] * 5
           + ["film film film wedding and the"] * 5)
  labels = np.repeat([0, 1, 2], 5)
  topics = topic_map.class_tfidf(texts, labels, top_n=2)
  assert topics == {0: ["zombie", "film"], 1: ["heist", "film"], 2: ["wedding", "film"]}
  clusters, vocabulary, weights = topic_map.class_tfidf_weights(texts, labels)
  assert list(clusters) == [0, 1, 2] and "the" not in vocabulary  # English stop words are out
  # BERTopic's formula by hand: 20 words per class (stop words out), so A = 20; f(film) = 45,
  # f(zombie) = 5.
  film, zombie = list(vocabulary).index("film"), list(vocabulary).index("zombie")
  assert weights[0, film] == pytest.approx(15 / 20 * math.log(1 + 20 / 45))
  assert weights[0, zombie] == pytest.approx(5 / 20 * math.log(1 + 20 / 5))
  assert weights[1, zombie] == 0
  # A plain frequency count would have put "film" first: the ranking is not frequency.
  assert weights[0, film] < weights[0, zombie]
  damped = topic_map.class_tfidf_weights(texts, labels, reduce_frequent_words=True)[2]
  assert damped[0, film] == pytest.approx(math.sqrt(15 / 20) * math.log(1 + 20 / 45))
  with pytest.raises(UserError, match="labels must be 15 integers"):
    topic_map.class_tfidf(texts, labels[:3])
  with pytest.raises(UserError, match="No words to describe the clusters"):
    topic_map.class_tfidf(["the and", "of a"], np.array([0, 1]))


def test_topic_label_skips_plurals_of_terms_already_taken():
  assert topic_map.topic_label(["movie", "movies", "film", "sequel"]) == "movie, film, sequel"
  assert topic_map.topic_label(["boxes", "box", "fox"]) == "boxes, fox"
  assert topic_map.topic_label([]) == ""


def _crowded_map(n_topics=12, crowd=30, spread=10):
  """Each topic: ``crowd`` points in a small knot at the centre, where all the topics' knots
  (and so their labels' anchors) lie within a few pixels of one another, and ``spread`` points
  over the whole square, which sets the frame."""
  rng = np.random.default_rng(0)
  centres = 0.02 * rng.normal(size=(n_topics, 2))
  knots = centres[:, None] + 0.003 * rng.normal(size=(n_topics, crowd, 2))
  scattered = rng.uniform(-1, 1, size=(n_topics, spread, 2))
  xy = np.concatenate([knots, scattered], 1).reshape(-1, 2)
  labels = np.repeat(np.arange(n_topics), crowd + spread)
  topics = {t: [f"term{t}a", f"distinctive{t}", f"third{t}word", "unused"] for t in range(n_topics)}
  return xy.astype(np.float32), labels, topics


def test_labels_do_not_overlap_in_the_saved_figure(tmp_path):
  import matplotlib.image
  xy, labels, topics = _crowded_map()
  path = tmp_path / "map.png"
  boxes = topic_map.draw_topic_map(xy, labels, topics, path, title="crowded", dpi=80)
  image = matplotlib.image.imread(path)
  height, width = image.shape[:2]
  assert (width, height) == (11 * 80, 9 * 80) and len(boxes) == 12
  for i, a in enumerate(boxes):
    assert 0 <= a[0] < a[2] <= width and 0 <= a[1] < a[3] <= height
    for b in boxes[i + 1:]:
      assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    # The box is really there in the PNG: white-faced, with dark text inside.
    x0, y0, x1, y1 = (int(round(v)) for v in a)
    inside = image[y0 + 2:y1 - 2, x0 + 2:x1 - 2, :3].mean(-1)
    assert np.median(inside) > 0.85 and inside.min() < 0.3
  # Drawn at their anchors, the labels would all collide: the anchors lie within 0.1 of each
  # other on a frame 2 wide, while a label is far wider than 5% of the frame.
  anchors = np.array(list(topic_map.anchors(xy, labels).values()))
  assert np.ptp(anchors, 0).max() < 0.1
  assert min(b[2] - b[0] for b in boxes) > 0.05 * width


def test_topic_map_json_follows_the_schema(tmp_path):
  rng = np.random.default_rng(1)
  n = 6200
  labels = rng.integers(0, 3, n)
  xy = (labels[:, None] * 5.0 + rng.normal(size=(n, 2))).astype(np.float32)
  texts = [f"document {i} " + "word " * (i % 80) for i in range(n)]
  topics = {0: ["alpha", "alphas", "beta"], 1: ["gamma"], 2: []}
  sizes = {0: 5000, 1: 4000, 2: 3000}
  data = topic_map.topic_map_json(xy, labels, texts, topics, sizes, title="t", seed=0)
  path = tmp_path / "topic_map.json"
  topic_map.write_topic_map_json(data, path)
  loaded = json.loads(path.read_text(encoding="utf-8"))
  assert loaded == data and set(loaded) == {"title", "points", "topics"}
  assert loaded["title"] == "t" and len(loaded["points"]) == topic_map.MAX_JSON_POINTS
  for p in loaded["points"]:
    assert set(p) == {"x", "y", "topic", "text"}
    assert isinstance(p["x"], float) and isinstance(p["y"], float)
    assert isinstance(p["topic"], int) and isinstance(p["text"], str)
    assert len(p["text"]) <= topic_map.MAX_TEXT_CHARS and p["text"].startswith("document ")
  assert any(p["text"].endswith("…") for p in loaded["points"])
  assert [t["id"] for t in loaded["topics"]] == [0, 1, 2]
  for t in loaded["topics"]:
    assert set(t) == {"id", "label", "terms", "x", "y", "size"}
    assert isinstance(t["x"], float) and isinstance(t["y"], float) and isinstance(t["size"], int)
    assert isinstance(t["label"], str) and all(isinstance(w, str) for w in t["terms"])
  assert [t["label"] for t in loaded["topics"]] == ["alpha, beta", "gamma", "topic 2"]
  assert [t["size"] for t in loaded["topics"]] == [5000, 4000, 3000]
  assert loaded["topics"][2]["x"] == pytest.approx(10, abs=0.5)  # on its topic's points
  # The subsample is seeded: the same seed draws the same points.
  assert topic_map.topic_map_json(xy, labels, texts, topics, sizes, title="t", seed=0) == data
  with pytest.raises(UserError, match="one row per point"):
    topic_map.topic_map_json(xy, labels[:5], texts, topics, sizes, title="t")

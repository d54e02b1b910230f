"""The interactive topic map: ``topic_map.json`` drawn as inline SVG, a point's text on hover.

``topic_map.json`` (written beside ``topic_map.png`` by the topic-10 experiments):
``{"title": str, "points": [{"x", "y", "topic", "text"}], "topics": [{"id", "label", "terms",
"x", "y", "size"}]}``. At most ``MAX_POINTS`` points are drawn (a seeded subsample) to keep
the page light; a few lines of inline script show the hovered point's topic and text.
"""

from __future__ import annotations

import html
import json
import pathlib
from typing import Any

import numpy as np

from ycng_jax.errors import UserFileError
from ycng_jax.report.workdir import is_number

MAX_POINTS = 5000
WIDTH, HEIGHT, MARGIN = 960, 600, 20
# matplotlib's tab20, its ten strong colours first so up to ten topics are easy to tell apart
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
           "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"]

_POINT_FIELDS = {"x": "number", "y": "number", "topic": "int", "text": "str"}
_TOPIC_FIELDS = {"id": "int", "label": "str", "terms": "list", "x": "number", "y": "number",
                 "size": "int"}


def _kind_ok(value: Any, kind: str) -> bool:
  if kind == "number":
    return is_number(value)
  if kind == "int":
    return isinstance(value, int) and not isinstance(value, bool)
  return isinstance(value, {"str": str, "list": list}[kind])


def check(data: Any, path: str | pathlib.Path) -> dict[str, Any]:
  """The topic map, or a UserFileError naming the file, the entry and the field."""
  expected = ('{"title": str, "points": [{"x", "y", "topic", "text"}], "topics": [{"id", '
              '"label", "terms", "x", "y", "size"}]}')
  if not isinstance(data, dict) or not isinstance(data.get("points"), list) \
      or not isinstance(data.get("topics"), list):
    raise UserFileError(f"{path} is not a topic map: expected {expected}")
  for part, fields in (("points", _POINT_FIELDS), ("topics", _TOPIC_FIELDS)):
    for i, entry in enumerate(data[part]):
      for field, kind in fields.items():
        if not isinstance(entry, dict) or not _kind_ok(entry.get(field), kind):
          got = entry.get(field) if isinstance(entry, dict) else entry
          raise UserFileError(f"{path}: {part}[{i}].{field} should be a {kind}, got {got!r} "
                              f"(a topic map is {expected})")
  return data


def subsample(points: list[dict], cap: int = MAX_POINTS, seed: int = 0) -> list[dict]:
  if len(points) <= cap:
    return points
  keep = np.sort(np.random.default_rng(seed).choice(len(points), cap, replace=False))
  return [points[i] for i in keep]


def render(data: dict[str, Any], element_id: str = "topic-map") -> str:
  """An HTML fragment: the SVG scatter, topic labels, a hover tooltip and the topic list."""
  points, topics = subsample(data["points"]), data["topics"]
  xs = [p["x"] for p in points] + [t["x"] for t in topics]
  ys = [p["y"] for p in points] + [t["y"] for t in topics]
  if not xs:
    return "<p>The topic map has no points.</p>"
  x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
  # One scale for both axes (a projection's distances mean the same across and up), centred.
  scale = min((WIDTH - 2 * MARGIN) / ((x1 - x0) or 1.0),
              (HEIGHT - 2 * MARGIN) / ((y1 - y0) or 1.0))
  left = (WIDTH - (x1 - x0) * scale) / 2
  bottom = HEIGHT - (HEIGHT - (y1 - y0) * scale) / 2

  def to_svg(x, y):  # SVG's y grows downwards
    return left + (x - x0) * scale, bottom - (y - y0) * scale

  colour = {t["id"]: PALETTE[i % len(PALETTE)] for i, t in enumerate(topics)}
  circles = []
  for p in points:
    cx, cy = to_svg(p["x"], p["y"])
    circles.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="2.6" '
                   f'fill="{colour.get(p["topic"], "#999999")}" data-topic="{p["topic"]}" '
                   f'data-text="{html.escape(p["text"][:300])}"></circle>')
  labels = []
  for t in topics:
    cx, cy = to_svg(t["x"], t["y"])
    labels.append(f'<text x="{cx:.1f}" y="{cy:.1f}" class="tm-label">{html.escape(t["label"])}'
                  '</text>')
  names = json.dumps({str(t["id"]): t["label"] for t in topics}).replace("</", "<\\/")
  shown = (f"{len(points):,} of {len(data['points']):,} points (a seeded subsample)"
           if len(points) < len(data["points"]) else f"{len(points):,} points")
  rows = "".join(f"<tr><td>{t['id']}</td><td><span class='swatch' style='background:"
                 f"{colour[t['id']]}'></span>{html.escape(t['label'])}</td><td>{t['size']:,}</td>"
                 f"<td>{html.escape(', '.join(map(str, t['terms'][:10])))}</td></tr>"
                 for t in topics)
  return f"""<div class="topic-map" id="{element_id}">
<p class="note">{html.escape(str(data.get('title', 'Topic map')))}: {shown}. Hover a point to read
its text.</p>
<div class="tm-frame"><svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img"
aria-label="{html.escape(str(data.get('title', 'topic map')))}">
<g class="tm-points">{''.join(circles)}</g><g class="tm-labels">{''.join(labels)}</g></svg>
<div class="tm-tip" hidden></div></div>
<table class="data"><tr><th>topic</th><th>label</th><th>documents</th><th>terms</th></tr>{rows}
</table>
<script>(function () {{
  var root = document.getElementById("{element_id}"), names = {names};
  var frame = root.querySelector(".tm-frame"), tip = root.querySelector(".tm-tip");
  frame.addEventListener("mouseover", function (e) {{
    var t = e.target;
    if (!t.dataset || t.dataset.text === undefined) return;
    var topic = names[t.dataset.topic] || "topic " + t.dataset.topic;
    tip.textContent = topic + ": " + t.dataset.text;
    var box = frame.getBoundingClientRect();
    tip.style.left = Math.min(e.clientX - box.left + 12, box.width - 320) + "px";
    tip.style.top = (e.clientY - box.top + 12) + "px";
    tip.hidden = false;
  }});
  frame.addEventListener("mouseout", function (e) {{
    if (e.target.dataset && e.target.dataset.text !== undefined) tip.hidden = true;
  }});
}})();</script>
</div>"""

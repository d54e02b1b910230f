"""Figures for a report: captions for the PNGs experiments write, learning curves drawn from
metrics.jsonl, and images as data URIs so a page is one self-contained file."""

from __future__ import annotations

import base64
import io
import pathlib
import re
from typing import Any

from ycng_jax.report.workdir import is_number

# File name (a regex over the stem) -> caption; groups fill {0}, {1}. First match wins.
CAPTIONS: list[tuple[str, str]] = [
    (r"curves", "Learning curves per epoch (loss and accuracy; train and validation), "
     "drawn by the experiment."),
    (r"curves_(\d+)", "Validation accuracy per epoch with {0} training examples, one curve per "
     "regime (from scratch, frozen base, fine-tuned), mean over seeds."),
    (r"confusion(?:_matrix)?(?:_(.+))?", "Confusion matrix{0:prefix}: true class (rows) against "
     "predicted class (columns)."),
    (r"embedding", "The learned embedding projected to 2-D (PCA), coloured by cluster."),
    (r"embedding_map", "Test embeddings projected to 2-D (PCA), coloured by class, beside the "
     "same projection of the raw pixels."),
    (r"clusters", "Cluster grid: random samples of each cluster, one row per cluster."),
    (r"distances", "Histogram of embedding distances of same-class and different-class test "
     "pairs, with the verification threshold."),
    (r"test_pairs", "Test pairs with their embedding distance; red titles are wrong verdicts."),
    (r"one_shot", "One-shot episodes: the query, the support set and the pick (green right, "
     "red wrong)."),
    (r"neighbours_(.+)", "Retrieval grid: query images (left) and their nearest neighbours by "
     "{0} features."),
    (r"topic_map", "Topic map: clusters of sentence embeddings in 2-D, labelled by their most "
     "distinctive terms."),
    (r"(?:tuning|optimization_history|trials?)(?:_(.+))?", "Hyperparameter tuning{0:prefix}: "
     "the objective of each trial and the best so far."),
    (r"(?:param_importances?|importances?)", "Hyperparameter importance for the tuning "
     "objective."),
    (r"(?:parallel_coordinates?|contour|slice)(?:_(.+))?", "Hyperparameter tuning{0:prefix}: "
     "trial values against the objective."),
]


def caption(path: str | pathlib.Path) -> str:
  """A caption for a figure of a known name; otherwise the file name made readable."""
  stem = pathlib.Path(path).stem
  for pattern, text in CAPTIONS:
    match = re.fullmatch(pattern, stem)
    if match:
      groups = [g.replace("_", " ") if g else "" for g in match.groups()]
      return _fill(text, groups)
  words = re.sub(r"[_\-.]+", " ", stem).strip()
  return (words[:1].upper() + words[1:] + ".") if words else pathlib.Path(path).name


def _fill(text: str, groups: list[str]) -> str:
  """``{0}`` -> the group; ``{0:prefix}`` -> " (group)" or nothing when the group is empty."""
  def one(match):
    value = groups[int(match.group(1))] if int(match.group(1)) < len(groups) else ""
    if match.group(2) == "prefix":
      return f" ({value})" if value else ""
    return value
  return re.sub(r"\{(\d+)(?::(\w+))?\}", one, text)


def data_uri(data: bytes, mime: str = "image/png") -> str:
  return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def file_data_uri(path: pathlib.Path) -> str:
  return data_uri(path.read_bytes())


# Keys of metrics.jsonl records that say where a record sits, not what was measured.
_POSITION = {"step", "epoch", "iteration", "split", "phase", "seed", "final", "method"}


def curve_panels(records: list[dict[str, Any]], max_panels: int = 6) -> dict[str, dict]:
  """Learning curves from metrics.jsonl, grouped into panels.

  A panel is a metric with its ``val_``/``test_`` prefix dropped (``loss`` holds loss and
  val_loss), per training phase where records name one (DEC's pretrain and dec phases count
  differently). Lines are per metric, split (the trainer's step logs vs epoch ends) and seed.
  The x axis is ``step``, else ``epoch``, else ``iteration``, else the record's position.
  Panels of a constant (a learning rate without schedule) are left out.
  Returns ``{panel: {"x": axis name, "lines": {label: (xs, ys)}}}``, loss and accuracy first.
  """
  panels: dict[str, dict] = {}
  seeds = {r.get("seed") for r in records if "seed" in r}
  for position, record in enumerate(records):
    if record.get("final") is True or record.get("phase") == "result":
      continue
    x_name = next((k for k in ("step", "epoch", "iteration") if k in record), "record")
    x = record.get(x_name, position)
    if not is_number(x):
      continue
    for key, value in record.items():
      if key in _POSITION or not is_number(value):
        continue
      base = re.sub(r"^(val|test)_", "", key)
      panel = base + (f" ({record['phase']})" if "phase" in record else "")
      label = key + (f" [{record['split']}]" if "split" in record else "")
      label += f" seed {record['seed']}" if len(seeds) > 1 and "seed" in record else ""
      entry = panels.setdefault(panel, {"x": x_name, "lines": {}})
      xs, ys = entry["lines"].setdefault(label, ([], []))
      xs.append(float(x))
      ys.append(float(value))
  # A panel whose many values are all the same (a constant learning rate) says little.
  panels = {p: v for p, v in panels.items()
            if len([y for _, ys in v["lines"].values() for y in ys]) == 1
            or len({y for _, ys in v["lines"].values() for y in ys}) > 1}
  order = sorted(panels, key=lambda p: (not p.startswith("loss"), not p.startswith("accuracy"),
                                        -sum(len(v[0]) for v in panels[p]["lines"].values()), p))
  return {p: panels[p] for p in order[:max_panels]}


def learning_curves_png(records: list[dict[str, Any]]) -> bytes | None:
  """The curve panels as one PNG, or None when metrics.jsonl has nothing to draw."""
  panels = curve_panels(records)
  if not panels:
    return None
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  columns = min(3, len(panels))
  rows = -(-len(panels) // columns)
  fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
  for ax, (name, panel) in zip(axes.flat, panels.items()):
    for label, (xs, ys) in panel["lines"].items():
      ax.plot(xs, ys, marker="o" if len(xs) <= 30 else None, markersize=3, label=label)
    ax.set_title(name)
    ax.set_xlabel(panel["x"])
    ax.grid(alpha=0.3)
    if len(panel["lines"]) <= 8:
      ax.legend(fontsize=7)
  for ax in list(axes.flat)[len(panels):]:
    ax.axis("off")
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=90)
  plt.close(fig)
  return buffer.getvalue()

"""Hand-made workdirs and a bench.json for the report tests: real files in the layout runs write."""

from __future__ import annotations

import json
import pathlib

import numpy as np


def make_workdir(path: pathlib.Path, *, experiment: str | None = None, config: dict | None = None,
                 records: list[dict] | None = None, results: dict | None = None,
                 finished: bool | None = None, figures: tuple[str, ...] = (),
                 extra_lines: str = "") -> pathlib.Path:
  """A workdir as ``ycng run`` leaves it; ``finished=None`` writes no run.json (older runs)."""
  path.mkdir(parents=True, exist_ok=True)
  (path / "config.json").write_text(json.dumps(config if config is not None else {"seed": 0}))
  lines = "".join(json.dumps(r) + "\n" for r in records or [])
  (path / "metrics.jsonl").write_text(lines + extra_lines)
  if results is not None:
    (path / "results.json").write_text(json.dumps(results))
  if finished is not None:
    (path / "run.json").write_text(json.dumps({
        "experiment": experiment, "overrides": {}, "finished": finished,
        "command": f"ycng run {experiment} --workdir {path}", "started": "2026-12-03T10:00:00"}))
  for name in figures:
    import matplotlib.image  # pylint: disable=import-outside-toplevel
    matplotlib.image.imsave(path / name, np.arange(64, dtype=float).reshape(8, 8))
  return path


def trainer_records(test_accuracy: float, steps: int = 3) -> list[dict]:
  """What the shared trainer logs: step records, epoch ends with val_*, then the final one."""
  records = []
  for step in range(1, steps + 1):
    records.append({"step": step * 10, "epoch": step, "split": "epoch", "loss": 1.0 / step,
                    "accuracy": 0.5 + 0.1 * step, "val_loss": 1.2 / step,
                    "val_accuracy": 0.45 + 0.1 * step})
  records.append({"final": True, "step": steps * 10, "test_accuracy": test_accuracy,
                  "test_loss": 1 - test_accuracy})
  return records


def bench_result() -> dict:
  """A `ycng bench` result in its schema: one benchmark ok, one failed, one skipped."""
  row = {"script": "scripts/bench/knn_vs_faiss.py", "metric": "queries/s", "peer": "faiss-cpu 1.9 "
         "IndexFlatIP", "higher_is_better": True, "notes": "", "error": None, "seconds": 12.5}
  return {
      "created": "2026-12-03T12:00:00", "mode": "quick",
      "machine": {"cpu": "Test CPU @ 2.0GHz", "cores": 2, "accelerator": None,
                  "platform": "Linux-6.1-x86_64", "versions": {"jax": "0.10.2", "faiss": "1.9"}},
      "benchmarks": [
          {**row, "name": "knn_exact", "command": "python3 scripts/bench/knn_vs_faiss.py --quick",
           "ours": 5000.0, "theirs": 2000.0, "ratio": 2.5, "status": "ok",
           "notes": "10k x 384 float32"},
          {**row, "name": "kmeans", "script": "scripts/bench/kmeans_vs_sklearn.py",
           "command": "python3 scripts/bench/kmeans_vs_sklearn.py --quick", "metric": "seconds",
           "higher_is_better": False, "ours": None, "theirs": None, "ratio": None,
           "status": "failed", "error": "RuntimeError: out of memory", "seconds": 3.0},
          {**row, "name": "encode", "script": "scripts/bench/encode_vs_sentence_transformers.py",
           "command": "python3 scripts/bench/encode_vs_sentence_transformers.py --quick",
           "ours": None, "theirs": None, "ratio": None, "status": "skipped",
           "error": "sentence-transformers is not installed", "seconds": 0.0}]}


def topic_map(num_points: int = 6000) -> dict:
  rng = np.random.default_rng(1)
  centres = [(-5.0, 0.0), (5.0, 0.0), (0.0, 6.0)]
  points = []
  for i in range(num_points):
    topic = i % 3
    x, y = np.array(centres[topic]) + rng.normal(0, 1, 2)
    points.append({"x": float(x), "y": float(y), "topic": topic,
                   "text": f"document {i} about topic {topic} <b>&amp; more</b>"})
  topics = [{"id": t, "label": label, "terms": label.split(", "), "x": cx, "y": cy,
             "size": num_points // 3}
            for t, (label, (cx, cy)) in enumerate(zip(["film, movie, plot", "python, library",
                                                       "game, player"], centres))]
  return {"title": "Topic map of test documents", "points": points, "topics": topics}

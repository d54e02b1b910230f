"""A ``ycng bench`` result (``bench.json``) as a report page: the machine, and per benchmark our
figure, the peer's, their ratio (> 1: we are faster) and the command that reruns it."""

from __future__ import annotations

import dataclasses
import html
import json
import math
import pathlib
from typing import Any

from ycng_jax.errors import UserFileError
from ycng_jax.report.summary import format_number

BENCH_JSON = "bench.json"
_FIELDS = {"name": str, "script": str, "command": str, "metric": str, "peer": str,
           "higher_is_better": bool, "notes": str, "status": str}
_NUMBERS = ("ours", "theirs", "ratio", "seconds")
STATUSES = ("ok", "failed", "skipped")


@dataclasses.dataclass
class Bench:
  path: pathlib.Path
  data: dict[str, Any]

  @property
  def title(self) -> str:
    return f"Benchmarks ({self.data['mode']}, {self.data['created']})"


def bench_file(path: str | pathlib.Path) -> pathlib.Path | None:
  """``path`` itself when it is a bench JSON file, the bench.json in it when a folder holds
  one (and is not a workdir), else None."""
  path = pathlib.Path(path)
  if path.is_file() and path.suffix == ".json":
    return path
  if path.is_dir() and (path / BENCH_JSON).is_file() and not (path / "config.json").exists() \
      and not (path / "metrics.jsonl").exists():
    return path / BENCH_JSON
  return None


def read_bench(path: pathlib.Path) -> Bench:
  """Read and check a bench.json; a field missing or of the wrong kind is a UserFileError."""
  try:
    data = json.loads(path.read_text(encoding="utf-8"))
  except (OSError, ValueError) as e:
    raise UserFileError(f"{path} is not readable JSON ({e}); give ycng report the bench.json "
                        "that `ycng bench` wrote") from None

  def bad(what: str) -> UserFileError:
    return UserFileError(f"{path} is not a `ycng bench` result: {what} (expected the bench.json "
                         "schema: created, mode, machine, benchmarks)")

  if not isinstance(data, dict):
    raise bad("the file is not a JSON object")
  for key, kind in (("created", str), ("mode", str), ("machine", dict), ("benchmarks", list)):
    if not isinstance(data.get(key), kind):
      raise bad(f"{key!r} is missing or not a {kind.__name__}")
  for i, row in enumerate(data["benchmarks"]):
    if not isinstance(row, dict):
      raise bad(f"benchmarks[{i}] is not an object")
    for key, kind in _FIELDS.items():
      if not isinstance(row.get(key), kind):
        raise bad(f"benchmarks[{i}].{key} is missing or not a {kind.__name__}")
    for key in _NUMBERS:
      value = row.get(key)
      if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise bad(f"benchmarks[{i}].{key} should be a number or null, got {value!r}")
    if row["status"] not in STATUSES:
      raise bad(f"benchmarks[{i}].status is {row['status']!r}, not one of {STATUSES}")
  return Bench(path, data)


def _number(value: Any) -> str:
  return "" if value is None else format_number(value)


def machine_html(bench: Bench) -> str:
  machine = bench.data["machine"]
  versions = machine.get("versions") or {}
  line = ", ".join(html.escape(str(x)) for x in (
      machine.get("cpu"), f"{machine.get('cores')} cores",
      machine.get("accelerator") or "no accelerator", machine.get("platform")) if x)
  packages = ", ".join(f"{html.escape(str(k))} {html.escape(str(v))}"
                       for k, v in sorted(versions.items()))
  return (f"<p><b>Machine:</b> {line}.</p><p class='note'><b>Versions:</b> {packages}</p>"
          f"<p class='note'>Mode <b>{html.escape(bench.data['mode'])}</b>, created "
          f"{html.escape(bench.data['created'])}; ratio &gt; 1 means ours is faster (ours/theirs "
          "when higher is better, theirs/ours for times).</p>")


def table_html(bench: Bench, with_commands: bool = True) -> str:
  head = ["benchmark", "metric", "ours", "theirs", "peer", "ratio", "status", "seconds"]
  out = ["<table class='data bench'><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
  for row in bench.data["benchmarks"]:
    ratio = row.get("ratio")
    tone = "" if ratio is None else (" class='good'" if ratio >= 1 else " class='bad'")
    status = html.escape(row["status"])
    if row.get("error"):
      status += f"<div class='note'>{html.escape(str(row['error'])[:300])}</div>"
    arrow = "higher is better" if row["higher_is_better"] else "lower is better"
    cells = [f"<b>{html.escape(row['name'])}</b>",
             f"{html.escape(row['metric'])}<div class='note'>{arrow}</div>",
             _number(row.get("ours")), _number(row.get("theirs")), html.escape(row["peer"]),
             f"<span{tone}>{_number(ratio)}{'x' if ratio is not None else ''}</span>",
             f"<span class='status-{html.escape(row['status'])}'>{status}</span>",
             _number(row.get("seconds"))]
    out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    extra = []
    if with_commands:
      extra.append(f"<code>{html.escape(row['command'])}</code>")
    if row["notes"]:
      extra.append(f"<span class='note'>{html.escape(row['notes'])}</span>")
    if extra:
      out.append(f"<tr class='sub'><td colspan='{len(head)}'>{' '.join(extra)}</td></tr>")
  out.append("</table>")
  return "".join(out)


def ratio_chart_svg(bench: Bench) -> str:
  """Horizontal bars of each ok benchmark's ratio on a log scale, with a line at 1x."""
  rows = [r for r in bench.data["benchmarks"]
          if r["status"] == "ok" and isinstance(r.get("ratio"), (int, float)) and r["ratio"] > 0]
  if not rows:
    return "<p class='note'>No benchmark has a ratio to draw.</p>"
  logs = [math.log10(r["ratio"]) for r in rows]
  span = max(1.0, max(abs(v) for v in logs))
  label_w, bar_w, row_h = 260, 420, 22
  mid = label_w + bar_w / 2
  parts = [f"<svg class='ratios' viewBox='0 0 {label_w + bar_w + 70} {row_h * len(rows) + 24}' "
           "role='img' aria-label='ratio per benchmark'>"]
  for i, (row, value) in enumerate(zip(rows, logs)):
    y = 4 + i * row_h
    width = abs(value) / span * bar_w / 2
    x = mid if value >= 0 else mid - width
    colour = "#2e7d32" if value >= 0 else "#c62828"
    parts.append(f"<text x='{label_w - 6}' y='{y + 14}' text-anchor='end'>"
                 f"{html.escape(row['name'][:40])}</text>"
                 f"<rect x='{x:.1f}' y='{y + 3}' width='{max(width, 1):.1f}' height='{row_h - 6}' "
                 f"fill='{colour}'><title>{html.escape(row['name'])}: "
                 f"{format_number(row['ratio'])}x</title></rect>"
                 f"<text x='{(x + width + 4) if value >= 0 else (x - 4):.1f}' y='{y + 14}' "
                 f"text-anchor='{'start' if value >= 0 else 'end'}'>"
                 f"{format_number(row['ratio'])}x</text>")
  bottom = row_h * len(rows) + 8
  parts.append(f"<line x1='{mid}' y1='0' x2='{mid}' y2='{bottom}' stroke='#333'/>"
               f"<text x='{mid}' y='{bottom + 14}' text-anchor='middle'>1x (log scale: "
               f"{10 ** span:.3g}x at the ends)</text></svg>")
  return "".join(parts)

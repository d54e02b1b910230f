"""HTML pieces of a report, shared by the pages (``pages.py``) and the slide deck (``slides.py``).

Everything is inline (CSS, images as data URIs, the few lines of script): a page opens from
the disk with no network, and can be mailed as one file.
"""

from __future__ import annotations

import html
import json
from typing import Any, Sequence

from ycng_jax.report import figures as fig_lib
from ycng_jax.report import topic_map as topic_map_lib
from ycng_jax.report.summary import Group, format_number
from ycng_jax.report.workdir import INCOMPLETE, TOPIC_MAP, Workdir, is_number

CSS = """
body { font: 15px/1.45 -apple-system, "Segoe UI", "DejaVu Sans", Arial, sans-serif; margin: 0;
  color: #1d2733; background: #fff; }
main { max-width: 1180px; margin: 0 auto; padding: 20px 28px 60px; }
h1 { font-size: 26px; margin: 10px 0 6px; } h2 { font-size: 20px; margin: 28px 0 8px;
  border-bottom: 1px solid #dde3ea; padding-bottom: 4px; } h3 { font-size: 16px; }
a { color: #1559b3; } nav { font-size: 13px; margin-bottom: 8px; }
code, pre { font: 13px/1.4 "DejaVu Sans Mono", Menlo, Consolas, monospace; }
pre.command { background: #f3f5f8; border: 1px solid #dde3ea; padding: 10px 12px;
  white-space: pre-wrap; word-break: break-all; }
table.data { border-collapse: collapse; margin: 8px 0 14px; font-size: 13px; }
table.data th, table.data td { border: 1px solid #dde3ea; padding: 3px 8px; text-align: left;
  vertical-align: top; }
table.data th { background: #f3f5f8; } table.data td.num { text-align: right;
  font-variant-numeric: tabular-nums; }
tr.changed td { background: #fff4d6; } tr.changed td:first-child { font-weight: bold; }
tr.added td { background: #e8f4ff; }
tr.removed td { color: #8a94a0; text-decoration: line-through; }
tr.summary td { font-weight: bold; background: #f3f5f8; } tr.sub td { border-top: none;
  background: #fafbfc; }
.badge { display: inline-block; padding: 2px 9px; border-radius: 10px; font-size: 12px;
  vertical-align: middle; margin-left: 8px; }
.badge.ok { background: #e3f4e4; color: #1e6b23; }
.badge.incomplete { background: #ffe0d6; color: #a3300c; }
.banner { border: 2px solid #e0643c; background: #fff1ec; padding: 10px 14px; margin: 12px 0; }
.note { color: #5b6775; font-size: 13px; }
figure { margin: 14px 0 22px; } figure img { max-width: 100%; border: 1px solid #e6eaef; }
figcaption { font-size: 13px; color: #3c4753; margin-top: 4px; }
.good { color: #1e6b23; font-weight: bold; } .bad { color: #a3300c; font-weight: bold; }
.status-failed { color: #a3300c; } .status-skipped { color: #8a6d00; }
svg.ratios { width: 100%; max-width: 760px; font-size: 12px; }
.topic-map .tm-frame { position: relative; max-width: 960px; border: 1px solid #e6eaef; }
.topic-map svg { width: 100%; display: block; }
.topic-map circle { opacity: 0.75; } .topic-map circle:hover { opacity: 1; stroke: #000; }
.tm-label { font-size: 13px; font-weight: bold; text-anchor: middle; pointer-events: none;
  paint-order: stroke; stroke: #fff; stroke-width: 3px; }
.tm-tip { position: absolute; max-width: 300px; background: #1d2733; color: #fff;
  font-size: 12px; padding: 6px 8px; border-radius: 4px; pointer-events: none; }
details summary { cursor: pointer; color: #1559b3; margin: 8px 0; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 6px; }
"""


def esc(value: Any) -> str:
  return html.escape(str(value))


def value_html(value: Any, limit: int = 160) -> str:
  """A cell: numbers formatted, lists and dicts as compact JSON, long text cut."""
  if value is None:
    return ""
  if isinstance(value, (list, tuple, dict)):
    text = json.dumps(value, separators=(", ", ": "))
  elif isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool)):
    text = format_number(value)
  else:
    text = str(value)
  if len(text) > limit:
    text = text[:limit] + " …"
  return esc(text)


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], row_classes=None,
          raw: bool = False) -> str:
  """A data table; ``raw`` cells are HTML already."""
  out = ["<table class='data'><tr>" + "".join(f"<th>{esc(c)}</th>" for c in columns) + "</tr>"]
  for i, row in enumerate(rows):
    cls = f" class='{row_classes[i]}'" if row_classes and row_classes[i] else ""
    cells = []
    for cell in row:
      num = " class='num'" if is_number(cell) else ""
      cells.append(f"<td{num}>{cell if raw else value_html(cell)}</td>")
    out.append(f"<tr{cls}>{''.join(cells)}</tr>")
  return "".join(out) + "</table>"


def status_badge(workdir: Workdir) -> str:
  if workdir.complete:
    return "<span class='badge ok'>finished</span>"
  return f"<span class='badge incomplete'>{INCOMPLETE}</span>"


def incomplete_banner(workdir: Workdir) -> str:
  if workdir.complete:
    return ""
  why = ("run.json has no finished mark" if "finished" in workdir.run_info
         else "no results.json and no final record in metrics.jsonl")
  return (f"<div class='banner'><b>Incomplete (running or interrupted):</b> {why}. This report "
          "shows what the run had written so far; run the same command again to resume it, then "
          "rebuild the report.</div>")


def command_html(workdir: Workdir) -> str:
  if workdir.command:
    info = workdir.run_info
    when = " ".join(f"{k.capitalize()} {esc(info[k])}." for k in ("started", "ended")
                    if info.get(k))
    return (f"<pre class='command'><code>{esc(workdir.command)}</code></pre>"
            f"<p class='note'>Workdir <code>{esc(workdir.path)}</code>. {when}</p>")
  return ("<p><b>Command unknown:</b> this workdir has no run.json (it was written before "
          "<code>ycng run</code> recorded its command, or by another program). Workdir "
          f"<code>{esc(workdir.path)}</code>.</p>")


def metrics_html(workdir: Workdir) -> str:
  if not workdir.metrics:
    return f"<p class='note'>No metrics to list: {esc(workdir.metrics_source)}.</p>"
  rows = [[k, v] for k, v in workdir.metrics.items()]
  skipped = (f" {workdir.skipped_lines} unreadable line(s) of metrics.jsonl were skipped (a run "
             "killed while writing)." if workdir.skipped_lines else "")
  return (table(["metric", "value"], rows) +
          f"<p class='note'>From {esc(workdir.metrics_source)}.{skipped}</p>")


def result_tables_html(workdir: Workdir) -> str:
  return "".join(f"<h3>{esc(t.title)}</h3>" + table(t.columns, t.rows) for t in workdir.tables)


DIFFERS = ("changed", "added", "removed")


def config_intro(workdir: Workdir) -> str:
  differ = [r for r in workdir.config_rows if r.status in DIFFERS]
  if workdir.defaults_note:
    return f"<p class='note'>No diff against the defaults: {esc(workdir.defaults_note)}.</p>"
  if differ:
    return (f"<p>{len(differ)} key(s) differ from the defaults of <code>{esc(workdir.experiment)}"
            "</code> (highlighted; <i>added</i>: not in the defaults; <i>removed</i>: in the "
            "defaults, not in this run).</p>")
  return f"<p>Every key has the default of <code>{esc(workdir.experiment)}</code>.</p>"


def config_table(rows) -> str:
  return table(["key", "value", "default", ""],
               [[r.key, r.value if r.status != "removed" else "",
                 r.default if r.status not in ("added", "unknown") else "",
                 r.status if r.status in DIFFERS else ""] for r in rows],
               row_classes=[r.status for r in rows])


def config_html(workdir: Workdir) -> str:
  """What differs from the experiment's defaults, then the whole config (folded)."""
  differ = [r for r in workdir.config_rows if r.status in DIFFERS]
  full = (f"<details><summary>The whole config ({len(workdir.config)} keys)</summary>"
          f"{config_table(workdir.config_rows)}</details>") if workdir.config_rows else \
      "<p class='note'>This workdir has no config.json.</p>"
  return config_intro(workdir) + (config_table(differ) if differ else "") + full


def image_html(uri: str, caption: str, name: str = "") -> str:
  label = f"<code>{esc(name)}</code>: " if name else ""
  return (f"<figure><img src='{uri}' alt='{esc(caption)}'><figcaption>{label}{esc(caption)}"
          "</figcaption></figure>")


def curves_html(workdir: Workdir) -> str:
  png = fig_lib.learning_curves_png(workdir.records)
  if png is None:
    return "<p class='note'>metrics.jsonl has no curves to draw.</p>"
  return image_html(fig_lib.data_uri(png), "Learning curves from metrics.jsonl (one panel per "
                    "metric, validation and test beside train; x: the logged step, epoch or "
                    "iteration).")


def figure_items(workdir: Workdir) -> list[str]:
  return [image_html(fig_lib.file_data_uri(p), fig_lib.caption(p), p.name)
          for p in workdir.figures]


def topic_map_html(workdir: Workdir, element_id: str = "topic-map") -> str:
  if workdir.topic_map is None:
    return ""
  data = topic_map_lib.check(workdir.topic_map, workdir.path / TOPIC_MAP)
  return topic_map_lib.render(data, element_id)


def group_summary_html(group: Group) -> str:
  """One row per run (the config keys that vary, the metrics), then mean ± std."""
  stats = group.stats
  metrics = [m for m in stats if m != "step"]
  varying = [k for k in group.varying_config() if k not in ("workdir",)][:6]
  rows = []
  for w in group.workdirs:
    values = w.numeric_metrics()
    rows.append([esc(w.path.name)] + [value_html(w.config.get(k)) for k in varying] +
                [value_html(values[m]) if m in values else "" for m in metrics])
  rows.append(["<b>mean ± std</b>"] + [""] * len(varying) + [esc(stats[m]) for m in metrics])
  classes = [""] * len(group.workdirs) + ["summary"]
  note = (f"<p class='note'>{len(group.workdirs)} runs of <code>{esc(group.name)}</code>; mean ± "
          "population std over the runs that recorded each metric.</p>")
  return note + table(["workdir"] + varying + metrics, rows, classes, raw=True)


def page(title: str, body: str, nav: str = "") -> str:
  return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
          f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
          f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>{nav}{body}</main>"
          "</body></html>")

"""The report as one HTML slide deck: one idea per slide, keyboard navigation, and a print
stylesheet that puts one slide on each PDF page (print from the browser, landscape, no margins).

Keys: → ↓ Space PageDown next; ← ↑ Shift+Space PageUp previous; Home first; End last. The
slide number is kept in the URL (``slides.html#4``), so a reload stays on the slide.
"""

from __future__ import annotations

import datetime
from typing import Any, Sequence

from ycng_jax.report import bench as bench_lib
from ycng_jax.report import html as h
from ycng_jax.report.summary import Group, shared_metrics
from ycng_jax.report.workdir import Workdir

ROWS_PER_SLIDE = 12

SLIDE_CSS = """
html, body { height: 100%; margin: 0; overflow: hidden; background: #2b3440; }
.slide { display: none; position: absolute; inset: 0; box-sizing: border-box;
  padding: 4vh 5vw 6vh; background: #fff; overflow: auto; font-size: 20px; }
.slide.active { display: block; }
.slide h1 { font-size: 34px; } .slide h2 { font-size: 26px; border: none; margin-top: 0; }
.slide.title { display: none; } .slide.title.active { display: flex; flex-direction: column;
  justify-content: center; }
.slide figure { margin: 0; text-align: center; }
.slide figure img { width: 100%; height: 66vh; object-fit: contain; border: none; }
.slide table.data { font-size: 17px; } .slide .note { font-size: 15px; }
.slide pre.command { font-size: 15px; }
.slide .kv { columns: 3; font-size: 13px; } .slide .kv div { break-inside: avoid; }
.slide .topic-map .tm-frame { max-width: 92vh; }
#counter { position: fixed; right: 14px; bottom: 8px; color: #8a94a0; font-size: 12px; }
@media print {
  @page { size: 13.333in 7.5in; margin: 0; }
  html, body { height: auto; overflow: visible; background: #fff; }
  .slide, .slide.title { display: block; position: relative; width: 13.333in; height: 7.5in;
    overflow: hidden; break-after: page; page-break-after: always; }
  .slide.title { display: flex; flex-direction: column; justify-content: center; }
  .slide figure img { height: 5.4in; }
  #counter { display: none; }
}
"""

SLIDE_SCRIPT = """(function () {
  var slides = document.querySelectorAll(".slide"), current = 0;
  function show(n) {
    current = Math.max(0, Math.min(slides.length - 1, n));
    for (var k = 0; k < slides.length; k++) slides[k].classList.toggle("active", k === current);
    document.getElementById("counter").textContent = (current + 1) + " / " + slides.length;
    document.body.setAttribute("data-slide", String(current));
    try { history.replaceState(null, "", "#" + (current + 1)); } catch (e) {}
  }
  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    var key = e.key;
    if (key === " " && e.shiftKey || key === "ArrowLeft" || key === "ArrowUp" || key === "PageUp") {
      show(current - 1);
    } else if (key === " " || key === "ArrowRight" || key === "ArrowDown" || key === "PageDown") {
      show(current + 1);
    } else if (key === "Home") {
      show(0);
    } else if (key === "End") {
      show(slides.length - 1);
    } else {
      return;
    }
    e.preventDefault();
  });
  var start = parseInt(location.hash.slice(1), 10);
  show(isNaN(start) ? 0 : start - 1);
})();"""


def chunks(rows: Sequence[Any], size: int = ROWS_PER_SLIDE) -> list[Sequence[Any]]:
  return [rows[i:i + size] for i in range(0, len(rows), size)] or [rows]


def _slide(title: str, body: str, part: tuple[int, int] = (0, 1), cls: str = "") -> str:
  suffix = f" ({part[0] + 1}/{part[1]})" if part[1] > 1 else ""
  heading = f"<h2>{h.esc(title)}{suffix}</h2>" if title else ""
  return f"<section class='slide {cls}'>{heading}{body}</section>"


def workdir_slides(workdir: Workdir) -> list[str]:
  name = workdir.title
  slides = [_slide("", f"<h1>{h.esc(name)}{h.status_badge(workdir)}</h1>"
                   f"{h.incomplete_banner(workdir)}<p class='note'>Workdir "
                   f"<code>{h.esc(workdir.path)}</code></p>", cls="title")]
  differ = [r for r in workdir.config_rows if r.status in h.DIFFERS]
  pieces = chunks(differ)
  for i, rows in enumerate(pieces):
    body = (h.command_html(workdir) if i == 0 else "") + h.config_intro(workdir) + \
        (h.config_table(rows) if rows else "")
    if workdir.defaults_note and workdir.config:  # no diff to show: the config, compactly
      body += "<div class='kv'>" + "".join(
          f"<div><code>{h.esc(k)}</code> = {h.value_html(v, 60)}</div>"
          for k, v in sorted(workdir.config.items())) + "</div>"
    slides.append(_slide(f"{name}: command and config", body, (i, len(pieces))))
  metric_rows = [[k, v] for k, v in workdir.metrics.items()]
  pieces = chunks(metric_rows)
  for i, rows in enumerate(pieces):
    body = (h.table(["metric", "value"], rows) + f"<p class='note'>From "
            f"{h.esc(workdir.metrics_source)}.</p>") if rows else h.metrics_html(workdir)
    title = "final metrics" if workdir.complete else "metrics so far (incomplete run)"
    slides.append(_slide(f"{name}: {title}", body, (i, len(pieces))))
  for table in workdir.tables:
    pieces = chunks(table.rows)
    slides += [_slide(f"{name}: {table.title}", h.table(table.columns, rows), (i, len(pieces)))
               for i, rows in enumerate(pieces)]
  slides.append(_slide(f"{name}: learning curves", h.curves_html(workdir)))
  for path, item in zip(workdir.figures, h.figure_items(workdir)):
    slides.append(_slide(f"{name}: {path.name}", item))
  if workdir.topic_map is not None:
    slides.append(_slide(f"{name}: topic map",
                         h.topic_map_html(workdir, f"topic-map-{id(workdir)}")))
  return slides


def comparison_slide(groups: list[Group]) -> str:
  shared = shared_metrics(groups)
  rows = [[f"<code>{h.esc(g.name)}</code>", str(len(g.workdirs))] +
          [h.esc(g.stats[m]) if m in g.stats else "" for m in shared] for g in groups]
  note = "" if shared else "<p class='note'>The experiments share no metric.</p>"
  return _slide("Experiments side by side", h.table(["experiment", "runs"] + shared, rows,
                                                    raw=True) + note)


def bench_slides(bench: bench_lib.Bench) -> list[str]:
  return [_slide(bench.title, bench_lib.machine_html(bench) + bench_lib.ratio_chart_svg(bench)),
          _slide(f"{bench.title}: results", bench_lib.table_html(bench, with_commands=False))]


def deck(workdirs: list[Workdir], groups: list[Group], benches: list[bench_lib.Bench]) -> str:
  created = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
  names = "".join(f"<li><code>{h.esc(g.name)}</code> ({len(g.workdirs)} run(s))</li>"
                  for g in groups) + "".join(f"<li>{h.esc(b.title)}</li>" for b in benches)
  slides = [_slide("", f"<h1>ycng report</h1><p class='note'>Built {created}; arrow keys or "
                   f"space to move, print for a PDF.</p><ul>{names}</ul>", cls="title")]
  if len(groups) > 1:
    slides.append(comparison_slide(groups))
  for group in groups:
    if len(group.workdirs) > 1:
      slides.append(_slide(f"{group.name}: {len(group.workdirs)} runs",
                           h.group_summary_html(group)))
  for workdir in workdirs:
    slides += workdir_slides(workdir)
  for bench in benches:
    slides += bench_slides(bench)
  return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>ycng report: "
          f"slides</title><style>{h.CSS}{SLIDE_CSS}</style></head><body>{''.join(slides)}"
          f"<div id='counter'></div><script>{SLIDE_SCRIPT}</script></body></html>")

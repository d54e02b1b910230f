"""The report site: ``index.html`` and one page per workdir and per benchmark result."""

from __future__ import annotations

import datetime
import pathlib
import re

from ycng_jax.report import bench as bench_lib
from ycng_jax.report import html as h
from ycng_jax.report.summary import Group, shared_metrics
from ycng_jax.report.workdir import INCOMPLETE, Workdir


def page_names(items: list, stem) -> list[str]:
  """A distinct, readable file name per item (``topic1_sequential_mlp-seed1.html``)."""
  names, seen = [], {}
  for item in items:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem(item)).strip("_.") or "page"
    count = seen[base] = seen.get(base, 0) + 1
    names.append(f"{base}.html" if count == 1 else f"{base}-{count}.html")
  return names


def workdir_stem(workdir: Workdir) -> str:
  name = workdir.experiment or ""
  return f"{name}-{workdir.path.name}" if name and not name.endswith(workdir.path.name) \
      else (name or workdir.path.name)


def workdir_body(workdir: Workdir) -> str:
  parts = [f"<h1>{h.esc(workdir.title)}{h.status_badge(workdir)}</h1>",
           h.incomplete_banner(workdir),
           "<h2>Reproduce</h2>", h.command_html(workdir), h.config_html(workdir),
           "<h2>Final metrics</h2>" if workdir.complete else "<h2>Metrics so far</h2>",
           h.metrics_html(workdir), h.result_tables_html(workdir),
           "<h2>Learning curves</h2>", h.curves_html(workdir)]
  figures = h.figure_items(workdir)
  if figures:
    parts += ["<h2>Figures</h2>"] + figures
  if workdir.topic_map is not None:
    parts += ["<h2>Interactive topic map</h2>", h.topic_map_html(workdir)]
  return "".join(parts)


def bench_body(bench: bench_lib.Bench) -> str:
  return (f"<h1>{h.esc(bench.title)}</h1>{bench_lib.machine_html(bench)}"
          f"<h2>Ratio per benchmark</h2>{bench_lib.ratio_chart_svg(bench)}"
          f"<h2>Results</h2>{bench_lib.table_html(bench)}"
          f"<p class='note'>From <code>{h.esc(bench.path)}</code>.</p>")


def index_body(groups: list[Group], workdir_pages: dict[int, str],
               benches: list[tuple[bench_lib.Bench, str]], slides: str | None) -> str:
  created = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
  parts = [f"<h1>ycng report</h1><p class='note'>Built {created} from "
           f"{sum(len(g.workdirs) for g in groups)} workdir(s) and {len(benches)} benchmark "
           "result(s); nothing was rerun.</p>"]
  if slides:
    parts.append(f"<p><a href='{slides}'>The same as slides</a> (arrow keys; print for a PDF, "
                 "one slide a page).</p>")
  if groups:
    shared = shared_metrics(groups)
    columns = ["experiment", "runs", "status"] + shared
    rows = []
    for group in groups:
      links = ", ".join(f"<a href='{workdir_pages[id(w)]}'>{h.esc(w.path.name)}</a>"
                        for w in group.workdirs)
      finished = sum(w.complete for w in group.workdirs)
      status = ("finished" if finished else INCOMPLETE) if len(group.workdirs) == 1 else \
          "all finished" if finished == len(group.workdirs) else \
          f"{finished} of {len(group.workdirs)} finished"
      stats = group.stats
      rows.append([f"<code>{h.esc(group.name)}</code>", links, h.esc(status)] +
                  [h.esc(stats[m]) if m in stats else "" for m in shared])
    parts.append("<h2>Experiments</h2>")
    if len(groups) > 1:
      parts.append("<p class='note'>" + ("Metrics reported by more than one experiment side by "
                   "side (mean ± std where an experiment has several runs)." if shared else
                   "The experiments share no metric; each page has its own.") + "</p>")
    parts.append(h.table(columns, rows, raw=True))
    for group in groups:
      if len(group.workdirs) > 1:
        parts += [f"<h2>{h.esc(group.name)}: {len(group.workdirs)} runs</h2>",
                  h.group_summary_html(group)]
  if benches:
    parts.append("<h2>Benchmarks</h2><ul>" + "".join(
        f"<li><a href='{name}'>{h.esc(b.title)}</a></li>" for b, name in benches) + "</ul>")
  return "".join(parts)


def write_site(out: pathlib.Path, workdirs: list[Workdir], groups: list[Group],
               benches: list[bench_lib.Bench], slides: str | None = None) -> list[pathlib.Path]:
  """Write index.html and the pages into ``out``; returns the files written."""
  out.mkdir(parents=True, exist_ok=True)
  names = page_names(workdirs + benches, lambda item: workdir_stem(item)
                     if isinstance(item, Workdir) else f"bench-{item.data['mode']}")
  workdir_pages = {id(w): n for w, n in zip(workdirs, names)}
  bench_pages = list(zip(benches, names[len(workdirs):]))
  nav = "<nav><a href='index.html'>← report index</a></nav>"
  written = []
  for workdir, name in zip(workdirs, names):
    (out / name).write_text(h.page(workdir.title, workdir_body(workdir), nav), encoding="utf-8")
    written.append(out / name)
  for bench, name in bench_pages:
    (out / name).write_text(h.page(bench.title, bench_body(bench), nav), encoding="utf-8")
    written.append(out / name)
  index = out / "index.html"
  index.write_text(h.page("ycng report", index_body(groups, workdir_pages, bench_pages, slides)),
                   encoding="utf-8")
  return [index] + written

"""``ycng report``: workdirs and benchmark results -> a static site, and optionally slides."""

from __future__ import annotations

import os
import pathlib
from typing import Sequence

from ycng_jax.errors import UserError
from ycng_jax.report import bench as bench_lib
from ycng_jax.report import pages, slides as slides_lib
from ycng_jax.report.summary import group_workdirs
from ycng_jax.report.workdir import read_workdir

SLIDES = "slides.html"


def default_out(inputs: Sequence[str | os.PathLike]) -> pathlib.Path:
  """``WORKDIR/report`` for one workdir (the report lives with its run), else ``./report``."""
  if len(inputs) == 1 and pathlib.Path(inputs[0]).is_dir() and \
      bench_lib.bench_file(inputs[0]) is None:
    return pathlib.Path(inputs[0]) / "report"
  return pathlib.Path("report")


def build_report(inputs: Sequence[str | os.PathLike], out: str | os.PathLike | None = None, *,
                 slides: bool = False) -> dict[str, pathlib.Path]:
  """Read every input (a workdir, a bench.json, or a folder holding one), write the site.

  Returns ``{"index": index.html, "slides": slides.html (when asked)}``. Every input is read
  before anything is written, so a bad one leaves no half-built report.
  """
  if not inputs:
    raise UserError("give ycng report at least one workdir (or a bench.json)")
  workdirs, benches = [], []
  for item in inputs:
    bench_path = bench_lib.bench_file(item)
    if bench_path is not None:
      benches.append(bench_lib.read_bench(bench_path))
    else:
      workdirs.append(read_workdir(item))
  out = pathlib.Path(out) if out is not None else default_out(inputs)
  if out.exists() and not out.is_dir():
    raise UserError(f"--out {out} is a file; give a folder for the report (it is created if "
                    "missing)")
  groups = group_workdirs(workdirs)
  written = pages.write_site(out, workdirs, groups, benches, SLIDES if slides else None)
  result = {"index": written[0]}
  if slides:
    result["slides"] = out / SLIDES
    result["slides"].write_text(slides_lib.deck(workdirs, groups, benches), encoding="utf-8")
  return result

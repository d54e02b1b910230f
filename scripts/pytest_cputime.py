"""A pytest plugin that records each test's CPU time (all threads of the process) and wall time.

CPU time is the figure to compare on a shared, noisy machine: XLA's compiles dominate the suite.

  CPUTIME_OUT=/tmp/cpt PYTHONPATH=scripts python3 -m pytest -q -p pytest_cputime
  python3 scripts/pytest_cputime.py /tmp/cpt        # totals, heaviest files and tests

Each pytest process (each xdist worker) writes CPUTIME_OUT.<pid> as JSON rows
[cpu_seconds, wall_seconds, nodeid]; without CPUTIME_OUT and without xdist it prints the table.
CPU of subprocesses the tests start is not counted (`/usr/bin/time` around pytest counts it).
"""

import collections
import glob
import json
import os
import sys
import time

import pytest

_rows = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
  cpu, wall = time.process_time(), time.perf_counter()
  yield
  _rows.append((time.process_time() - cpu, time.perf_counter() - wall, item.nodeid))


def summary(rows, top=25):
  lines = [f"{len(rows)} tests, {sum(r[0] for r in rows) / 60:.1f} CPU-min in the pytest processes"]
  by_file = collections.Counter()
  for cpu, _, nodeid in rows:
    by_file[nodeid.split("::")[0]] += cpu
  lines += [f"{cpu:7.1f} CPU-s  {name}" for name, cpu in by_file.most_common(top)]
  lines += [f"{cpu:7.1f} CPU-s {wall:7.1f} s  {nodeid}" for cpu, wall, nodeid in sorted(rows, reverse=True)[:top]]
  return "\n".join(lines)


def pytest_sessionfinish(session):
  out = os.environ.get("CPUTIME_OUT")
  if out:
    with open(f"{out}.{os.getpid()}", "w", encoding="utf-8") as f:
      json.dump(_rows, f)
  elif _rows:
    print("\n" + summary(_rows))


if __name__ == "__main__":
  # Only the files the processes wrote (PREFIX.<pid>): a log beside them must not be read.
  paths = [p for p in glob.glob(f"{sys.argv[1]}.*") if p.rsplit(".", 1)[1].isdigit()]
  rows = [row for path in paths for row in json.load(open(path, encoding="utf-8"))]
  print(summary(rows))

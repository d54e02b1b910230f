"""`ycng bench`: the runner, its bench.json / bench.md, and the scripts' --json rows."""

import importlib
import io
import json
import pathlib

import pytest

from ycng_jax import benchmarks, cli
from ycng_jax.errors import UserError, UserFileError

SCRIPTS = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "bench"

# bench.json as `ycng report` reads it.
ROW_SCHEMA = {"name": str, "script": str, "command": str, "metric": str,
              "ours": (float, type(None)), "theirs": (float, type(None)), "peer": str,
              "ratio": (float, type(None)), "higher_is_better": bool, "notes": str,
              "status": str, "error": (str, type(None)), "seconds": (float, int)}


def check_schema(report: dict) -> None:
  assert set(report) == {"created", "mode", "machine", "benchmarks"}
  assert report["mode"] in ("quick", "full") and isinstance(report["created"], str)
  machine = report["machine"]
  assert set(machine) == {"cpu", "cores", "accelerator", "platform", "versions"}
  assert isinstance(machine["cores"], int) and machine["cpu"] and machine["platform"]
  assert {"python", "jax", "numpy"} <= set(machine["versions"])
  for row in report["benchmarks"]:
    assert list(row) == list(ROW_SCHEMA), row
    for key, kind in ROW_SCHEMA.items():
      assert isinstance(row[key], kind), (key, row)
    assert row["status"] in ("ok", "failed", "skipped")
    assert (row["error"] is None) == (row["status"] == "ok")


# A stand-in for a benchmark script: the real bench_utils writes its rows, like every script.
FAKE_OK = f"""
import argparse, sys
sys.path.insert(0, {str(SCRIPTS)!r})
from bench_utils import add_json_argument, result_row, write_json
parser = argparse.ArgumentParser()
parser.add_argument("--quick", action="store_true")
parser.add_argument("--no-ann", action="store_true")
parser.add_argument("--bf16", action="store_true")
add_json_argument(parser)
args = parser.parse_args()
print("timing ...")
write_json(args.json, [
    result_row("search, small", "queries/s", 300.0, 100.0, "faiss", notes=f"quick={{args.quick}}"),
    result_row("search, time", "seconds", 2.0, 5.0, "faiss", higher_is_better=False)])
"""
FAKE_CRASH = "print('loading'); raise RuntimeError('out of cheese')\n"


def test_bench_runs_each_script_alone_and_goes_on_after_a_crash(tmp_path, capsys):
  (tmp_path / "knn_vs_faiss.py").write_text(FAKE_OK)
  (tmp_path / "kmeans_vs_sklearn.py").write_text(FAKE_CRASH)
  out = tmp_path / "out"
  assert cli.main(["bench", "--scripts-dir", str(tmp_path), "--out", str(out),
                   "--only", "kmeans_vs_sklearn", "knn_vs_faiss"]) == 1  # a failure: status 1
  captured = capsys.readouterr()
  progress = captured.err.splitlines()
  assert progress[0].startswith("ycng bench [1/2] knn_vs_faiss (quick) ... ok, ratios 3.00x, 2.50x")
  assert progress[1].startswith("ycng bench [2/2] kmeans_vs_sklearn (quick) ... failed")

  report = json.loads((out / "bench.json").read_text())
  check_schema(report)
  ok, timed, crashed = report["benchmarks"]
  assert report["mode"] == "quick" and report["machine"]["accelerator"] is None
  assert ok["status"] == "ok" and ok["notes"] == "quick=True" and ok["ratio"] == 3.0
  assert ok["command"].endswith("knn_vs_faiss.py --quick --no-ann --bf16")
  assert ok["script"] == "scripts/bench/knn_vs_faiss.py"
  assert not timed["higher_is_better"] and timed["ratio"] == 2.5  # theirs / ours for times
  assert crashed["name"] == "kmeans_vs_sklearn" and crashed["status"] == "failed"
  assert "exit status 1: RuntimeError: out of cheese" in crashed["error"]
  assert crashed["ours"] is None and crashed["ratio"] is None
  assert "loading" in (out / "logs" / "kmeans_vs_sklearn.log").read_text()

  table = (out / "bench.md").read_text()
  assert table == captured.out
  assert "| benchmark | metric | ours | theirs | peer | ratio | status |" in table
  assert "| search, small | queries/s | 300 | 100 | faiss | 3.00x | ok |" in table
  assert "| search, time | seconds | 2 | 5 | faiss | 2.50x | ok |" in table
  assert "| kmeans_vs_sklearn | seconds |" in table and "failed: exit status 1" in table


def test_missing_peer_is_skipped_and_bad_output_is_a_failure(tmp_path):
  (tmp_path / "silent.py").write_text("print('forgot --json')\n")
  (tmp_path / "garbled.py").write_text(
      "import sys; open(sys.argv[-1], 'w').write('{\"rows\": [{\"name\": 1}]}')\n")
  suite = [benchmarks.Benchmark("needs_peer", "nosuchpeer", "queries/s",
                                requires=(("nosuchpeer_xyz", "pip install nosuchpeer"),)),
           benchmarks.Benchmark("silent", "p", "images/s", ("--full-size",)),
           benchmarks.Benchmark("garbled", "p", "images/s")]
  progress = io.StringIO()
  report = benchmarks.run(mode="full", out=tmp_path / "out", scripts_dir=tmp_path,
                          benchmarks=suite, progress=progress)
  check_schema(report)
  skipped, silent, garbled = report["benchmarks"]
  assert skipped["status"] == "skipped"
  assert skipped["error"] == "nosuchpeer_xyz is not installed (pip install nosuchpeer)"
  assert silent["status"] == "failed" and "wrote no --json results" in silent["error"]
  assert silent["command"].endswith("silent.py --full-size")  # full: no --quick
  assert garbled["status"] == "failed" and "lacks 'name'" in garbled["error"]
  assert len(progress.getvalue().splitlines()) == 3


def test_bench_errors_are_one_line(tmp_path, capsys):
  assert cli.main(["bench", "--only", "knn_vs_faiss", "knn_vs_fais"]) == 2
  err = capsys.readouterr().err
  assert err.startswith("ycng: error: Unknown benchmark 'knn_vs_fais': choose from knn_vs_faiss,")
  assert len(err.splitlines()) == 1
  # An install without the checkout has no scripts/bench/ beside the package.
  with pytest.raises(UserFileError, match="source checkout"):
    benchmarks.default_scripts_dir(tmp_path / "site-packages" / "ycng_jax")
  assert benchmarks.default_scripts_dir() == SCRIPTS
  with pytest.raises(UserError, match="is not a folder"):
    benchmarks.run(out=tmp_path, scripts_dir=tmp_path / "nope")
  assert cli.main(["bench", "--list", "--only", "bert_train_step"]) == 0
  assert capsys.readouterr().out.splitlines() == [
      "bert_train_step: tokens/s vs transformers BertForSequenceClassification",
      "  python3 scripts/bench/bert_train_step.py --quick --matmul-dtype bfloat16 --torch-bf16"]


def test_every_script_takes_the_arguments_bench_gives_it(monkeypatch):
  """Each registered script exists and parses its quick and full command lines (with --json)."""
  monkeypatch.syspath_prepend(str(SCRIPTS))
  for bench in benchmarks.BENCHMARKS:
    module = importlib.import_module(bench.name)
    for mode in benchmarks.MODES:
      args = module.parse_args(bench.args(mode) + ["--json", "rows.json"])
      quick = getattr(args, "quick", getattr(args, "small", None))  # knn, kmeans: --small
      assert args.json == "rows.json" and quick == (mode == "quick"), (bench.name, mode)


def test_knn_script_writes_rows_that_bench_reads(tmp_path, monkeypatch):
  """The real knn_vs_faiss at a tiny size: one row per exact search against faiss's."""
  monkeypatch.syspath_prepend(str(SCRIPTS))
  knn = importlib.import_module("knn_vs_faiss")
  path = tmp_path / "rows.json"
  knn.main(["--sizes", "2000x16", "--queries", "20", "--repeats", "1", "--no-ann",
            "--json", str(path)])
  rows = benchmarks._read_rows(path)  # pylint: disable=protected-access
  assert [r["name"] for r in rows] == ["exact kNN float32, 2000 x 16"]
  assert "recall@10 1.000" in rows[0]["notes"] and rows[0]["peer"].startswith("faiss ")
  for row in rows:
    assert row["ours"] > 0 and row["theirs"] > 0 and row["higher_is_better"]
    assert row["ratio"] == pytest.approx(row["ours"] / row["theirs"])

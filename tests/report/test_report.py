"""`ycng report` pieces on hand-made workdirs (real files in tmp_path): the config diff, mean ±
std over runs, incomplete runs, folders that are not workdirs, bench and topic-map pages, and
the run.json that `ycng run` writes."""

import json
import re

import pytest

from ycng_jax import cli, experiments
from ycng_jax.errors import UserError
from ycng_jax.report import build_report, figures, read_workdir
from ycng_jax.report.summary import mean_std
from ycng_jax.report.workdir import INCOMPLETE, flatten

from report_workdirs import bench_result, make_workdir, topic_map, trainer_records

QUICKSTART = "quickstart/mlp_digits"


def _defaults():
  return json.loads(experiments.load_module(QUICKSTART).get_config().to_json_best_effort())


def test_config_diff_against_the_experiments_defaults(tmp_path):
  config = _defaults()
  config["num_epochs"] = 3
  config["optimizer"]["learning_rate"] = 0.01
  config["added_key"] = "x"
  del config["seed"]
  make_workdir(tmp_path / "run", experiment=QUICKSTART, config=config,
               records=trainer_records(0.9), finished=True)
  workdir = read_workdir(tmp_path / "run")
  status = {r.key: (r.status, r.value, r.default) for r in workdir.config_rows}
  assert status["num_epochs"] == ("changed", 3, 40)
  assert status["optimizer.learning_rate"] == ("changed", 0.01, 0.002)
  assert status["added_key"][0] == "added" and status["seed"] == ("removed", None, 0)
  assert status["model.kwargs.hidden"] == ("same", [256, 128], [256, 128])
  assert {k for k, s in status.items() if s[0] != "same"} == {
      "num_epochs", "optimizer.learning_rate", "added_key", "seed"}
  page = (tmp_path / "out" / "quickstart_mlp_digits-run.html")
  build_report([tmp_path / "run"], tmp_path / "out")
  text = page.read_text()
  assert "4 key(s) differ from the defaults of <code>quickstart/mlp_digits" in text
  assert re.search(r"<tr class='changed'><td>num_epochs</td><td class='num'>3</td>"
                   r"<td class='num'>40</td>", text)
  assert "ycng run quickstart/mlp_digits --workdir" in text  # the command from run.json
  # An experiment that no longer exists: the config is shown, without a diff, with the reason.
  make_workdir(tmp_path / "gone", experiment="no/such_experiment", config={"a": {"b": 1}},
               finished=True)
  gone = read_workdir(tmp_path / "gone")
  assert "Unknown experiment 'no/such_experiment'" in gone.defaults_note
  assert [(r.key, r.status) for r in gone.config_rows] == [("a.b", "unknown")]
  assert flatten({"a": {"b": {"c": 1}, "d": []}, "e": {}}) == {"a.b.c": 1, "a.d": [], "e": {}}


def test_runs_of_one_experiment_as_mean_and_std_beside_another_experiment(tmp_path):
  inputs = []
  for seed, accuracy in enumerate([0.7, 0.8, 0.9]):
    inputs.append(make_workdir(tmp_path / f"seed{seed}", experiment=QUICKSTART,
                               config={**_defaults(), "seed": seed},
                               records=trainer_records(accuracy), finished=True))
  other = trainer_records(0.5)
  other[-1]["only_here"] = 1.0
  inputs.append(make_workdir(tmp_path / "other", experiment="topic1/sequential_mlp",
                             config={"seed": 0}, records=other, finished=True))
  stats = mean_std([{"a": 1.0, "b": 2.0}, {"a": 3.0}, {"a": float("nan")}])
  assert (stats["a"].mean, stats["a"].std, stats["a"].n) == (2.0, 1.0, 2)
  assert (stats["b"].n, str(stats["b"])) == (1, "2")
  index = build_report(inputs, tmp_path / "out")["index"].read_text()
  # the three seeds: population std of 0.7, 0.8, 0.9 is 0.08165
  assert "<td>0.8 ± 0.08165</td>" in index and "<td>0.5</td>" in index
  assert "<h2>quickstart/mlp_digits: 3 runs</h2>" in index
  header = re.search(r"<h2>Experiments</h2>.*?<tr>(.*?)</tr>", index).group(1)
  assert "test_accuracy" in header and "only_here" not in header  # only shared metrics
  summary = index[index.index("3 runs</h2>"):]
  assert "<th>seed</th>" in summary and "<td>2</td>" in summary  # the key that varies


def test_incomplete_runs_are_marked_and_show_what_exists(tmp_path):
  records = trainer_records(0.9)[:2]
  make_workdir(tmp_path / "killed", experiment=QUICKSTART, config=_defaults(), records=records,
               finished=False, extra_lines='{"step": 30, "epoch": 3, "spl')  # cut by a kill
  workdir = read_workdir(tmp_path / "killed", with_defaults=False)
  assert not workdir.complete and workdir.status == INCOMPLETE
  assert workdir.skipped_lines == 1 and workdir.metrics["step"] == 20
  assert "latest record of metrics.jsonl (step 20, epoch 2)" in workdir.metrics_source
  result = build_report([tmp_path / "killed"], tmp_path / "out", slides=True)
  for page in (tmp_path / "out" / "quickstart_mlp_digits-killed.html", result["slides"]):
    text = page.read_text()
    assert INCOMPLETE in text and "run.json has no finished mark" in text
  assert "Metrics so far" in (tmp_path / "out" / "quickstart_mlp_digits-killed.html").read_text()
  assert f"<td>{INCOMPLETE}</td>" in result["index"].read_text()
  # Without run.json (runs from before it existed): no final record and no results.json.
  make_workdir(tmp_path / "old", records=records)
  assert not read_workdir(tmp_path / "old").complete
  make_workdir(tmp_path / "old_done", records=trainer_records(0.9))
  old = read_workdir(tmp_path / "old_done")
  assert old.complete and old.command is None and old.metrics["test_accuracy"] == 0.9


def test_a_folder_that_is_not_a_workdir_is_one_line(tmp_path, capsys):
  (tmp_path / "empty").mkdir()
  with pytest.raises(UserError, match=r"empty is not a workdir: a workdir holds config.json and "
                     r"metrics.jsonl"):
    read_workdir(tmp_path / "empty")
  make_workdir(tmp_path / "runs" / "a", records=trainer_records(0.9))
  with pytest.raises(UserError, match=r"it holds the workdirs a: give them instead"):
    read_workdir(tmp_path / "runs")
  with pytest.raises(UserError, match="does not exist"):
    read_workdir(tmp_path / "missing")
  assert cli.main(["report", str(tmp_path / "runs" / "a"), str(tmp_path / "empty"),
                   "--out", str(tmp_path / "out")]) == 2
  err = capsys.readouterr().err
  assert err.startswith("ycng: error: ") and str(tmp_path / "empty") in err
  assert len(err.splitlines()) == 1
  assert not (tmp_path / "out").exists()  # inputs are read before anything is written
  assert cli.main(["report", str(tmp_path / "runs" / "a"), "--slides"]) == 0
  out = tmp_path / "runs" / "a" / "report"  # one workdir: its report lives in it
  assert capsys.readouterr().out.split() == [str(out / "index.html"), str(out / "slides.html")]


def test_bench_page(tmp_path):
  folder = tmp_path / "bench"
  folder.mkdir()
  (folder / "bench.json").write_text(json.dumps(bench_result()))
  for given in (folder, folder / "bench.json"):
    index = build_report([given], tmp_path / "out")["index"]
    assert "bench-quick.html" in index.read_text()
  page = (tmp_path / "out" / "bench-quick.html").read_text()
  assert "Test CPU @ 2.0GHz, 2 cores, no accelerator, Linux-6.1-x86_64" in page
  assert "<span class='good'>2.5x</span>" in page  # ours 5000 q/s against 2000
  assert "RuntimeError: out of memory" in page and "sentence-transformers is not installed" in page
  assert "python3 scripts/bench/knn_vs_faiss.py --quick" in page
  assert page.count("<rect") == 1  # only the benchmark that ran has a ratio bar
  bad = bench_result()
  bad["benchmarks"][1]["ratio"] = "fast"
  (folder / "bench.json").write_text(json.dumps(bad))
  with pytest.raises(UserError, match=r"benchmarks\[1\].ratio should be a number or null"):
    build_report([folder], tmp_path / "out")


def test_topic_map_page(tmp_path):
  workdir = make_workdir(tmp_path / "topics", records=[{"step": 0, "final": True, "docs": 6000}])
  (workdir / "topic_map.json").write_text(json.dumps(topic_map(6000)))
  build_report([workdir], tmp_path / "out")
  page = (tmp_path / "out" / "topics.html").read_text()
  assert page.count("<circle ") == 5000 and "5,000 of 6,000 points (a seeded subsample)" in page
  assert "film, movie, plot</text>" in page and "game, player</text>" in page
  assert "about topic 1 &lt;b&gt;&amp;amp; more&lt;/b&gt;" in page  # text escaped, not markup
  assert "<b>&amp; more</b>" not in page
  broken = topic_map(3)
  broken["points"][1]["x"] = "left"
  (workdir / "topic_map.json").write_text(json.dumps(broken))
  with pytest.raises(UserError, match=r"topic_map.json: points\[1\].x should be a number"):
    build_report([workdir], tmp_path / "out")


def test_captions_and_learning_curves():
  assert figures.caption("confusion.png").startswith("Confusion matrix:")
  assert "(val)" in figures.caption("confusion_matrix_val.png")
  assert "by pixels features" in figures.caption("/w/neighbours_pixels.png")
  assert "with 100 training examples" in figures.caption("curves_100.png")
  assert figures.caption("embedding.png").startswith("The learned embedding")
  assert figures.caption("my_odd-figure.v2.png") == "My odd figure v2."
  dec = [{"seed": 0, "phase": "pretrain", "epoch": 1, "loss": 0.5},
         {"seed": 0, "phase": "pretrain", "epoch": 2, "loss": 0.4},
         {"seed": 0, "phase": "dec", "iteration": 0, "loss": float("nan"), "delta_label": 0.0},
         {"seed": 0, "phase": "dec", "iteration": 5, "loss": 0.1, "delta_label": 0.01},
         {"phase": "result", "method": "dec", "seed": 0, "acc": 0.9}]
  panels = figures.curve_panels(trainer_records(0.9) + dec)
  assert list(panels) == ["loss", "loss (pretrain)", "loss (dec)", "accuracy", "delta_label (dec)"]
  assert panels["loss"]["lines"]["val_loss [epoch]"] == ([10.0, 20.0, 30.0], [1.2, 0.6, 1.2 / 3])
  assert panels["loss (pretrain)"] == {"x": "epoch", "lines": {"loss": ([1.0, 2.0], [0.5, 0.4])}}
  assert panels["loss (dec)"]["lines"]["loss"] == ([5.0], [0.1])  # NaN dropped
  assert not any("acc" == p or "test" in p for p in panels)  # results and finals are not curves
  constant = [{"step": s, "learning_rate": 0.1, "loss": 1.0 / s} for s in (1, 2, 3)]
  assert list(figures.curve_panels(constant)) == ["loss"]
  assert figures.learning_curves_png([{"final": True, "test_accuracy": 1.0}]) is None
  assert figures.learning_curves_png(dec)[:8] == b"\x89PNG\r\n\x1a\n"

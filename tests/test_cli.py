"""The `ycng` command: list, data info --json, clear errors."""

import json
import os
import subprocess
import sys

import pytest

from ycng_jax import cli, experiments
from ycng_jax.errors import UserError

from compile_cache_events import without_the_suites_cache


def _ycng(*args):
  return subprocess.run([sys.executable, "-m", "ycng_jax.cli", *args], capture_output=True,
                        text=True, timeout=300)


def test_list_names_the_experiments(capsys):
  assert cli.main(["list"]) == 0
  assert "quickstart/mlp_digits" in capsys.readouterr().out


def test_data_info_json_on_a_fresh_data_dir(tmp_path):
  result = _ycng("data", "info", "digits", "--json", "--data-dir", str(tmp_path))
  assert result.returncode == 0, result.stderr
  info = json.loads(result.stdout)  # the first run's preparation prints nothing to stdout
  assert info["name"] == "digits" and info["splits"] == {"test": 359, "train": 1438}
  assert info["features"]["image"]["shape"] == [8, 8, 1] and info["source"]
  # One line of ours (naming the real source) and our bar; none of TFDS's or absl's chatter.
  preparing = f"ycng: preparing digits from scikit-learn load_digits(), once, into {tmp_path}"
  assert preparing in result.stderr
  for chatter in ("absl", "Downloading", "Generating", "Shuffling", "dataset_info.json"):
    assert chatter not in result.stderr


def test_unknown_tfds_dataset_is_one_line(capsys):
  assert cli.main(["data", "info", "tfds:nosuch_ds"]) == 2
  captured = capsys.readouterr()
  assert captured.out == ""
  assert captured.err.startswith("ycng: error: Unknown dataset 'tfds:nosuch_ds'")
  assert "ycng data list" in captured.err and len(captured.err.splitlines()) == 1


def test_data_list(capsys):
  assert cli.main(["data", "list"]) == 0
  assert {"debtags", "fashion_mnist", "mnist"} <= set(capsys.readouterr().out.split())


def test_unknown_experiment_and_config_key(capsys):
  assert cli.main(["run", "no/such_experiment"]) == 2
  assert "Unknown experiment 'no/such_experiment'" in capsys.readouterr().err
  assert cli.main(["run", "quickstart/mlp_digits", "--config.learning_rat=0.1"]) == 2
  err = capsys.readouterr().err
  assert "Unknown config key 'learning_rat'" in err and "learning_rate" in err
  assert cli.main(["data", "info", "nope"]) == 2
  assert "Unknown dataset 'nope'" in capsys.readouterr().err


def test_override_types_are_checked():
  config = experiments.load_module("quickstart/mlp_digits").get_config()
  experiments.apply_overrides(config, {"optimizer.learning_rate": "1", "dataset": "mnist",
                                       "model.kwargs.hidden": "(8, 4)"})
  assert config.optimizer.learning_rate == 1.0 and config.model.kwargs.hidden == (8, 4)
  assert config.dataset == "mnist"
  with pytest.raises(experiments.ExperimentError, match="is a int"):
    experiments.apply_overrides(config, {"num_epochs": "many"})


def test_quickstart_runs_on_the_shared_trainer(tmp_path, capsys):
  result = experiments.run("quickstart/mlp_digits", tmp_path, {"num_epochs": "3"})
  assert result["test_accuracy"] > 0.8
  lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert lines[-1]["final"] and all("step" in l for l in lines)
  assert json.loads((tmp_path / "config.json").read_text())["num_epochs"] == 3
  # fit's progress bar, and what the shared runner writes for every experiment
  assert "epoch 3/3" in capsys.readouterr().err
  assert (tmp_path / "history.csv").exists() and (tmp_path / "checkpoints" / "backup").is_dir()
  record = json.loads((tmp_path / "run.json").read_text())  # for ycng report
  assert record["finished"] is True and record["command"] == (
      f"ycng run quickstart/mlp_digits --workdir {tmp_path} --config.num_epochs=3")


def test_a_rerun_loads_the_programs_its_workdir_cached(tmp_path):
  """With no cache set by the user (the tests set one, tests/conftest.py: unset here), ycng run
  keeps JAX's persistent compilation cache in WORKDIR/xla_cache/HOST: the same command again
  (a resume after kill -9 is the case that matters) loads its programs instead of compiling."""
  import jax  # pylint: disable=import-outside-toplevel
  from ycng_jax.train.compile_cache import host  # pylint: disable=import-outside-toplevel
  with without_the_suites_cache() as events:
    first = experiments.run("quickstart/mlp_digits", tmp_path, {"num_epochs": "1"})
    assert events.count("/jax/compilation_cache/cache_hits") == 0
    jax.clear_caches()  # as a new process would start
    again = experiments.run("quickstart/mlp_digits", tmp_path, {"num_epochs": "1"})
  assert any(p.name.startswith("jit_train_step") for p in (tmp_path / "xla_cache" / host()).iterdir())
  assert events.count("/jax/compilation_cache/cache_hits") >= 2, events  # init, eval at least
  assert again["test_accuracy"] == first["test_accuracy"]


TINY_RUN = ["--config.train_examples=640", "--config.test_examples=256", "--config.num_epochs=1",
            "--config.batch_size=64", "--config.verbose=0", "--config.tensorboard=False"]


def _tree(folder):
  return {p.relative_to(folder): (p.stat().st_size, p.stat().st_mtime_ns)
          for p in folder.rglob("*") if p.is_file()}


def test_a_changed_config_does_not_resume_another_runs_checkpoints(tmp_path, capsys):
  run = ["run", "topic1/sequential_mlp", "--workdir", str(tmp_path), *TINY_RUN]
  assert cli.main(run) == 0
  first = json.loads(capsys.readouterr().out)
  before = _tree(tmp_path)
  assert cli.main(run + ["--config.optimizer.learning_rate=0.0"]) == 2
  captured = capsys.readouterr()
  assert captured.out == "" and len(captured.err.splitlines()) == 1
  assert captured.err.startswith(f"ycng: error: the checkpoints in {tmp_path}/checkpoints/backup "
                                 "(up to step 9) belong to a run with other settings; what "
                                 "differs (checkpoints -> this run): optimizer.learning_rate: "
                                 "0.001 -> 0.0. Nothing was changed.")
  assert _tree(tmp_path) == before  # config.json still says 0.001; no checkpoint was touched
  # settings that leave the result alone may change: the same run, resumed
  assert cli.main(run + ["--config.log_every_steps=3", "--config.eval_batch_size=128"]) == 0
  captured = capsys.readouterr()
  assert "BackupAndRestore: resumed from step 9" in captured.err
  assert json.loads(captured.out)["test_accuracy"] == first["test_accuracy"]


@pytest.mark.parametrize("args, message", [
    (["--config.validation_split=1.5"],
     "config.validation_split must be a number in [0.0, 1.0), got 1.5."),
    (["--config.num_epochs=-1"], "config.num_epochs must be an integer >= 1, got -1."),
    (["--config.dataset=rotten_tomatoes"], "dataset 'rotten_tomatoes' has no 'image' feature"),
    (["--config.model.name=nosuch.module:Foo"],
     "cannot import 'nosuch.module:Foo': there is no module 'nosuch'"),
    (["--config.batch_size=100"], "config.batch_size=100 must be divisible by the 8 devices"),
    (["--config.optimizer.name=adamm"], "optax has no optimizer 'adamm'"),
])
def test_bad_run_input_is_one_error_line(args, message, tmp_path, capsys):
  assert cli.main(["run", "topic1/sequential_mlp", "--workdir", str(tmp_path), *TINY_RUN,
                   *args]) == 2
  err = capsys.readouterr().err
  assert err.startswith(f"ycng: error: {message}") and len(err.splitlines()) == 1, err


def test_bad_folders_are_one_error_line(tmp_path, capsys):
  a_file = tmp_path / "a_file"
  a_file.write_text("")
  cases = [
      (["run", "topic1/sequential_mlp", "--workdir", str(a_file)],
       f"the workdir {a_file} is a file, not a folder"),
      (["run", "topic1/sequential_mlp", "--workdir", str(a_file / "sub")],
       f"cannot write in the workdir {a_file / 'sub'} (Not a directory)"),
      (["data", "info", "digits", "--data-dir", str(a_file)],
       f"the data folder {a_file} (--data-dir) is a file, not a folder"),
      (["search", str(tmp_path), "a query"], f"{tmp_path} is not an index folder"),
  ]
  if os.path.isdir("/sys"):  # even root may not create folders there
    cases.append((["run", "topic1/sequential_mlp", "--workdir", "/sys/ycng_workdir"],
                  "cannot write in the workdir /sys/ycng_workdir ("))
  for args, message in cases:
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ycng: error: {message}") and len(err.splitlines()) == 1, err


def test_bad_index_build_input_is_one_error_line(tmp_path, capsys):
  bad_json = tmp_path / "bad.jsonl"
  bad_json.write_text('{"text": "a"}\n{"title": "b"}\n')
  empty = tmp_path / "empty.txt"
  empty.write_text("\n\n")
  out = tmp_path / "out"
  cases = [
      ([str(tmp_path / "missing.txt")], f"corpus file '{tmp_path / 'missing.txt'}' not found"),
      ([str(bad_json)], f"{bad_json}, line 2: the record has no 'text' field"),
      ([str(empty)], f"the corpus '{empty}' holds no documents"),
      ([str(empty), "--backend", "nosuch"], "backend must be one of"),
      ([str(bad_json), "--limit", "-1"], "limit (the number of documents to keep) must be"),
  ]
  for args, message in cases:
    assert cli.main(["index", "build", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ycng: error: {message}") and len(err.splitlines()) == 1, err
    assert not out.exists()  # checked before any work: nothing created


def test_run_json_records_the_command_and_no_finished_mark_when_a_run_fails(tmp_path):
  experiment = tmp_path / "fails.py"
  experiment.write_text(
      "import ml_collections\nfrom ycng_jax.errors import UserError\n\n"
      "def get_config():\n  return ml_collections.ConfigDict({'x': 1, 'name': 'a'})\n\n"
      "def run(config, workdir):\n  raise UserError('stopped on purpose')\n")
  with pytest.raises(UserError, match="stopped on purpose"):
    experiments.run(str(experiment), tmp_path / "w", {"x": "2", "name": "two words"})
  record = json.loads((tmp_path / "w" / "run.json").read_text())
  assert record["finished"] is False and record["overrides"] == {"x": "2", "name": "two words"}
  assert record["command"] == (f"ycng run {experiment} --workdir {tmp_path / 'w'} --config.x=2 "
                               "'--config.name=two words'")

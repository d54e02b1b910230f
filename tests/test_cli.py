"""The `ycng` command: list, data info --json, clear errors."""

import json
import subprocess
import sys

import pytest

from ycng_jax import cli, experiments


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

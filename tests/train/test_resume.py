"""Exact resume: SIGKILL a real training process, rerun the same command, compare bit for bit."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from ycng_jax.errors import UserError
from ycng_jax.train import classification
from ycng_jax.train.checkpoint import ResumeMismatchError
from ycng_jax.train.logging_callbacks import read_metrics

OVERRIDES = {
    "dataset": "digits", "model.name": "ycng_jax.models.mlp:MLP", "batch_size": 64,
    "num_epochs": 3, "validation_split": 0.2, "backup_every_steps": 3, "log_every_steps": 2,
    "tensorboard": False, "verbose": 0, "optimizer.learning_rate": 3e-3,
}

CHILD = """
import json, sys, time
from ycng_jax.train import classification, callbacks
sys.path.insert(0, {test_dir!r})
from test_resume import make_config
slow = callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: time.sleep(0.15))
print(json.dumps(classification.run(make_config(), sys.argv[1], extra_callbacks=[slow])))
"""


def make_config():
  config = classification.base_config()
  for dotted, value in OVERRIDES.items():
    node = config
    *parents, leaf = dotted.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  config.model.kwargs.hidden = (32,)
  config.model.kwargs.dropout = 0.1
  return config


def _child(workdir):
  code = CHILD.format(test_dir=os.path.dirname(__file__))
  return subprocess.Popen([sys.executable, "-c", code, str(workdir)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def _backup_steps(workdir):
  d = os.path.join(workdir, "checkpoints", "backup")
  return sorted(int(x) for x in os.listdir(d) if x.isdigit()) if os.path.isdir(d) else []


def _strip_final(lines):
  return [r for r in lines if not r.get("final")]


def _files(workdir):
  """Every file under ``workdir`` with its size and modification time."""
  out = {}
  for root, _, names in os.walk(workdir):
    for name in names:
      stat = os.stat(os.path.join(root, name))
      out[os.path.relpath(os.path.join(root, name), workdir)] = (stat.st_size, stat.st_mtime_ns)
  return out


def _damage_arrays(step_dir):
  """Garbage in the OCDBT manifests: every array read fails, the JSON items still read."""
  for root, _, names in os.walk(step_dir / "state"):
    for name in names:
      if name == "manifest.ocdbt":
        with open(os.path.join(root, name), "wb") as f:
          f.write(b"garbage")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """An uninterrupted run in this process."""
  workdir = tmp_path_factory.mktemp("reference")
  final = classification.run(make_config(), str(workdir))
  return workdir, final


def test_sigkill_mid_run_then_rerun_is_bit_identical(reference, tmp_path):
  ref_dir, ref_final = reference
  proc = _child(tmp_path)
  deadline = time.time() + 240
  while time.time() < deadline and proc.poll() is None:
    if any(s >= 30 for s in _backup_steps(tmp_path)):  # mid epoch 2 of 3 (18 steps/epoch)
      break
    time.sleep(0.05)
  assert proc.poll() is None, "the child finished before it could be killed: " + proc.stderr.read()
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL
  killed_at = max(_backup_steps(tmp_path))
  assert 30 <= killed_at < 54

  proc = _child(tmp_path)  # the same command again
  out, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, err
  assert "BackupAndRestore: resumed from step" in err
  final = json.loads(out.strip().splitlines()[-1])
  assert final == ref_final  # bit-identical floats
  # the metrics log reads as if the run had never been interrupted
  ref_records = read_metrics(str(ref_dir / "metrics.jsonl"))
  records = read_metrics(str(tmp_path / "metrics.jsonl"))
  assert _strip_final(records) == _strip_final(ref_records)
  assert records[-1]["final"] and records[-1]["test_accuracy"] == ref_final["test_accuracy"]
  assert open(tmp_path / "history.csv").read() == open(ref_dir / "history.csv").read()


def test_corrupt_newest_checkpoint_is_reported_and_previous_used(reference, tmp_path, capfd):
  ref_dir, ref_final = reference
  workdir = tmp_path / "run"
  shutil.copytree(ref_dir, workdir)
  steps = _backup_steps(workdir)
  newest = workdir / "checkpoints" / "backup" / str(steps[-1])
  for root, _, files in os.walk(newest / "state"):
    for name in files:
      with open(os.path.join(root, name), "wb") as f:
        f.write(b"garbage")
  # and a partial save, as a crash during writing leaves it, must be ignored
  shutil.copytree(newest, workdir / "checkpoints" / "backup" /
                  f"{steps[-1] + 2}.orbax-checkpoint-tmp-1234")
  final = classification.run(make_config(), str(workdir))
  err = capfd.readouterr().err
  assert f"checkpoint step {steps[-1]}" in err and "unreadable" in err
  assert f"resumed from step {steps[-2]}" in err
  assert final == ref_final


# pytest turns what sys.unraisablehook would print into this warning
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_damaged_arrays_cost_one_warning_line(reference, tmp_path, capfd):
  ref_dir, ref_final = reference
  workdir = tmp_path / "run"
  shutil.copytree(ref_dir, workdir)
  steps = _backup_steps(workdir)
  _damage_arrays(workdir / "checkpoints" / "backup" / str(steps[-1]))
  final = classification.run(make_config(), str(workdir))
  err = capfd.readouterr().err
  # orbax's concurrent restore used to leave reads in flight on a closed asyncio loop: one
  # "RuntimeError: Event loop is closed" traceback per array
  assert "Traceback" not in err and "Event loop is closed" not in err
  warnings = [line for line in err.splitlines() if "unreadable" in line]
  assert len(warnings) == 1 and warnings[0].startswith(f"WARNING: checkpoint step {steps[-1]} in ")
  assert f"resumed from step {steps[-2]}" in err
  assert final == ref_final


def test_no_readable_backup_stops_the_run_and_keeps_them(reference, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(reference[0], workdir)
  for step in _backup_steps(workdir):
    _damage_arrays(workdir / "checkpoints" / "backup" / str(step))
  before = _files(workdir)
  with pytest.raises(UserError, match=r"none of the backups in .*checkpoints/backup \(steps "
                     r"\[\d+, \d+\]\) can be read; .* delete that folder or run in another workdir"):
    classification.run(make_config(), str(workdir))
  assert _files(workdir) == before


def test_a_changed_config_is_refused_and_nothing_is_overwritten(reference, tmp_path):
  ref_dir, _ = reference
  workdir = tmp_path / "run"
  shutil.copytree(ref_dir, workdir)
  before = _files(workdir)
  config = make_config()
  config.optimizer.learning_rate = 0.0
  config.num_epochs = 5
  config.model.kwargs.hidden = (64,)  # the old arrays would not even fit this model
  with pytest.raises(ResumeMismatchError) as caught:
    classification.run(config, str(workdir))
  message = str(caught.value)
  assert message.startswith(f"the checkpoints in {workdir / 'checkpoints' / 'backup'} (up to "
                            f"step {_backup_steps(workdir)[-1]}) belong to a run with other "
                            "settings; what differs (checkpoints -> this run): ")
  assert ("model.kwargs.hidden: [32] -> [64]; num_epochs: 3 -> 5; optimizer.learning_rate: "
          "0.003 -> 0.0. Nothing was changed.") in message
  assert "another workdir (ycng run --workdir DIR) or delete the old run's workdir" in message
  assert _files(workdir) == before
  # other data (fewer examples) is a different run as well, named by the data's digest
  config = make_config()
  config.train_examples = 1000
  with pytest.raises(ResumeMismatchError, match=r"data_digest: \"\w+\" -> \"\w+\"; "
                     "train_examples: 0 -> 1000"):
    classification.run(config, str(workdir))
  assert _files(workdir) == before


def test_settings_that_leave_the_result_alone_may_change(reference, tmp_path, capfd):
  ref_dir, ref_final = reference
  workdir = tmp_path / "run"
  shutil.copytree(ref_dir, workdir)
  config = make_config()
  config.log_every_steps, config.backup_every_steps, config.keep_checkpoints = 7, 0, 3
  assert classification.run(config, str(workdir)) == ref_final
  assert f"resumed from step {_backup_steps(workdir)[-1]}" in capfd.readouterr().err


def test_unknown_config_key_is_a_clear_error(tmp_path):
  config = make_config()
  config.learning_rate = 0.1  # belongs under optimizer
  with pytest.raises(ValueError, match="unknown config key 'learning_rate'.*valid keys"):
    classification.run(config, str(tmp_path))

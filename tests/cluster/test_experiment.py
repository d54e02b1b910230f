"""The clustering experiments' shared runner, end to end on the tiny digits set.

Every test runs the same tiny set-up (``TINY``: 300 rows, a 64-32-10 autoencoder, one k-means
restart, batches of 64), so the programs they compile (k-means on the pixels and on the
embedding, the autoencoder's pretraining, DEC's and IDEC's steps) are compiled once for the
file. The N2D experiment's test is in tests/cluster/test_manifold.py, beside UMAP's other
tests: UMAP's numba compile costs ~15 CPU-s a process.
"""

import json

import pytest

from ycng_jax import experiments

TINY = {"dataset": "digits", "limit": "300", "seeds": "(0,)", "hidden_dims": "(32, 10)",
        "pretrain_epochs": "2", "pretrain_batch_size": "64", "batch_size": "64",
        "max_iter": "10", "update_interval": "5", "kmeans_n_init": "1", "verbose": "False"}


def test_dec_experiment_writes_table_and_figures(tmp_path):
  result = experiments.run("clustering/dec_mnist", tmp_path, TINY)
  for method in ("kmeans_pixels", "autoencoder_kmeans", "dec", "idec"):
    assert 0.0 < result[f"{method}_acc_mean"] <= 1.0
  table = json.loads((tmp_path / "results.json").read_text())["table"]
  assert table["dec"]["seeds"] == 1 and table["dec"]["acc_std"] == 0.0
  lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert {l["phase"] for l in lines} == {"pretrain", "dec", "idec", "result"}
  assert (tmp_path / "embedding.png").stat().st_size > 1000
  assert (tmp_path / "clusters.png").stat().st_size > 1000


def test_rerun_reads_finished_seeds_and_redoes_changed_settings(tmp_path, monkeypatch):
  from ycng_jax.cluster import experiment
  overrides = {**TINY, "pretrain_epochs": "1", "max_iter": "5", "idec": "False"}
  first = experiments.run("clustering/dec_mnist", tmp_path, overrides)
  ran = []
  real_run_seed = experiment._run_seed
  monkeypatch.setattr(experiment, "_run_seed",
                      lambda config, x, y, shape, seed, *rest: ran.append(seed) or
                      real_run_seed(config, x, y, shape, seed, *rest))
  # A killed run rerun with one more seed: seed 0 is read back, only seed 1 runs.
  second = experiments.run("clustering/dec_mnist", tmp_path, {**overrides, "seeds": "(0, 1)"})
  assert ran == [1]
  runs = json.loads((tmp_path / "results.json").read_text())["runs"]
  seed0 = {r["method"]: r["acc"] for r in runs if r["seed"] == 0}
  assert seed0["dec"] == first["dec_acc_mean"]
  assert json.loads((tmp_path / "results.json").read_text())["table"]["dec"]["seeds"] == 2
  assert second["dec_acc_mean"] > 0
  # Other settings: the saved seed no longer counts.
  experiments.run("clustering/dec_mnist", tmp_path, {**overrides, "pretrain_epochs": "2"})
  assert ran == [1, 0]


def test_dec_da_experiment_augments_images(tmp_path):
  overrides = {**TINY, "pretrain_epochs": "1", "max_iter": "5"}
  result = experiments.run("clustering/dec_da_mnist", tmp_path, overrides)
  assert set(result) >= {"dec_acc_mean", "autoencoder_kmeans_acc_mean"}
  assert "idec_acc_mean" not in result
  saved = json.loads((tmp_path / "seed_0.json").read_text())["settings"]
  assert saved["augment"] is True and saved["augment_rotation"] == 10.0


def test_run_killed_inside_a_seed_resumes_there(tmp_path, monkeypatch):
  """Killed during IDEC: the rerun reads DEC's and IDEC's checkpoints, ends with the results
  of an uninterrupted run, and removes the seed's checkpoints."""
  from ycng_jax.cluster import dec as dec_module
  overrides = {**TINY, "tol": "0.0", "checkpoint_seconds": "0.0"}
  expected = experiments.run("clustering/dec_mnist", tmp_path / "whole", overrides)
  calls, real = [], dec_module._jit_cluster_step

  def dying(*args):
    step = real(*args)
    def counted(*step_args):
      calls.append(1)
      if len(calls) == 10 + 7:  # all of DEC, then 7 IDEC steps
        raise KeyboardInterrupt
      return step(*step_args)
    return counted

  with monkeypatch.context() as patch:
    patch.setattr(dec_module, "_jit_cluster_step", dying)
    with pytest.raises(KeyboardInterrupt):
      experiments.run("clustering/dec_mnist", tmp_path / "killed", overrides)
  (seed_dir,) = (tmp_path / "killed" / "checkpoints").iterdir()
  assert {p.name for p in seed_dir.iterdir()} == {"dec", "idec"}
  resumed = experiments.run("clustering/dec_mnist", tmp_path / "killed", overrides)
  assert resumed == expected
  assert not seed_dir.parent.exists()  # the seed's checkpoints go once it is done

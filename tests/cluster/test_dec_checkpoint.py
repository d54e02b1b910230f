"""A DEC fit killed in any phase resumes from its orbax checkpoints to the uninterrupted result."""

import jax
import numpy as np
import pytest
from sklearn.datasets import load_digits

from ycng_jax.cluster import DEC, dec as dec_module
from ycng_jax.cluster.dec_checkpoint import fingerprint

# The sizes of tests/cluster/test_dec.py's SMALL, so compiled steps are shared in one session.
CONFIG = dict(hidden_dims=(128, 10), pretrain_batch_size=64, batch_size=64, kmeans_n_init=10,
              pretrain_epochs=3, max_iter=20, update_interval=5, tol=0.0)


class Killed(Exception):
  pass


@pytest.fixture(scope="module")
def x():
  return (load_digits().data[:300] / 16.0).astype(np.float32)  # 5 batches, the last one short


def count_steps(monkeypatch, factory: str, kill_at: int | None = None) -> list[int]:
  """Wraps the jitted steps ``factory`` builds; counts their calls and raises on call ``kill_at``."""
  calls = []
  real = getattr(dec_module, factory)

  def patched(*args):
    step = real(*args)

    def counted(*step_args):
      calls.append(1)
      if len(calls) == kill_at:
        raise Killed(f"killed at step call {kill_at}")
      return step(*step_args)
    return counted

  monkeypatch.setattr(dec_module, factory, patched)
  return calls


def assert_same_fit(a: DEC, b: DEC) -> None:
  assert a.pretrain_history_ == b.pretrain_history_
  np.testing.assert_array_equal(a.kmeans_labels_, b.kmeans_labels_)
  np.testing.assert_array_equal(a.labels_, b.labels_)
  jax.tree.map(np.testing.assert_array_equal, a.params_, b.params_)
  assert a.n_iter_ == b.n_iter_
  for key in ("iteration", "loss", "kl", "delta_label"):
    np.testing.assert_array_equal([h[key] for h in a.history_], [h[key] for h in b.history_])


def test_killed_in_pretraining_resumes_to_the_same_result(x, tmp_path, monkeypatch):
  config = CONFIG | dict(greedy_epochs=1)  # two greedy pairs of 5 steps, then 3 epochs of 5
  expected = DEC(10, seed=1, **config).fit(x)
  with monkeypatch.context() as patch:
    count_steps(patch, "_jit_pretrain_step", kill_at=10 + 5 + 3)  # in the second epoch
    with pytest.raises(Killed):
      DEC(10, seed=1, checkpoint_dir=tmp_path, checkpoint_seconds=0, **config).fit(x)
  assert {p.name for p in tmp_path.iterdir()} == {"greedy_0", "greedy_1", "pretrain"}
  with monkeypatch.context() as patch:
    calls = count_steps(patch, "_jit_pretrain_step")
    resumed = DEC(10, seed=1, checkpoint_dir=tmp_path, checkpoint_seconds=0, **config).fit(x)
  assert len(calls) == 2 * 5  # the greedy pairs and the first epoch were not run again
  assert_same_fit(expected, resumed)


def test_killed_in_clustering_resumes_to_the_same_result(x, tmp_path, monkeypatch):
  expected = DEC(10, seed=2, **CONFIG).fit(x)
  assert expected.n_iter_ == 20
  with monkeypatch.context() as patch:
    count_steps(patch, "_jit_cluster_step", kill_at=13)  # after the checkpoint at iteration 10
    with pytest.raises(Killed):
      DEC(10, seed=2, checkpoint_dir=tmp_path, checkpoint_seconds=0, **CONFIG).fit(x)
  with monkeypatch.context() as patch:
    pretrain_calls = count_steps(patch, "_jit_pretrain_step")
    cluster_calls = count_steps(patch, "_jit_cluster_step")
    resumed = DEC(10, seed=2, checkpoint_dir=tmp_path, checkpoint_seconds=0, **CONFIG).fit(x)
  assert pretrain_calls == [] and len(cluster_calls) == 20 - 10
  assert_same_fit(expected, resumed)
  # A finished fit run again reads its checkpoints and ends where it ended.
  again = DEC(10, seed=2, checkpoint_dir=tmp_path, checkpoint_seconds=0, **CONFIG).fit(x)
  assert_same_fit(expected, again)


def test_idec_from_given_autoencoder_resumes(x, tmp_path, monkeypatch):
  """IDEC started from another fit's autoencoder and clusters: the given start is resumed too."""
  config = CONFIG | dict(idec=True, pretrain_epochs=1)
  base = DEC(10, seed=4, **(config | dict(idec=False, max_iter=0))).fit(x)
  start = dict(autoencoder_params=base.autoencoder_params_, init_labels=base.kmeans_labels_)
  expected = DEC(10, seed=4, **config).fit(x, **start)
  with monkeypatch.context() as patch:
    count_steps(patch, "_jit_cluster_step", kill_at=8)
    with pytest.raises(Killed):
      DEC(10, seed=4, checkpoint_dir=tmp_path, checkpoint_seconds=0, **config).fit(x, **start)
  resumed = DEC(10, seed=4, checkpoint_dir=tmp_path, checkpoint_seconds=0, **config).fit(x, **start)
  assert_same_fit(expected, resumed)
  np.testing.assert_array_equal(resumed.init_labels_, base.kmeans_labels_)
  # Another start is another run: its checkpoints do not fit.
  with pytest.raises(ValueError, match="other settings, data or starting point"):
    DEC(10, seed=4, checkpoint_dir=tmp_path, **config).fit(
        x, autoencoder_params=base.autoencoder_params_, init_labels=base.labels_[::-1])


def test_checkpoints_of_another_run_are_an_error(x, tmp_path):
  DEC(10, seed=0, checkpoint_dir=tmp_path, **(CONFIG | dict(pretrain_epochs=1, max_iter=5))).fit(x)
  with pytest.raises(ValueError, match="other settings"):
    DEC(10, seed=0, checkpoint_dir=tmp_path, learning_rate=0.1,
        **(CONFIG | dict(pretrain_epochs=1, max_iter=5))).fit(x)
  with pytest.raises(ValueError, match="other settings"):
    DEC(10, seed=0, checkpoint_dir=tmp_path, **(CONFIG | dict(pretrain_epochs=1, max_iter=5))).fit(
        x[::-1])
  with pytest.raises(ValueError, match="checkpoint_seconds"):
    DEC(10, checkpoint_seconds=-1)


def test_fingerprint_sees_settings_and_every_array():
  a = np.arange(6, dtype=np.float32)
  assert fingerprint({"a": 1}, a) == fingerprint({"a": 1}, a.copy())
  assert fingerprint({"a": 1}, a) != fingerprint({"a": 2}, a)
  assert fingerprint({"a": 1}, a) != fingerprint({"a": 1}, a.reshape(2, 3))
  assert fingerprint({"a": 1}, a) != fingerprint({"a": 1}, a, a)

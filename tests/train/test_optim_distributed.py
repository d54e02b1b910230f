"""Optimizer construction, freezing labels and the multi-host set-up logic."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ycng_jax.train import distributed, optim


def test_freeze_keeps_frozen_params_bit_identical():
  params = {"base": {"kernel": jnp.arange(6.0).reshape(2, 3)}, "head": {"kernel": jnp.ones(3)}}
  labels = optim.trainable_labels(params, trainable=["^head/"])
  assert labels == {"base": {"kernel": "frozen"}, "head": {"kernel": "trainable"}}
  tx = optim.freeze(optim.make_optimizer("adamw", 0.1, weight_decay=0.1), labels)
  state = tx.init(params)
  grads = jax.tree.map(jnp.ones_like, params)
  for _ in range(3):
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
  np.testing.assert_array_equal(params["base"]["kernel"], jnp.arange(6.0).reshape(2, 3))
  assert not np.array_equal(params["head"]["kernel"], jnp.ones(3))
  assert optim.get_hyperparams(state)["learning_rate"] == pytest.approx(0.1)


def test_optimizer_config_errors_are_clear():
  with pytest.raises(ValueError, match="optax has no optimizer 'adamm'"):
    optim.make_optimizer("adamm")
  with pytest.raises(ValueError, match="unknown optimizer config keys \\['lr'\\]"):
    optim.optimizer_from_config({"name": "adam", "lr": 0.1}, 10)
  with pytest.raises(ValueError, match="unknown schedule"):
    optim.make_schedule("cosinus", 0.1, 10)
  with pytest.raises(ValueError, match="no parameter trainable"):
    optim.trainable_labels({"a": jnp.ones(1)}, trainable=["^b"])
  for make in (lambda: optim.make_optimizer("adam", -1.0),
               lambda: optim.optimizer_from_config({"name": "adam", "learning_rate": -1.0}, 10)):
    with pytest.raises(ValueError, match=r"^learning_rate must be a number in \[0\.0, inf\), "
                       r"got -1\.0\.$"):
      make()
  with pytest.raises(ValueError, match=r"^warmup_steps=10 must be smaller than the run's 10 steps"):
    optim.make_schedule("warmup_cosine", 0.1, 10, warmup_steps=10)


def test_schedule_lr_cannot_be_set_by_callbacks():
  tx = optim.optimizer_from_config({"name": "sgd", "learning_rate": 1.0, "schedule": "cosine"}, 10)
  state = tx.init({"w": jnp.ones(2)})
  with pytest.raises(ValueError, match="follows a schedule"):
    optim.set_hyperparam(state, "learning_rate", 0.1)
  tx = optim.optimizer_from_config({"name": "sgd", "learning_rate": 1.0, "clip_norm": 1.0}, 10)
  state = optim.set_hyperparam(tx.init({"w": jnp.ones(2)}), "learning_rate", 0.25)
  assert float(optim.get_hyperparams(state)["learning_rate"]) == 0.25


def test_distributed_single_process_is_left_alone(monkeypatch):
  for var in ("SLURM_JOB_ID", "SLURM_NTASKS", "TPU_WORKER_HOSTNAMES", "OMPI_COMM_WORLD_SIZE",
              distributed.ENV_COORDINATOR):
    monkeypatch.delenv(var, raising=False)
  assert distributed.detected_cluster() is None
  assert distributed.initialize({}) is False


def test_distributed_detects_clusters_and_checks_flags(monkeypatch):
  monkeypatch.setenv("SLURM_JOB_ID", "1")
  monkeypatch.setenv("SLURM_NTASKS", "4")
  assert distributed.detected_cluster() == "slurm"
  monkeypatch.delenv("SLURM_JOB_ID")
  monkeypatch.setenv("TPU_WORKER_HOSTNAMES", "h0,h1")
  assert distributed.detected_cluster() == "tpu"
  with pytest.raises(ValueError, match="also needs num_processes and process_id"):
    distributed.initialize(coordinator_address="localhost:1234")
  with pytest.raises(ValueError, match=r"process_id=2 must be in \[0, 2\)"):
    distributed.initialize(coordinator_address="localhost:1234", num_processes=2, process_id=2)

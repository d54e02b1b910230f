"""Shared by the topic tests: run an experiment with a tiny config, read its final metrics."""

import json
import os

from ycng_jax import experiments

TINY = {"train_examples": "640", "test_examples": "256", "num_epochs": "1", "batch_size": "64",
        "eval_batch_size": "128", "verbose": "0", "tensorboard": "False", "log_every_steps": "5"}


def run_tiny(name, workdir, **extra):
  overrides = {**TINY, **{k: str(v) for k, v in extra.items()}}
  return experiments.run(name, str(workdir), overrides)


def final_metrics(workdir):
  lines = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
  assert lines[-1]["final"] and all("step" in l for l in lines)
  return lines[-1]

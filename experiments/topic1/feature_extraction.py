"""Topic 1: feature extraction from an intermediate layer of a trained CNN (no retraining).

  ycng run topic1/feature_extraction [--workdir DIR] [--config.layer=dense]

Trains (or, on a rerun, resumes) a Sequential CNN, then reads the activations of ``layer``
for every image with ``ycng_jax.models.graph.extract_features`` and fits a scikit-learn
logistic regression on them. The network's params are checked to be unchanged by extraction.
"""

from __future__ import annotations

import os

import jax
import ml_collections
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ycng_jax.models.graph import extract_features
from ycng_jax.train import classification


def get_config() -> ml_collections.ConfigDict:
  config = classification.base_config()
  config.runner = ""
  config.model.name = "ycng_jax.models.cnn:CNN"
  config.model.kwargs.features = (32, 64)
  config.model.kwargs.convs_per_block = 1
  config.num_epochs = 3
  config.layer = "dense"      # the 128-wide hidden layer before the classifier
  config.probe_examples = 10000  # train examples for the logistic-regression probe
  config.best_monitor = ""
  return config


def layer_features(trainer, loader, layer: str) -> np.ndarray:
  """Activations of ``layer`` for the real examples of ``loader`` (inference mode)."""
  model, preprocess = trainer.model, trainer.preprocess

  @jax.jit
  def features(state, batch):
    batch = preprocess(batch)
    return extract_features(model, state.eval_variables, batch["image"], layer=layer)

  chunks = []
  for batch in loader:
    out = np.asarray(jax.device_get(features(trainer.state, batch)))
    chunks.append(out[np.asarray(jax.device_get(batch["mask"])) > 0])
  return np.concatenate(chunks).reshape(sum(len(c) for c in chunks), -1)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  classification.check_config(config, get_config())
  result = classification.train(config, os.path.join(workdir, "cnn"), reference_config=get_config())
  trainer = result.trainer
  before = jax.device_get(trainer.state.params)
  probe = {k: v[:config.probe_examples] for k, v in result.arrays["train"].items()}
  probe_loader = classification.make_loaders(config, trainer.mesh, probe, None, probe)["test"]
  x_train = layer_features(trainer, probe_loader, config.layer)
  x_test = layer_features(trainer, result.loaders["test"], config.layer)
  unchanged = all(np.array_equal(a, b) for a, b in zip(
      jax.tree.leaves(before), jax.tree.leaves(jax.device_get(trainer.state.params))))
  trainer.free()
  clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
  clf.fit(x_train, probe["label"])
  return {"cnn_test_accuracy": result.test_metrics["test_accuracy"],
          "probe_test_accuracy": float(clf.score(x_test, result.arrays["test"]["label"])),
          "feature_dim": int(x_train.shape[1]), "params_unchanged": bool(unchanged)}

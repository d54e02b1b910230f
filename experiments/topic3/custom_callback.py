"""Topic 3: a callback written by the experiment: per-class validation accuracy and confusion.

  ycng run topic3/custom_callback [--workdir DIR] [--config.num_epochs=5]

``ConfusionMatrixLogger`` predicts the validation set at every epoch end through the
trainer, adds ``val_worst_class_accuracy`` to the epoch logs (so History, CSV and
metrics.jsonl record it, and EarlyStopping could monitor it), writes
``confusion/epoch_N.json`` and finally ``confusion.png``. Its state survives a resume.
"""

from __future__ import annotations

import json
import os

import ml_collections
import numpy as np

from ycng_jax.train import classification
from ycng_jax.train.callbacks import Callback


def get_config() -> ml_collections.ConfigDict:
  config = classification.base_config()
  config.runner = ""
  config.model.name = "ycng_jax.models.cnn:CNN"
  config.model.kwargs.features = (32, 64)
  config.model.kwargs.convs_per_block = 1
  config.num_epochs = 5
  config.best_monitor = "val_worst_class_accuracy"
  return config


class ConfusionMatrixLogger(Callback):
  """Confusion matrix of the validation data at each epoch end."""
  order = -10  # before History and the loggers, so they record the metric added here

  def __init__(self, val_loader, labels: np.ndarray, num_classes: int, out_dir: str):
    super().__init__()
    self.val_loader, self.labels = val_loader, labels
    self.num_classes, self.out_dir = num_classes, out_dir
    self.worst: list[float] = []

  def on_epoch_end(self, epoch, logs=None):
    pred = self.trainer.predict(self.val_loader).argmax(-1)
    matrix = np.zeros((self.num_classes, self.num_classes), np.int64)
    np.add.at(matrix, (self.labels, pred), 1)
    per_class = matrix.diagonal() / np.maximum(matrix.sum(1), 1)
    worst = float(per_class.min())
    self.worst.append(worst)
    if logs is not None:
      logs["val_worst_class_accuracy"] = worst
    os.makedirs(self.out_dir, exist_ok=True)
    with open(os.path.join(self.out_dir, f"epoch_{epoch + 1}.json"), "w") as f:
      json.dump({"matrix": matrix.tolist(), "per_class_accuracy": per_class.tolist()}, f)
    self.last_matrix = matrix

  def on_train_end(self, logs=None):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    if not hasattr(self, "last_matrix"):
      return
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(self.last_matrix, cmap="Blues")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.savefig(os.path.join(os.path.dirname(self.out_dir), "confusion.png"), dpi=100)
    plt.close(fig)

  def get_state(self):
    return {"worst": self.worst}

  def set_state(self, state):
    self.worst = list(state["worst"])


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  classification.check_config(config, get_config())
  train, val, test = classification.load_splits(config)
  if val is None:
    raise ValueError("this experiment needs validation data: set validation_split > 0")
  from ycng_jax.train.mesh import make_mesh
  mesh = make_mesh(config.num_devices or None)
  val_loader = classification.make_loaders(config, mesh, train, val, test)["val"]
  logger = ConfusionMatrixLogger(val_loader, val["label"], 10, os.path.join(workdir, "confusion"))
  metrics = classification.run(config, workdir, extra_callbacks=[logger], splits=(train, val, test),
                               reference_config=get_config())
  return {**metrics, "val_worst_class_accuracy": logger.worst[-1]}

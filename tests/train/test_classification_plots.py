"""The report's training curves: one line per logged head, nothing left out."""

import warnings

import matplotlib

matplotlib.use("Agg")

from ycng_jax.train import classification  # noqa: E402  pylint: disable=wrong-import-position


def _plotted_labels(monkeypatch, history, tmp_path):
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  figures = []
  monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to inspect it
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # e.g. matplotlib's "No artists with labels" legend warning
    classification.plot_history(history, str(tmp_path / "curves.png"))
  assert (tmp_path / "curves.png").stat().st_size > 0
  return [[line.get_label() for line in ax.get_lines()] for ax in figures[0].axes]


def test_multi_output_history_plots_every_head(monkeypatch, tmp_path):
  history = {"loss": [1.0, 0.5], "label_loss": [0.8, 0.4], "group_loss": [0.4, 0.2],
             "label_accuracy": [0.5, 0.7], "group_accuracy": [0.8, 0.9],
             "val_loss": [1.1, 0.6], "val_label_accuracy": [0.4, 0.6]}
  loss, accuracy = _plotted_labels(monkeypatch, history, tmp_path)
  assert loss == ["group_loss", "label_loss", "loss", "val_loss"]
  assert accuracy == ["group_accuracy", "label_accuracy", "val_label_accuracy"]


def test_single_output_history_and_a_missing_metric(monkeypatch, tmp_path):
  loss, accuracy = _plotted_labels(monkeypatch, {"loss": [1.0], "val_loss": [0.9]}, tmp_path)
  assert loss == ["loss", "val_loss"] and accuracy == []

"""Figures of a Siamese run (PNG, for the report): curves, embedding map, distances, pairs,
one-shot episodes. Each takes plain numpy arrays so it can be redrawn from saved results."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np


def _plt():
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def plot_curves(history: Mapping[str, Sequence[float]], path: str):
  """Loss (train / val) and the per-epoch validation AUC."""
  plt = _plt()
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
  for key in ("loss", "val_loss"):
    if key in history:
      axes[0].plot(range(1, len(history[key]) + 1), history[key], marker="o", label=key)
  axes[0].set_title("loss")
  if "val_verification_auc" in history:
    values = history["val_verification_auc"]
    axes[1].plot(range(1, len(values) + 1), values, marker="o", label="val_verification_auc")
  axes[1].set_title("validation pair ROC AUC")
  for ax in axes:
    ax.set_xlabel("epoch")
    ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def plot_embedding_map(embeddings: np.ndarray, pixels: np.ndarray, labels: np.ndarray,
                       path: str, title: str = "tower embeddings"):
  """2-D PCA of the embeddings beside the PCA of raw pixels, coloured by class."""
  from sklearn.decomposition import PCA
  plt = _plt()
  fig, axes = plt.subplots(1, 2, figsize=(11, 5))
  for ax, (name, x) in zip(axes, ((title, embeddings), ("raw pixels", pixels))):
    xy = PCA(2, random_state=0).fit_transform(np.asarray(x, np.float32).reshape(len(x), -1))
    points = ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab10", s=4, alpha=0.7)
    ax.set_title(f"{name} (PCA to 2-D)")
    ax.set_xticks([])
    ax.set_yticks([])
  fig.colorbar(points, ax=axes, label="class")
  fig.savefig(path, dpi=100)
  plt.close(fig)


def plot_distance_histogram(distances: np.ndarray, same: np.ndarray, threshold: float,
                            path: str, title: str = "test pairs"):
  plt = _plt()
  fig, ax = plt.subplots(figsize=(6, 3.5))
  bins = np.linspace(0, max(float(distances.max()), threshold) * 1.02, 60)
  ax.hist(distances[same == 1], bins=bins, alpha=0.6, label="same class")
  ax.hist(distances[same == 0], bins=bins, alpha=0.6, label="different class")
  ax.axvline(threshold, color="k", linestyle="--", label=f"threshold {threshold:.3f}")
  ax.set_xlabel("embedding distance")
  ax.set_title(title)
  # A fixed corner: loc="best" scans every histogram patch and warns that it is slow.
  ax.legend(loc="upper right")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def plot_pairs(images: np.ndarray, first: np.ndarray, second: np.ndarray, same: np.ndarray,
               distances: np.ndarray, threshold: float, path: str, count: int = 12):
  """Example test pairs with their distance: the first right decisions, then the first
  wrong ones (red titles), up to half of ``count`` each."""
  plt = _plt()
  right = (distances <= threshold) == (same == 1)
  wrong = np.flatnonzero(~right)[:count // 2]
  shown = np.concatenate([np.flatnonzero(right)[:count - len(wrong)], wrong])
  first, second, same, distances = first[shown], second[shown], same[shown], distances[shown]
  count = len(shown)
  fig, axes = plt.subplots(2, count, figsize=(1.3 * count, 3.2), squeeze=False)
  for i in range(count):
    for row, index in enumerate((first[i], second[i])):
      axes[row, i].imshow(images[index].squeeze(), cmap="gray")
      axes[row, i].axis("off")
    right = (distances[i] <= threshold) == (same[i] == 1)
    axes[0, i].set_title(f"{'same' if same[i] else 'diff'}\nd={distances[i]:.2f}", fontsize=8,
                         color="black" if right else "red")
  fig.suptitle(f"test pairs (same if d <= {threshold:.2f}; red = wrong)", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def plot_one_shot(images: np.ndarray, support: np.ndarray, query: np.ndarray,
                  target: np.ndarray, predicted: np.ndarray, path: str, count: int = 5):
  """Episodes: the query, then the N supports; green = true class, red = a wrong pick."""
  plt = _plt()
  count = min(count, len(query))
  n_way = support.shape[1]
  fig, axes = plt.subplots(count, n_way + 1, figsize=(1.3 * (n_way + 1), 1.4 * count),
                           squeeze=False)
  for e in range(count):
    axes[e, 0].imshow(images[query[e]].squeeze(), cmap="gray")
    axes[e, 0].set_title("query", fontsize=8)
    for j in range(n_way):
      ax = axes[e, j + 1]
      ax.imshow(images[support[e, j]].squeeze(), cmap="gray")
      if j == target[e] or j == predicted[e]:
        color = "green" if j == target[e] else "red"
        for spine in ax.spines.values():
          spine.set_edgecolor(color)
          spine.set_linewidth(3)
      if j == predicted[e]:
        ax.set_title("picked", fontsize=8)
    for ax in axes[e]:
      ax.set_xticks([])
      ax.set_yticks([])
  fig.suptitle("one-shot episodes (green: true class, red: wrong pick)", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)

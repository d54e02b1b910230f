"""Evaluating sentence encoders on a pair task, and the bi-encoder run's report.

``evaluate`` scores each encoder folder the same way: the cosine of a pair's two texts decides
the pair classification (threshold of best accuracy on validation, as the cross-encoder
runner's baselines), and held-out first texts retrieve their second texts among all of them.
``write`` puts ``results.json``, ``results.md`` and ``retrieval.png`` in the workdir; it reads
the results dict only, never reruns anything.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Sequence

import numpy as np

from ycng_jax.text import retrieval
from ycng_jax.vision.siamese_eval import best_threshold

CURVE_K = 100  # recall@k is drawn for k = 1..CURVE_K
PAIR_COLUMNS = ("accuracy", "f1", "roc_auc", "average_precision", "threshold")
LABELS = {"embedding_cosine": "all-MiniLM-L6-v2, frozen (cosine)",
          "fine_tuned": "bi-encoder, fine-tuned (cosine)"}


def max_seq_length(folder: str, bert_config) -> int:
  """The folder's sentence-transformers ``max_seq_length`` (else the model's position limit): the
  saved folder keeps it, so base and fine-tuned encoders truncate alike in the evaluation."""
  path = os.path.join(folder, "sentence_bert_config.json")
  if os.path.isfile(path):
    with open(path, encoding="utf-8") as f:
      return int(json.load(f).get("max_seq_length", bert_config.max_position_embeddings))
  return bert_config.max_position_embeddings


def pair_metrics(validation_scores: np.ndarray, validation_labels: np.ndarray,
                 test_scores: np.ndarray, test_labels: np.ndarray) -> dict[str, float]:
  """A score >= threshold says "a pair"; the threshold is the validation pairs' most accurate.

  Returns test accuracy and F1 at that threshold, and the threshold-free ROC AUC and average
  precision (``average_precision`` / ``roc_auc`` only when the test set has both classes).
  """
  from sklearn import metrics as skm  # pylint: disable=import-outside-toplevel
  # best_threshold predicts "same" for d <= t: with d = -score, score >= -t.
  threshold = -best_threshold(-np.asarray(validation_scores), validation_labels)[0]
  labels = np.asarray(test_labels).astype(np.int64)
  predicted = (np.asarray(test_scores) >= threshold).astype(np.int64)
  out = {"accuracy": float(np.mean(predicted == labels)),
         "f1": float(skm.f1_score(labels, predicted, zero_division=0)),
         "threshold": float(threshold)}
  if 0 < labels.sum() < len(labels):
    out["roc_auc"] = float(skm.roc_auc_score(labels, test_scores))
    out["average_precision"] = float(skm.average_precision_score(labels, test_scores))
  return out


def _embed_all(encoder, texts: Sequence[str], batch_size: int) -> dict[str, np.ndarray]:
  """Each distinct text embedded once."""
  distinct = sorted(set(texts))
  vectors = encoder.encode(distinct, batch_size=batch_size)
  return dict(zip(distinct, vectors))


def evaluate(task, queries: Sequence[str], answers: Sequence[str], models: Mapping[str, str], *,
             precision: str = "float32", batch_size: int = 64, ks: Sequence[int] = (1, 10)
             ) -> dict[str, Any]:
  """Pair classification on the task's validation and test pairs, and retrieval (each query's
  answer among all distinct ``answers``), of each ``{name: encoder folder or packaged name}``."""
  from ycng_jax.text.encoder import Encoder, precision_kwargs  # pylint: disable=import-outside-toplevel
  splits = {s: {k: [str(t) for t in task.splits[s][k]] for k in ("text", "text_b")}
            for s in ("validation", "test")}
  labels = {s: np.asarray(task.splits[s]["label"]).astype(np.int64) for s in splits}
  documents, positive = retrieval.unique_documents(answers)
  texts = [t for split in splits.values() for side in split.values() for t in side]
  texts += queries + documents
  out: dict[str, Any] = {"pair_classification": {}, "retrieval": {}, "recall_curve": {},
                         "test_cosines": {"label": labels["test"].tolist()},
                         "pairs": {s: int(len(v)) for s, v in labels.items()},
                         "retrieval_queries": len(queries), "retrieval_documents": len(documents)}
  for name, model in models.items():
    encoder = Encoder.from_pretrained(model, **precision_kwargs(precision))
    vectors = _embed_all(encoder, texts, batch_size)
    del encoder
    cosines = {s: np.asarray([float(vectors[a] @ vectors[b])
                              for a, b in zip(split["text"], split["text_b"])])
               for s, split in splits.items()}
    out["pair_classification"][name] = pair_metrics(cosines["validation"], labels["validation"],
                                                    cosines["test"], labels["test"])
    ranks = retrieval.positive_ranks(np.stack([vectors[q] for q in queries]),
                                     np.stack([vectors[d] for d in documents]), positive)
    out["retrieval"][name] = retrieval.recall_at(ranks, ks)
    out["recall_curve"][name] = retrieval.recall_curve(ranks, CURVE_K).tolist()
    out["test_cosines"][name] = cosines["test"].tolist()
  return out


def flat(results: Mapping[str, Any]) -> dict[str, float]:
  """The final metrics as one flat dict: ``test_*`` of the fine-tuned model, ``<name>_test_*``
  of the others (the cross-encoder runner's naming), and the training speed."""
  out = {}
  for table in ("pair_classification", "retrieval"):
    for name, metrics in results[table].items():
      prefix = "test_" if name == "fine_tuned" else f"{name}_test_"
      out.update({prefix + k: v for k, v in metrics.items()})
  training = results.get("training", {})
  out.update({k: training[k] for k in ("steps_per_second", "pairs_per_second") if k in training})
  return out


def _markdown(results: Mapping[str, Any]) -> str:
  pair, found = results["pair_classification"], results["retrieval"]
  recall = [k for k in next(iter(found.values()))]
  head = ["model", *PAIR_COLUMNS, *recall]
  lines = [f"# Bi-encoder on {results.get('dataset', '?')}", "",
           f"Held-out pairs: {results['pairs']['test']} (threshold from "
           f"{results['pairs']['validation']} validation pairs); retrieval: "
           f"{results['retrieval_queries']} queries among {results['retrieval_documents']} "
           "distinct second texts.", "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for name in pair:
    cells = [LABELS.get(name, name)]
    cells += [f"{pair[name][c]:.4f}" if c in pair[name] else "" for c in PAIR_COLUMNS]
    cells += [f"{found[name][k]:.4f}" for k in recall]
    lines.append("| " + " | ".join(cells) + " |")
  training = results.get("training")
  if training:
    lines += ["", f"Training: {training['pairs']} pairs, {training['steps']} steps of "
                  f"{training['batch_size']} pairs on {training['devices']} device(s), "
                  f"{training['steps_per_second']:.3f} steps/s."]
  return "\n".join(lines) + "\n"


def _figure(results: Mapping[str, Any], path: str) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
  labels = np.asarray(results["test_cosines"]["label"])
  for (name, curve), colour in zip(results["recall_curve"].items(), ("tab:gray", "tab:blue")):
    k = np.arange(1, len(curve) + 1)
    left.plot(k, curve, color=colour, label=LABELS.get(name, name))
    cosines = np.asarray(results["test_cosines"][name])
    bins = np.linspace(-0.2, 1.0, 61)
    for value, style in ((1, "-"), (0, ":")):
      right.hist(cosines[labels == value], bins=bins, histtype="step", color=colour,
                 linestyle=style, density=True,
                 label=f"{LABELS.get(name, name).split(',')[0]}: "
                       f"{'pairs' if value else 'non-pairs'}")
  lowest = min(curve[0] for curve in results["recall_curve"].values())
  left.set(xscale="log", xlabel="k", ylabel="recall@k", ylim=(max(0.0, lowest - 0.1), 1.0),
           title=f"Retrieval among {results['retrieval_documents']} held-out texts")
  left.grid(alpha=0.3)
  left.legend(loc="lower right")
  right.set(xlabel="cosine", ylabel="density", title="Held-out pairs and non-pairs")
  right.legend(fontsize=8, loc="upper left")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def write(workdir: str, results: Mapping[str, Any]) -> None:
  """``results.json``, ``results.md`` and ``retrieval.png``."""
  with open(os.path.join(workdir, "results.json"), "w", encoding="utf-8") as f:
    json.dump(results, f, indent=1, default=float)
  with open(os.path.join(workdir, "results.md"), "w", encoding="utf-8") as f:
    f.write(_markdown(results))
  _figure(results, os.path.join(workdir, "retrieval.png"))

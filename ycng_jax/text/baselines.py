"""Baselines the fine-tuned classifiers are compared with, on the same splits and label set.

- one text: TF-IDF + logistic regression (scikit-learn; one-vs-rest for multi-label, with
  thresholds tuned on validation exactly as the fine-tuned model's);
- a text pair: the cosine of the two texts' frozen all-MiniLM-L6-v2 embeddings, and the cosine
  of their TF-IDF vectors; a threshold tuned on validation decides a binary task, the cosine
  itself is the prediction of a regression (STS) task.

Each returns ``{"name": ..., "validation": scores, "test": scores}`` where scores are what
``finetune_metrics.task_metrics`` takes, so every row of the results table is computed alike.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

Split = Mapping[str, Any]


def _tfidf(**overrides):
  from sklearn.feature_extraction.text import TfidfVectorizer
  options = dict(sublinear_tf=True, ngram_range=(1, 2), min_df=2, max_features=200_000,
                 strip_accents="unicode")
  options.update(overrides)
  return TfidfVectorizer(**options)


def tfidf_logistic_regression(train: Split, validation: Split, test: Split, problem_type: str,
                              *, c: float = 10.0, seed: int = 0) -> dict:
  """TF-IDF (word 1-2 grams, sublinear tf) + logistic regression; one-vs-rest for multi-label.

  Returns probabilities: (N, L) per label for multi-label, (N, C) over classes otherwise.
  """
  from sklearn.linear_model import LogisticRegression
  from sklearn.multiclass import OneVsRestClassifier
  vectorizer = _tfidf(min_df=2 if len(train["text"]) >= 50 else 1)
  x_train = vectorizer.fit_transform(list(train["text"]))
  labels = np.asarray(train["label"])
  if problem_type == "multi_label_classification":
    kept = labels.any(0) & ~labels.all(0)  # a label with one class only cannot be fitted
    model = OneVsRestClassifier(LogisticRegression(C=c, solver="liblinear", random_state=seed))
    model.fit(x_train, labels[:, kept].astype(np.int64))

    def predict(split):
      out = np.zeros((len(split["text"]), labels.shape[1]))
      out[:, kept] = model.predict_proba(vectorizer.transform(list(split["text"])))
      out[:, labels.all(0)] = 1.0
      return out
  elif problem_type == "single_label_classification":
    model = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    model.fit(x_train, labels)
    num_classes = int(max(labels.max(), np.max(validation["label"]), np.max(test["label"]))) + 1

    def predict(split):
      out = np.zeros((len(split["text"]), num_classes))
      out[:, model.classes_] = model.predict_proba(vectorizer.transform(list(split["text"])))
      return out
  else:
    raise ValueError(f"no TF-IDF logistic regression baseline for {problem_type!r}")
  return {"name": "tfidf_logistic_regression", "validation": predict(validation),
          "test": predict(test)}


def _rowwise_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Cosine of row i of ``a`` with row i of ``b`` (dense or scipy sparse rows)."""
  if hasattr(a, "multiply"):
    dots = np.asarray(a.multiply(b).sum(1)).ravel()
    norms = (np.sqrt(np.asarray(a.multiply(a).sum(1)).ravel())
             * np.sqrt(np.asarray(b.multiply(b).sum(1)).ravel()))
  else:
    dots = np.sum(a * b, 1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
  return dots / np.maximum(norms, 1e-12)


def tfidf_cosine(train: Split, validation: Split, test: Split) -> dict:
  """Cosine of the TF-IDF vectors of ``text`` and ``text_b`` (idf from both sides of train)."""
  vectorizer = _tfidf(ngram_range=(1, 1), min_df=1)
  vectorizer.fit(list(train["text"]) + list(train["text_b"]))

  def cosine(split):
    return _rowwise_cosine(vectorizer.transform(list(split["text"])),
                           vectorizer.transform(list(split["text_b"])))

  return {"name": "tfidf_cosine", "validation": cosine(validation), "test": cosine(test)}


def embedding_cosine(validation: Split, test: Split, *, model: str = "all-MiniLM-L6-v2",
                     precision: str = "float32", batch_size: int = 64) -> dict:
  """Cosine of the frozen sentence embeddings (``ycng_jax.text.Encoder``) of the two texts."""
  from ycng_jax.text.encoder import Encoder, precision_kwargs
  encoder = Encoder.from_pretrained(model, **precision_kwargs(precision))

  def cosine(split):
    a = encoder.encode(list(split["text"]), batch_size=batch_size)
    b = encoder.encode(list(split["text_b"]), batch_size=batch_size)
    return np.sum(a * b, 1)  # the rows are L2-normalised

  return {"name": "embedding_cosine", "validation": cosine(validation), "test": cosine(test)}

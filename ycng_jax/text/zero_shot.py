"""Zero-shot text classification: ``zero_shot_classify(texts, labels, model=...)``.

Each label becomes a hypothesis, ``hypothesis_template.format(label)`` (or the template filled
with the label's description, when ``label_descriptions`` gives one). Two modes, chosen by the
model:

- **Embedding mode** (a sentence encoder; the default all-MiniLM-L6-v2): texts and hypotheses
  are embedded (the hypotheses once per call) and compared by cosine. Single-label scores are
  ``softmax(cosine / TEMPERATURE)``. Multi-label scores are calibrated per label: a cosine has no
  absolute meaning (a label's hypothesis may sit near every text of a domain), so each label's
  threshold is the mean plus ``CALIBRATION_STDS`` standard deviations of its cosine over a
  calibration set, the call's texts plus the fixed ``BACKGROUND`` sentences (which keep a call
  of one text meaningful); the score is ``sigmoid((cosine - threshold) / TEMPERATURE)``, above
  0.5 exactly when the cosine is above the label's threshold.
- **Entailment mode** (a Hugging Face BERT-family sequence-classification folder whose
  ``id2label`` has a label starting with "entail", e.g. an NLI model): every (text, hypothesis)
  pair is read by the cross-encoder, the pairs of all texts and all labels packed together into
  the fixed-shape rows of ``TextClassifier`` (no pass per label). Scores are defined exactly as
  transformers' ``pipeline("zero-shot-classification")`` defines them: the softmax of the
  entailment logits over labels; or, for ``multi_label`` (and for a single label), per label the
  softmax of (contradiction, entailment) logits, where "contradiction" is the first label, or
  the last when entailment is the first. Only the text of a pair is truncated, as there.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ycng_jax.checks import whole_number
from ycng_jax.errors import UserError, UserFileError, UserTypeError
from ycng_jax.text.finetune_metrics import softmax

DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_TEMPLATE = "This example is {}."
TEMPERATURE = 0.05  # cosines differ by hundredths; x20 is sentence-transformers' usual scale
CALIBRATION_STDS = 1.0
# Sentences from unrelated domains: what a label's cosine looks like for text it does not fit.
BACKGROUND = (
    "The weather will be sunny with a light breeze this afternoon.",
    "Add the flour slowly and stir until the batter is smooth.",
    "The team won the match after extra time.",
    "Interest rates rose for the third month in a row.",
    "The museum opens a new exhibition of early photographs.",
    "She moved to a small village near the coast last year.",
    "This library provides functions for parsing configuration files.",
    "The movie is a long, slow drama about a family reunion.",
    "Regular exercise lowers the risk of heart disease.",
    "The train to the airport leaves every twenty minutes.",
    "Parliament passed the budget after a long debate.",
    "The guitar solo in the second song is the highlight of the album.",
    "A command-line tool that converts images between formats.",
    "The children planted tomatoes and beans in the school garden.",
    "Astronomers observed a comet passing close to the sun.",
    "Please reply to this email by Friday.",
)


def _check_labels(labels: Any) -> list[str]:
  """A list of distinct non-empty str (a str is split at commas, as transformers does)."""
  if isinstance(labels, str):
    labels = [label.strip() for label in labels.split(",") if label.strip()]
  if isinstance(labels, (bytes, bytearray, Mapping)) or not isinstance(labels, Iterable):
    raise UserTypeError(f"labels must be a list of str, got {type(labels).__name__}.")
  labels = list(labels)
  if not labels:
    raise UserError("labels is empty: give at least one candidate label.")
  for i, label in enumerate(labels):
    if not isinstance(label, str) or not label.strip():
      raise UserTypeError(f"labels[{i}] is {label!r}: every label must be a non-empty str.")
  repeated = sorted({label for label in labels if labels.count(label) > 1})
  if repeated:
    raise UserError(f"labels repeat {repeated}: give each candidate label once.")
  return labels


def _check_texts(texts: Any) -> list[str]:
  if isinstance(texts, str):
    texts = [texts]
  if isinstance(texts, (bytes, bytearray, Mapping)) or not isinstance(texts, Iterable):
    raise UserTypeError(f"texts must be a list of str (or one str), got {type(texts).__name__}.")
  texts = list(texts)
  for i, text in enumerate(texts):
    if not isinstance(text, str):
      raise UserTypeError(f"texts[{i}] is {type(text).__name__} ({text!r:.60}); texts are str.")
    if not text.strip():
      raise UserError(f"texts[{i}] is empty: every text needs some words to classify.")
  return texts


def hypotheses(labels: Sequence[str], hypothesis_template: str = DEFAULT_TEMPLATE,
               label_descriptions: Mapping[str, str] | Sequence[str] | None = None) -> list[str]:
  """The hypothesis of each label: the template filled with the label, or with its description.

  ``label_descriptions``: a dict label -> description (labels it lacks use their name) or a list
  of one description per label. ``hypothesis_template="{}"`` uses the descriptions as they are.
  """
  labels = _check_labels(labels)
  if not isinstance(hypothesis_template, str):
    raise UserTypeError(f"hypothesis_template must be a str with {{}} where the label goes, "
                        f"got {type(hypothesis_template).__name__}.")
  try:
    filled = hypothesis_template.format(labels[0])
  except (IndexError, KeyError, ValueError) as e:
    raise UserError(f"hypothesis_template {hypothesis_template!r} cannot be filled with a label "
                    f"({type(e).__name__}: {e}); write {{}} where the label goes and double any "
                    "other brace ({{ or }}).") from e
  if filled == hypothesis_template:
    raise UserError(f"hypothesis_template {hypothesis_template!r} has no {{}} for the label: "
                    "write it where the label goes, e.g. \"This example is {}.\"")
  if label_descriptions is None:
    fillers = labels
  elif isinstance(label_descriptions, Mapping):
    unknown = sorted(set(label_descriptions) - set(labels))
    if unknown:
      raise UserError(f"label_descriptions has entries for labels not in labels: {unknown}.")
    fillers = [label_descriptions.get(label, label) for label in labels]
  elif isinstance(label_descriptions, (str, bytes)) or not isinstance(label_descriptions, Iterable):
    raise UserTypeError("label_descriptions must be a dict label -> description or a list of "
                        f"one description per label, got {type(label_descriptions).__name__}.")
  else:
    fillers = list(label_descriptions)
    if len(fillers) != len(labels):
      raise UserError(f"{len(fillers)} label_descriptions for {len(labels)} labels: give one "
                      "per label (or a dict label -> description).")
  for label, filler in zip(labels, fillers):
    if not isinstance(filler, str) or not filler.strip():
      raise UserTypeError(f"the description of label {label!r} is {filler!r}; descriptions are "
                          "non-empty str.")
  return [hypothesis_template.format(f) for f in fillers]


# --- models ------------------------------------------------------------------------------------

def entailment_id(label_names: Sequence[str]) -> int:
  """The first label whose name starts with "entail" (case-insensitive), as transformers' zero-shot
  pipeline finds it; -1 if none."""
  return next((i for i, n in enumerate(label_names) if n.lower().startswith("entail")), -1)


def _folder_kind(folder: str) -> str:
  with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
    config = json.load(f)
  names = [v for _, v in sorted((int(k), v) for k, v in (config.get("id2label") or {}).items())]
  architectures = config.get("architectures") or []
  if entailment_id(names) >= 0:
    return "entailment"
  if any(a.endswith("ForSequenceClassification") for a in architectures):
    raise UserError(f"{folder!r} is a sequence classifier whose labels {names} have no "
                    "entailment label, so it cannot score hypotheses: give an NLI model (id2label "
                    "with 'entailment'), or a sentence encoder for embedding mode.")
  return "embedding"


def _stamp(folder: str) -> tuple:
  """What identifies a folder's contents for the caches: its weights' path and mtime."""
  files = sorted(n for n in os.listdir(folder) if n.endswith((".safetensors", ".bin", ".json")))
  return tuple((n, os.path.getmtime(os.path.join(folder, n))) for n in files)


@functools.lru_cache(maxsize=4)
def _load(folder: str, stamp: tuple):  # pylint: disable=unused-argument  (stamp: cache key)
  if _folder_kind(folder) == "entailment":
    from ycng_jax.text.classifier import TextClassifier
    return TextClassifier.from_pretrained(folder)
  from ycng_jax.text.encoder import Encoder
  try:
    return Encoder.from_pretrained(folder)
  except ValueError as e:
    raise UserError(f"{folder!r} is not a sentence encoder this package loads: {e}") from e


def load_model(model: Any = None):
  """An ``Encoder`` (embedding mode) or a ``TextClassifier`` with an entailment label.

  ``model``: None (all-MiniLM-L6-v2), a packaged model name, a Hugging Face folder, or an
  ``Encoder`` / ``TextClassifier`` already loaded (reused as it is: no reload per call).
  """
  from ycng_jax.models.hf_weights import resolve_model_folder
  from ycng_jax.text.classifier import TextClassifier
  from ycng_jax.text.encoder import Encoder
  if isinstance(model, (Encoder, TextClassifier)):
    if isinstance(model, TextClassifier) and entailment_id(model.label_names) < 0:
      raise UserError(f"this TextClassifier's labels {list(model.label_names)} have no entailment "
                      "label: zero-shot classification needs an NLI model.")
    return model
  if model is None:
    model = DEFAULT_MODEL
  if not isinstance(model, (str, os.PathLike)):
    raise UserTypeError(f"model must be a model name, a folder, an Encoder or a TextClassifier; "
                        f"got {type(model).__name__}.")
  try:
    folder = os.path.abspath(resolve_model_folder(model))
  except FileNotFoundError as e:
    raise UserFileError(f"{e} Give a sentence encoder (e.g. {DEFAULT_MODEL}) or an NLI sequence-"
                        "classification folder.") from e
  return _load(folder, _stamp(folder))


# --- scoring -----------------------------------------------------------------------------------

def entailment_scores(logits: np.ndarray, entail: int, multi_label: bool) -> np.ndarray:
  """(texts, labels, classes) NLI logits -> (texts, labels) scores, as transformers' pipeline."""
  if multi_label or logits.shape[1] == 1:
    contradiction = -1 if entail == 0 else 0
    return softmax(logits[..., [contradiction, entail]])[..., 1].astype(np.float32)
  return softmax(logits[..., entail], axis=1).astype(np.float32)


def pair_tokenizer(classifier):
  """A copy of ``classifier``'s tokenizer that truncates a (text, hypothesis) pair as
  transformers' pipeline does: the text only (TruncationStrategy.ONLY_FIRST), to max_length."""
  from tokenizers import Tokenizer
  tokenizer = Tokenizer.from_str(classifier.tokenizer.to_str())
  tokenizer.enable_truncation(max_length=classifier.max_length, strategy="only_first")
  return tokenizer


def _entailment_logits(classifier, texts: list[str], hyps: list[str], batch_size: int,
                       stacklevel: int) -> np.ndarray:
  """(texts, labels, classes) logits of every (text, hypothesis) pair in packed forward passes."""
  tokenizer = pair_tokenizer(classifier)
  pairs = [(t, h) for t in texts for h in hyps]
  try:
    encodings = tokenizer.encode_batch(pairs, add_special_tokens=True)
  except Exception as e:  # tokenizers raises a plain Exception when a hypothesis leaves no room
    lengths = [len(tokenizer.encode(h, add_special_tokens=False).ids) for h in hyps]
    raise UserError(f"a hypothesis of {max(lengths)} tokens leaves no room for the text within "
                    f"the model's max_length={classifier.max_length}: shorten the template or "
                    f"the label descriptions ({e}).") from e
  truncated = {i // len(hyps) for i, e in enumerate(encodings) if e.overflowing}
  if truncated:
    warnings.warn(f"{len(truncated)} of {len(texts)} texts, with a hypothesis, were longer than "
                  f"the model's max_length={classifier.max_length} tokens and were truncated.",
                  stacklevel=stacklevel)
  logits = classifier.logits_of_ids([e.ids for e in encodings], [e.type_ids for e in encodings],
                                    batch_size * len(hyps))
  return logits.reshape(len(texts), len(hyps), -1)


def embedding_scores(text_vectors: np.ndarray, hypothesis_vectors: np.ndarray,
                     background_vectors: np.ndarray, multi_label: bool) -> np.ndarray:
  """Cosine scores of embedding mode (the module doc says how they are scaled and calibrated)."""
  cosine = text_vectors @ hypothesis_vectors.T
  if not multi_label:
    return softmax(cosine / TEMPERATURE, axis=1).astype(np.float32)
  calibration = np.concatenate([cosine, background_vectors @ hypothesis_vectors.T])
  threshold = calibration.mean(0) + CALIBRATION_STDS * calibration.std(0)
  return (1.0 / (1.0 + np.exp(-(cosine - threshold) / TEMPERATURE))).astype(np.float32)


def zero_shot_classify(texts: Sequence[str] | str, labels: Sequence[str] | str, *,
                       model: Any = None, hypothesis_template: str = DEFAULT_TEMPLATE,
                       multi_label: bool = False,
                       label_descriptions: Mapping[str, str] | Sequence[str] | None = None,
                       batch_size: int = 32) -> np.ndarray:
  """Scores of every label for every text: float32 (len(texts), len(labels)).

  Rows sum to 1 unless ``multi_label`` (then each score is in (0, 1) on its own, above 0.5 when
  the label applies). ``model``: a sentence encoder (embedding mode; default all-MiniLM-L6-v2)
  or a sequence-classification folder with an entailment label (entailment mode), by name, path,
  or as a loaded ``Encoder`` / ``TextClassifier``. ``batch_size``: texts a device step holds (in
  entailment mode with all their hypotheses: ``batch_size * len(labels)`` pairs).
  See the module doc for how each mode scores.
  """
  texts = _check_texts(texts)
  labels = _check_labels(labels)
  hyps = hypotheses(labels, hypothesis_template, label_descriptions)
  if not isinstance(multi_label, bool):
    raise UserTypeError(f"multi_label must be True or False, got {multi_label!r}.")
  batch_size = whole_number("batch_size", batch_size, 1)
  model = load_model(model)
  if not texts:
    return np.zeros((0, len(labels)), np.float32)
  from ycng_jax.text.encoder import Encoder
  if isinstance(model, Encoder):
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")  # hypotheses and background sentences are short
      hypothesis_vectors = model.encode(hyps, batch_size=batch_size)
      background = model.encode(list(BACKGROUND), batch_size=batch_size) if multi_label else None
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter("always")
      text_vectors = model.encode(texts, batch_size=batch_size)
    for w in caught:  # re-raised so that the warning names the caller's line
      warnings.warn(str(w.message), w.category, stacklevel=2)
    return embedding_scores(text_vectors, hypothesis_vectors, background, multi_label)
  logits = _entailment_logits(model, texts, hyps, batch_size, stacklevel=3)
  return entailment_scores(logits, entailment_id(model.label_names), multi_label)

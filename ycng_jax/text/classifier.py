"""Text classification with a BERT: ``save_classifier`` writes a Hugging Face folder,
``TextClassifier.from_pretrained(folder).predict(texts or pairs)`` reads it back.

The folder is what ``transformers.AutoModelForSequenceClassification`` and ``AutoTokenizer``
load (``model.safetensors``, ``config.json`` with ``id2label`` / ``label2id`` / ``problem_type``,
the tokenizer files), plus ``ycng_classifier.json`` for what transformers has no field for: the
decision thresholds of a multi-label model, the maximum length, whether inputs are text pairs.
Any Hugging Face ``BertForSequenceClassification`` folder loads too (thresholds 0.5, pairs or
single texts both accepted).

Prediction is fast the way the sentence ``Encoder`` is: texts are tokenized once (Rust
``tokenizers``), packed by length bucket into rows of fixed shapes (``ycng_jax.text.packing``),
each text attending only to itself, so one jitted forward per bucket serves every call and no
compute goes to padding; the [CLS] state of each text feeds the pooler and the head.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import numbers
import os
import shutil
import warnings
from typing import Any, Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ycng_jax.checks import whole_number
from ycng_jax.errors import UserError, UserFileError, UserTypeError
from ycng_jax.models.bert import (PROBLEM_TYPES, BertConfig, BertModel, packed_attention_mask,
                                  problem_type_of)
from ycng_jax.models.hf_weights import (WeightLoadError, load_pretrained, resolve_model_folder,
                                        save_pretrained)
# pylint: disable-next=protected-access
from ycng_jax.text.encoder import load_fast_tokenizer, _read_json, precision_kwargs
from ycng_jax.text.packing import RowPlan, length_buckets
from ycng_jax.train.mesh import data_sharding, make_mesh, replicated

SETTINGS_FILE = "ycng_classifier.json"
_SETTINGS_VERSION = 1
# Tokenizer files copied beside the rewritten tokenizer.json (AutoTokenizer reads them).
_TOKENIZER_FILES = ("tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                    "added_tokens.json")
_DEFAULT_THRESHOLD = 0.5


def _check_label_names(label_names: Any, problem_type: str, num_outputs: int) -> tuple[str, ...]:
  if label_names is None:
    label_names = ["score"] if problem_type == "regression" else [
        f"LABEL_{i}" for i in range(num_outputs)]
  if isinstance(label_names, (str, bytes)) or not isinstance(label_names, Iterable):
    raise UserTypeError(f"label_names must be a list of str, got {type(label_names).__name__}.")
  names = tuple(label_names)
  bad = [n for n in names if not isinstance(n, str) or not n]
  if bad:
    raise UserTypeError(f"label_names must be non-empty str; got {bad[0]!r}.")
  if len(set(names)) != len(names):
    raise UserError(f"label_names repeat a name: {sorted(n for n in set(names) if names.count(n) > 1)}.")
  if problem_type == "regression" and len(names) != 1:
    raise UserError(f"a regression model has one output, so one label name; got {len(names)}.")
  if problem_type == "single_label_classification" and len(names) < 2:
    raise UserError("single-label classification needs at least 2 labels; for one yes/no label "
                    "use problem_type='multi_label_classification' (a sigmoid score).")
  if len(names) != num_outputs:
    raise UserError(f"{len(names)} label_names but the classifier head has {num_outputs} outputs.")
  return names


def _check_threshold(name: str, value: Any) -> float:
  if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
    raise UserError(f"{name} must be a number in [0, 1] (a sigmoid score); got {value!r}.")
  return float(value)


def _check_thresholds(thresholds: Any, problem_type: str, num_labels: int
                      ) -> float | list[float] | None:
  """A global float, or one float per label; only multi-label models use thresholds."""
  if problem_type != "multi_label_classification":
    if thresholds is not None:
      raise UserError(f"thresholds apply to multi-label models; this one is {problem_type}.")
    return None
  if thresholds is None:
    return _DEFAULT_THRESHOLD
  if isinstance(thresholds, numbers.Real) and not isinstance(thresholds, bool):
    return _check_threshold("thresholds", thresholds)
  values = list(np.asarray(thresholds, dtype=object).reshape(-1)) if isinstance(
      thresholds, np.ndarray) else thresholds
  if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
    raise UserTypeError(f"thresholds must be a number or a list of {num_labels} numbers; "
                        f"got {type(thresholds).__name__}.")
  values = [_check_threshold(f"thresholds[{i}]", v) for i, v in enumerate(values)]
  if len(values) != num_labels:
    raise UserError(f"{len(values)} thresholds for {num_labels} labels: give one per label "
                    "or a single number.")
  return values


def _save_tokenizer(source: str, folder: str, max_length: int) -> None:
  """The source's tokenizer with its padding off and truncation at ``max_length``.

  A shipped ``tokenizer.json`` may pad every input to a fixed length (all-MiniLM-L6-v2's pads
  to 128): transformers overrides that per call, but ``tokenizers`` users would get it.
  ``model_max_length`` becomes ``max_length``, so ``AutoTokenizer(..., truncation=True)`` and
  the ``text-classification`` pipeline cut inputs where ``TextClassifier`` does.
  """
  try:
    tokenizer = load_fast_tokenizer(source, max_length)
  except (OSError, ValueError) as e:
    raise UserFileError(f"tokenizer_folder {source!r} holds no tokenizer (tokenizer.json or "
                        f"vocab.txt): {e}") from e
  tokenizer.save(os.path.join(folder, "tokenizer.json"))
  for name in _TOKENIZER_FILES:
    path = os.path.join(source, name)
    if os.path.isfile(path) and os.path.abspath(path) != os.path.abspath(os.path.join(folder, name)):
      shutil.copyfile(path, os.path.join(folder, name))
  config_path = os.path.join(folder, "tokenizer_config.json")
  tokenizer_config = _read_json(config_path)
  tokenizer_config["model_max_length"] = max_length
  with open(config_path, "w", encoding="utf-8") as f:
    json.dump(tokenizer_config, f, indent=2, sort_keys=True)


def save_classifier(folder: str | os.PathLike, *, params: Any, config: BertConfig,
                    tokenizer_folder: str | os.PathLike, problem_type: str,
                    label_names: Sequence[str] | None, thresholds: float | Sequence[float] | None = None,
                    max_length: int = 128, pair: bool = False,
                    extra: Mapping[str, Any] | None = None) -> str:
  """Writes a text classifier folder that transformers and ``TextClassifier`` both load.

  Args:
    folder: where to write (created; existing files of the same names are replaced).
    params: ``BertForSequenceClassification`` params (``{"bert": ..., "classifier": ...}``).
    config: the model's ``BertConfig``; ``num_labels``, ``problem_type`` and ``label_names`` are
      taken from the arguments below.
    tokenizer_folder: a folder with the tokenizer (``tokenizer.json`` or ``vocab.txt``), or a
      packaged model name such as "all-MiniLM-L6-v2".
    problem_type: "single_label_classification" (softmax, the argmax is the label),
      "multi_label_classification" (a sigmoid per label) or "regression" (one raw output).
    label_names: one name per output of the head (None: LABEL_0, ...; "score" for regression).
    thresholds: multi-label only: the sigmoid score above which a label is predicted, one number
      for every label or one per label (default 0.5).
    max_length: tokens per input (a pair counts both texts); longer inputs are truncated.
    pair: whether the inputs are text pairs (a, b) rather than single texts.
    extra: more JSON-serialisable settings to keep with the model (under "extra").

  Returns: the folder's path.
  """
  if problem_type not in PROBLEM_TYPES:
    raise UserError(f"problem_type={problem_type!r}; expected one of {PROBLEM_TYPES}.")
  if not isinstance(config, BertConfig):
    raise UserTypeError(f"config must be a ycng_jax.models.bert.BertConfig, got "
                        f"{type(config).__name__}.")
  head = params.get("classifier") if isinstance(params, Mapping) else None
  if head is None or "bert" not in params:
    raise UserError("params must be BertForSequenceClassification params, with 'bert' and "
                    "'classifier' entries.")
  label_names = _check_label_names(label_names, problem_type, int(np.shape(head["kernel"])[-1]))
  thresholds = _check_thresholds(thresholds, problem_type, len(label_names))
  max_length = whole_number("max_length", max_length, 2, config.max_position_embeddings)
  if not isinstance(pair, bool):
    raise UserTypeError(f"pair must be True or False, got {pair!r}.")
  try:
    json.dumps(extra)
  except TypeError as e:
    raise UserTypeError(f"extra must be JSON-serialisable (str, numbers, lists, dicts): {e}") from e
  source = os.fspath(tokenizer_folder)
  if not os.path.isdir(source):
    try:
      source = resolve_model_folder(source)
    except FileNotFoundError as e:
      raise UserFileError(f"tokenizer_folder: {e}") from e
  folder = os.fspath(folder)
  config = dataclasses.replace(config, num_labels=len(label_names), problem_type=problem_type,
                               label_names=label_names)
  save_pretrained(params, config, folder, head="classification")
  _save_tokenizer(source, folder, max_length)
  settings = {"format_version": _SETTINGS_VERSION, "thresholds": thresholds,
              "max_length": max_length, "pair": pair, "extra": dict(extra or {})}
  with open(os.path.join(folder, SETTINGS_FILE), "w", encoding="utf-8") as f:
    json.dump(settings, f, indent=2, sort_keys=True)
  return folder


@dataclasses.dataclass(frozen=True)
class Prediction:
  """One input's prediction.

  ``labels``: single-label, the argmax label; multi-label, every label whose sigmoid score is
  above its threshold, highest score first (possibly none); regression, none.
  ``scores``: label name -> softmax probability, sigmoid score, or the raw regression output.
  ``score``: regression, the output; classification, the highest score.
  """
  labels: list[str]
  scores: dict[str, float]
  score: float


def _resolve_folder(name_or_path: str | os.PathLike) -> str:
  try:
    folder = resolve_model_folder(name_or_path)
  except FileNotFoundError as e:
    raise UserFileError(f"{e} A classifier folder is one written by save_classifier (or any "
                        "Hugging Face BertForSequenceClassification folder).") from e
  except TypeError as e:
    raise UserTypeError(f"folder must be a path (str or os.PathLike), got "
                        f"{type(name_or_path).__name__}.") from e
  architectures = _read_json(os.path.join(folder, "config.json")).get("architectures") or []
  if architectures and not any(a.endswith("ForSequenceClassification") for a in architectures):
    raise UserError(f"{folder!r} holds a {architectures[0]}, not a sequence classifier: "
                    "fine-tune one and save it with ycng_jax.text.save_classifier.")
  return folder


def _default_max_length(folder: str, config: BertConfig) -> int:
  """A plain HF folder's tokenizer limit (``model_max_length``), capped by the model's positions."""
  limit = _read_json(os.path.join(folder, "tokenizer_config.json")).get("model_max_length")
  if isinstance(limit, int) and 2 <= limit <= config.max_position_embeddings:
    return limit
  return config.max_position_embeddings


def _packed_logits(encoder: BertModel, params, input_ids, token_type_ids, position_ids,
                   segment_ids, first_token):
  """(rows, seq) packed rows -> (rows, max_texts_per_row, num_labels) logits."""
  mask = packed_attention_mask(segment_ids)
  # The last layer computes each text's [CLS] state alone: no other token's state is read.
  cls_states, _ = encoder.apply({"params": params["encoder"]}, input_ids, mask,
                                token_type_ids=token_type_ids, position_ids=position_ids,
                                output_positions=first_token)
  cls_states = cls_states.astype(jnp.float32)
  head = params["head"]
  pooled = jnp.tanh(cls_states @ head["pooler"]["kernel"] + head["pooler"]["bias"])
  return pooled @ head["classifier"]["kernel"] + head["classifier"]["bias"]


@functools.lru_cache(maxsize=16)
def _compiled_forward(encoder: BertModel, devices: tuple, shape: tuple, axis_names: tuple):
  """The jitted ``_packed_logits`` of an encoder on a mesh, shared by every classifier with that
  encoder: reloading a model (each ``ycng predict`` in a process) compiles nothing again."""
  mesh = jax.sharding.Mesh(np.asarray(devices, dtype=object).reshape(shape), axis_names)
  rows = data_sharding(mesh)
  return jax.jit(functools.partial(_packed_logits, encoder),
                 in_shardings=(replicated(mesh),) + (rows,) * 5, out_shardings=rows)


class TextClassifier:
  """A BERT sequence classifier: texts, or text pairs, -> labels and scores.

  Load one with ``from_pretrained(folder)``; ``predict`` gives ``Prediction``s, ``scores`` the
  (n, num_labels) float32 softmax / sigmoid / regression outputs, ``logits`` the raw outputs.
  Inputs are a list of str, or a list of (text_a, text_b) tuples for a pair model.
  """

  def __init__(self, config: BertConfig, params: Any, tokenizer: Any, *, max_length: int,
               pair: bool | None = None, thresholds: float | Sequence[float] | None = None,
               batch_size: int = 64, extra: Mapping[str, Any] | None = None,
               mesh: jax.sharding.Mesh | None = None, buckets: Sequence[int] | None = None,
               max_texts_per_row: int = 8, **module_kwargs):
    self._config = config
    self._problem_type = problem_type_of(config)
    self._labels = config.label_names or tuple(f"LABEL_{i}" for i in range(config.num_labels))
    thresholds = _check_thresholds(thresholds, self._problem_type, config.num_labels)
    self._thresholds = (None if thresholds is None else
                        np.broadcast_to(np.asarray(thresholds, np.float64), (config.num_labels,)))
    self._max_length = whole_number("max_length", max_length, 2, config.max_position_embeddings)
    self._pair = pair
    self._batch_size = whole_number("batch_size", batch_size, 1)
    self._extra = dict(extra or {})
    self._tokenizer = tokenizer
    self._mesh = mesh if mesh is not None else make_mesh()
    # 8 texts a row, not the Encoder's 32: the last layer runs for every slot of a row, filled
    # or not, and texts worth classifying rarely take under 8 of a 64-token row's tokens.
    self._plan = RowPlan(buckets if buckets is not None else length_buckets(self._max_length),
                         self._max_length, max_texts_per_row, self._mesh.size)
    # The encoder without its pooler: the pooler and the head run on each text's [CLS] state,
    # wherever in a packed row the text starts. Its config drops the head's fields, so that
    # classifiers of one architecture share compiled steps (``_compiled_forward``).
    encoder_config = dataclasses.replace(config, num_labels=2, problem_type=None, label_names=None)
    encoder = BertModel(encoder_config, add_pooler=False, **module_kwargs)
    encoder_params = {k: v for k, v in params["bert"].items() if k != "pooler"}
    head = {"pooler": params["bert"]["pooler"]["dense"], "classifier": params["classifier"]}
    self._params = jax.device_put({"encoder": encoder_params, "head": head},
                                  replicated(self._mesh))
    self._forward = _compiled_forward(encoder, tuple(self._mesh.devices.flat),
                                      self._mesh.devices.shape, self._mesh.axis_names)

  @classmethod
  def from_pretrained(cls, folder: str | os.PathLike, *, precision: str = "float32",
                      batch_size: int = 64, mesh: jax.sharding.Mesh | None = None,
                      buckets: Sequence[int] | None = None) -> "TextClassifier":
    """A folder from ``save_classifier``, or any Hugging Face ``BertForSequenceClassification``
    folder (then thresholds are 0.5, the length limit is the tokenizer's ``model_max_length``, and
    both single texts and pairs are accepted).

    ``precision``: "float32", "bf16-matmul" (bf16 matmul operands, float32 sums: ~1.6x on CPUs
    with AVX512-BF16) or "bfloat16" (GPUs, TPUs). ``batch_size`` is ``predict``'s default.
    """
    try:
      module_kwargs = precision_kwargs(precision)
    except ValueError as e:
      raise UserError(str(e)) from e
    folder = _resolve_folder(folder)
    try:
      config = BertConfig.from_hf(folder)
      _, params, _ = load_pretrained(folder, head="classification", config=config)
    except FileNotFoundError as e:
      raise UserFileError(f"{folder!r}: {e}") from e
    except WeightLoadError as e:  # One line: the ycng command prints a UserError as one.
      raise UserError(f"{folder!r} is not a BERT sequence classifier this model loads: "
                      + " ".join(str(e).split())) from e
    except ValueError as e:
      raise UserError(f"{folder!r}: {e}") from e
    settings = _read_json(os.path.join(folder, SETTINGS_FILE))
    if settings.get("format_version", _SETTINGS_VERSION) > _SETTINGS_VERSION:
      raise UserError(f"{folder}/{SETTINGS_FILE} has format_version "
                      f"{settings['format_version']}, newer than this ycng_jax reads "
                      f"({_SETTINGS_VERSION}): upgrade ycng_jax.")
    max_length = settings.get("max_length") or _default_max_length(folder, config)
    try:
      tokenizer = load_fast_tokenizer(folder, max_length)
    except (OSError, ValueError) as e:
      raise UserFileError(f"{folder!r} has no tokenizer (tokenizer.json or vocab.txt): {e}") from e
    return cls(config, params, tokenizer, max_length=max_length, pair=settings.get("pair"),
               thresholds=settings.get("thresholds"), batch_size=batch_size, extra=settings.get("extra"),
               mesh=mesh, buckets=buckets, **module_kwargs)

  @property
  def config(self) -> BertConfig:
    return self._config

  @property
  def label_names(self) -> tuple[str, ...]:
    return self._labels

  @property
  def problem_type(self) -> str:
    return self._problem_type

  @property
  def thresholds(self) -> np.ndarray | None:
    """Per-label sigmoid thresholds of a multi-label model (None otherwise)."""
    return None if self._thresholds is None else self._thresholds.copy()

  @property
  def max_length(self) -> int:
    return self._max_length

  @property
  def tokenizer(self):
    """The ``tokenizers.Tokenizer`` (no padding, truncation at ``max_length``)."""
    return self._tokenizer

  @property
  def pair(self) -> bool | None:
    """True for a text-pair model, False for single texts, None when the folder does not say."""
    return self._pair

  @property
  def extra(self) -> dict:
    return dict(self._extra)

  def _check_inputs(self, inputs: Any) -> tuple[list[str], list[str] | None]:
    """Inputs as (texts, None) or (first texts, second texts), or a UserError saying what is wrong."""
    if isinstance(inputs, str):
      inputs = [inputs]
    if isinstance(inputs, tuple) or isinstance(inputs, (bytes, bytearray)) or not isinstance(
        inputs, Iterable):
      raise UserTypeError(f"pass a list of texts, or a list of (text_a, text_b) tuples; got "
                          f"{type(inputs).__name__}.")
    inputs = list(inputs)
    is_pair = [isinstance(x, (tuple, list)) for x in inputs]
    if any(is_pair) and not all(is_pair):
      at = is_pair.index(not is_pair[0])
      raise UserTypeError(f"inputs mix single texts and pairs (item 0 is "
                          f"{type(inputs[0]).__name__}, item {at} {type(inputs[at]).__name__}): "
                          "pass all texts or all (text_a, text_b) tuples.")
    pairs = bool(inputs) and is_pair[0]
    if pairs and self._pair is False:
      raise UserError("this classifier takes single texts, not pairs (it was saved with "
                      "pair=False).")
    if inputs and not pairs and self._pair:
      raise UserError("this classifier takes text pairs: give (text_a, text_b) tuples "
                      "(ycng predict: --pair TEXT_B).")
    columns = [[], []] if pairs else [[]]
    for i, item in enumerate(inputs):
      parts = tuple(item) if pairs else (item,)
      if len(parts) != len(columns):
        raise UserError(f"inputs[{i}] has {len(parts)} texts; a pair has 2.")
      for j, text in enumerate(parts):
        where = f"inputs[{i}]" + (f"[{j}]" if pairs else "")
        if not isinstance(text, str):
          raise UserTypeError(f"{where} is {type(text).__name__} ({text!r:.60}); texts are str.")
        if not text.strip():
          raise UserError(f"{where} is empty: every text needs some words to classify.")
        columns[j].append(text)
    return columns[0], (columns[1] if pairs else None)

  def tokenize(self, inputs: Any) -> list[list[int]]:
    """The token ids the model sees for each input ([CLS] ... [SEP], truncated at max_length)."""
    return self._tokenize(*self._check_inputs(inputs))[0]

  def _tokenize(self, texts: list[str], seconds: list[str] | None):
    inputs = texts if seconds is None else list(zip(texts, seconds))
    encodings = self._tokenizer.encode_batch(inputs, add_special_tokens=True)
    truncated = sum(1 for e in encodings if e.overflowing)
    return [e.ids for e in encodings], [e.type_ids for e in encodings], truncated

  def logits(self, inputs: Any, batch_size: int | None = None) -> np.ndarray:
    """(n, num_labels) float32 raw outputs of the head, in input order."""
    return self._logits(inputs, batch_size)

  def _logits(self, inputs: Any, batch_size: int | None) -> np.ndarray:
    """``logits``, for the public methods (its truncation warning names their caller's line)."""
    texts, seconds = self._check_inputs(inputs)
    batch_size = whole_number("batch_size", self._batch_size if batch_size is None else batch_size, 1)
    out = np.zeros((len(texts), self._config.num_labels), np.float32)
    if not texts:
      return out
    ids, type_ids, truncated = self._tokenize(texts, seconds)
    if truncated:
      warnings.warn(f"{truncated} of {len(texts)} inputs were longer than max_length="
                    f"{self._max_length} tokens and were truncated.", stacklevel=3)
    return self.logits_of_ids(ids, type_ids, batch_size)

  def logits_of_ids(self, ids: Sequence[Sequence[int]], type_ids: Sequence[Sequence[int]],
                    batch_size: int) -> np.ndarray:
    """(n, num_labels) float32 logits of inputs tokenized already (each at most max_length
    tokens): the packed forward pass behind ``logits``, for callers with their own tokenization
    (zero-shot classification truncates only the text of a pair, as transformers does)."""
    out = np.zeros((len(ids), self._config.num_labels), np.float32)
    if not len(ids):
      return out
    lengths = np.fromiter((len(x) for x in ids), np.int64, len(ids))
    pending = None  # (rows' input indices, device result): read once the next step is queued.
    for seq, step in self._plan.steps(lengths, batch_size):
      rows = self._plan.fill(step, seq, ids, type_ids)
      result = self._forward(self._params, rows["input_ids"], rows["token_type_ids"],
                             rows["position_ids"], rows["segment_ids"], rows["first_token"])
      if pending is not None:
        _collect(out, *pending)
      pending = (step, result)
    _collect(out, *pending)
    return out

  def scores(self, inputs: Any, batch_size: int | None = None) -> np.ndarray:
    """(n, num_labels) float32: softmax probabilities (single-label), sigmoid scores
    (multi-label) or the raw outputs (regression)."""
    return self._scores_of(self._logits(inputs, batch_size))

  def _scores_of(self, logits: np.ndarray) -> np.ndarray:
    if self._problem_type == "single_label_classification":
      shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
      return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)
    if self._problem_type == "multi_label_classification":
      return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    return logits

  def predict(self, inputs: Any, batch_size: int | None = None) -> list[Prediction]:
    """A ``Prediction`` per input (see ``Prediction`` for what labels and scores hold)."""
    scores = self._scores_of(self._logits(inputs, batch_size))
    out = []
    for row in scores:
      by_name = {name: float(s) for name, s in zip(self._labels, row)}
      if self._problem_type == "single_label_classification":
        labels = [self._labels[int(np.argmax(row))]]
      elif self._problem_type == "multi_label_classification":
        over = np.flatnonzero(row > self._thresholds)
        labels = [self._labels[i] for i in over[np.argsort(-row[over], kind="stable")]]
      else:
        labels = []
      out.append(Prediction(labels=labels, scores=by_name, score=float(row.max())))
    return out

  def precompile(self, batch_size: int | None = None) -> "TextClassifier":
    """Compiles every length bucket's full step now, so a large ``predict`` waits on no jit."""
    batch_size = whole_number("batch_size", self._batch_size if batch_size is None else batch_size, 1)
    for seq in self._plan.row_lengths():
      rows = self._plan.step_rows(int(seq), batch_size)
      zeros = np.zeros((rows, int(seq)), np.int32)
      first = np.zeros((rows, self._plan.max_texts_per_row), np.int32)
      jax.block_until_ready(self._forward(self._params, zeros, zeros, zeros, zeros, first))
    return self


def _collect(out: np.ndarray, step: list[list[int]], result: jax.Array) -> None:
  values = np.asarray(result)
  for r, row in enumerate(step):
    out[row] = values[r, :len(row)]

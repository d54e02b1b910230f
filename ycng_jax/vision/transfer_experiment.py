"""Runner of topic 4's transfer-learning experiment: scratch vs frozen base vs fine-tuning.

``config.runner = "ycng_jax.vision.transfer_experiment:run"``. For every labelled-set size in
``config.train_sizes`` and seed in ``config.seeds`` (seeded, class-balanced, nested subsets of
Fashion-MNIST train; a fixed balanced validation pool is held out for the learning curves) it
trains the regimes of ``ycng_jax.vision.transfer`` with the shared ``Trainer`` and tests on the
test set. Each finished run is written to ``runs/<size>_<regime>_seed<seed>.json`` and skipped
when the command is run again, so the grid can be run in parts (e.g. ``--config.regimes``).

With ``precompute_frozen`` (default) the frozen part of the backbone runs once: the maps that
enter stage ``finetune_from_stage`` are streamed to a resumable chunk store
(``features/``), the pooled features follow from them by the pretrained top; ``frozen`` then
trains the head on pooled features and ``finetune`` trains ``TopNet`` on the maps. The result is
the same function as the full network with frozen layers (tested), at a fraction of the cost.
Without it both regimes train the full ``TransferNet`` on images with frozen parameters.

Writes ``results.json`` / ``results.md`` (test accuracy mean ± std over seeds, times) and
``curves_<size>.png`` (validation accuracy per epoch; fine-tuning continues after the frozen
epochs).
"""

from __future__ import annotations

import json
import os
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ycng_jax.data.pipeline import Loader
from ycng_jax.models.efficientnet import LITE0_STAGES
from ycng_jax.train import optim
from ycng_jax.train.losses import make_classification_loss
from ycng_jax.train.mesh import make_mesh
from ycng_jax.train.trainer import Trainer, peek
from ycng_jax.vision import features as vf
from ycng_jax.vision import transfer as tl
from ycng_jax.vision import transfer_report


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.runner = "ycng_jax.vision.transfer_experiment:run"
  c.dataset = "fashion_mnist"
  c.image_size = 64                # 28x28 grey upsampled, made RGB on the device
  c.train_sizes = (1000, 10000)    # labelled training examples (class-balanced)
  c.seeds = (0, 1, 2)
  c.regimes = tl.REGIMES
  c.validation_per_class = 100     # held-out pool for the learning curves
  c.test_examples = 0              # 0: the whole test set; >0 the first N (tiny runs)
  c.precompute_frozen = True
  c.finetune_from_stage = 6        # stages 6, 7 and the head conv are fine-tuned
  c.batch_size = 64
  c.eval_batch_size = 512
  c.feature_batch_size = 256
  c.dropout_rate = 0.2
  # epochs: one per entry of train_sizes, or a single value for all
  c.scratch = ml_collections.ConfigDict({"epochs": (30, 3), "learning_rate": 1e-3})
  c.frozen = ml_collections.ConfigDict({"epochs": (20,), "learning_rate": 1e-3})
  c.finetune = ml_collections.ConfigDict({"epochs": (10,), "learning_rate": 1e-4})
  c.scratch_stages = 0             # 0: all of Lite0 (the same network); n: first n stages (tests)
  c.num_devices = 0
  c.verbose = 0
  return c


def check_config(config: ml_collections.ConfigDict) -> None:
  reference = base_config()
  for key in config.keys():
    if key not in reference:
      raise ValueError(f"unknown config key {key!r}; valid keys: {sorted(reference.keys())}")
  unknown = set(config.regimes) - set(tl.REGIMES)
  if unknown:
    raise ValueError(f"config.regimes has {sorted(unknown)}; choose from {tl.REGIMES}")
  if "finetune" in config.regimes and "frozen" not in config.regimes:
    raise ValueError("finetune continues from the frozen regime's head: keep 'frozen' in "
                     "config.regimes")
  tl.check_from_stage(config.finetune_from_stage)
  for name in tl.REGIMES:
    epochs = tuple(config[name].epochs)
    if len(epochs) not in (1, len(config.train_sizes)):
      raise ValueError(f"config.{name}.epochs={epochs}: give one value, or one per train size "
                       f"{tuple(config.train_sizes)}")


def _epochs(config, regime: str, size_index: int) -> int:
  epochs = tuple(config[regime].epochs)
  return int(epochs[0] if len(epochs) == 1 else epochs[size_index])


# ----------------------------------------------------------------------------- data

def load_data(config) -> dict[str, Any]:
  """Train/test arrays, the validation pool and the labelled subsets per (size, seed)."""
  import ycng_jax.data as ydata  # pylint: disable=import-outside-toplevel
  train, test = ydata.load(config.dataset, "train"), ydata.load(config.dataset, "test")
  train = {"image": np.asarray(train["image"]), "label": np.asarray(train["label"], np.int32)}
  test = {"image": np.asarray(test["image"]), "label": np.asarray(test["label"], np.int32)}
  if config.test_examples:
    test = {k: v[:config.test_examples] for k, v in test.items()}
  val = tl.validation_pool(train["label"], config.validation_per_class, seed=10_000)
  subsets = {(size, seed): tl.balanced_subset(train["label"], size, seed, exclude=val)
             for size in config.train_sizes for seed in config.seeds}
  return {"train": train, "test": test, "val": val, "subsets": subsets}


def _loader(arrays, mesh, batch, train: bool, seed: int = 0) -> Loader:
  if train:
    return Loader(arrays, global_batch_size=batch, mesh=mesh, shuffle=True, seed=seed)
  return Loader(arrays, global_batch_size=batch, mesh=mesh, shuffle=False, num_epochs=1,
                drop_remainder=False)


class Inputs:
  """What each regime trains on: images, or precomputed maps / pooled features, by row."""

  def __init__(self, config, data, mesh, workdir: str):
    self.config, self.data, self.mesh = config, data, mesh
    self.timings: dict[str, float] = {}
    self.map_shape = tl.prefix_map_shape(config.image_size, config.finetune_from_stage)
    if config.precompute_frozen and {"frozen", "finetune"} & set(config.regimes):
      self._precompute(pathlib.Path(workdir) / "features")

  def _precompute(self, root: pathlib.Path) -> None:
    """Prefix maps and pooled features of every row any run needs (resumable stores)."""
    config, data = self.config, self.data
    rows = np.unique(np.concatenate([data["val"]] + list(data["subsets"].values())))
    self.row_of = np.full(len(data["train"]["label"]), -1)
    self.row_of[rows] = np.arange(len(rows))
    stage = config.finetune_from_stage - 1
    prefix = tl.stage_feature_model(config.image_size, stage)
    top_model = tl.EfficientNetTop(config.finetune_from_stage)
    top_variables = _pretrained_top(config.finetune_from_stage, self.map_shape)
    shape = self.map_shape

    def pooled(variables, maps):
      return top_model.apply(variables, maps.reshape((maps.shape[0],) + shape))

    top = vf.FeatureModel(pooled, top_variables, f"{prefix.name}/top{config.finetune_from_stage}")
    batch, chunk = config.feature_batch_size, config.feature_batch_size * 16
    self.maps, self.pooled = {}, {}
    for split, images in (("train", data["train"]["image"][rows]), ("test", data["test"]["image"])):
      start = time.perf_counter()
      vf.extract_features(images, root / f"{split}_stage{stage}_{config.image_size}", prefix,
                          batch_size=batch, chunk_size=chunk, mesh=self.mesh,
                          progress=bool(config.verbose))
      self.maps[split] = vf.load_features(root / f"{split}_stage{stage}_{config.image_size}")
      middle = time.perf_counter()
      vf.extract_features(self.maps[split], root / f"{split}_pooled_{config.image_size}", top,
                          batch_size=batch, chunk_size=chunk, mesh=self.mesh,
                          progress=bool(config.verbose))
      self.pooled[split] = vf.load_features(root / f"{split}_pooled_{config.image_size}")
      self.timings[f"precompute_{split}_maps_s"] = middle - start
      self.timings[f"precompute_{split}_pooled_s"] = time.perf_counter() - middle
      self.timings[f"precompute_{split}_images"] = float(len(images))

  def arrays(self, regime: str, train_rows: np.ndarray) -> tuple[str, dict, dict, dict]:
    """(input key, train, val, test) arrays for ``regime`` on ``train_rows`` of train."""
    data = self.data
    labels, test_labels = data["train"]["label"], data["test"]["label"]
    if regime == "scratch" or not self.config.precompute_frozen:
      pick = lambda rows: {"image": data["train"]["image"][rows], "label": labels[rows]}
      return "image", pick(train_rows), pick(data["val"]), dict(data["test"])
    source = self.pooled if regime == "frozen" else self.maps
    pick = lambda rows: {"features": np.asarray(source["train"][self.row_of[rows]]),
                         "label": labels[rows]}
    return ("features", pick(train_rows), pick(data["val"]),
            {"features": np.asarray(source["test"]), "label": test_labels})


def _pretrained_backbone() -> dict[str, Any]:
  from ycng_jax.models.efficientnet_weights import load_efficientnet_lite0  # pylint: disable=import-outside-toplevel
  return load_efficientnet_lite0(include_top=False)[1]


def _pretrained_top(from_stage: int, map_shape) -> dict[str, Any]:
  """Variables of ``EfficientNetTop(from_stage)`` taken from the ImageNet backbone."""
  model = tl.EfficientNetTop(from_stage)
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1,) + tuple(map_shape)))
  pretrained = _pretrained_backbone()
  return {c: {k: pretrained[c][k] for k in shapes[c]} for c in shapes}


# ----------------------------------------------------------------------------- one run

def build_model(config, regime: str, key: str):
  num_classes = 10
  if key == "features":
    if regime == "frozen":
      return tl.HeadNet(num_classes, config.dropout_rate)
    map_shape = tl.prefix_map_shape(config.image_size, config.finetune_from_stage)
    return tl.TopNet(num_classes, config.finetune_from_stage, map_shape, config.dropout_rate)
  stages = LITE0_STAGES[:config.scratch_stages] if config.scratch_stages else LITE0_STAGES
  if regime != "scratch" and config.scratch_stages:
    raise ValueError("scratch_stages truncates the network, which has no pretrained weights: "
                     "use it only with regimes=('scratch',)")
  return tl.TransferNet(num_classes, backbone_bn_train=regime == "scratch",
                        dropout_rate=config.dropout_rate, stages=stages)


def train_regime(config, regime: str, key: str, arrays: tuple[dict, dict, dict], mesh, seed: int,
                 epochs: int, start_variables=None) -> dict[str, Any]:
  """Train one regime with the shared Trainer; returns metrics, curves and the freeze check.

  ``start_variables(init_variables) -> variables`` sets pretrained weights before training.
  """
  train, val, test = arrays
  model = build_model(config, regime, key)
  tx = optim.make_optimizer("adam", config[regime].learning_rate)
  tx = tl.make_transfer_optimizer(tx, regime, config.finetune_from_stage)
  preprocess = tl.image_preprocess(config.image_size) if key == "image" else None
  trainer = Trainer(model, make_classification_loss(), tx, mesh=mesh, input_keys=(key,),
                    preprocess=preprocess, seed=seed)
  train_loader = _loader(train, mesh, config.batch_size, True, seed)
  eval_batch = max(mesh.size, config.eval_batch_size - config.eval_batch_size % mesh.size)
  start = time.perf_counter()
  trainer.init(peek(train_loader))
  if start_variables is not None:
    tl.set_variables(trainer, start_variables(trainer.state.variables))
  before = tl.flat_variables(trainer.state.params)
  stats_before = tl.flat_variables(trainer.state.model_state)
  history = trainer.fit(train_loader, epochs=epochs,
                        validation_data=_loader(val, mesh, eval_batch, False),
                        verbose=config.verbose)
  test_metrics = trainer.evaluate(_loader(test, mesh, eval_batch, False))
  seconds = time.perf_counter() - start
  after = tl.flat_variables(trainer.state.params)
  stats_after = tl.flat_variables(trainer.state.model_state)
  report = tl.frozen_report(before, after, tl.trainable_patterns(regime, config.finetune_from_stage))
  report["batch_stats_unchanged"] = all(np.array_equal(stats_before[k], stats_after[k])
                                        for k in stats_before)
  head = {k: v for k, v in after.items() if k.startswith("head/")}
  trainer.free()
  return {"test_accuracy": test_metrics["accuracy"], "test_loss": test_metrics["loss"],
          "history": history.history, "seconds": seconds, "epochs": epochs,
          "train_examples": int(len(train["label"])), "input": key, "freeze": report,
          "head": head}


def _head_from(result: dict[str, Any]):
  """A ``start_variables`` that loads the frozen regime's trained head (and the backbone)."""
  head = result["head"]
  pretrained = _pretrained_backbone()

  def start(variables):
    variables = tl.with_pretrained_backbone(variables, pretrained)
    variables["params"]["head"] = {"kernel": np.asarray(head["head/kernel"], np.float32),
                                   "bias": np.asarray(head["head/bias"], np.float32)}
    return variables

  return start


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Run (or resume) the grid, then write the table and the curves."""
  check_config(config)
  os.makedirs(os.path.join(workdir, "runs"), exist_ok=True)
  mesh = make_mesh(config.num_devices or None)
  start = time.perf_counter()
  data = load_data(config)
  inputs = Inputs(config, data, mesh, workdir)
  for size_index, size in enumerate(config.train_sizes):
    for seed in config.seeds:
      frozen_result = None
      for regime in [r for r in tl.REGIMES if r in config.regimes]:
        path = os.path.join(workdir, "runs", f"{size}_{regime}_seed{seed}.json")
        if os.path.exists(path):
          with open(path) as f:
            result = json.load(f)
        else:
          key, *arrays = inputs.arrays(regime, data["subsets"][(size, seed)])
          if regime == "scratch":
            start_variables = None
          elif regime == "frozen":
            pretrained = _pretrained_backbone()
            start_variables = (None if key == "features" else
                               lambda v, p=pretrained: tl.with_pretrained_backbone(v, p))
          else:
            start_variables = _head_from(frozen_result)
          result = train_regime(config, regime, key, tuple(arrays), mesh, seed,
                                _epochs(config, regime, size_index), start_variables)
          result["head"] = {k: np.asarray(v).tolist() for k, v in result["head"].items()}
          with open(path, "w") as f:
            json.dump(result, f)
        if regime == "frozen":
          frozen_result = result
        print(f"[transfer] size={size} seed={seed} {regime:8s} test_accuracy="
              f"{result['test_accuracy']:.4f} ({result['seconds']:.0f} s)", flush=True)
  summary = transfer_report.write(config, workdir, inputs.timings,
                                  time.perf_counter() - start)
  return summary

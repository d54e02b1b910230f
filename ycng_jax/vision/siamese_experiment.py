"""The Siamese runner (topic 5): ``config.runner = "ycng_jax.vision.siamese_experiment:run"``.

Trains a ``SiameseNetwork`` with the shared ``Trainer`` on seeded, balanced pairs
(contrastive loss) or on P x K class-balanced batches (triplet loss, batch-hard or semi-hard
mining), then evaluates the tower's embeddings:

- verification: fixed balanced test pairs, same-class decided by ``distance <= threshold``
  with the threshold chosen on validation pairs (held out of train), and ROC AUC;
- N-way one-shot episodes on ``one_shot_classes`` (classes the tower never saw when
  ``train_classes`` leaves them out), beside chance and nearest neighbour on raw pixels.

The workdir gets ``metrics.jsonl`` (ending with the ``"final": true`` record), ``history.csv``,
``results.json``, figures (``curves.png``, ``embedding_map.png``, ``distances.png``,
``test_pairs.png``, ``one_shot.png``), ``test_embeddings.npz`` and resumable checkpoints.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Any

import jax
import ml_collections
import numpy as np

from ycng_jax.data.pipeline import Loader
from ycng_jax.models.siamese import SiameseNetwork
from ycng_jax.train import callbacks as cb_lib
from ycng_jax.train import checkpoint as ckpt_lib
from ycng_jax.train import distributed, logging_callbacks as log_lib, optim, steps
from ycng_jax.train.mesh import make_mesh
from ycng_jax.train.trainer import Trainer, peek
from ycng_jax.vision import pairs as pairs_lib
from ycng_jax.vision import siamese as losses
from ycng_jax.vision import siamese_eval as ev
from ycng_jax.vision import siamese_figures as figures

LOSSES = ("contrastive",) + losses.MINING


def base_config() -> ml_collections.ConfigDict:
  """Every key the runner reads, with defaults; experiments override what they need."""
  c = ml_collections.ConfigDict()
  c.runner = "ycng_jax.vision.siamese_experiment:run"
  c.dataset = "mnist"
  c.image_scale = 255.0
  c.train_examples = 0              # 0: all of train; >0: the first N (tiny runs)
  c.test_examples = 0
  c.validation_split = 0.1          # seeded fraction of train for the threshold and val metrics
  c.train_classes = ()              # () all; else only these classes are trained on
  c.one_shot_classes = ()           # () no one-shot evaluation; else episodes over these
  c.loss = "contrastive"            # contrastive | batch_hard | semi_hard
  c.margin = 1.0
  c.squared = False                 # triplet losses: squared Euclidean distances
  c.model = ml_collections.ConfigDict({
      "features": (32, 64), "dense": 128, "embedding_dim": 64, "normalize": True,
      "batch_norm": False, "dropout": 0.0})
  c.batch_size = 128                # pairs per step (contrastive)
  c.classes_per_batch = 10          # P (triplet)
  c.examples_per_class = 16         # K (triplet); batch = P * K
  c.eval_batch_size = 512
  c.num_epochs = 10
  c.seed = 0
  c.optimizer = optim.optimizer_config("cosine")
  c.num_val_pairs = 2000
  c.num_test_pairs = 4000
  c.n_way = 5
  c.num_episodes = 1000
  c.num_devices = 0                 # 0: all devices
  c.log_every_steps = 50
  c.backup_every_steps = 0          # 0: back up at epoch ends only
  c.keep_checkpoints = 2
  c.tensorboard = True
  c.verbose = 1
  c.distributed = distributed.config_defaults()
  return c


def check_config(config: ml_collections.ConfigDict):
  """An unknown key (a typo) is an error that lists the valid keys."""
  reference = base_config()
  for key in config.keys():
    if key not in reference:
      raise ValueError(f"unknown config key {key!r} for the Siamese runner; valid keys: "
                       f"{sorted(reference.keys())}")
    if isinstance(reference[key], ml_collections.ConfigDict):
      for sub in config[key].keys():
        if sub not in reference[key] and sub != "kwargs":
          raise ValueError(f"unknown config key '{key}.{sub}'; valid: {sorted(reference[key].keys())}")
  if config.loss not in LOSSES:
    raise ValueError(f"config.loss={config.loss!r}; choose one of {LOSSES}")
  overlap = set(config.train_classes) & set(config.one_shot_classes)
  if config.train_classes and overlap:
    print(f"note: one-shot classes {sorted(overlap)} are also training classes, so the one-shot "
          "accuracy is not on unseen classes (one_shot_classes_seen_in_training > 0)",
          file=sys.stderr)


# --- data ------------------------------------------------------------------------------------

def load_splits(config) -> dict[str, dict[str, np.ndarray]]:
  """train / val (seeded split of train) / test arrays, labels int32, before class filtering."""
  import ycng_jax.data as ydata
  out = {}
  for split in ("train", "test"):
    data = ydata.load(config.dataset, split)
    limit = config.train_examples if split == "train" else config.test_examples
    sl = slice(0, limit or None)
    out[split] = {"image": np.asarray(data["image"])[sl],
                  "label": np.asarray(data["label"])[sl].astype(np.int32)}
  if not 0.0 < config.validation_split < 1.0:
    raise ValueError(f"validation_split={config.validation_split} must be in (0, 1): the "
                     "verification threshold is chosen on validation pairs")
  train = out["train"]
  order = np.random.default_rng(config.seed).permutation(len(train["label"]))
  n_val = max(2, int(round(len(order) * config.validation_split)))
  out["val"] = {k: v[np.sort(order[:n_val])] for k, v in train.items()}
  out["train"] = {k: v[np.sort(order[n_val:])] for k, v in train.items()}
  return out


def select_classes(arrays: dict[str, np.ndarray], classes) -> dict[str, np.ndarray]:
  if not classes:
    return arrays
  keep = np.isin(arrays["label"], np.asarray(classes))
  if not keep.any():
    raise ValueError(f"no examples of classes {list(classes)}; labels present: "
                     f"{np.unique(arrays['label']).tolist()}")
  return {k: v[keep] for k, v in arrays.items()}


def pair_arrays(arrays: dict[str, np.ndarray], num_pairs: int, seed: int) -> dict[str, Any]:
  """Fixed balanced pairs as Loader-ready arrays (same keys and dtypes as training batches)."""
  first, second, same = pairs_lib.balanced_pairs(arrays["label"], num_pairs, seed=seed)
  return {"image": arrays["image"][first], "image_b": arrays["image"][second],
          "label": arrays["label"][first], "pair_label": same.astype(np.int32),
          "_first": first, "_second": second}


def _loader_arrays(arrays):
  return {k: v for k, v in arrays.items() if not k.startswith("_")}


def make_train_loader(config, mesh, train: dict[str, np.ndarray]) -> Loader:
  if config.loss == "contrastive":
    source = {"image": train["image"], "label": train["label"],
              "index": np.arange(len(train["label"]))}
    transform = pairs_lib.PairTransform(train["image"], train["label"], seed=config.seed)
    batch_size = config.batch_size
  else:
    transform = pairs_lib.ClassBalancedTransform(
        train["image"], train["label"], config.classes_per_batch, config.examples_per_class,
        seed=config.seed)
    source, batch_size = {"index": np.arange(len(train["label"]))}, transform.batch_size
  return Loader(source, global_batch_size=batch_size, mesh=mesh, shuffle=True, seed=config.seed,
                transform=transform)


def eval_loader(arrays, mesh, batch_size: int) -> Loader:
  n_dev = mesh.devices.size
  batch_size = max(n_dev, batch_size - batch_size % n_dev)
  return Loader(arrays, global_batch_size=batch_size, mesh=mesh, shuffle=False, num_epochs=1,
                drop_remainder=False)


# --- model and embeddings --------------------------------------------------------------------

def build_trainer(config, mesh, total_steps: int) -> Trainer:
  if config.loss not in LOSSES:
    raise ValueError(f"config.loss={config.loss!r}; choose one of {LOSSES}")
  model = SiameseNetwork(**{k: (tuple(v) if isinstance(v, (list, tuple)) else v)
                            for k, v in config.model.items()})
  opt_cfg = {k: v for k, v in config.optimizer.items()}
  opt_cfg["kwargs"] = dict(opt_cfg.get("kwargs") or {})
  tx = optim.optimizer_from_config(opt_cfg, total_steps)
  if config.loss == "contrastive":
    loss_fn, keys = losses.make_contrastive_loss(config.margin), ("image", "image_b")
  else:
    loss_fn = losses.make_triplet_loss(config.loss, config.margin, squared=config.squared)
    keys = ("image",)
  preprocess = losses.make_siamese_preprocess(keys, config.image_scale,
                                              triplet=config.loss != "contrastive")
  return Trainer(model, loss_fn, tx, mesh=mesh, input_keys=keys, preprocess=preprocess,
                 seed=config.seed)


class Embedder:
  """Embeds images with the trainer's current tower (one input, same params, same mesh).

  The trainer's own ``predict`` reads its ``input_keys`` (two images for pairs); this compiles
  the shared pure predict step for a single ``image`` input instead.
  """

  def __init__(self, trainer: Trainer, image_scale: float, batch_size: int):
    pure = steps.make_predict_step(
        trainer.model, input_keys=("image",),
        preprocess=losses.make_siamese_preprocess(("image",), image_scale))
    self.trainer, self.batch_size = trainer, batch_size
    self._step = steps.jit_predict_step(pure, trainer.mesh, trainer.state_sharding)

  def __call__(self, images: np.ndarray) -> np.ndarray:
    chunks = []
    for batch in eval_loader({"image": images}, self.trainer.mesh, self.batch_size):
      out = np.asarray(jax.device_get(self._step(self.trainer.state, batch)))
      chunks.append(out[np.asarray(jax.device_get(batch["mask"])) > 0])
    return np.concatenate(chunks)


class VerificationAUC(cb_lib.Callback):
  """Adds ``val_verification_auc`` (threshold free) to each epoch's logs."""
  order = -1

  def __init__(self, embedder: Embedder, images: np.ndarray, first: np.ndarray,
               second: np.ndarray, same: np.ndarray):
    super().__init__()
    self.embedder, self.images = embedder, images
    self.first, self.second, self.same = first, second, same

  def on_epoch_end(self, epoch, logs=None):
    if logs is not None:
      distances = ev.pair_distances(self.embedder(self.images), self.first, self.second)
      logs["val_verification_auc"] = ev.verification_auc(distances, self.same)


# --- the run ---------------------------------------------------------------------------------

@dataclasses.dataclass
class SiameseResult:
  trainer: Trainer
  embed: Embedder
  metrics: dict[str, float]
  history: dict[str, list[float]]


def _verification(embed_val, embed_test, val_pairs, test_pairs) -> dict[str, float]:
  val_d = ev.pair_distances(embed_val, val_pairs["_first"], val_pairs["_second"])
  threshold, val_acc = ev.best_threshold(val_d, val_pairs["pair_label"])
  test_d = ev.pair_distances(embed_test, test_pairs["_first"], test_pairs["_second"])
  return {"threshold": threshold, "val_accuracy": val_acc,
          "accuracy": ev.verification_accuracy(test_d, test_pairs["pair_label"], threshold),
          "auc": ev.verification_auc(test_d, test_pairs["pair_label"]), "distances": test_d}


def train(config: ml_collections.ConfigDict, workdir: str) -> SiameseResult:
  """Train, evaluate and write the workdir; the trainer stays alive for further use."""
  check_config(config)
  distributed.initialize(config.distributed)
  os.makedirs(workdir, exist_ok=True)
  mesh = make_mesh(config.num_devices or None)
  splits = load_splits(config)
  train_arrays = select_classes(splits["train"], config.train_classes)
  val = select_classes(splits["val"], config.train_classes)
  test_seen = select_classes(splits["test"], config.train_classes)
  val_pairs = pair_arrays(val, config.num_val_pairs, seed=config.seed + 1)
  test_pairs = pair_arrays(test_seen, config.num_test_pairs, seed=config.seed + 2)

  train_loader = make_train_loader(config, mesh, train_arrays)
  trainer = build_trainer(config, mesh, config.num_epochs * train_loader.steps_per_epoch)
  trainer.init(peek(train_loader))
  val_loader = eval_loader(_loader_arrays(val_pairs) if config.loss == "contrastive" else val,
                           mesh, config.eval_batch_size)
  embed = Embedder(trainer, config.image_scale, config.eval_batch_size)
  callbacks = [cb_lib.TerminateOnNaN(check_every=10),
               VerificationAUC(embed, val["image"], val_pairs["_first"], val_pairs["_second"],
                               val_pairs["pair_label"]),
               log_lib.CSVLogger(os.path.join(workdir, "history.csv")),
               ckpt_lib.BackupAndRestore(
                   os.path.join(workdir, "checkpoints", "backup"),
                   save_freq=config.backup_every_steps or "epoch",
                   max_to_keep=max(2, config.keep_checkpoints),
                   settings=ckpt_lib.run_settings(config, *train_arrays.values(), *val.values()))]
  if config.tensorboard:
    callbacks.append(log_lib.TensorBoard(os.path.join(workdir, "tensorboard")))
  history = trainer.fit(train_loader, epochs=config.num_epochs, validation_data=val_loader,
                        callbacks=callbacks, verbose=config.verbose, workdir=workdir,
                        log_every_steps=config.log_every_steps)
  if trainer.nonfinite_step is not None:
    raise FloatingPointError(f"training stopped at step {trainer.nonfinite_step}: the loss became "
                             "NaN/inf; lower optimizer.learning_rate and rerun")

  metrics: dict[str, float] = {}
  test_loader = eval_loader(_loader_arrays(test_pairs) if config.loss == "contrastive"
                            else test_seen, mesh, config.eval_batch_size)
  metrics.update({f"test_{k}": v for k, v in trainer.evaluate(test_loader).items()})
  embedded = {"val": embed(val["image"]), "test": embed(test_seen["image"])}
  pixels = {k: a["image"].reshape(len(a["image"]), -1) / config.image_scale
            for k, a in (("val", val), ("test", test_seen))}
  tower = _verification(embedded["val"], embedded["test"], val_pairs, test_pairs)
  raw = _verification(pixels["val"], pixels["test"], val_pairs, test_pairs)
  metrics.update({"test_verification_accuracy": tower["accuracy"],
                  "test_verification_auc": tower["auc"], "threshold": tower["threshold"],
                  "val_verification_accuracy": tower["val_accuracy"],
                  "pixel_test_verification_accuracy": raw["accuracy"],
                  "pixel_test_verification_auc": raw["auc"],
                  "test_pairs": float(len(test_pairs["pair_label"]))})

  one_shot = None
  if config.one_shot_classes:
    unseen = select_classes(splits["test"], config.one_shot_classes)
    episodes = ev.one_shot_episodes(unseen["label"], config.n_way, config.num_episodes,
                                    seed=config.seed + 3)
    unseen_embedded = embed(unseen["image"])
    unseen_pixels = unseen["image"].reshape(len(unseen["image"]), -1) / config.image_scale
    predicted = ev.one_shot_predictions(unseen_embedded, episodes)
    accuracy = float(np.mean(predicted == episodes.target))
    metrics.update({
        "one_shot_accuracy": accuracy,
        "one_shot_stderr": ev.binomial_stderr(accuracy, config.num_episodes),
        "pixel_one_shot_accuracy": ev.one_shot_accuracy(unseen_pixels, episodes),
        "one_shot_chance": 1.0 / config.n_way, "one_shot_episodes": float(config.num_episodes)})
    seen = set(np.unique(train_arrays["label"]).tolist())
    metrics["one_shot_classes_seen_in_training"] = float(
        len(seen & set(int(c) for c in config.one_shot_classes)))
    one_shot = (unseen, episodes, predicted)

  step = int(jax.device_get(trainer.state.step))
  log_lib.write_final(os.path.join(workdir, "metrics.jsonl"), step, metrics,
                      num_params=trainer.num_params)
  if jax.process_index() == 0:
    _write_report(workdir, config, metrics, history.history, step, trainer.num_params,
                  test_seen, embedded["test"], pixels["test"], test_pairs, tower, one_shot)
  return SiameseResult(trainer, embed, metrics, history.history)


def _write_report(workdir, config, metrics, history, step, num_params, test, test_embedded,
                  test_pixels, test_pairs, tower, one_shot):
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump({"final": metrics, "history": history, "step": step, "num_params": num_params,
               "dataset": config.dataset, "loss": config.loss}, f, indent=2)
  np.savez_compressed(os.path.join(workdir, "test_embeddings.npz"), embeddings=test_embedded,
                      labels=test["label"])
  if history:
    figures.plot_curves(history, os.path.join(workdir, "curves.png"))
  figures.plot_embedding_map(test_embedded, test_pixels, test["label"],
                             os.path.join(workdir, "embedding_map.png"),
                             title=f"{config.loss} embeddings")
  same = test_pairs["pair_label"]
  figures.plot_distance_histogram(tower["distances"], same, tower["threshold"],
                                  os.path.join(workdir, "distances.png"),
                                  title=f"{config.dataset} test pairs, accuracy "
                                        f"{metrics['test_verification_accuracy']:.4f}")
  figures.plot_pairs(test["image"], test_pairs["_first"], test_pairs["_second"], same,
                     tower["distances"], tower["threshold"], os.path.join(workdir, "test_pairs.png"))
  if one_shot is not None:
    unseen, episodes, predicted = one_shot
    figures.plot_one_shot(unseen["image"], episodes.support, episodes.query, episodes.target,
                          predicted, os.path.join(workdir, "one_shot.png"))


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
  """``train`` then free the run's device memory; returns the final metrics."""
  result = train(config, workdir)
  result.trainer.free()
  return result.metrics

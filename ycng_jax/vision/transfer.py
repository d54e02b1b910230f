"""Transfer learning with the pretrained EfficientNet-Lite0: from scratch, frozen base, fine-tuning.

Three regimes of the same network (course topic 4, Keras' "transfer learning & fine-tuning"):

* ``scratch``: ``TransferNet`` from a random initialisation, every parameter trained, batch norm in
  training mode (there are no useful running statistics to keep).
* ``frozen`` (blueprint 1): the ImageNet backbone frozen, a new ``head`` trained on top.
* ``finetune``: after ``frozen``, the convolution kernels of the top stages (and the head) train on
  at a lower learning rate. Batch norm stays in inference mode everywhere in the backbone (the
  module calls the backbone with ``train=False``): its running statistics and its scale/offset
  never change, so the small labelled set cannot wreck the statistics learned on ImageNet.

Freezing is the one mechanism of ``ycng_jax.train.optim``: ``freeze(tx, trainable_labels(...))``
gives frozen parameters exact zero updates, so they stay bit-identical (``frozen_report`` checks).

Frozen parts are a fixed function of the input, so they can also be computed once: the
``frozen`` regime needs only the pooled features, ``finetune`` only the feature maps that enter
the first trainable stage. ``TopNet`` is the trainable remainder; its parameter names equal the
corresponding ones of ``TransferNet``, so both run the same regexes and share pretrained weights,
and ``TopNet(prefix maps) == TransferNet(images)`` in inference (tested).
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ycng_jax.models.efficientnet import (BN_EPSILON, BN_MOMENTUM, HEAD_FEATURES, LITE0_STAGES,
                                          EfficientNetLite, MBConvBlock, SameConv, StageSpec,
                                          block_name, iter_blocks)
from ycng_jax.train import optim
from ycng_jax.vision.features import FeatureModel

PyTree = Any
REGIMES = ("scratch", "frozen", "finetune")


# ----------------------------------------------------------------------------- models

class TransferNet(nn.Module):
  """EfficientNet-Lite backbone (``backbone``) + dropout + a new dense ``head``.

  Attributes:
    num_classes: classes of the new task.
    backbone_bn_train: True only from scratch. False keeps the backbone in inference mode
      (running-average batch norm, no drop-connect) also while training, as Keras'
      ``base_model(x, training=False)``.
    dropout_rate: dropout before the head.
    stages: the backbone's block table (Lite0's; fewer stages only for tiny tests).
  """
  num_classes: int
  backbone_bn_train: bool = False
  dropout_rate: float = 0.2
  stages: tuple[StageSpec, ...] = LITE0_STAGES

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    backbone = EfficientNetLite(include_top=False, stages=self.stages, name="backbone")
    features = backbone(images, train=train and self.backbone_bn_train)
    return _head(features, self.num_classes, self.dropout_rate, train)


def _head(features: jax.Array, num_classes: int, dropout_rate: float, train: bool) -> jax.Array:
  features = nn.Dropout(dropout_rate)(features, deterministic=not train)
  return nn.Dense(num_classes, name="head")(features).astype(jnp.float32)


class HeadNet(nn.Module):
  """The ``frozen`` regime on precomputed pooled features: dropout + ``head`` only."""
  num_classes: int
  dropout_rate: float = 0.2

  @nn.compact
  def __call__(self, features: jax.Array, train: bool = False) -> jax.Array:
    return _head(features, self.num_classes, self.dropout_rate, train)


class EfficientNetTop(nn.Module):
  """EfficientNet-Lite from stage ``from_stage`` on: its blocks, head conv, average pool.

  Submodule names and drop-connect rates are those of ``EfficientNetLite``, so its
  parameters are a subtree of the full backbone's.
  """
  from_stage: int
  stages: tuple[StageSpec, ...] = LITE0_STAGES
  drop_connect_rate: float = 0.2

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    num_blocks = sum(spec.repeats for spec in self.stages)
    for index, (stage, block, spec) in enumerate(iter_blocks(self.stages)):
      if stage >= self.from_stage:
        x = MBConvBlock(spec, self.drop_connect_rate * index / num_blocks,
                        name=block_name(stage, block))(x, train=train)
    x = SameConv(HEAD_FEATURES, 1, name="head_conv")(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                     name="head_bn")(x)
    return jnp.mean(jax.nn.relu6(x), axis=(1, 2))


class TopNet(nn.Module):
  """The ``finetune`` regime on precomputed maps of stage ``from_stage - 1``.

  Input: flat maps ``(N, h*w*c)`` as stored by ``extract_features``; ``map_shape`` is
  ``(h, w, c)``. The top runs in inference mode (``train`` only switches the head's dropout).
  """
  num_classes: int
  from_stage: int
  map_shape: tuple[int, int, int]
  dropout_rate: float = 0.2

  @nn.compact
  def __call__(self, maps: jax.Array, train: bool = False) -> jax.Array:
    x = maps.reshape((maps.shape[0],) + tuple(self.map_shape))
    features = EfficientNetTop(self.from_stage, name="backbone")(x, train=False)
    return _head(features, self.num_classes, self.dropout_rate, train)


def check_from_stage(from_stage: int) -> int:
  if not 2 <= from_stage <= len(LITE0_STAGES):
    raise ValueError(f"finetune_from_stage={from_stage}: choose a stage 2..{len(LITE0_STAGES)} "
                     "(the stages before it stay frozen)")
  return from_stage


def prefix_map_shape(image_size: int, from_stage: int) -> tuple[int, int, int]:
  """(h, w, c) of the maps entering ``from_stage`` for square ``image_size`` input."""
  size = image_size
  for stride in [2] + [spec.stride for spec in LITE0_STAGES[:from_stage - 1]]:
    size = -(-size // stride)
  return size, size, LITE0_STAGES[from_stage - 2].out_features


def stage_feature_model(image_size: int, stage: int, *, pixel_range: float = 255.0
                        ) -> FeatureModel:
  """The pretrained backbone up to stage ``stage`` as a ``FeatureModel``: flat maps (B, h*w*c).

  Raw grey/RGB images in; made RGB, resized and normalised on the device.
  """
  from ycng_jax.models.efficientnet_weights import (  # pylint: disable=import-outside-toplevel
      load_efficientnet_lite0, preprocess)
  model, variables = load_efficientnet_lite0(include_top=False)
  name = f"stage{stage}"

  def embed(variables: Any, images: jax.Array) -> jax.Array:
    maps = model.apply(variables, preprocess(images, image_size, pixel_range=pixel_range),
                       return_features=(name,))[name]
    return maps.reshape(maps.shape[0], -1).astype(jnp.float32)

  return FeatureModel(embed, variables, f"efficientnet_lite0_imagenet/{name}_maps/{image_size}/"
                                        f"{pixel_range}")


def image_preprocess(image_size: int, key: str = "image"):
  """Step preprocessing: uint8 grey (N, 28, 28, 1) -> RGB, resized, normalised (on device)."""
  from ycng_jax.models.efficientnet_weights import preprocess  # pylint: disable=import-outside-toplevel

  def apply(batch):
    out = dict(batch)
    out[key] = preprocess(batch[key], image_size)
    return out

  return apply


# ----------------------------------------------------------------------------- pretrained weights

def with_pretrained_backbone(variables: Mapping[str, PyTree], pretrained: Mapping[str, PyTree]
                             ) -> dict[str, PyTree]:
  """``variables`` with each entry under ``backbone`` replaced by the pretrained one of that name.

  Works for ``TransferNet`` (the whole backbone) and ``TopNet`` (its top stages). Raises if a
  backbone entry has no pretrained counterpart or another shape; the head stays as it is.
  """
  out = {k: dict(v) for k, v in variables.items()}
  problems = []
  for collection, tree in variables.items():
    if "backbone" not in tree:
      continue
    source = pretrained.get(collection, {})
    new_backbone = {}
    for name, sub in tree["backbone"].items():
      if name not in source:
        problems.append(f"{collection}/backbone/{name} is not in the pretrained weights")
        continue
      mine, theirs = jax.tree.structure(sub), jax.tree.structure(source[name])
      shapes = [np.shape(a) == np.shape(b) for a, b in
                zip(jax.tree.leaves(sub), jax.tree.leaves(source[name]))]
      if mine != theirs or not all(shapes):
        problems.append(f"{collection}/backbone/{name} differs in structure or shape")
        continue
      new_backbone[name] = jax.tree.map(lambda a, b: jnp.asarray(b, _dtype(a)), sub, source[name])
    out[collection]["backbone"] = new_backbone
  if problems:
    raise ValueError("cannot load the pretrained backbone: " + "; ".join(problems) +
                     ". Use the Lite0 block table (stages=LITE0_STAGES).")
  return out


def _dtype(x: Any) -> Any:
  """dtype of an array or of a ``jax.ShapeDtypeStruct`` (from ``eval_shape``)."""
  return x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype


def set_variables(trainer: Any, variables: Mapping[str, PyTree]) -> None:
  """Put ``variables`` ({"params", "batch_stats"...}) into an initialised trainer's state.

  Each array goes to the sharding of the value it replaces; optimizer slots (zeros at step 0)
  are kept.
  """
  state = trainer.state
  variables = dict(variables)
  params = variables.pop("params")

  def place(new_tree, old_tree):
    return jax.tree.map(lambda new, old: jax.device_put(jnp.asarray(new, old.dtype), old.sharding),
                        new_tree, old_tree)

  model_state = {k: place(variables[k], v) if k in variables else v
                 for k, v in state.model_state.items()}
  trainer.state = state.replace(params=place(params, state.params), model_state=model_state)


# ----------------------------------------------------------------------------- freezing

def trainable_patterns(regime: str, from_stage: int = 6) -> tuple[str, ...] | None:
  """Regexes over parameter paths that train in ``regime`` (None: everything trains).

  ``finetune`` trains the convolution kernels of stages ``from_stage``.. and of the head conv,
  plus the new head; batch-norm scale/offset stay frozen like its statistics.
  """
  if regime == "scratch":
    return None
  if regime == "frozen":
    return ("^head/",)
  if regime == "finetune":
    stages = "|".join(str(s) for s in range(check_from_stage(from_stage), len(LITE0_STAGES) + 1))
    return (rf"^backbone/stage({stages})_block\d+/\w+_conv/conv/kernel$",
            r"^backbone/head_conv/conv/kernel$", "^head/")
  raise ValueError(f"regime={regime!r}; choose one of {REGIMES}")


def make_transfer_optimizer(tx: Any, regime: str, from_stage: int = 6) -> Any:
  """``tx`` restricted to the regime's trainable parameters (``optim.freeze``)."""
  patterns = trainable_patterns(regime, from_stage)
  if patterns is None:
    return tx
  return optim.freeze(tx, lambda params: optim.trainable_labels(params, trainable=patterns))


def flat_variables(tree: PyTree) -> dict[str, np.ndarray]:
  """``{'a/b/kernel': host array}`` of a pytree (params or batch stats)."""
  return {optim.path_name(path): np.array(jax.device_get(x))
          for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def frozen_report(before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray],
                  patterns: Sequence[str] | None) -> dict[str, Any]:
  """Which parameters changed: frozen ones must be bit-identical, trainable ones must move.

  Returns counts and ``frozen_unchanged`` / ``trainable_changed`` booleans (with the
  offending names, if any).
  """
  if set(before) != set(after):
    raise ValueError(f"parameter names differ: {sorted(set(before) ^ set(after))}")
  compiled = [re.compile(p) for p in patterns] if patterns is not None else None
  trainable = {k for k in before if compiled is None or any(p.search(k) for p in compiled)}
  moved_frozen = sorted(k for k in before if k not in trainable
                        and not np.array_equal(before[k], after[k]))
  still_trainable = sorted(k for k in trainable if np.array_equal(before[k], after[k]))
  return {"num_trainable": len(trainable), "num_frozen": len(before) - len(trainable),
          "frozen_unchanged": not moved_frozen, "trainable_changed": not still_trainable,
          "frozen_that_moved": moved_frozen, "trainable_that_did_not_move": still_trainable}


# ----------------------------------------------------------------------------- data

def validation_pool(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
  """Sorted indices of a seeded, class-balanced held-out set (``per_class`` of each label)."""
  return balanced_subset(labels, per_class * len(np.unique(labels)), seed)


def balanced_subset(labels: np.ndarray, size: int, seed: int,
                    exclude: np.ndarray | None = None) -> np.ndarray:
  """Sorted indices of ``size`` examples, equally many of each class, drawn with ``seed``.

  The draw is a fixed seeded permutation per class, so the subset of size n is contained in
  the one of size m > n for the same seed (nested label budgets).
  """
  labels = np.asarray(labels)
  classes = np.unique(labels)
  if size <= 0 or size % len(classes):
    raise ValueError(f"subset size {size} must be a positive multiple of the {len(classes)} "
                     "classes (class-balanced)")
  per_class = size // len(classes)
  allowed = np.ones(len(labels), bool)
  if exclude is not None:
    allowed[np.asarray(exclude)] = False
  rng = np.random.default_rng(seed)
  picked = []
  for c in classes:
    pool = np.flatnonzero((labels == c) & allowed)
    if len(pool) < per_class:
      raise ValueError(f"class {c} has only {len(pool)} examples left, {per_class} wanted")
    picked.append(pool[rng.permutation(len(pool))[:per_class]])
  return np.sort(np.concatenate(picked))

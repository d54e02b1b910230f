"""EfficientNet-Lite0 as Flax Linen modules (NHWC).

The Lite variants (Tan & Le 2019, `efficientnet/lite` in tensorflow/tpu) drop
squeeze-and-excitation, use ReLU6 instead of swish and keep the stem (32) and
head (1280) widths fixed, so that the network quantises well. The layout here
follows that builder so that the packaged ImageNet weights (converted by
``efficientnet_weights``) load by name:

  stem:    3x3/2 conv 32 -> BN -> ReLU6
  stage1..stage7: MBConv blocks (1x1 expand -> kxk depthwise -> 1x1 project,
           identity skip with drop-connect where shapes allow)
  head:    1x1 conv 1280 -> BN -> ReLU6 -> global average pool
  top:     dropout -> dense ``num_classes``

Convolutions pad like TensorFlow's ``SAME`` (more padding after than before
when the total is odd), computed from the actual input size, so the network
is right for any input resolution, not only 224x224.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

# Batch-norm settings of the TF builder. TF's momentum 0.99 is the weight of the
# old running average, which is also Flax's convention (PyTorch stores 0.01).
BN_MOMENTUM = 0.99
BN_EPSILON = 1e-3
STEM_FEATURES = 32
HEAD_FEATURES = 1280


@dataclasses.dataclass(frozen=True)
class StageSpec:
  """One group of repeated MBConv blocks (a row of the TF block strings)."""
  repeats: int
  kernel_size: int
  stride: int
  expand_ratio: int
  in_features: int
  out_features: int


# 'r1_k3_s11_e1_i32_o16', 'r2_k3_s22_e6_i16_o24', ... from efficientnet_lite_builder.py.
LITE0_STAGES: tuple[StageSpec, ...] = (
    StageSpec(1, 3, 1, 1, 32, 16),
    StageSpec(2, 3, 2, 6, 16, 24),
    StageSpec(2, 5, 2, 6, 24, 40),
    StageSpec(3, 3, 2, 6, 40, 80),
    StageSpec(3, 5, 1, 6, 80, 112),
    StageSpec(4, 5, 2, 6, 112, 192),
    StageSpec(1, 3, 1, 6, 192, 320),
)

STAGE_NAMES: tuple[str, ...] = tuple(f"stage{i + 1}" for i in range(len(LITE0_STAGES)))
# Every name ``return_features`` accepts, in network order.
FEATURE_NAMES: tuple[str, ...] = ("stem",) + STAGE_NAMES + ("head", "pooled", "logits")


def block_name(stage: int, block: int) -> str:
  """Flax name of block ``block`` (0-based) of stage ``stage`` (1-based)."""
  return f"stage{stage}_block{block}"


def iter_blocks(stages: Sequence[StageSpec] = LITE0_STAGES) -> Iterable[tuple[int, int, StageSpec]]:
  """Yields (stage number, block index in stage, spec for that block).

  The first block of a stage carries the stage's stride and width change; the
  repeats keep the resolution and width, exactly as the TF builder expands them.
  """
  for stage_index, spec in enumerate(stages, start=1):
    for block in range(spec.repeats):
      if block == 0:
        yield stage_index, block, spec
      else:
        yield stage_index, block, dataclasses.replace(spec, stride=1, in_features=spec.out_features)


def tf_same_padding(size: int, kernel_size: int, stride: int) -> tuple[int, int]:
  """(before, after) padding of TensorFlow ``SAME`` for one spatial axis.

  The output has ceil(size / stride) positions; when the needed padding is odd
  the extra row goes after, which is where TF (and the weights' training) put it.
  """
  out = math.ceil(size / stride)
  total = max((out - 1) * stride + kernel_size - size, 0)
  return total // 2, total - total // 2


def resolve_depthwise_impl(impl: str) -> str:
  """"auto" -> "shifted" on CPU, "conv" elsewhere.

  XLA:CPU runs grouped convolutions (``feature_group_count`` = channels) about
  6x slower than the same depthwise conv written as k*k shifted multiply-adds,
  which XLA fuses into one loop; GPUs and TPUs have fast native depthwise convs.
  """
  if impl == "auto":
    return "shifted" if jax.default_backend() == "cpu" else "conv"
  if impl not in ("shifted", "conv"):
    raise ValueError(f"depthwise_impl must be 'auto', 'shifted' or 'conv', got {impl!r}")
  return impl


def depthwise_shifted(x: jax.Array, kernel: jax.Array, stride: int,
                      padding: Sequence[tuple[int, int]]) -> jax.Array:
  """Depthwise conv as a sum of k*k strided slices times per-channel taps.

  Args:
    x: (N, H, W, C); kernel: (kh, kw, C); padding: ((top, bottom), (left, right)).
  """
  kh, kw, _ = kernel.shape
  x = jnp.pad(x, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
  out_h = (x.shape[1] - kh) // stride + 1
  out_w = (x.shape[2] - kw) // stride + 1
  out = None
  for i in range(kh):
    for j in range(kw):
      tap = jax.lax.slice(x, (0, i, j, 0),
                          (x.shape[0], i + stride * (out_h - 1) + 1, j + stride * (out_w - 1) + 1,
                           x.shape[3]), (1, stride, stride, 1))
      term = tap * kernel[i, j]
      out = term if out is None else out + term
  return out


class Conv2D(nn.Module):
  """Bias-free NHWC conv holding ``kernel`` (kh, kw, in/groups, out) like ``nn.Conv``.

  Same parameters as ``nn.Conv``, but the work is routed to what is fast: 1x1
  convs are matrix products, depthwise convs follow ``depthwise_impl``.
  """
  features: int
  kernel_size: int
  stride: int
  groups: int
  padding: tuple[tuple[int, int], tuple[int, int]]
  dtype: Any = jnp.float32
  depthwise_impl: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    in_features = x.shape[-1]
    if in_features % self.groups:
      raise ValueError(f"{in_features} input channels do not split into {self.groups} groups")
    k = self.kernel_size
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (k, k, in_features // self.groups, self.features), jnp.float32)
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    no_padding = all(p == (0, 0) for p in self.padding)
    if k == 1 and self.stride == 1 and self.groups == 1 and no_padding:
      return jnp.dot(x, kernel[0, 0])
    depthwise = self.groups == in_features == self.features
    if depthwise and resolve_depthwise_impl(self.depthwise_impl) == "shifted":
      return depthwise_shifted(x, kernel[:, :, 0, :], self.stride, self.padding)
    return jax.lax.conv_general_dilated(
        x, kernel, (self.stride, self.stride), self.padding,
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=self.groups)


class SameConv(nn.Module):
  """Conv2D with TF ``SAME`` padding computed from the input's spatial size."""
  features: int
  kernel_size: int
  stride: int = 1
  groups: int = 1
  dtype: Any = jnp.float32
  depthwise_impl: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    padding = tuple(tf_same_padding(x.shape[axis], self.kernel_size, self.stride)
                    for axis in (1, 2))
    return Conv2D(self.features, self.kernel_size, self.stride, self.groups, padding,
                  dtype=self.dtype, depthwise_impl=self.depthwise_impl, name="conv")(x)


def _batch_norm(train: bool, dtype: Any, name: str) -> nn.BatchNorm:
  return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                      dtype=dtype, name=name)


class MBConvBlock(nn.Module):
  """Inverted residual block of the Lite models (no squeeze-and-excitation)."""
  spec: StageSpec
  drop_connect_rate: float = 0.0
  dtype: Any = jnp.float32
  depthwise_impl: str = "auto"

  @nn.compact
  def __call__(self, inputs: jax.Array, train: bool = False) -> jax.Array:
    spec = self.spec
    x = inputs
    hidden = spec.in_features * spec.expand_ratio
    if spec.expand_ratio != 1:
      x = SameConv(hidden, 1, dtype=self.dtype, name="expand_conv")(x)
      x = jax.nn.relu6(_batch_norm(train, self.dtype, "expand_bn")(x))
    x = SameConv(hidden, spec.kernel_size, spec.stride, groups=hidden, dtype=self.dtype,
                 depthwise_impl=self.depthwise_impl, name="depthwise_conv")(x)
    x = jax.nn.relu6(_batch_norm(train, self.dtype, "depthwise_bn")(x))
    x = SameConv(spec.out_features, 1, dtype=self.dtype, name="project_conv")(x)
    x = _batch_norm(train, self.dtype, "project_bn")(x)
    if spec.stride == 1 and spec.in_features == spec.out_features:
      if self.drop_connect_rate > 0.0:
        # Drop connect = stochastic depth: one keep/drop decision per example.
        x = nn.Dropout(self.drop_connect_rate, broadcast_dims=(1, 2, 3))(x, deterministic=not train)
      x = x + inputs
    return x


class EfficientNetLite(nn.Module):
  """EfficientNet-Lite (Lite0 by default) on NHWC images.

  Attributes:
    num_classes: size of the classifier (1000 for the ImageNet weights).
    include_top: if False there is no dropout/classifier and the call returns
      the backbone output selected by ``pooling``.
    pooling: with ``include_top=False``: "avg" (N, 1280), "max" (N, 1280) or
      None for the last feature map (N, H/32, W/32, 1280), as in Keras.
    dropout_rate: dropout before the classifier (0.2 for Lite0).
    drop_connect_rate: stochastic-depth rate of the last block; block i of n
      uses rate * i / n, as the reference does.
    stages: the block table (Lite0's by default).
    dtype: compute dtype (e.g. ``jnp.bfloat16``); parameters stay float32 and
      logits are returned as float32 so that losses stay accurate.
    depthwise_impl: "auto" (shifted multiply-adds on CPU, native grouped conv
      elsewhere), "shifted" or "conv"; the parameters are the same either way.
  """
  num_classes: int = 1000
  include_top: bool = True
  pooling: str | None = "avg"
  dropout_rate: float = 0.2
  drop_connect_rate: float = 0.2
  stages: tuple[StageSpec, ...] = LITE0_STAGES
  dtype: Any = jnp.float32
  depthwise_impl: str = "auto"

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False,
               return_features: Sequence[str] | None = None) -> jax.Array | dict[str, jax.Array]:
    """Runs the network.

    Args:
      images: (N, H, W, 3) float, already preprocessed (see
        ``efficientnet_weights.preprocess``).
      train: batch statistics and dropout on (needs ``mutable=["batch_stats"]``
        and a "dropout" rng) or off (inference, running averages).
      return_features: names from ``FEATURE_NAMES``; if given, a dict with those
        outputs is returned instead, and the network stops after the last one
        asked for (so early stages are cheap to extract). Call ``init``
        without it, so that every layer gets its parameters.

    Returns:
      logits (N, num_classes) with the top, the pooled/unpooled backbone
      output without it, or a dict of named outputs.
    """
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f"EfficientNetLite expects NHWC images with 3 channels, got shape "
                       f"{images.shape}; repeat grey images to 3 channels and preprocess them "
                       "with ycng_jax.models.efficientnet_weights.preprocess.")
    wanted = self._check_feature_names(return_features)
    last_wanted = max((FEATURE_NAMES.index(n) for n in wanted), default=len(FEATURE_NAMES))
    outputs: dict[str, jax.Array] = {}

    def record(name: str, value: jax.Array) -> bool:
      """Stores ``value`` if asked for; True when nothing later is needed."""
      if name in wanted:
        outputs[name] = value
      return bool(wanted) and FEATURE_NAMES.index(name) >= last_wanted

    x = jnp.asarray(images, self.dtype)
    x = SameConv(STEM_FEATURES, 3, 2, dtype=self.dtype, name="stem_conv")(x)
    x = jax.nn.relu6(_batch_norm(train, self.dtype, "stem_bn")(x))
    if record("stem", x):
      return outputs

    num_blocks = sum(spec.repeats for spec in self.stages)
    for index, (stage, block, spec) in enumerate(iter_blocks(self.stages)):
      x = MBConvBlock(spec, self.drop_connect_rate * index / num_blocks, dtype=self.dtype,
                      depthwise_impl=self.depthwise_impl,
                      name=block_name(stage, block))(x, train=train)
      if block == self.stages[stage - 1].repeats - 1 and record(f"stage{stage}", x):
        return outputs

    x = SameConv(HEAD_FEATURES, 1, dtype=self.dtype, name="head_conv")(x)
    x = jax.nn.relu6(_batch_norm(train, self.dtype, "head_bn")(x))
    if record("head", x):
      return outputs
    pooled = jnp.mean(x, axis=(1, 2))
    if record("pooled", pooled):
      return outputs

    if not self.include_top:  # (any requested feature has been returned by now)
      if self.pooling == "avg":
        return pooled
      if self.pooling == "max":
        return jnp.max(x, axis=(1, 2))
      return x

    y = nn.Dropout(self.dropout_rate)(pooled, deterministic=not train)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="classifier")(y)
    logits = logits.astype(jnp.float32)
    if record("logits", logits):
      return outputs
    return logits

  def _check_feature_names(self, names: Sequence[str] | None) -> tuple[str, ...]:
    resolve_depthwise_impl(self.depthwise_impl)  # rejects unknown names early
    if self.pooling not in ("avg", "max", None):
      raise ValueError(f"pooling must be 'avg', 'max' or None, got {self.pooling!r}.")
    if names is None:
      return ()
    if isinstance(names, str):
      names = (names,)
    names = tuple(names)
    stage_count = len(self.stages)
    valid = ("stem",) + STAGE_NAMES[:stage_count] + ("head", "pooled")
    if self.include_top:
      valid += ("logits",)
    unknown = [n for n in names if n not in valid]
    if unknown or not names:
      raise ValueError(f"return_features={names!r}: unknown or empty; choose from {valid}"
                       + (" ('logits' needs include_top=True)" if "logits" in unknown else ""))
    return names


def efficientnet_lite0(num_classes: int = 1000, include_top: bool = True, **kwargs: Any
                       ) -> EfficientNetLite:
  """The Lite0 network (4.65M parameters with the ImageNet top)."""
  return EfficientNetLite(num_classes=num_classes, include_top=include_top, **kwargs)

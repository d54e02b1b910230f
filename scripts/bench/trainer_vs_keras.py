"""Our trainer vs Keras 3 (``KERAS_BACKEND=jax``, ``model.fit``) on the same CNN and data.

  pip install keras
  python scripts/bench/trainer_vs_keras.py [--train-examples 12800] [--epochs 3] [--batch-size 128] [--repeats 2]
  python scripts/bench/trainer_vs_keras.py --quick   # 2560 examples, 2 epochs, 1 repeat

Same architecture (Conv32-BN-ReLU-pool, Conv64-BN-ReLU-pool, Dense128-ReLU, Dense10), batch
size, optimizer (Adam 1e-3), data (the first N Fashion-MNIST training images, the full test
set) and number of epochs, in one process. The first epoch (compilation) is not timed;
steps/s is over the remaining epochs. Both run on the same devices (all visible ones for
ours, Keras' default placement for Keras: one CPU device unless XLA_FLAGS says otherwise).
Runs alternate ``--repeats`` times; the best steps/s of each side is kept (the least disturbed
by other load). Prints steps/s and test accuracy side by side and the ratio ours/Keras.

Where the difference comes from on a CPU: both sides compile the step to XLA, but Keras'
MaxPooling2D differentiates through ``reduce_window`` (a ``select_and_scatter`` that XLA:CPU
runs slowly), while our ``ycng_jax.models.layers.max_pool`` pools non-overlapping windows as
a reshape + max whose gradient is elementwise. With ``nn.max_pool`` the two were equal (1.00x).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from bench_utils import (add_json_argument, preset_defaults, result_row,  # noqa: E402
                         version, write_json)


def load(n_train: int):
  import ycng_jax.data as ydata
  train, test = ydata.load("fashion_mnist", "train"), ydata.load("fashion_mnist", "test")
  x, y = train["image"][:n_train], train["label"][:n_train].astype(np.int32)
  return x, y, test["image"], test["label"].astype(np.int32)


def run_ours(x, y, xt, yt, epochs: int, batch: int):
  from ycng_jax.data.pipeline import Loader
  from ycng_jax.models.cnn import CNN
  from ycng_jax.train.callbacks import LambdaCallback
  from ycng_jax.train.losses import make_classification_loss
  from ycng_jax.train.mesh import make_mesh
  from ycng_jax.train.optim import make_optimizer
  from ycng_jax.train.trainer import Trainer
  mesh = make_mesh()
  loader = Loader({"image": x, "label": y}, global_batch_size=batch, mesh=mesh, seed=0)
  test = Loader({"image": xt, "label": yt}, global_batch_size=1000 - 1000 % mesh.devices.size,
                mesh=mesh, shuffle=False, num_epochs=1, drop_remainder=False)
  model = CNN(num_classes=10, features=(32, 64), convs_per_block=1, dense=128, dropout=0.0)
  trainer = Trainer(model, make_classification_loss(), make_optimizer("adam", 1e-3), mesh=mesh,
                    preprocess=lambda b: {**b, "image": b["image"].astype(jnp.float32) / 255.0})
  marks = []
  timer = LambdaCallback(on_epoch_begin=lambda e, logs: marks.append(time.perf_counter()),
                         on_epoch_end=lambda e, logs: marks.append(time.perf_counter()))
  trainer.fit(loader, epochs=epochs, verbose=0, callbacks=[timer])
  timed = sum(marks[2 * e + 1] - marks[2 * e] for e in range(1, epochs))
  steps_per_s = (epochs - 1) * loader.steps_per_epoch / timed
  return steps_per_s, trainer.evaluate(test)["accuracy"]


def run_keras(x, y, xt, yt, epochs: int, batch: int):
  import keras
  keras.utils.set_random_seed(0)
  layers = keras.layers
  model = keras.Sequential([
      keras.Input((28, 28, 1)),
      layers.Conv2D(32, 3, padding="same", use_bias=False), layers.BatchNormalization(momentum=0.9),
      layers.ReLU(), layers.MaxPooling2D(2),
      layers.Conv2D(64, 3, padding="same", use_bias=False), layers.BatchNormalization(momentum=0.9),
      layers.ReLU(), layers.MaxPooling2D(2),
      layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dense(10)])
  model.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"])
  marks = []
  timer = keras.callbacks.LambdaCallback(
      on_epoch_begin=lambda e, logs: marks.append(time.perf_counter()),
      on_epoch_end=lambda e, logs: marks.append(time.perf_counter()))
  xf, xtf = x.astype(np.float32) / 255.0, xt.astype(np.float32) / 255.0
  model.fit(xf, y, batch_size=batch, epochs=epochs, verbose=0, shuffle=True, callbacks=[timer])
  timed = sum(marks[2 * e + 1] - marks[2 * e] for e in range(1, epochs))
  steps = int(np.ceil(len(x) / batch))
  _, accuracy = model.evaluate(xtf, yt, batch_size=1000, verbose=0)
  return (epochs - 1) * steps / timed, accuracy


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--train-examples", type=int, default=None,
                      help="12800 (2560 with --quick)")
  parser.add_argument("--epochs", type=int, default=None, help="3 (2 with --quick)")
  parser.add_argument("--batch-size", type=int, default=128)
  parser.add_argument("--repeats", type=int, default=None, help="2 (1 with --quick)")
  parser.add_argument("--quick", action="store_true",
                      help="2560 examples, 2 epochs, 1 repeat: the `ycng bench` preset")
  add_json_argument(parser)
  args = parser.parse_args(argv)
  preset_defaults(args, train_examples=(12800, 2560), epochs=(3, 2), repeats=(2, 1))
  if args.epochs < 2:
    parser.error("--epochs must be >= 2 (the first epoch compiles and is not timed)")
  return args


def main(argv=None):
  args = parse_args(argv)
  x, y, xt, yt = load(args.train_examples)
  print(f"devices: {jax.device_count()} x {jax.devices()[0].platform}; "
        f"{len(x)} train images, batch {args.batch_size}, {args.epochs} epochs (first untimed)")
  runs = {"ycng": [], "keras": []}
  for _ in range(args.repeats):  # alternate, so a change in machine load hits both sides
    runs["ycng"].append(run_ours(x, y, xt, yt, args.epochs, args.batch_size))
    runs["keras"].append(run_keras(x, y, xt, yt, args.epochs, args.batch_size))
  # best steps/s of the repeats (the least disturbed run); accuracy of the first run
  ours = (max(r[0] for r in runs["ycng"]), runs["ycng"][0][1])
  theirs = (max(r[0] for r in runs["keras"]), runs["keras"][0][1])
  print(f"{'':8}{'steps/s':>10}{'test acc':>10}")
  print(f"{'ycng':8}{ours[0]:>10.2f}{ours[1]:>10.4f}")
  print(f"{'keras':8}{theirs[0]:>10.2f}{theirs[1]:>10.4f}")
  print(f"ratio ours/keras: {ours[0] / theirs[0]:.2f}x steps/s "
        f"(accuracy difference {ours[1] - theirs[1]:+.4f})")
  write_json(args.json, [result_row(
      f"CNN training, Fashion-MNIST {len(x)} examples, batch {args.batch_size}", "steps/s",
      ours[0], theirs[0], f"keras {version('keras')} model.fit (jax backend)",
      notes=f"{args.epochs} epochs (first untimed), best of {args.repeats}; test accuracy ours "
            f"{ours[1]:.4f}, keras {theirs[1]:.4f}")])


if __name__ == "__main__":
  main()

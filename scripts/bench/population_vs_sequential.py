"""Trials per hour: P trials as one population (vmapped, one program) vs one trial after another.

  python scripts/bench/population_vs_sequential.py [--sizes 8 32] [--model mlp|cnn]
      [--train-examples 10000] [--epochs 2] [--batch-size 128]
  python scripts/bench/population_vs_sequential.py --quick   # 2000 examples, 1 epoch

Both sides run the same code, ``ycng_jax.tuning.population.PopulationTrainer``, on the same
Fashion-MNIST images (the project's loader, the same batches for every trial) and the same
random hyperparameters (learning rate, weight decay, dropout, seed): a trial is ``--epochs``
epochs of training then its validation accuracy on 2,000 test images. The population trains
all P trials at once; the sequential side trains one trial (P = 1, the unvmapped step) at a
time, its program compiled once for all trials, as a user's loop over trials would run.
Compilation is timed on both sides (a real search pays it). Trials per hour = P / wall
seconds. The sequential side runs the largest P once; the smaller sizes' rate is read at the
end of their first trials. It also checks that both sides give the same validation accuracy
per trial (they train the same trials; printed as the largest difference). The CNN's
convolutions are ``PatchConv`` on a CPU (a vmapped ``nn.Conv`` is a grouped convolution, which
XLA:CPU runs slowly) and ``nn.Conv`` on a GPU, on both sides.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from bench_utils import add_json_argument, preset_defaults, result_row, write_json


def load(n_train: int, n_val: int):
  import ycng_jax.data as ydata
  train, test = ydata.load("fashion_mnist", "train"), ydata.load("fashion_mnist", "test")
  return ({"image": np.asarray(train["image"][:n_train]),
           "label": np.asarray(train["label"][:n_train], np.int32)},
          {"image": np.asarray(test["image"][:n_val]),
           "label": np.asarray(test["label"][:n_val], np.int32)})


def make_model(name: str):
  from ycng_jax.models.cnn import CNN
  from ycng_jax.models.mlp import MLP
  if name == "mlp":
    return MLP(num_classes=10, hidden=(256, 128), dropout=0.2)
  import jax
  # Vmapped, nn.Conv is a grouped convolution: slow on XLA:CPU, fine on a GPU.
  return CNN(num_classes=10, features=(16, 32), convs_per_block=1, dense=64, dropout=0.2,
             batch_norm=False, patch_convs=jax.default_backend() == "cpu")


def sample(size: int, seed: int = 0) -> dict[str, np.ndarray]:
  """Log-uniform learning rate and weight decay, uniform dropout, a seed per trial."""
  rng = np.random.default_rng(seed)
  return {"learning_rate": 10 ** rng.uniform(-4, -2, size),
          "weight_decay": 10 ** rng.uniform(-5, -1, size),
          "dropout": rng.uniform(0.0, 0.5, size), "seed": np.arange(size)}


class Trials:
  """Runs trials with one PopulationTrainer (so a size's programs compile once)."""

  def __init__(self, model: str, train, val, batch: int, epochs: int):
    from ycng_jax.data.pipeline import Loader
    from ycng_jax.train.losses import make_classification_loss
    from ycng_jax.train.mesh import make_mesh
    from ycng_jax.tuning.population import PopulationTrainer
    import jax.numpy as jnp
    self.pop = PopulationTrainer(
        make_model(model), make_classification_loss(), optimizer="adamw", dropout_base=0.2,
        preprocess=lambda b: {**b, "image": b["image"].astype(jnp.float32) / 255.0})
    mesh = make_mesh(1)  # the trainer copies each batch onto its own mesh
    self.make_train = lambda: Loader(train, global_batch_size=batch, mesh=mesh, seed=0)
    self.val = Loader(val, global_batch_size=500, mesh=mesh, shuffle=False, num_epochs=1,
                      drop_remainder=False)
    self.epochs = epochs

  def run(self, hparams) -> np.ndarray:
    """Trains the trials in ``hparams`` together; their validation accuracies."""
    train = self.make_train()
    self.pop.init(next(iter(train)), hparams)
    train = self.make_train()  # the first batch again: peeking consumed it
    self.pop.fit_steps(train, self.epochs * train.steps_per_epoch)
    accuracy = self.pop.evaluate(self.val)["accuracy"]
    self.val.set_state(self._val_start)
    return accuracy

  def __enter__(self):
    self._val_start = self.val.get_state()
    return self

  def __exit__(self, *exc):
    self.pop.free()


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sizes", type=int, nargs="+", default=[8, 32])
  parser.add_argument("--model", choices=("mlp", "cnn"), default="mlp")
  parser.add_argument("--train-examples", type=int, default=None, help="10000 (2000 with --quick)")
  parser.add_argument("--epochs", type=int, default=None, help="2 (1 with --quick)")
  parser.add_argument("--batch-size", type=int, default=128)
  parser.add_argument("--cpu-devices", type=int, default=os.cpu_count() or 1,
                      help="XLA:CPU devices to shard the population over (default: one per core; "
                           "set before jax starts, ignored if it already has)")
  parser.add_argument("--quick", action="store_true",
                      help="2000 examples, 1 epoch: the `ycng bench` preset")
  add_json_argument(parser)
  args = parser.parse_args(argv)
  preset_defaults(args, train_examples=(10000, 2000), epochs=(2, 1))
  if min(args.sizes) < 1 or args.epochs < 1 or args.train_examples < args.batch_size:
    parser.error("--sizes and --epochs must be >= 1, and --train-examples at least one batch")
  return args


def main(argv=None):
  args = parse_args(argv)
  # One XLA:CPU device per core: a device runs its members' share of the program on its own
  # thread, so the population keeps every core busy. The sequential trials run on one device,
  # as one trial would (XLA still spreads its larger ops over the cores).
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             f" --xla_force_host_platform_device_count={args.cpu_devices}").strip()
  import jax
  train, val = load(args.train_examples, 2000)
  print(f"devices: {jax.device_count()} x {jax.devices()[0].platform}; {args.model}, "
        f"{args.train_examples} train images, batch {args.batch_size}, {args.epochs} epoch(s) "
        "per trial, validation on 2000 test images; compile timed on both sides")
  largest = max(args.sizes)
  hparams = sample(largest)
  population = {}
  for size in sorted(args.sizes):
    with Trials(args.model, train, val, args.batch_size, args.epochs) as trials:
      start, cpu = time.perf_counter(), time.process_time()
      accuracy = trials.run({k: v[:size] for k, v in hparams.items()})
      population[size] = (time.perf_counter() - start, time.process_time() - cpu, accuracy)
    print(f"population P={size}: {population[size][0]:.1f} s", flush=True)
  marks, sequential_acc = [], []
  with Trials(args.model, train, val, args.batch_size, args.epochs) as trials:
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(largest):
      sequential_acc.append(trials.run({k: v[i:i + 1] for k, v in hparams.items()})[0])
      marks.append((time.perf_counter() - start, time.process_time() - cpu))
  print(f"sequential {largest} trials: {marks[-1][0]:.1f} s "
        f"(first trial, with the compile: {marks[0][0]:.1f} s)")
  rows = []
  # CPU seconds per trial (all threads) say how much work a trial costs on each side; the
  # wall-time ratio adds what running members side by side on several cores gains.
  print(f"{'P':>4}{'population trials/h':>21}{'sequential trials/h':>21}{'ratio':>8}"
        f"{'CPU s/trial, pop. vs seq.':>28}{'max |acc diff|':>16}")
  for size in sorted(args.sizes):
    seconds, cpu, accuracy = population[size]
    ours, theirs = size * 3600 / seconds, size * 3600 / marks[size - 1][0]
    cpu_ours, cpu_theirs = cpu / size, marks[size - 1][1] / size
    diffs = np.abs(accuracy - np.asarray(sequential_acc[:size]))
    diff, same = float(np.max(diffs)), int(np.sum(diffs < 5e-4))  # 5e-4: one image of 2000
    print(f"{size:>4}{ours:>21,.0f}{theirs:>21,.0f}{ours / theirs:>7.2f}x"
          f"{cpu_ours:>15.2f} vs {cpu_theirs:<9.2f}{diff:>16.4f}")
    rows.append(result_row(
        f"{size} {args.model.upper()} trials, Fashion-MNIST {args.train_examples} examples, "
        f"{args.epochs} epoch{'s' if args.epochs > 1 else ''}", "trials/hour", ours, theirs,
        "the same trials one after another (P = 1, compiled once)",
        notes=f"batch {args.batch_size}, {jax.device_count()} {jax.devices()[0].platform.upper()} "
              "device(s), compile included; "
              f"CPU s/trial {cpu_ours:.2f} vs {cpu_theirs:.2f}; best validation accuracy "
              f"{float(np.max(accuracy)):.4f}; {same} of {size} trials reach the sequential "
              f"run's accuracy, the largest difference is {diff:.4f}"))
  write_json(args.json, rows)


if __name__ == "__main__":
  main()

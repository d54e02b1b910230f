"""One epoch of fine-tuning all-MiniLM-L6-v2 for multi-label debtags: ours vs transformers' Trainer.

Both fine-tune the same pretrained folder with a fresh sigmoid head over the debtags tags with
at least 100 training examples, on the same first ``--n`` training texts, with the same batch
size, maximum length, AdamW (lr, betas, eps, weight decay off biases and LayerNorm), linear
warmup (10% of the steps) and decay, gradient clipping at 1.0, float32, and the same number of
CPU threads. Ours is the fine-tuning runner's Trainer and input pipeline
(``ycng_jax.text.finetune``: length buckets); theirs is ``transformers.Trainer`` with
``DataCollatorWithPadding`` (each batch padded to its longest text). Each side's wall time of
the epoch is printed (ours with its jit compiles, and without them), the ratio, and the
validation micro-F1 each model reaches at its best global threshold (same code for both). CPU
time (all threads of the process) is printed too: on a shared, oversubscribed machine it is the
steadier figure.

  pip install accelerate   # transformers' Trainer needs it
  python scripts/bench/finetune_vs_transformers.py [--n 2000] [--val 1000] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from bench_utils import set_cpu_threads


def load_data(n: int, n_val: int):
  """The debtags task (tags with >= 100 examples): the first ``n`` train and ``n_val``
  validation examples."""
  from ycng_jax.text.tasks import load_task
  task = load_task("debtags", min_label_count=100)
  take = lambda split, k: {key: v[:k] for key, v in task.splits[split].items()
                           if key in ("text", "label")}
  return task, take("train", n), take("validation", n_val)


def ours(args, task, train, val) -> tuple[float, float, float, np.ndarray]:
  """(wall seconds of the epoch, CPU seconds, seconds spent compiling, validation logits)."""
  import jax
  from ycng_jax.data.text import load_tokenizer
  from ycng_jax.text import finetune
  from ycng_jax.train.mesh import make_mesh
  compile_seconds = []
  jax.monitoring.register_event_duration_secs_listener(
      lambda event, seconds, **_: compile_seconds.append(seconds)
      if event.startswith("/jax/core/compile/") else None)
  config = finetune.base_config()
  config.update(batch_size=args.batch_size, max_length=args.max_length, epochs=1,
                learning_rate=args.lr, precision=args.precision, seed=0)
  folder = finetune.model_folder(config.model)
  bert_config = finetune.classifier_config(folder, task)
  mesh = make_mesh()
  tokenizer = load_tokenizer(folder)
  arrays = {"train": train, "validation": val, "test": val}
  loaders, orders = finetune.make_loaders(config, mesh, tokenizer, arrays, pair=False)
  trainer = finetune.build_trainer(config, bert_config, mesh, loaders["train"], folder)
  before = sum(compile_seconds)
  start, cpu = time.perf_counter(), time.process_time()
  trainer.fit(loaders["train"], epochs=1, verbose=0)
  jax.block_until_ready(trainer.state)
  seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
  compiled = sum(compile_seconds) - before
  logits = finetune.unsort(np.asarray(trainer.predict(loaders["validation"])),
                           orders["validation"])
  return seconds, cpu, compiled, logits


def theirs(args, task, train, val) -> tuple[float, float, np.ndarray]:
  """(wall and CPU seconds of ``Trainer.train()``, validation logits), transformers' BERT."""
  import torch
  import transformers
  from ycng_jax.models.hf_weights import resolve_model_folder
  folder = resolve_model_folder("all-MiniLM-L6-v2")
  tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
  names = list(task.label_names)
  torch.manual_seed(0)
  model = transformers.AutoModelForSequenceClassification.from_pretrained(
      folder, num_labels=len(names), problem_type="multi_label_classification",
      id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})

  def dataset(split):
    encoded = tokenizer(list(split["text"]), truncation=True, max_length=args.max_length,
                        padding=False)
    return [{**{k: encoded[k][i] for k in encoded}, "labels": split["label"][i].astype(np.float32)}
            for i in range(len(split["text"]))]

  steps = len(train["text"]) // args.batch_size
  with tempfile.TemporaryDirectory() as out:
    training = transformers.TrainingArguments(
        output_dir=out, per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=128, num_train_epochs=1, learning_rate=args.lr,
        warmup_steps=int(np.ceil(0.1 * steps)), weight_decay=0.01, max_grad_norm=1.0,
        lr_scheduler_type="linear", adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8,
        save_strategy="no", eval_strategy="no", logging_strategy="no", report_to="none",
        use_cpu=True, seed=0, disable_tqdm=True, dataloader_drop_last=True)
    trainer = transformers.Trainer(
        model=model, args=training, train_dataset=dataset(train),
        data_collator=transformers.DataCollatorWithPadding(tokenizer))
    start, cpu = time.perf_counter(), time.process_time()
    trainer.train()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
  # Every validation text (Trainer.predict would drop a last partial batch: drop_last above).
  model.eval()
  collate, examples, logits = transformers.DataCollatorWithPadding(tokenizer), dataset(val), []
  with torch.no_grad():
    for i in range(0, len(examples), 128):
      batch = collate([{k: v for k, v in e.items() if k != "labels"}
                       for e in examples[i:i + 128]])
      logits.append(model(**batch).logits.numpy())
  return seconds, cpu, np.concatenate(logits)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--n", type=int, default=2000, help="training texts (one epoch)")
  parser.add_argument("--val", type=int, default=1000, help="validation texts for micro-F1")
  parser.add_argument("--batch-size", type=int, default=32)
  parser.add_argument("--max-length", type=int, default=128)
  parser.add_argument("--lr", type=float, default=1e-4)
  parser.add_argument("--precision", default="float32", choices=["float32", "bf16-matmul"],
                      help="ours only; transformers stays float32")
  parser.add_argument("--threads", type=int, default=os.cpu_count(),
                      help="CPU threads of each framework (XLA:CPU and torch)")
  parser.add_argument("--only", choices=["ours", "theirs"], help="run one side")
  args = parser.parse_args()
  set_cpu_threads(args.threads)
  from ycng_jax.text import finetune_metrics as fm
  task, train, val = load_data(args.n, args.val)
  print(f"{len(train['text'])} train / {len(val['text'])} validation texts, "
        f"{len(task.label_names)} labels, batch {args.batch_size}, max length {args.max_length}, "
        f"{args.threads} threads")
  f1 = lambda logits: fm.best_threshold(val["label"], fm.sigmoid(logits), "f1")[1]
  results = {}
  if args.only != "theirs":
    seconds, cpu, compiled, logits = ours(args, task, train, val)
    results["ours"] = (seconds, cpu)
    print(f"ours:         {seconds:7.1f} s wall ({seconds - compiled:.1f} s without "
          f"{compiled:.1f} s of compiles), {cpu:7.1f} s CPU, validation micro-F1 "
          f"{f1(logits):.4f}", flush=True)
  if args.only != "ours":
    seconds, cpu, logits = theirs(args, task, train, val)
    results["theirs"] = (seconds, cpu)
    print(f"transformers: {seconds:7.1f} s wall, {cpu:7.1f} s CPU, validation micro-F1 "
          f"{f1(logits):.4f}", flush=True)
  if len(results) == 2:
    (ours_wall, ours_cpu), (their_wall, their_cpu) = results["ours"], results["theirs"]
    print(f"ratio (transformers / ours): wall {their_wall / ours_wall:.2f}x, "
          f"CPU {their_cpu / ours_cpu:.2f}x")


if __name__ == "__main__":
  main()

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

Both start from the same classification head (``--head-init shared``, the default): one seeded
numpy draw (normal, std ``initializer_range``, bias 0) put into both models. After one short epoch
the texts have taught neither model much yet (both score below the label frequencies used as
scores, printed too): each label's logit is set by the random head more than by the text, and
micro-F1 at one global threshold says which labels the draw happened to put on top. With each
framework drawing its own head (``--head-init own``) the two F1s differed by 2x for that reason
alone, with equal losses (docs/text_classification.md, "Speed against transformers"); from a
shared head the two models' validation logits correlate at 0.995 (printed).

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


def shared_head(folder: str, num_labels: int, seed: int) -> dict[str, np.ndarray]:
  """A classification head both sides start from: kernel (hidden, labels) drawn as BERT's
  initializer does (normal, std ``initializer_range``), bias 0."""
  from ycng_jax.models.bert import BertConfig
  config = BertConfig.from_hf(folder)
  rng = np.random.default_rng(seed)
  kernel = rng.normal(0.0, config.initializer_range,
                      (config.hidden_size, num_labels)).astype(np.float32)
  return {"kernel": kernel, "bias": np.zeros(num_labels, np.float32)}


def ours(args, task, train, val, head=None) -> tuple[float, float, float, np.ndarray]:
  """(wall seconds of the epoch, CPU seconds, seconds spent compiling, validation logits);
  ``head``: the classifier's initial kernel and bias (else the trainer's seeded draw)."""
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
  if head is not None:
    params = {**trainer.state.params, "classifier": head}
    trainer.state = trainer.state.replace(
        params=jax.device_put(params, trainer.state_sharding.params))
  before = sum(compile_seconds)
  start, cpu = time.perf_counter(), time.process_time()
  history = trainer.fit(loaders["train"], epochs=1, verbose=0)
  jax.block_until_ready(trainer.state)
  print(f"ours: mean training loss of the epoch {history.history['loss'][0]:.4f}", flush=True)
  seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
  compiled = sum(compile_seconds) - before
  logits = finetune.unsort(np.asarray(trainer.predict(loaders["validation"])),
                           orders["validation"])
  return seconds, cpu, compiled, logits


def theirs(args, task, train, val, head=None) -> tuple[float, float, np.ndarray]:
  """(wall and CPU seconds of ``Trainer.train()``, validation logits), transformers' BERT;
  ``head`` as in ``ours``."""
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
  if head is not None:
    with torch.no_grad():  # torch's Linear keeps the kernel as (out, in)
      model.classifier.weight.copy_(torch.from_numpy(head["kernel"].T.copy()))
      model.classifier.bias.copy_(torch.from_numpy(head["bias"]))

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
    loss = trainer.train().training_loss
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
  print(f"transformers: mean training loss of the epoch {loss:.4f}", flush=True)
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
  parser.add_argument("--head-init", default="shared", choices=["shared", "own"],
                      help="shared: both start from one seeded head (compares training); own: "
                      "each framework's seeded draw (the F1s then differ by the draw)")
  parser.add_argument("--seed", type=int, default=0, help="of the shared head")
  parser.add_argument("--only", choices=["ours", "theirs"], help="run one side")
  args = parser.parse_args()
  set_cpu_threads(args.threads)
  from ycng_jax.text import finetune_metrics as fm
  task, train, val = load_data(args.n, args.val)
  print(f"{len(train['text'])} train / {len(val['text'])} validation texts, "
        f"{len(task.label_names)} labels, batch {args.batch_size}, max length {args.max_length}, "
        f"{args.threads} threads, head init {args.head_init}")
  head = None
  if args.head_init == "shared":
    from ycng_jax.models.hf_weights import resolve_model_folder
    head = shared_head(resolve_model_folder("all-MiniLM-L6-v2"), len(task.label_names), args.seed)
  f1 = lambda logits: fm.best_threshold(val["label"], fm.sigmoid(logits), "f1")[1]
  val_loss = lambda logits: fm.mean_loss("multi_label_classification", logits, val["label"])
  # What F1 a model reaches that learned only how often each label occurs: the bar that says
  # whether the texts have taught either model anything yet.
  prior = np.broadcast_to(train["label"].mean(0), val["label"].shape)
  print(f"label frequencies of the training texts as scores: validation micro-F1 "
        f"{fm.best_threshold(val['label'], prior, 'f1')[1]:.4f}")
  results, all_logits = {}, {}
  if args.only != "theirs":
    seconds, cpu, compiled, logits = ours(args, task, train, val, head)
    results["ours"], all_logits["ours"] = (seconds, cpu), logits
    print(f"ours:         {seconds:7.1f} s wall ({seconds - compiled:.1f} s without "
          f"{compiled:.1f} s of compiles), {cpu:7.1f} s CPU, validation micro-F1 "
          f"{f1(logits):.4f}, loss {val_loss(logits):.4f}", flush=True)
  if args.only != "ours":
    seconds, cpu, logits = theirs(args, task, train, val, head)
    results["theirs"], all_logits["theirs"] = (seconds, cpu), logits
    print(f"transformers: {seconds:7.1f} s wall, {cpu:7.1f} s CPU, validation micro-F1 "
          f"{f1(logits):.4f}, loss {val_loss(logits):.4f}", flush=True)
  if len(results) == 2:
    (ours_wall, ours_cpu), (their_wall, their_cpu) = results["ours"], results["theirs"]
    print(f"ratio (transformers / ours): wall {their_wall / ours_wall:.2f}x, "
          f"CPU {their_cpu / ours_cpu:.2f}x")
    # Dropout and the shuffle differ, so the logits cannot be equal; from a shared head they
    # should still move together (from different heads they do not).
    a, b = all_logits["ours"], all_logits["theirs"]
    print(f"validation logits: correlation {np.corrcoef(a.ravel(), b.ravel())[0, 1]:.4f}, "
          f"max abs difference {np.abs(a - b).max():.4f}")


if __name__ == "__main__":
  main()

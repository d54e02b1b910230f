"""Fine-tuning a pretrained BERT for text classification (``ycng_jax.text.finetune:run``).

One path for every text task of the course (topics 6 and 7): one text or a text pair, single-label
(softmax), multi-label (sigmoid + binary cross-entropy, optional ``pos_weight``) and regression
(an STS score). It is the shared ``Trainer`` with its callbacks and checkpoints (a run killed at
any point resumes with the same command; a workdir never resumes a run with other settings):

- the model is ``BertForSequenceClassification`` loaded from a Hugging Face folder (default the
  packaged all-MiniLM-L6-v2) with a fresh, seeded classification head;
- texts are tokenized in the input pipeline (``ycng_jax.data.text.Tokenize``: pairs as
  ``[CLS] a [SEP] b [SEP]`` with token types, truncated longest-first) and padded to length
  buckets, so the step compiles once per bucket and spends little on padding;
- AdamW with linear warmup and linear decay, gradient clipping and no weight decay on biases and
  LayerNorm, as transformers' ``Trainer`` does by default.

After training, validation picks the decision thresholds (multi-label: one global and one per
label), the test split is scored, baselines run on the same splits (``config.baselines``), and
the workdir gets ``results.json``, ``results.md``, figures, ``metrics.jsonl`` and ``model/``: a
Hugging Face folder that ``TextClassifier.from_pretrained`` and transformers load.
"""

from __future__ import annotations

import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ycng_jax.checks import real_number, whole_number
from ycng_jax.errors import UserError
from ycng_jax.text import finetune_metrics as fm
from ycng_jax.text.finetune_model import (SequenceClassifier, classifier_config,
                                          load_pretrained_into, make_loss, make_optimizer,
                                          model_folder, prior_log_odds, set_head_bias)
from ycng_jax.train import callbacks as cb_lib
from ycng_jax.train import checkpoint as ckpt_lib
from ycng_jax.train import distributed, logging_callbacks as log_lib
from ycng_jax.train.trainer import Trainer, peek

TOKEN_KEYS = ("input_ids", "attention_mask", "token_type_ids")
PRECISIONS = ("float32", "bf16-matmul")
# The validation metric each kind of task is watched by (best model, early stopping).
MAIN_METRIC = {"single_label_classification": "val_accuracy",
               "multi_label_classification": "val_micro_f1", "regression": "val_pearson"}


def base_config() -> ml_collections.ConfigDict:
  """Every key the runner reads, with defaults (transformers' Trainer defaults where it has one)."""
  c = ml_collections.ConfigDict()
  c.runner = "ycng_jax.text.finetune:run"
  c.dataset = "reuters_corn_grain"  # a data set name or a .jsonl/.csv file (see docs)
  c.test_file = ""                  # a user's test file; "" splits test off the data set
  c.problem_type = ""               # "" the task's own; or one of finetune_metrics.PROBLEM_TYPES
  c.validation_fraction = 0.1
  c.test_fraction = 0.2
  c.min_label_count = 0             # multi-label: keep labels with at least this many examples
  c.limit = 0                       # 0: all examples; >0 the first N (quick runs)
  c.train_limit = 0                 # >0: a seeded N of the training split only (the held-out
                                    # splits stay whole)
  c.model = "all-MiniLM-L6-v2"      # a packaged model name or a Hugging Face BERT folder
  c.max_length = 128                # tokens per text (pair) after truncation
  c.buckets = (16, 32, 64, 128)     # padded lengths (capped at max_length): one compile each
  c.batch_size = 32
  c.eval_batch_size = 128
  c.epochs = 3
  c.learning_rate = 5e-5
  c.warmup_ratio = 0.1              # of all steps, linear from 0; then linear decay to 0
  c.weight_decay = 0.01             # AdamW, not on biases and LayerNorm
  c.clip_norm = 1.0                 # global gradient norm; 0: off
  c.head_lr_multiplier = 1.0        # the classification head's learning rate over the encoder's
  c.precision = "float32"           # or "bf16-matmul": bf16 matmul operands, float32 sums
  c.pos_weight = 0.0                # multi-label BCE weight of positives; 0: off (1.0)
  c.head_bias_prior = True          # multi-label: each label's head bias starts at its log-odds
                                    # in the training split; False: at 0 (transformers' init)
  c.seed = 0
  c.baselines = False               # also run the task's baselines on the same splits
  c.baseline_c = 10.0               # inverse L2 strength of the TF-IDF logistic regression
  c.baseline_model = "all-MiniLM-L6-v2"  # the frozen encoder of the pair-cosine baseline
  c.early_stopping_patience = 0     # epochs without improvement of the monitor; 0: off
  c.monitor = ""                    # "" the task's main validation metric (MAIN_METRIC)
  c.restore_best = False            # end with the params of the best epoch by the monitor
  c.log_every_steps = 50
  c.backup_every_steps = 0          # 0: back up at epoch ends only
  c.keep_checkpoints = 2
  c.terminate_on_nan = True
  c.tensorboard = True
  c.verbose = 1
  c.num_devices = 0                 # 0: all devices
  c.distributed = distributed.config_defaults()
  return c


def check_values(config: ml_collections.ConfigDict) -> None:
  """Each setting in range before any data is read or model built."""
  if not config.dataset:
    raise UserError("config.dataset is empty: give a data set name (e.g. debtags) or the path "
                    "of your .jsonl/.csv file (--config.dataset=PATH; see "
                    "docs/text_classification.md)")
  whole_number("config.epochs", config.epochs, 1)
  whole_number("config.batch_size", config.batch_size, 1)
  whole_number("config.eval_batch_size", config.eval_batch_size, 1)
  whole_number("config.max_length", config.max_length, 2)
  whole_number("config.limit", config.limit, 0)
  whole_number("config.train_limit", config.train_limit, 0)
  whole_number("config.min_label_count", config.min_label_count, 0)
  whole_number("config.early_stopping_patience", config.early_stopping_patience, 0)
  whole_number("config.log_every_steps", config.log_every_steps, 1)
  whole_number("config.backup_every_steps", config.backup_every_steps, 0)
  whole_number("config.keep_checkpoints", config.keep_checkpoints, 1)
  real_number("config.learning_rate", config.learning_rate, 0.0, low_open=True)
  real_number("config.warmup_ratio", config.warmup_ratio, 0.0, 1.0)
  real_number("config.weight_decay", config.weight_decay, 0.0)
  real_number("config.clip_norm", config.clip_norm, 0.0)
  real_number("config.head_lr_multiplier", config.head_lr_multiplier, 0.0, low_open=True)
  real_number("config.pos_weight", config.pos_weight, 0.0)
  real_number("config.baseline_c", config.baseline_c, 0.0, low_open=True)
  if config.precision not in PRECISIONS:
    raise UserError(f"config.precision={config.precision!r}; choose one of {PRECISIONS}")
  if config.problem_type and config.problem_type not in fm.PROBLEM_TYPES:
    raise UserError(f"config.problem_type={config.problem_type!r}; choose one of "
                    f"{fm.PROBLEM_TYPES}, or '' for the data set's own")
  if not config.buckets or any(int(b) != b or b < 1 for b in config.buckets):
    raise UserError(f"config.buckets={tuple(config.buckets)!r}: give positive token counts, "
                    "e.g. (16, 32, 64, 128)")


# --- data --------------------------------------------------------------------------------------

def load(config):
  """The task of ``config.dataset`` (``ycng_jax.text.tasks.load_task``)."""
  from ycng_jax.text.tasks import load_task
  return load_task(config.dataset, problem_type=config.problem_type or None,
                   test_file=config.test_file or None,
                   validation_fraction=config.validation_fraction,
                   test_fraction=config.test_fraction, seed=config.seed,
                   min_label_count=config.min_label_count, limit=config.limit,
                   train_limit=config.train_limit)


def split_arrays(task, split: str) -> dict[str, np.ndarray]:
  """The model's inputs and label of one split (other columns, such as ``group``, dropped)."""
  columns = task.splits[split]
  keys = ("text", "text_b", "label") if task.pair else ("text", "label")
  missing = [k for k in keys if k not in columns]
  if missing:
    raise UserError(f"the {split} split of {task.name!r} has no {missing} column(s)")
  out = {k: np.asarray(columns[k]) for k in keys}
  if len(out["label"]) == 0:
    raise UserError(f"the {split} split of {task.name!r} is empty: give more data or a larger "
                    f"{'validation' if split == 'validation' else 'test'} fraction")
  return out


def token_lengths(tokenizer, arrays, max_length: int) -> np.ndarray:
  pairs = list(arrays["text_b"]) if "text_b" in arrays else None
  ids = tokenizer(list(arrays["text"]), pairs, truncation=True, max_length=max_length)["input_ids"]
  return np.asarray([len(x) for x in ids])


def text_digest(arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
  """Arrays that ``fingerprints.fingerprint`` can hash: strings as their UTF-8 bytes."""
  out = []
  for key in sorted(arrays):
    value = np.asarray(arrays[key])
    if value.dtype == object or value.dtype.kind in "SU":
      value = np.frombuffer("\x00".join(map(str, value)).encode(), np.uint8)
    out.append(value)
  return out


class ValidationMetrics(cb_lib.Callback):
  """Adds ``val_loss`` and the task's metrics (accuracy, macro-F1, micro-F1 at the best global
  threshold, mean average precision, Pearson, ...) to each epoch's logs, from one pass of
  predictions over the validation split."""
  order = -1  # before History, the loggers, early stopping and the checkpoints

  def __init__(self, loader, labels: np.ndarray, problem_type: str, pos_weight: float):
    super().__init__()
    self.loader, self.labels, self.problem_type = loader, labels, problem_type
    self.pos_weight = pos_weight

  def compute(self) -> tuple[np.ndarray, dict[str, float]]:
    logits = np.asarray(self.trainer.predict(self.loader))
    scores = fm.scores_of(logits, self.problem_type)
    logs = {"loss": fm.mean_loss(self.problem_type, logits, self.labels, self.pos_weight)}
    if self.problem_type == "multi_label_classification":
      threshold, micro = fm.best_threshold(self.labels, scores, "f1")
      logs.update(micro_f1=micro, best_threshold=threshold,
                  **fm.ranking_metrics(self.labels, scores))
    else:
      logs.update(fm.task_metrics(self.problem_type, self.labels, scores))
    return logits, logs

  def on_epoch_end(self, epoch, logs=None):
    if logs is not None:
      logs.update({f"val_{k}": v for k, v in self.compute()[1].items()})


def make_loaders(config, mesh, tokenizer, arrays: dict[str, dict], pair: bool):
  """A shuffled endless train Loader; eval Loaders over the splits sorted by token length
  (little padding per batch; ``order`` maps the sorted rows back)."""
  from ycng_jax.data.pipeline import Loader
  from ycng_jax.data.text import Tokenize
  buckets = tuple(sorted({min(int(b), config.max_length) for b in config.buckets}
                         | {config.max_length}))
  tokenize = Tokenize(tokenizer, pair_key="text_b" if pair else None,
                      max_length=config.max_length, buckets=buckets)
  n_dev = mesh.devices.size
  eval_batch = max(n_dev, config.eval_batch_size - config.eval_batch_size % n_dev)
  loaders, orders = {}, {}
  loaders["train"] = Loader(arrays["train"], global_batch_size=config.batch_size, mesh=mesh,
                            shuffle=True, seed=config.seed, transform=tokenize)
  for split in ("validation", "test"):
    order = np.argsort(token_lengths(tokenizer, arrays[split], config.max_length), kind="stable")
    orders[split] = order
    loaders[split] = Loader({k: v[order] for k, v in arrays[split].items()},
                            global_batch_size=eval_batch, mesh=mesh, shuffle=False,
                            num_epochs=1, drop_remainder=False, transform=tokenize)
  return loaders, orders


# --- the run -----------------------------------------------------------------------------------

# Validation metrics each kind of task logs (``ValidationMetrics``): what config.monitor may name.
VALIDATION_METRICS = {
    "single_label_classification": ("val_loss", "val_accuracy", "val_macro_f1", "val_f1",
                                    "val_roc_auc", "val_average_precision"),
    "multi_label_classification": ("val_loss", "val_micro_f1", "val_precision_at_1",
                                   "val_precision_at_5", "val_mean_average_precision"),
    "regression": ("val_loss", "val_pearson", "val_spearman", "val_mse")}
# Settings that change what a run reports, not what it trains: a resumed run may change them.
REPORT_ONLY_KEYS = ("baselines", "baseline_c", "baseline_model")


def check_monitor(monitor: str, problem_type: str, num_labels: int) -> str:
  """The monitor's mode ("min" or "max"), if the task logs it; else a UserError."""
  valid = list(VALIDATION_METRICS[problem_type])
  if problem_type == "single_label_classification" and num_labels != 2:
    valid = valid[:3]  # F1, ROC AUC and AP of the positive class need two classes
  if monitor not in valid:
    raise UserError(f"config.monitor={monitor!r} is not logged for a {problem_type} task; "
                    f"choose one of {valid}")
  return "min" if monitor in ("val_loss", "val_mse") else "max"


def build_callbacks(config, workdir: str, settings: dict, monitor: str, mode: str) -> list:
  """The trainer's callbacks as the config asks; ``settings`` tie the backups to this run."""
  cbs: list = []
  if config.terminate_on_nan:
    cbs.append(cb_lib.TerminateOnNaN())
  if config.early_stopping_patience or config.restore_best:
    # Without early stopping, a patience beyond the last epoch only keeps the best weights.
    cbs.append(cb_lib.EarlyStopping(
        monitor=monitor, mode=mode,
        patience=config.early_stopping_patience or config.epochs + 1,
        restore_best_weights=config.restore_best,
        backup_dir=os.path.join(workdir, "checkpoints", "best") if config.restore_best else None))
  cbs.append(log_lib.CSVLogger(os.path.join(workdir, "history.csv")))
  if config.tensorboard:
    cbs.append(log_lib.TensorBoard(os.path.join(workdir, "tensorboard")))
  cbs.append(ckpt_lib.BackupAndRestore(os.path.join(workdir, "checkpoints", "backup"),
                                       save_freq=config.backup_every_steps or "epoch",
                                       max_to_keep=max(2, config.keep_checkpoints),
                                       settings=settings))
  return cbs


def build_trainer(config, bert_config, mesh, train_loader, folder: str,
                  train_labels: np.ndarray | None = None) -> Trainer:
  """The Trainer of ``bert_config``'s classifier, initialised with ``folder``'s encoder (and,
  multi-label with ``config.head_bias_prior``, a head bias from ``train_labels``' frequencies)."""
  precision = {"bf16-matmul": {"matmul_dtype": jnp.bfloat16}}.get(config.precision, {})
  trainer = Trainer(SequenceClassifier(bert_config, **precision),
                    make_loss(bert_config.problem_type, config.pos_weight),
                    make_optimizer(config, config.epochs * train_loader.steps_per_epoch),
                    mesh=mesh, input_keys=TOKEN_KEYS, variable_length_keys=TOKEN_KEYS,
                    seed=config.seed)
  trainer.init(peek(train_loader))
  load_pretrained_into(trainer, folder, bert_config)
  if (config.head_bias_prior and bert_config.problem_type == "multi_label_classification"
      and train_labels is not None):
    set_head_bias(trainer, prior_log_odds(train_labels))
  return trainer


def unsort(values: np.ndarray, order: np.ndarray) -> np.ndarray:
  out = np.empty_like(values)
  out[order] = values
  return out


def train(config: ml_collections.ConfigDict, workdir: str, *, task: Any = None) -> dict:
  """Fine-tune, evaluate, run the baselines and write the workdir; returns the results dict.

  ``task``: a ``TextTask`` to use instead of loading ``config.dataset``.
  """
  from ycng_jax.data.text import load_tokenizer
  from ycng_jax.text import finetune_report as report
  from ycng_jax.train.classification import DivergedError, _nonfinite_message
  from ycng_jax.train.mesh import make_mesh
  check_values(config)
  distributed.initialize(config.distributed)
  os.makedirs(workdir, exist_ok=True)
  mesh = make_mesh(config.num_devices or None)
  task = task if task is not None else load(config)
  problem_type = task.problem_type
  arrays = {s: split_arrays(task, s) for s in ("train", "validation", "test")}
  folder = model_folder(config.model)
  bert_config = classifier_config(folder, task)
  monitor = config.monitor or MAIN_METRIC[problem_type]
  mode = check_monitor(monitor, problem_type, bert_config.num_labels)
  # Before any compile: backups of a run with other settings or data stop this one here.
  trained_on = {k: v for k, v in config.items() if k not in REPORT_ONLY_KEYS}
  settings = ckpt_lib.run_settings(trained_on, *[a for split in arrays.values()
                                                 for a in text_digest(split)])
  callbacks = build_callbacks(config, workdir, settings, monitor, mode)

  tokenizer = load_tokenizer(folder)
  # Settles the tokenizer's truncation settings here, not first in the loader's threads.
  tokenizer(["warm up"], ["the settings"], truncation=True, max_length=8)
  loaders, orders = make_loaders(config, mesh, tokenizer, arrays, task.pair)
  labels = {s: arrays[s]["label"] for s in arrays}
  validation = ValidationMetrics(loaders["validation"], labels["validation"][orders["validation"]],
                                 problem_type, config.pos_weight)
  trainer = build_trainer(config, bert_config, mesh, loaders["train"], folder, labels["train"])

  start = time.perf_counter()
  history = trainer.fit(loaders["train"], epochs=config.epochs, callbacks=[validation] + callbacks,
                        verbose=config.verbose, workdir=workdir,
                        log_every_steps=config.log_every_steps)
  train_seconds = time.perf_counter() - start
  if trainer.nonfinite_step is not None:
    raise DivergedError(_nonfinite_message(trainer.nonfinite_step, workdir, callbacks))

  logits = {"validation": validation.compute()[0],
            "test": np.asarray(trainer.predict(loaders["test"]))}
  logits = {s: unsort(v, orders[s]) for s, v in logits.items()}
  scores = {s: fm.scores_of(v, problem_type) for s, v in logits.items()}
  thresholds = (fm.tune_thresholds(labels["validation"], scores["validation"])
                if problem_type == "multi_label_classification" else None)
  results = {
      "task": report.describe_task(task, arrays, bert_config),
      "fine_tuned": fm.task_metrics(problem_type, labels["test"], scores["test"],
                                    thresholds=thresholds),
      "fine_tuned_validation": fm.task_metrics(problem_type, labels["validation"],
                                               scores["validation"], thresholds=thresholds),
      "baselines": {},
      "step": int(jax.device_get(trainer.state.step)), "num_params": trainer.num_params,
      "train_seconds": train_seconds, "history": history.history,
      "model": config.model, "dataset": config.dataset}
  baseline_scores = {}
  if config.baselines:
    baseline_scores, results["baselines"] = report.scored_baselines(config, task, arrays)
  if thresholds is not None:
    results["thresholds"] = {"global": thresholds["global"],
                             "validation_micro_f1_global": thresholds["validation_micro_f1_global"]}

  log_lib.write_final(os.path.join(workdir, "metrics.jsonl"), results["step"],
                      flat_test_metrics(results), num_params=trainer.num_params)
  if jax.process_index() == 0:
    report.save_model(os.path.join(workdir, "model"), trainer.state.params, bert_config, folder,
                      task, config, thresholds)
    report.write(workdir, results, labels, scores, baseline_scores, thresholds, task)
  trainer.free()
  return results


def baselines_only(config: ml_collections.ConfigDict) -> dict[str, dict[str, float]]:
  """The test metrics of the task's baselines on ``config``'s splits, without fine-tuning.

  The splits depend on the data settings and ``config.seed`` alone, so these are the figures a
  full run of the same seed reports (for a run made with ``baselines=False``, e.g. on a device).
  """
  from ycng_jax.text import finetune_report as report
  check_values(config)
  task = load(config)
  arrays = {s: split_arrays(task, s) for s in ("train", "validation", "test")}
  return report.scored_baselines(config, task, arrays)[1]


def flat_test_metrics(results: dict) -> dict[str, float]:
  """``test_<metric>`` of the fine-tuned model and ``<baseline>_test_<metric>`` of each baseline."""
  out = {f"test_{k}": v for k, v in results["fine_tuned"].items()}
  for name, metrics in results["baselines"].items():
    out.update({f"{name}_test_{k}": v for k, v in metrics.items()})
  return out


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
  """``ycng run``'s entry point: ``train``, returning the flat test metrics."""
  return flat_test_metrics(train(config, workdir))

"""Bi-encoder runner: ``config.runner = "ycng_jax.text.biencoder_experiment:run"``.

Fine-tunes the sentence-transformers tower (all-MiniLM-L6-v2: BERT, mean pooling, unit vectors)
on the (synopsis, long description) positives of the training packages with
MultipleNegativesRankingLoss, the negatives being the whole global batch across the devices
(``ycng_jax.train.ranking_loss``), on the shared ``Trainer`` (AdamW with linear warmup and
decay, clipping, ``BackupAndRestore``: a killed run resumes with the same command). The tuned
tower is saved as a sentence-transformers folder (``model/``), then the base and the tuned
encoder are compared on the held-out packages:

- pair classification: the cosine of the two texts, with the threshold of best accuracy on the
  validation pairs (the metric names of the cross-encoder's runner: accuracy, f1, roc_auc,
  average_precision, threshold), so both tables line up;
- retrieval: each held-out synopsis ranks the long descriptions of all held-out packages;
  recall@1, recall@10 and MRR@10.

The workdir gets ``results.json``, ``results.md``, ``retrieval.png`` (recall@k curves and the
cosine of positive and negative pairs, base vs fine-tuned), ``metrics.jsonl``, ``history.csv``,
``model/`` and the checkpoints.
"""

from __future__ import annotations

import collections
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ycng_jax.checks import real_number, whole_number
from ycng_jax.errors import UserError
from ycng_jax.text import biencoder as bi
from ycng_jax.text import biencoder_report as report
from ycng_jax.train import callbacks as cb_lib
from ycng_jax.train import checkpoint as ckpt_lib
from ycng_jax.train import distributed, logging_callbacks as log_lib, optim
from ycng_jax.train.ranking_loss import make_ranking_loss
from ycng_jax.train.trainer import Trainer, peek

INPUT_KEYS = ("input_ids", "attention_mask", "input_ids_b", "attention_mask_b")
PRECISIONS = ("float32", "bf16-matmul")
# Settings that change what a run reports, not what it trains: a resumed run may change them.
REPORT_ONLY_KEYS = ("recall_ks", "eval_batch_size")


def base_config() -> ml_collections.ConfigDict:
  """Every key the runner reads, with defaults (sentence-transformers' where it has one)."""
  c = ml_collections.ConfigDict()
  c.runner = "ycng_jax.text.biencoder_experiment:run"
  c.dataset = "debian_synopses"
  c.validation_fraction = 0.1       # of the source packages (of a file's rows, by group)
  c.test_fraction = 0.2
  c.limit = 0                       # 0: all; >0 a seeded sample of N pairs per split, and of
                                    # N held-out packages for retrieval (quick runs)
  c.model = "all-MiniLM-L6-v2"      # the tower to start from: a packaged name or a folder
  c.max_length_a = 32               # training tokens of the first text (synopsis)
  c.max_length_b = 128              # training tokens of the second text (long description)
  c.batch_size = 64                 # global batch: each anchor's 63 negatives, over all devices
  c.epochs = 1
  c.learning_rate = 2e-5
  c.warmup_ratio = 0.1              # of all steps, linear from 0; then linear decay to 0
  c.weight_decay = 0.01             # AdamW
  c.clip_norm = 1.0                 # global gradient norm; 0: off
  c.scale = 20.0                    # cosine -> logit; sentence-transformers' default
  c.symmetric = False               # also rank the anchors for each positive
  c.mask_same_group = True          # same source package: not an in-batch negative
  c.precision = "float32"           # or "bf16-matmul": bf16 matmul operands, float32 sums
  c.eval_batch_size = 64            # texts per encoder step in the evaluation
  c.recall_ks = (1, 10)
  c.seed = 0
  c.log_every_steps = 50
  c.backup_every_steps = 100        # 0: back up at epoch ends only
  c.keep_checkpoints = 2
  c.terminate_on_nan = True
  c.tensorboard = False
  c.verbose = 1
  c.num_devices = 0                 # 0: all devices
  c.distributed = distributed.config_defaults()
  return c


def check_values(config: ml_collections.ConfigDict) -> None:
  """Each setting in range before any data is read or model built."""
  for key, low in (("limit", 0), ("max_length_a", 2), ("max_length_b", 2), ("batch_size", 2),
                   ("epochs", 1), ("eval_batch_size", 1), ("log_every_steps", 1),
                   ("backup_every_steps", 0), ("keep_checkpoints", 1)):
    whole_number(f"config.{key}", config[key], low)
  real_number("config.learning_rate", config.learning_rate, 0.0, low_open=True)
  real_number("config.warmup_ratio", config.warmup_ratio, 0.0, 1.0)
  real_number("config.weight_decay", config.weight_decay, 0.0)
  real_number("config.clip_norm", config.clip_norm, 0.0)
  real_number("config.scale", config.scale, 0.0, low_open=True)
  if config.precision not in PRECISIONS:
    raise UserError(f"config.precision={config.precision!r}; choose one of {PRECISIONS}")
  if not config.recall_ks or any(int(k) != k or k < 1 for k in config.recall_ks):
    raise UserError(f"config.recall_ks={tuple(config.recall_ks)!r}: give positive whole numbers")


# --- data ------------------------------------------------------------------------------------

def load(config):
  """The pair task of ``config.dataset`` (``ycng_jax.text.tasks.load_task``)."""
  from ycng_jax.text.tasks import load_task  # pylint: disable=import-outside-toplevel
  task = load_task(config.dataset, validation_fraction=config.validation_fraction,
                   test_fraction=config.test_fraction, seed=config.seed, limit=config.limit)
  if not task.pair:
    raise UserError(f"config.dataset={config.dataset!r} is not a text-pair task: the bi-encoder "
                    "trains on (text, text_b) pairs")
  return task


def _ids(values: np.ndarray) -> np.ndarray:
  """Equal values, equal int32 ids (in order of first appearance).

  A dict, not ``np.unique(values.astype(str))``: that copies the texts into a fixed-width
  array as wide as the longest one (debian_synopses: 41k descriptions, one of 81k characters,
  13 GB).
  """
  index: dict[str, int] = {}
  return np.fromiter((index.setdefault(str(v), len(index)) for v in values), np.int32,
                     count=len(values))


def positives(split: dict[str, Any]) -> dict[str, np.ndarray]:
  """The pairs of a split labelled 1: the (anchor, positive) pairs the ranking loss trains on.

  ``group`` (N, 3) holds three ids per pair: its group (the source package; the pair itself if
  the task has none), its first text and its second text. A pair that shares any of them with
  another is no negative for it (``config.mask_same_group``): siblings of one source package,
  or two packages with the same synopsis ("transitional package") or the same description.
  """
  keep = np.asarray(split["label"]) == 1
  out = {k: np.asarray(split[k])[keep] for k in ("text", "text_b")}
  group = np.asarray(split["group"])[keep] if "group" in split else np.arange(int(keep.sum()))
  out["group"] = np.stack([_ids(group), _ids(out["text"]), _ids(out["text_b"])], axis=1)
  return out


def token_arrays(tokenizer, pairs: dict[str, np.ndarray], config) -> dict[str, np.ndarray]:
  """The Loader's source: both sides tokenized once, padded to their fixed training lengths."""
  a = bi.tokenize_fixed(tokenizer, list(pairs["text"]), config.max_length_a)
  b = bi.tokenize_fixed(tokenizer, list(pairs["text_b"]), config.max_length_b)
  return {"input_ids": a["input_ids"], "attention_mask": a["attention_mask"],
          "input_ids_b": b["input_ids"], "attention_mask_b": b["attention_mask"],
          "group": pairs["group"]}


def held_out_pairs(task, config) -> tuple[list[str], list[str]]:
  """(queries, their right answers) for retrieval among the held-out (test) texts.

  ``debian_synopses``: every held-out package's synopsis and long description (those of a
  synopsis that several packages share left out, ``tasks.synopsis_pairs``). Another pair task:
  the test split's positive pairs whose first text is not repeated.
  """
  if task.name == "debian_synopses":
    from ycng_jax.text.tasks import synopsis_pairs  # pylint: disable=import-outside-toplevel
    pairs = synopsis_pairs("test", validation_fraction=config.validation_fraction,
                           test_fraction=config.test_fraction, seed=config.seed,
                           limit=config.limit)
    return [str(t) for t in pairs["synopsis"]], [str(t) for t in pairs["description"]]
  test = positives(task.splits["test"])
  counts = collections.Counter(str(t) for t in test["text"])
  once = {t for t, n in counts.items() if n == 1}
  keep = [i for i, t in enumerate(test["text"]) if str(t) in once]
  return [str(test["text"][i]) for i in keep], [str(test["text_b"][i]) for i in keep]


# --- training --------------------------------------------------------------------------------

def make_optimizer(config, total_steps: int) -> optax.GradientTransformation:
  """AdamW with linear warmup over ``warmup_ratio`` of the steps, then linear decay to 0."""
  warmup = int(np.ceil(config.warmup_ratio * total_steps))
  schedule = optax.join_schedules(
      [optax.linear_schedule(0.0, config.learning_rate, max(warmup, 1)),
       optax.linear_schedule(config.learning_rate, 0.0, max(total_steps - warmup, 1))], [warmup])
  return optim.make_optimizer("adamw", schedule, clip_norm=config.clip_norm or None,
                              weight_decay=config.weight_decay)


def build_trainer(config, mesh, bert_config, pooling: str, total_steps: int) -> Trainer:
  precision = {"bf16-matmul": {"matmul_dtype": jnp.bfloat16}}.get(config.precision, {})
  loss = make_ranking_loss(mesh, scale=config.scale, symmetric=config.symmetric,
                           group_key="group" if config.mask_same_group else None)
  return Trainer(bi.BiEncoder(bert_config, pooling=pooling, **precision), loss,
                 make_optimizer(config, total_steps), mesh=mesh, input_keys=INPUT_KEYS,
                 seed=config.seed)


class StepTimer(cb_lib.Callback):
  """The steady training speed: steps after the first (whose time is the compile) over the time
  they took, validation passes left out. It waits for the device at the first step and around
  each evaluation only, so the steps between keep running ahead as ``fit`` lets them."""

  def __init__(self):
    super().__init__()
    self.steps, self.seconds, self._since = 0, 0.0, None

  def _stop(self):
    if self._since is not None:
      jax.block_until_ready(self.trainer.state)
      self.seconds += time.perf_counter() - self._since
      self._since = None

  def on_train_batch_end(self, batch, logs=None):
    if self._since is None and not self.seconds:  # the first step: compiled, now timed from here
      jax.block_until_ready(self.trainer.state)
      self._since = time.perf_counter()
    else:
      self.steps += 1

  def on_eval_begin(self, logs=None):
    self._stop()

  def on_eval_end(self, logs=None):
    self._since = time.perf_counter()

  def on_train_end(self, logs=None):
    self._stop()

  def steps_per_second(self) -> float | None:
    return self.steps / self.seconds if self.steps else None


def start_from(trainer: Trainer, tower_params: Any) -> None:
  """The pretrained tower in place of the trainer's random init (optimizer slots stay zero)."""
  state = trainer.state
  params = {**state.params, "bert": tower_params}
  trainer.state = state.replace(params=jax.device_put(params, trainer.state_sharding.params))


def train(config: ml_collections.ConfigDict, workdir: str, *, task: Any = None) -> dict:
  """Fine-tune, save the folder, evaluate base and tuned encoders, write the workdir.

  ``task``: a ``TextTask`` (pairs with ``text``, ``text_b``, ``label``, ``group``) to use
  instead of loading ``config.dataset``.
  """
  from ycng_jax.data.pipeline import Loader  # pylint: disable=import-outside-toplevel
  from ycng_jax.text.encoder import load_fast_tokenizer  # pylint: disable=import-outside-toplevel
  from ycng_jax.train.mesh import make_mesh  # pylint: disable=import-outside-toplevel
  check_values(config)
  distributed.initialize(config.distributed)
  os.makedirs(workdir, exist_ok=True)
  mesh = make_mesh(config.num_devices or None)
  try:
    folder, bert_config, tower_params, pooling = bi.load_tower(config.model)
  except FileNotFoundError as e:
    raise UserError(f"config.model={config.model!r}: {e}") from None
  task = task if task is not None else load(config)
  tokenizer = load_fast_tokenizer(folder, max(config.max_length_a, config.max_length_b))
  arrays = {s: token_arrays(tokenizer, positives(task.splits[s]), config)
            for s in ("train", "validation")}
  if len(arrays["train"]["group"]) < config.batch_size:
    raise UserError(f"{len(arrays['train']['group'])} training pairs are fewer than one batch of "
                    f"config.batch_size={config.batch_size}: lower the batch size or the limit")
  n_dev = mesh.devices.size
  train_loader = Loader(arrays["train"], global_batch_size=config.batch_size, mesh=mesh,
                        shuffle=True, seed=config.seed)
  val_loader = Loader(arrays["validation"], global_batch_size=config.batch_size, mesh=mesh,
                      shuffle=False, num_epochs=1, drop_remainder=False)
  total_steps = config.epochs * train_loader.steps_per_epoch
  trained_on = {k: v for k, v in config.items() if k not in REPORT_ONLY_KEYS}
  settings = ckpt_lib.run_settings(trained_on, *arrays["train"].values(),
                                   *arrays["validation"].values())
  timer = StepTimer()
  callbacks = [timer, log_lib.CSVLogger(os.path.join(workdir, "history.csv")),
               ckpt_lib.BackupAndRestore(os.path.join(workdir, "checkpoints", "backup"),
                                         save_freq=config.backup_every_steps or "epoch",
                                         max_to_keep=max(2, config.keep_checkpoints),
                                         settings=settings)]
  if config.terminate_on_nan:
    callbacks.insert(0, cb_lib.TerminateOnNaN(check_every=10))
  if config.tensorboard:
    callbacks.append(log_lib.TensorBoard(os.path.join(workdir, "tensorboard")))

  trainer = build_trainer(config, mesh, bert_config, pooling, total_steps)
  trainer.init(peek(train_loader))
  start_from(trainer, tower_params)
  step_before = int(jax.device_get(trainer.state.step))
  start = time.perf_counter()
  history = trainer.fit(train_loader, epochs=config.epochs, validation_data=val_loader,
                        callbacks=callbacks, verbose=config.verbose, workdir=workdir,
                        log_every_steps=config.log_every_steps)
  seconds = time.perf_counter() - start
  rate = timer.steps_per_second()
  if trainer.nonfinite_step is not None:
    raise FloatingPointError(f"training stopped at step {trainer.nonfinite_step}: the loss became "
                             "NaN/inf; lower config.learning_rate and rerun")
  step = int(jax.device_get(trainer.state.step))
  restored = next((c.restored_step for c in callbacks
                   if isinstance(c, ckpt_lib.BackupAndRestore)), None)
  trained_steps = step - (restored if restored is not None else step_before)
  model_dir = os.path.join(workdir, "model")
  if jax.process_index() == 0:
    tower = jax.device_get(trainer.state.params["bert"])
    bi.save_sentence_transformer(tower, bert_config, model_dir, tokenizer_folder=folder,
                                 max_seq_length=report.max_seq_length(folder, bert_config),
                                 pooling=pooling)
  num_params = trainer.num_params
  trainer.free()

  queries, answers = held_out_pairs(task, config)
  results = report.evaluate(task, queries, answers,
                            {"embedding_cosine": config.model, "fine_tuned": model_dir},
                            precision=config.precision, batch_size=config.eval_batch_size,
                            ks=tuple(int(k) for k in config.recall_ks))
  results.update(
      dataset=config.dataset, model=config.model, step=step, num_params=num_params,
      history=history.history,
      training={"pairs": int(len(arrays["train"]["group"])), "devices": int(n_dev),
                "batch_size": int(config.batch_size), "steps": trained_steps,
                "seconds": seconds, "steps_per_second": rate,
                "pairs_per_second": rate and rate * config.batch_size})
  log_lib.write_final(os.path.join(workdir, "metrics.jsonl"), step, report.flat(results),
                      num_params=num_params)
  if jax.process_index() == 0:
    report.write(workdir, results)
  return results


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
  """``ycng run``'s entry point: ``train``, returning the flat test metrics."""
  return report.flat(train(config, workdir))

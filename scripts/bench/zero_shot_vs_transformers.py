"""Texts/s of ``zero_shot_classify`` in entailment mode vs transformers'
``pipeline("zero-shot-classification")`` (PyTorch) on the same NLI folder, the same texts and labels.

The folder: ``--model`` (an NLI folder; a BERT folder without an entailment label, or a packaged
name, gets a seeded random entailment head as below), else the entailment model of
``ycng run topic11/debtags_nli_train`` (workdirs/topic11/debtags_nli_train/model) if it is
there, else all-MiniLM-L6-v2's encoder and pooler with a seeded random 2-way head (entailment,
not_entailment) written by ``save_classifier``: the timing depends on the shapes, not the
weights. Both sides read it from disk, run float32 on the CPU with the same thread count,
truncate the text of a pair at the folder's max length, and score ``--labels`` labels per text
(single-label: the softmax of the entailment logits over the labels). With ``--gpu`` ours runs
on jax's default device and the pipeline on CUDA (``device=0``), both in strict float32: jax's
matmul precision is set to "highest" (XLA:GPU's float32 default is TF32), torch's left at its
strict default; the matmul ceiling (a CPU figure) is then skipped. The pipeline runs with its
default of one pair per forward and with ``--batch-size`` pairs per forward (padded to the
batch's longest); the ratio is taken against the faster. The pipeline first classifies a
warm-up slice (PyTorch's lazy init), ours makes one untimed pass over the timed texts (it
compiles the shapes they need); then ``--rounds`` timed passes alternate between the sides (one
pair per forward runs once) and each keeps its fastest. Printed: texts/s each, the ratios by
wall and by CPU time, and the largest absolute difference between the two sides' scores.

Texts: the ``debtags`` corpus's package descriptions (``bench_utils.debtags_texts``), or
``--texts FILE`` (one text per line).

  python scripts/bench/zero_shot_vs_transformers.py            # 500 texts x 10 labels
  python scripts/bench/zero_shot_vs_transformers.py --quick    # 60 texts: a smoke run
  python scripts/bench/zero_shot_vs_transformers.py --gpu --model FOLDER --texts FILE --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings

import numpy as np

from bench_utils import (add_json_argument, alternate_rounds, preset_defaults, print_ceiling,
                         result_row, set_cpu_threads, strict_float32_on_gpu, texts_or_debtags,
                         version, write_json)

TRAINED = os.path.join("workdirs", "topic11", "debtags_nli_train", "model")
LABELS = ("software development", "games", "networking", "sound and music", "graphics",
          "science", "system administration", "text editing", "the web", "security",
          "office work", "education")


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model", help="an NLI folder, or a BERT folder to put a random "
                      f"entailment head on (default: {TRAINED} if present, else MiniLM with a "
                      "random entailment head)")
  parser.add_argument("--texts", help="a file with one text per line (instead of debtags)")
  parser.add_argument("--gpu", action="store_true", help="ours on jax's default device, the "
                      "pipeline on CUDA; jax's float32 matmuls at full precision, as torch's")
  parser.add_argument("--n", type=int, default=None, help="texts (500; 60 with --quick)")
  parser.add_argument("--labels", type=int, default=10, help=f"labels per text (<= {len(LABELS)})")
  parser.add_argument("--batch-size", type=int, default=32,
                      help="ours: texts per step (with all their labels); the batched "
                      "pipeline: pairs per forward")
  parser.add_argument("--warmup", type=int, default=None, help="texts the pipeline classifies "
                      "once first (32; 8 with --quick)")
  parser.add_argument("--rounds", type=int, default=None, help="timed passes per side, "
                      "alternating; each side's fastest counts (2; 1 with --quick)")
  parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                      help="CPU threads for each framework (default: this process's CPUs)")
  parser.add_argument("--skip-unbatched", action="store_true",
                      help="time the pipeline batched only (one pair per forward is slow)")
  parser.add_argument("--no-ceiling", action="store_true",
                      help="skip timing XLA's dots for the matmul ceiling")
  parser.add_argument("--quick", action="store_true", help="60 texts, one round: a smoke run")
  add_json_argument(parser)
  args = preset_defaults(parser.parse_args(argv), n=(500, 60), warmup=(32, 8), rounds=(2, 1))
  if not 1 <= args.labels <= len(LABELS):
    parser.error(f"--labels must be in [1, {len(LABELS)}]")
  return args


def random_head_folder(folder: str, model: str = "all-MiniLM-L6-v2") -> str:
  """``model``'s BERT + a seeded random (entailment, not_entailment) head, as a classifier."""
  import jax  # pylint: disable=import-outside-toplevel

  from ycng_jax.models.bert import BertConfig  # pylint: disable=import-outside-toplevel
  from ycng_jax.models.hf_weights import (load_pretrained,  # pylint: disable=import-outside-toplevel
                                          resolve_model_folder)
  from ycng_jax.text import save_classifier  # pylint: disable=import-outside-toplevel
  source = resolve_model_folder(model)
  config = BertConfig.from_hf(source, num_labels=2)
  _, params, _ = load_pretrained(source, head="classification", config=config,
                                 rng=jax.random.PRNGKey(0), allow_missing=("classifier.*",))
  return save_classifier(folder, params=params, config=config, tokenizer_folder=source,
                         problem_type="single_label_classification",
                         label_names=["entailment", "not_entailment"], max_length=128, pair=True)


def nli_folder(model: str, scratch: str) -> str:
  """``model`` if its labels have an entailment one, else its BERT with a random head."""
  from ycng_jax.models.hf_weights import resolve_model_folder  # pylint: disable=import-outside-toplevel
  from ycng_jax.text.zero_shot import entailment_id  # pylint: disable=import-outside-toplevel
  source = resolve_model_folder(model)
  with open(os.path.join(source, "config.json"), encoding="utf-8") as f:
    names = list((json.load(f).get("id2label") or {}).values())
  return source if entailment_id(names) >= 0 else random_head_folder(scratch, source)


def main(argv=None) -> None:
  args = parse_args(argv)
  set_cpu_threads(args.threads)
  args.gpu_note = strict_float32_on_gpu() if args.gpu else ""
  texts = texts_or_debtags(args.texts, args.n + args.warmup)
  warnings.filterwarnings("ignore", message=".*were truncated")  # both sides truncate alike
  with tempfile.TemporaryDirectory(prefix="ycng-zero-shot-") as scratch:
    if args.model:
      folder = nli_folder(args.model, scratch)
    else:
      folder = TRAINED if os.path.isdir(TRAINED) else random_head_folder(scratch)
    rows = run(args, texts[args.warmup:], texts[:args.warmup], folder)
  write_json(args.json, rows)


def run(args, texts: list[str], warm: list[str], folder: str) -> list[dict]:
  import jax  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  import transformers  # pylint: disable=import-outside-toplevel

  from ycng_jax.text.zero_shot import load_model, zero_shot_classify  # pylint: disable=import-outside-toplevel

  labels = list(LABELS[:args.labels])
  ours = load_model(folder)
  pipe = transformers.pipeline("zero-shot-classification", model=folder,
                               device=0 if args.gpu else -1)
  print(f"{folder}: {len(texts)} texts x {len(labels)} labels, max_length {ours.max_length}; "
        f"jax {jax.__version__} on {jax.devices()[0].platform} x{jax.device_count()}, torch "
        f"{torch.__version__}, transformers {transformers.__version__}, threads "
        f"{torch.get_num_threads()}" + (f"; torch on cuda; {args.gpu_note}" if args.gpu else ""))
  t0 = time.perf_counter()
  # An untimed pass over the timed texts compiles exactly the shapes they need (fewer than
  # precompile's every bucket at full size).
  zero_shot_classify(texts, labels, model=ours, batch_size=args.batch_size)
  warm_s = time.perf_counter() - t0
  pipe(warm[:4], candidate_labels=labels)
  pipe(warm, candidate_labels=labels, batch_size=args.batch_size)

  sides = {"ours": lambda: zero_shot_classify(texts, labels, model=ours,
                                              batch_size=args.batch_size),
           "pipeline_batched": lambda: pipe(texts, candidate_labels=labels,
                                            batch_size=args.batch_size)}
  if not args.skip_unbatched:
    sides["pipeline_batch_1"] = lambda: pipe(texts, candidate_labels=labels)
  best, outputs = alternate_rounds(sides, args.rounds, once=("pipeline_batch_1",))
  n, (ours_s, ours_cpu) = len(texts), best["ours"]
  print(f"ycng_jax zero_shot_classify (entailment mode, float32): {n / ours_s:8.2f} texts/s "
        f"({ours_s:.2f} s wall, {ours_cpu:.2f} CPU-s; untimed compiling pass {warm_s:.1f} s)")
  rows, source = [], "texts from --texts" if args.texts else "debtags texts"
  precision = "float32" + (" on the GPU, jax matmul precision highest" if args.gpu else "")
  for side, label in (("pipeline_batch_1", "one pair per forward (its default)"),
                      ("pipeline_batched", f"batch_size={args.batch_size} pairs")):
    if side not in best:
      continue
    theirs_s, theirs_cpu = best[side]
    theirs = np.asarray([[dict(zip(o["labels"], o["scores"]))[label] for label in labels]
                         for o in outputs[side]])
    diff = float(np.abs(theirs - outputs["ours"]).max())
    print(f"transformers pipeline, {label}: {n / theirs_s:8.2f} texts/s ({theirs_s:.2f} s wall, "
          f"{theirs_cpu:.2f} CPU-s); ours {theirs_s / ours_s:.2f}x by wall time, "
          f"{theirs_cpu / ours_cpu:.2f}x by CPU time; max |score difference| {diff:.2e}")
    rows.append(result_row(f"zero-shot entailment vs pipeline, {label}", "texts/s", n / ours_s,
                           n / theirs_s, f"transformers {version('transformers')} "
                           "zero-shot-classification pipeline",
                           notes=f"{len(labels)} labels, {n} {source}, {precision}; CPU-time "
                           f"ratio {theirs_cpu / ours_cpu:.2f}x; max |score diff| {diff:.1e}"))
  faster = min(best[side][0] for side in best if side != "ours")
  print(f"ratio ours / the faster pipeline: {faster / ours_s:.2f}x by wall time")
  if not args.gpu and not args.no_ceiling:
    # How far a ratio can go: both sides do the same matmuls on the same unpadded pairs.
    print_ceiling(ours.config, pair_lengths(ours, texts, labels),
                  {side: n / seconds for side, (seconds, _) in best.items()}, items=n,
                  unit="texts/s")
  return rows


def pair_lengths(classifier, texts: list[str], labels: list[str]) -> list[int]:
  """Tokens of every (text, hypothesis) pair, truncated as both sides truncate them."""
  from ycng_jax.text.zero_shot import hypotheses, pair_tokenizer  # pylint: disable=import-outside-toplevel
  pairs = [(t, h) for t in texts for h in hypotheses(labels)]
  return [len(e.ids) for e in pair_tokenizer(classifier).encode_batch(pairs)]


if __name__ == "__main__":
  main()

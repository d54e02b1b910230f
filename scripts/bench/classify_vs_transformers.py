"""Texts/s of ``ycng_jax.text.TextClassifier.predict`` vs transformers' ``text-classification``
pipeline (PyTorch), on the same classifier folder and the same texts, one process.

The folder is ``--model``'s encoder and pooler (a BERT folder; default all-MiniLM-L6-v2) with a
fresh seeded head of ``--labels`` labels (multi-label: sigmoid scores), written by
``save_classifier``; both sides read it from disk, run float32 on the CPU with the same thread
count, and truncate at the same ``--max-length``. With ``--gpu`` ours runs on jax's default
device and the pipeline on CUDA (``device=0``), both in strict float32: jax's matmul precision is
set to "highest" (XLA:GPU's float32 default is TF32), torch's left at its strict default. The
pipeline runs as it is documented (``top_k=None``), once with its default of one text per
forward and once with ``--batch-size`` texts per forward (padded to the batch's longest); the
ratio is taken against the faster of the two. Each side first classifies a warm-up
slice (PyTorch's lazy init, our compiles) and ours compiles every bucket's full step
(``TextClassifier.precompile``); then ``--rounds`` timed passes alternate between ours and the
batched pipeline and each keeps its fastest (one text per forward runs once: it is slow).
Printed: texts/s each, the ratios by wall and by CPU time (the steadier one on a shared
machine), the largest absolute difference between the two sides' scores.

Texts: the ``debtags`` corpus's package descriptions (``bench_utils.debtags_texts``), or
``--texts FILE`` (one text per line).

  python scripts/bench/classify_vs_transformers.py               # 1,000 texts
  python scripts/bench/classify_vs_transformers.py --quick       # 200 texts: a smoke run
  python scripts/bench/classify_vs_transformers.py --gpu --model FOLDER --texts FILE --n 2000
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings

import numpy as np

from bench_utils import alternate_rounds, set_cpu_threads, strict_float32_on_gpu, texts_or_debtags


def build_folder(folder: str, model: str, labels: int, max_length: int, seed: int) -> list[str]:
  """``model``'s BERT + a new ``labels``-way multi-label head (seeded), saved as a classifier."""
  import jax  # pylint: disable=import-outside-toplevel

  from ycng_jax.models.bert import BertConfig  # pylint: disable=import-outside-toplevel
  from ycng_jax.models.hf_weights import (load_pretrained,  # pylint: disable=import-outside-toplevel
                                          resolve_model_folder)
  from ycng_jax.text import save_classifier  # pylint: disable=import-outside-toplevel

  source = resolve_model_folder(model)
  config = BertConfig.from_hf(source, num_labels=labels)
  _, params, _ = load_pretrained(source, head="classification", config=config,
                                 rng=jax.random.PRNGKey(seed), allow_missing=("classifier.*",))
  names = [f"label_{i}" for i in range(labels)]
  save_classifier(folder, params=params, config=config, tokenizer_folder=source,
                  problem_type="multi_label_classification", label_names=names,
                  max_length=max_length)
  return names


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model", default="all-MiniLM-L6-v2",
                      help="the BERT folder (or packaged name) under the new head")
  parser.add_argument("--texts", help="a file with one text per line (instead of debtags)")
  parser.add_argument("--gpu", action="store_true", help="ours on jax's default device, the "
                      "pipeline on CUDA; jax's float32 matmuls at full precision, as torch's")
  parser.add_argument("--n", type=int, default=1000, help="number of texts")
  parser.add_argument("--quick", action="store_true", help="200 texts, 64 warm-up: a smoke run")
  parser.add_argument("--labels", type=int, default=10)
  parser.add_argument("--max-length", type=int, default=128, help="tokens per text, both sides")
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--warmup", type=int, default=256, help="texts classified once before timing")
  parser.add_argument("--precision", default="float32", choices=["float32", "bf16-matmul"],
                      help="ours (the pipeline is float32)")
  parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                      help="CPU threads for each framework (default: this process's CPUs)")
  parser.add_argument("--rounds", type=int, default=3,
                      help="timed passes per side, alternating; each side's fastest counts")
  parser.add_argument("--skip-unbatched", action="store_true",
                      help="time the pipeline batched only (one text per forward is the slow one)")
  parser.add_argument("--seed", type=int, default=0, help="the new head's initialisation")
  parser.add_argument("--folder", help="write the classifier folder here (default: a temporary one)")
  parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
  args = parser.parse_args()
  if args.quick:
    args.n, args.warmup, args.rounds = min(args.n, 200), min(args.warmup, 64), 1
  set_cpu_threads(args.threads)
  args.gpu_note = strict_float32_on_gpu() if args.gpu else ""

  texts = texts_or_debtags(args.texts, args.n)
  # Both sides truncate the same texts; ours would say so on every call.
  warnings.filterwarnings("ignore", message=".*were truncated")
  with tempfile.TemporaryDirectory(prefix="ycng-classifier-") as scratch:
    figures = run(args, texts, args.folder or scratch)
  if args.json:
    print(json.dumps(figures, sort_keys=True))


def run(args, texts: list[str], folder: str) -> dict:
  """Builds the folder, times both sides, prints the figures and returns them."""
  import jax  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  import transformers  # pylint: disable=import-outside-toplevel

  from ycng_jax.text import TextClassifier  # pylint: disable=import-outside-toplevel

  names = build_folder(folder, args.model, args.labels, args.max_length, args.seed)
  ours = TextClassifier.from_pretrained(folder, precision=args.precision,
                                        batch_size=args.batch_size)
  pipe = transformers.pipeline("text-classification", model=folder, top_k=None,
                              device=0 if args.gpu else -1)
  options = {"truncation": True, "max_length": args.max_length}
  warm = texts[:args.warmup]
  lengths = [len(ids) for ids in ours.tokenize(texts)]
  print(f"{len(texts)} texts, tokens/text mean {np.mean(lengths):.1f} median "
        f"{np.median(lengths):.0f} max {max(lengths)} (max_length {args.max_length}); "
        f"{args.labels} labels; batch size {args.batch_size}; jax {jax.__version__} on "
        f"{jax.devices()[0].platform} x{jax.device_count()}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}, threads {torch.get_num_threads()}"
        + (f"; torch on cuda; {args.gpu_note}" if args.gpu else ""))

  t0 = time.perf_counter()
  ours.predict(warm)
  ours.precompile()
  warm_s = time.perf_counter() - t0
  pipe(warm[:16], **options)
  pipe(warm, batch_size=args.batch_size, **options)

  n = len(texts)
  figures = {"texts": n, "labels": args.labels, "max_length": args.max_length,
             "batch_size": args.batch_size, "threads": args.threads, "precision": args.precision,
             "rounds": args.rounds, **({"gpu": True} if args.gpu else {})}
  sides = {"ours": lambda: ours.predict(texts),
           "pipeline_batched": lambda: pipe(texts, batch_size=args.batch_size, **options)}
  if not args.skip_unbatched:
    sides["pipeline_batch_1"] = lambda: pipe(texts, batch_size=1, **options)
  # One text per forward is too slow for more than one round.
  best, outputs = alternate_rounds(sides, args.rounds, once=("pipeline_batch_1",))
  ours_scores = np.asarray([[p.scores[name] for name in names] for p in outputs["ours"]])
  ours_s, ours_cpu = best["ours"]
  figures["ours_texts_per_s"] = n / ours_s
  print(f"ycng_jax TextClassifier ({args.precision}): {n / ours_s:8.1f} texts/s ({ours_s:.2f} s "
        f"wall, {ours_cpu:.2f} CPU-s; warm-up and precompile {warm_s:.1f} s)")
  for side, label in (("pipeline_batch_1", "one text per forward (its default)"),
                      ("pipeline_batched", f"batch_size={args.batch_size}")):
    if side not in best:
      continue
    theirs_s, theirs_cpu = best[side]
    theirs_scores = np.asarray([[{d["label"]: d["score"] for d in out}[name] for name in names]
                                for out in outputs[side]])
    diff = float(np.abs(theirs_scores - ours_scores).max())
    figures.update({f"{side}_texts_per_s": n / theirs_s, f"{side}_max_abs_score_diff": diff,
                    f"ratio_vs_{side}_wall": theirs_s / ours_s,
                    f"ratio_vs_{side}_cpu": theirs_cpu / ours_cpu})
    print(f"transformers pipeline, {label}: {n / theirs_s:8.1f} texts/s ({theirs_s:.2f} s wall, "
          f"{theirs_cpu:.2f} CPU-s); ours {theirs_s / ours_s:.2f}x by wall time, "
          f"{theirs_cpu / ours_cpu:.2f}x by CPU time; max |score difference| {diff:.2e}")
  faster = min(best[side][0] for side in best if side != "ours")
  figures["ratio_vs_faster_pipeline"] = faster / ours_s
  print(f"ratio ours / the faster pipeline: {faster / ours_s:.2f}x by wall time")
  return figures


if __name__ == "__main__":
  main()

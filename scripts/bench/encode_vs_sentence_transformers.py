"""Sentences/s of ``ycng_jax.text.Encoder.encode`` vs sentence-transformers (PyTorch), one process.

Both embed the same texts from the same model folder with the same batch size; the script prints
each throughput, the ratio (ours / theirs) and the mean cosine between the two embedding sets.
Wall time is the figure; CPU time is printed too, since on a shared, oversubscribed machine it is
the steadier one (run with ``--threads 1`` there: idle threads then cannot spin). Each side first
embeds a warm-up slice once (PyTorch's lazy init, our jit compiles for the
buckets that slice touches), and ours then compiles every bucket's full step
(``Encoder.precompile``); the timed pass runs over all texts. Our first-call and
precompile times are printed as well.

Texts: the ``debtags`` corpus's package descriptions, or ``--texts FILE`` (one text per line).

  python scripts/bench/encode_vs_sentence_transformers.py --n 5000 --batch-size 64
  python scripts/bench/encode_vs_sentence_transformers.py --quick   # 500 texts, no ceiling
  python scripts/bench/encode_vs_sentence_transformers.py --gpu --dtype bfloat16 --torch-bf16 --batch-size 256
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench_utils import (add_json_argument, attention_replaced_by_values, debtags_texts,
                         preset_defaults, print_ceiling, result_row, set_cpu_threads, timed,
                         version, write_json)


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model", default="all-MiniLM-L6-v2")
  parser.add_argument("--n", type=int, default=None,
                      help="number of texts (5000; 500 with --quick)")
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--warmup", type=int, default=None,
                      help="texts embedded once before timing (512; 128 with --quick)")
  parser.add_argument("--texts", help="a file with one text per line (instead of apt lists)")
  parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  parser.add_argument("--matmul-dtype", default=None, choices=["bfloat16"],
                      help="ours: float32 activations, bf16 matmul operands (the CPU recipe)")
  parser.add_argument("--torch-bf16", action="store_true",
                      help="also time sentence-transformers under torch.autocast(bfloat16)")
  parser.add_argument("--gpu", action="store_true",
                      help="sentence-transformers on CUDA (ours runs on jax's default device)")
  parser.add_argument("--buckets", type=bucket_list,
                      help="ours: row lengths, comma-separated (default: the Encoder's, "
                      "ycng_jax.text.encoder.length_buckets)")
  parser.add_argument("--attention-share", action="store_true",
                      help="also time ours with attention replaced by its values (a diagnostic): "
                      "the share of our time attention takes, and the most a faster one could give")
  parser.add_argument("--no-ceiling", action="store_true",
                      help="skip the matmul ceiling (CPU only; times this model's dot shapes)")
  parser.add_argument("--threads", type=int, default=0,
                      help="CPU threads for each framework (0: their defaults); 1 gives "
                      "contention-proof CPU-time figures on a shared machine")
  parser.add_argument("--quick", action="store_true",
                      help="500 texts, 128 warm-up, no ceiling: the `ycng bench` preset")
  add_json_argument(parser)
  args = parser.parse_args(argv)
  preset_defaults(args, n=(5000, 500), warmup=(512, 128))
  args.no_ceiling = args.no_ceiling or args.quick
  return args


def main(argv=None) -> None:
  args = parse_args(argv)
  set_cpu_threads(args.threads)

  if args.texts:
    with open(args.texts, encoding="utf-8") as f:
      texts = [line.rstrip("\n") for line in f if line.strip()][:args.n]
  else:
    texts = debtags_texts(args.n)
  if not texts:
    raise SystemExit("No texts: pass --texts FILE (one text per line).")

  import jax
  import jax.numpy as jnp
  import torch
  from sentence_transformers import SentenceTransformer

  from ycng_jax.models.hf_weights import resolve_model_folder
  from ycng_jax.text import Encoder

  folder = resolve_model_folder(args.model)
  matmul_dtype = getattr(jnp, args.matmul_dtype) if args.matmul_dtype else None
  load_ours = lambda: Encoder.from_pretrained(folder, dtype=getattr(jnp, args.dtype),
                                             matmul_dtype=matmul_dtype, buckets=args.buckets)
  ours = load_ours()
  torch_device = "cuda" if args.gpu and torch.cuda.is_available() else "cpu"
  theirs = SentenceTransformer(folder, device=torch_device)
  theirs.max_seq_length = ours.max_seq_length
  warm = texts[:args.warmup]
  lengths = [len(ids) for ids in ours.tokenize(texts)[0]]
  print(f"{len(texts)} texts, tokens/text mean {np.mean(lengths):.1f} median "
        f"{np.median(lengths):.0f} max {max(lengths)}; batch size {args.batch_size}; "
        f"jax {jax.__version__} on {jax.devices()[0].platform} x{jax.device_count()}, "
        f"torch {torch.__version__} on {torch_device}, threads {torch.get_num_threads()}")

  real, computed = ours.token_positions(texts, args.batch_size)
  # sentence-transformers sorts texts by characters, longest first, and pads each batch to its
  # longest text (SentenceTransformer.encode).
  by_chars = np.asarray(lengths)[np.argsort([-len(t) for t in texts], kind="stable")]
  st_positions = sum(len(batch) * batch.max()
                     for batch in np.split(by_chars, range(args.batch_size, len(texts), args.batch_size)))
  print(f"token positions computed: ours {computed / real:.3f}x the real tokens, "
        f"sentence-transformers {st_positions / real:.3f}x")

  t0 = time.perf_counter()
  ours.encode(warm, batch_size=args.batch_size)
  first_call = time.perf_counter() - t0
  t0 = time.perf_counter()
  ours.precompile(args.batch_size)  # Every bucket's full step: no compile inside the timed pass.
  precompile_s = time.perf_counter() - t0
  theirs.encode(warm, batch_size=args.batch_size)

  encode_theirs = lambda: theirs.encode(texts, batch_size=args.batch_size,
                                        normalize_embeddings=True, convert_to_numpy=True)
  theirs_vecs, theirs_s, theirs_cpu = timed(encode_theirs)
  ours_vecs, ours_s, ours_cpu = timed(lambda: ours.encode(texts, batch_size=args.batch_size))

  n = len(texts)
  cos = np.sum(ours_vecs * theirs_vecs, axis=1)
  precision = args.dtype + (f", {args.matmul_dtype} matmuls" if args.matmul_dtype else "")
  print(f"ycng_jax Encoder ({precision}): {n / ours_s:8.1f} sentences/s ({ours_s:.2f} s wall, "
        f"{ours_cpu:.2f} CPU-s; first call on {len(warm)} texts {first_call:.2f} s incl. compiles, "
        f"then precompile {precompile_s:.2f} s)")
  print(f"sentence-transformers:      {n / theirs_s:8.1f} sentences/s ({theirs_s:.2f} s wall, "
        f"{theirs_cpu:.2f} CPU-s)")
  print(f"ratio ours/theirs: {theirs_s / ours_s:.2f}x by wall time, {theirs_cpu / ours_cpu:.2f}x "
        f"by CPU time   cosine mean {cos.mean():.6f} min {cos.min():.6f}")
  peer = f"sentence-transformers {version('sentence-transformers')} (torch {torch.__version__}"
  setting = f"{args.model}, {n} texts, batch {args.batch_size}; ours {precision}"
  rows = [result_row("sentence encoder vs float32", "sentences/s", n / ours_s,
                     n / theirs_s, f"{peer}, float32)",
                     notes=f"{setting}; cosine to theirs mean {cos.mean():.6f}")]
  if args.torch_bf16:
    with torch.autocast(torch_device, dtype=torch.bfloat16):
      theirs.encode(warm, batch_size=args.batch_size)
      bf16_vecs, bf16_s, bf16_cpu = timed(encode_theirs)
    cos16 = np.sum(bf16_vecs.astype(np.float32) * theirs_vecs, axis=1)
    print(f"sentence-transformers, torch.autocast bf16: {n / bf16_s:8.1f} sentences/s "
          f"({bf16_s:.2f} s wall, {bf16_cpu:.2f} CPU-s; cosine to its float32 mean "
          f"{cos16.mean():.6f} min {cos16.min():.6f})")
    print(f"ratio ours/theirs-bf16: {bf16_s / ours_s:.2f}x by wall time, "
          f"{bf16_cpu / ours_cpu:.2f}x by CPU time")
    rows.append(result_row("sentence encoder vs autocast bf16", "sentences/s", n / ours_s,
                           n / bf16_s, f"{peer}, autocast bfloat16)", notes=setting))
  write_json(args.json, rows)
  if args.attention_share:
    with attention_replaced_by_values():
      bare = load_ours()
      bare.encode(warm, batch_size=args.batch_size)
      bare.precompile(args.batch_size)
      _, bare_s, _ = timed(lambda: bare.encode(texts, batch_size=args.batch_size))
    print(f"ours with attention replaced by its values (diagnostic): {n / bare_s:8.1f} "
          f"sentences/s; attention takes {100 * (1 - bare_s / ours_s):.0f}% of ours; at this "
          f"rate ours would be {theirs_s / bare_s:.2f}x sentence-transformers float32"
          + (f", {bf16_s / bare_s:.2f}x its autocast bf16" if args.torch_bf16 else ""))
  if not args.gpu and not args.no_ceiling:
    print_ceiling(ours.config, lengths, {"ours": n / ours_s, "theirs float32": n / theirs_s,
                  **({"theirs autocast bf16": n / bf16_s} if args.torch_bf16 else {})})


def bucket_list(text: str) -> tuple[int, ...]:
  """``--buckets 64,128,256`` -> (64, 128, 256), or an error that names the bad entry."""
  try:
    buckets = tuple(int(x) for x in text.split(","))
  except ValueError:
    raise argparse.ArgumentTypeError(
        f"{text!r}: give row lengths in tokens, comma-separated, e.g. 64,128,256") from None
  if any(b < 1 for b in buckets):
    raise argparse.ArgumentTypeError(f"{text!r}: every row length must be at least 1 token")
  return buckets


if __name__ == "__main__":
  main()

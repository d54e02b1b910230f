"""Attention on the CPU: whole batch at once vs in chunks of rows (``ycng_jax.models.attention``),
and torch's ``scaled_dot_product_attention`` on the same arrays, forward and forward + backward.

Shapes are a MiniLM layer's (12 heads of 32) by default; the mask pads each row to a random
length. Prints milliseconds per call (best of ``--repeats``) and the ratios to the whole-batch
path; every array is a jit argument, so nothing is constant-folded.

  python scripts/bench/attention_cpu.py --batch 64 --seq 128
  python scripts/bench/attention_cpu.py --quick   # batch 16, best of 3
"""

from __future__ import annotations

import argparse

import numpy as np

from bench_utils import (add_json_argument, call_times, preset_defaults, result_row,
                         set_cpu_threads, write_json)


def best_ms(fn, repeats: int) -> float:
  return 1e3 * min(call_times(fn, repeats))


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch", type=int, default=None, help="64 (16 with --quick)")
  parser.add_argument("--seq", type=int, default=128)
  parser.add_argument("--heads", type=int, default=12)
  parser.add_argument("--head-dim", type=int, default=32)
  parser.add_argument("--chunks", default="2,4,8", help="rows per chunk to try")
  parser.add_argument("--dropout", type=float, default=0.0, help="on the probabilities")
  parser.add_argument("--repeats", type=int, default=None, help="best of 7 (3 with --quick)")
  parser.add_argument("--threads", type=int, default=0)
  parser.add_argument("--quick", action="store_true",
                      help="batch 16, best of 3: the `ycng bench` preset")
  add_json_argument(parser)
  return preset_defaults(parser.parse_args(argv), batch=(64, 16), repeats=(7, 3))


def main(argv=None) -> None:
  args = parse_args(argv)
  set_cpu_threads(args.threads)

  import jax
  import jax.numpy as jnp
  import torch

  from ycng_jax.models.attention import attention

  rng = np.random.default_rng(0)
  shape = (args.batch, args.seq, args.heads, args.head_dim)
  q, k, v = (rng.normal(size=shape).astype(np.float32) for _ in range(3))
  lengths = rng.integers(args.seq // 2, args.seq + 1, args.batch)
  mask = np.arange(args.seq)[None, None, :] < lengths[:, None, None]
  key = jax.random.key(0)
  jq, jk, jv, jmask = map(jnp.asarray, (q, k, v, mask))
  print(f"batch {args.batch} x seq {args.seq} x {args.heads} heads x {args.head_dim}, dropout "
        f"{args.dropout}; jax {jax.__version__}, torch {torch.__version__}")

  def ours(chunk):
    fn = lambda q, k, v, m: attention(q, k, v, m, chunk=chunk, dropout_rate=args.dropout,
                                      dropout_key=key if args.dropout else None)
    forward = jax.jit(fn)
    backward = jax.jit(jax.grad(lambda q, k, v, m: jnp.sum(fn(q, k, v, m) ** 2), (0, 1, 2)))
    return (best_ms(lambda: jax.block_until_ready(forward(jq, jk, jv, jmask)), args.repeats),
            best_ms(lambda: jax.block_until_ready(backward(jq, jk, jv, jmask)), args.repeats))

  rows = {"whole batch": ours(0)}
  for chunk in (int(c) for c in args.chunks.split(",")):
    rows[f"chunks of {chunk}"] = ours(chunk)

  tq, tk, tv = (torch.from_numpy(x).transpose(1, 2).contiguous().requires_grad_() for x in (q, k, v))
  tmask = torch.from_numpy(mask[:, None])  # (batch, 1, 1, kv): broadcast over heads and queries

  def torch_forward():
    with torch.no_grad():
      torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=tmask,
                                                       dropout_p=args.dropout)

  def torch_backward():
    out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=tmask,
                                                           dropout_p=args.dropout)
    (out ** 2).sum().backward()

  rows["torch sdpa"] = (best_ms(torch_forward, args.repeats), best_ms(torch_backward, args.repeats))
  base_f, base_b = rows["whole batch"]
  for name, (f, b) in rows.items():
    print(f"{name:14s} forward {f:7.1f} ms ({base_f / f:4.2f}x)   forward+backward {b:7.1f} ms "
          f"({base_b / b:4.2f}x)")
  theirs_f, theirs_b = rows.pop("torch sdpa")
  peer = f"torch {torch.__version__} scaled_dot_product_attention"
  shape = f"batch {args.batch} x seq {args.seq} x {args.heads} heads x {args.head_dim}"
  write_json(args.json, [
      result_row(f"attention {which}, {name}", "ms/call", ours, theirs, peer,
                 higher_is_better=False,
                 notes=f"{shape}, dropout {args.dropout}, best of {args.repeats}")
      for name, (f, b) in rows.items()
      for which, ours, theirs in (("forward", f, theirs_f), ("forward+backward", b, theirs_b))])


if __name__ == "__main__":
  main()

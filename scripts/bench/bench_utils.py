"""Helpers shared by the benchmarks in this folder (run them as ``python scripts/bench/NAME.py``)."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import sys
import time

# Benchmark the checkout these scripts live in, not whichever ycng_jax is installed: an editable
# install can point at another clone (CI's does), and an A/B against an older worktree would
# then time the same code twice. Every benchmark imports this module before ycng_jax.
_CHECKOUT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
if sys.path[:1] != [_CHECKOUT]:
  sys.path.insert(0, _CHECKOUT)


def result_row(name: str, metric: str, ours: float | None, theirs: float | None, peer: str,
               higher_is_better: bool = True, notes: str = "") -> dict:
  """One measured row of ``--json`` output (the fields of ``bench.json`` that a script knows;
  ``ycng bench`` adds the script, command, status and seconds). The ratio is oriented so that
  above 1 always means ours is faster: ours / theirs for rates, theirs / ours for times."""
  ours = None if ours is None else float(ours)
  theirs = None if theirs is None else float(theirs)
  ratio = None
  if ours and theirs:
    ratio = ours / theirs if higher_is_better else theirs / ours
  return {"name": name, "metric": metric, "ours": ours, "theirs": theirs, "peer": peer,
          "ratio": ratio, "higher_is_better": higher_is_better, "notes": notes}


def write_json(path: str | None, rows: list[dict]) -> None:
  """Writes ``rows`` (from ``result_row``) to ``path`` for ``ycng bench``; nothing without a path."""
  if path:
    with open(path, "w", encoding="utf-8") as f:
      json.dump({"rows": rows}, f, indent=1)


def add_json_argument(parser) -> None:
  """``--json PATH``: every benchmark's machine-readable output, read by ``ycng bench``."""
  parser.add_argument("--json", metavar="PATH",
                      help="also write the results as JSON rows (what `ycng bench` reads)")


def preset_defaults(args, **sizes):
  """Fills every size the command line left unset (None): ``sizes[name] = (full, quick)``,
  the quick value under ``--quick``. Returns ``args``."""
  for name, (full, quick) in sizes.items():
    if getattr(args, name) is None:
      setattr(args, name, quick if args.quick else full)
  return args


def version(distribution: str) -> str:
  """The installed version of a distribution (for a row's ``peer``), or "?" when unknown."""
  try:
    return importlib.metadata.version(distribution)
  except importlib.metadata.PackageNotFoundError:
    return "?"


def call_times(fn, repeats: int) -> list[float]:
  """Seconds of ``repeats`` calls of ``fn()`` after one untimed warm-up call (compiles, lazy init)."""
  fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return times


def timed(fn):
  """``fn()``'s result, wall seconds and CPU seconds (all threads of this process)."""
  t0, c0 = time.perf_counter(), time.process_time()
  out = fn()
  return out, time.perf_counter() - t0, time.process_time() - c0


def alternate_rounds(sides: dict, rounds: int, once: tuple = ()) -> tuple[dict, dict]:
  """Times each ``sides[name]()`` ``rounds`` times, alternating the sides (those in ``once`` run
  in the first round only); returns each side's fastest (wall s, CPU s) and its last output.
  Other processes on a shared machine then slow all sides alike, not whichever ran meanwhile."""
  best, outputs = {}, {}
  for r in range(rounds):
    for side, fn in sides.items():
      if side in once and r:
        continue
      outputs[side], wall, cpu = timed(fn)
      old = best.get(side, (float("inf"), float("inf")))
      best[side] = (min(old[0], wall), min(old[1], cpu))
  return best, outputs


def set_cpu_threads(threads: int) -> None:
  """Same intra-op thread count for XLA:CPU and torch; must run before jax is imported.

  XLA:CPU has no thread-count flag (``intra_op_parallelism_threads`` in XLA_FLAGS, tried here
  before, is fatal: XLA takes a word without ``--`` for a flags file): it sizes its pool by the
  CPUs this process may use, so fewer threads than that means fewer CPUs (``sched_setaffinity``,
  which torch sees too); one thread also turns off Eigen's multithreading.
  """
  if threads <= 0:
    return
  cpus = sorted(os.sched_getaffinity(0))
  if threads < len(cpus):
    os.sched_setaffinity(0, cpus[:threads])
  if threads == 1:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               " --xla_cpu_multi_thread_eigen=false").strip()
  import torch  # pylint: disable=import-outside-toplevel
  torch.set_num_threads(threads)


def debtags_texts(limit: int) -> list[str]:
  """The first ``limit`` distinct package descriptions of the ``debtags`` training split."""
  from ycng_jax import data  # pylint: disable=import-outside-toplevel
  texts, seen = [], set()
  for text in data.load("debtags", "train")["text"]:
    if text not in seen:
      seen.add(text)
      texts.append(text)
      if len(texts) == limit:
        break
  return texts


def texts_or_debtags(path: str | None, limit: int) -> list[str]:
  """``--texts``: the first ``limit`` non-blank lines of ``path`` (one text per line), for
  machines without the packaged data; without a path, ``debtags_texts(limit)``."""
  if path:
    with open(path, encoding="utf-8") as f:
      texts = [line.rstrip("\n") for line in f if line.strip()][:limit]
  else:
    texts = debtags_texts(limit)
  if not texts:
    raise SystemExit("No texts: pass --texts FILE (one text per line).")
  return texts


def strict_float32_on_gpu() -> str:
  """``--gpu``'s equal precision: jax's float32 matmuls at full float32 (XLA:GPU's default is
  TF32), torch's left at its default, which is strict float32 (``allow_tf32`` off). Call it
  before jax's first computation; it stops the run unless both sides see a GPU. Returns the
  header's note on the two precisions."""
  import jax  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  jax.config.update("jax_default_matmul_precision", "highest")
  if jax.default_backend() == "cpu" or not torch.cuda.is_available():
    raise SystemExit(f"--gpu: jax's default backend is {jax.default_backend()} and torch "
                     f"{'sees' if torch.cuda.is_available() else 'does not see'} CUDA; both "
                     "sides need the GPU.")
  note = (f"float32 matmuls: jax precision highest, torch {torch.get_float32_matmul_precision()} "
          f"(allow_tf32 {torch.backends.cuda.matmul.allow_tf32}, left at its default)")
  if os.environ.get("TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "0") != "0":
    note += "; TORCH_ALLOW_TF32_CUBLAS_OVERRIDE is set: torch's cuBLAS uses TF32"
  return note


def bert_layer_weights(hidden: int, intermediate: int) -> int:
  """Dense weights of one BERT layer: the four hidden x hidden projections (Q, K, V, output) and
  the feed-forward pair (hidden x intermediate, intermediate x hidden). A token costs 2 FLOPs
  per weight per layer forward."""
  return 4 * hidden * hidden + 2 * hidden * intermediate


def bert_dot_ceiling(hidden: int, intermediate: int, dtype: str, rows: int = 4096,
                     repeats: int = 10) -> float:
  """The FLOP/s a BERT layer's dense matmuls reach on this machine under XLA: each of the
  three shapes (Q/K/V/O: hidden x hidden, FFN up and down) timed alone as a jitted
  ``(rows, k) x (k, n)`` dot with ``dtype`` operands and float32 products, then combined as a
  layer does (four hidden x hidden, one up, one down).

  A model whose only cost were these matmuls would run at this rate; dividing a workload's
  matmul FLOPs by it bounds the throughput of any implementation whose matmuls run no faster
  than XLA's (a training step's backward matmuls are counted at the forward shapes' rate).
  """
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel

  dot = jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32))
  seconds = {}
  for k, n in {(hidden, hidden), (hidden, intermediate), (intermediate, hidden)}:
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.random((rows, k)), dtype)
    b = jnp.asarray(rng.random((k, n)), dtype)
    seconds[k, n] = min(call_times(lambda: dot(a, b).block_until_ready(), repeats))
  layer_seconds = (4 * seconds[hidden, hidden] + seconds[hidden, intermediate]
                   + seconds[intermediate, hidden])
  layer_flops = 2 * rows * bert_layer_weights(hidden, intermediate)
  return layer_flops / layer_seconds


def print_ceiling(config, lengths, rates: dict, items: int | None = None,
                  unit: str = "sentences/s") -> None:
  """The most ``unit`` this CPU allows if the model's matmuls were the only cost, in float32
  and with bf16 operands, and each side's share of it: how much any framework could still gain.

  ``lengths``: the token count of every sequence the work runs (unpadded); ``items``: how many
  of ``unit``'s items they make (default: one per sequence; zero-shot: a text and its labels).
  """
  import numpy as np  # pylint: disable=import-outside-toplevel
  h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
  lengths = np.asarray(lengths, np.float64)
  items = len(lengths) if items is None else items
  # Every sequence alone, unpadded: dense layers 2 FLOPs per weight per token, attention
  # 4*h*len^2.
  flops = layers * (2 * bert_layer_weights(h, i) * lengths.sum() + 4 * h * (lengths ** 2).sum())
  print(f"matmul work: {flops / 1e9:.0f} GFLOP for {len(lengths)} sequences (unpadded)")
  for dtype in ("float32", "bfloat16"):
    rate = bert_dot_ceiling(h, i, dtype)
    ceiling = items / (flops / rate)
    shares = ", ".join(f"{name} {100 * r / ceiling:.0f}%" for name, r in rates.items())
    print(f"  ceiling with {dtype} operands (XLA dots at {rate / 1e9:.0f} GFLOP/s): "
          f"{ceiling:.1f} {unit}; of it: {shares}")


def _values_only(q, k, v, mask, **_):
  """Attention's stand-in: the values, with q and k kept alive (times zero) so that XLA does
  not drop their projections as dead code and bill their matmuls to attention."""
  del mask
  return v + 0.0 * (q + k)


@contextlib.contextmanager
def attention_replaced_by_values():
  """A diagnostic: inside, every attention layer of a newly traced BERT returns its values (no
  scores, no softmax), so timing the model shows what attention costs. Its outputs are not
  the model's embeddings."""
  from ycng_jax.models import bert  # pylint: disable=import-outside-toplevel
  real = bert.attention
  bert.attention = _values_only
  try:
    yield
  finally:
    bert.attention = real

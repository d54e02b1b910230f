"""Fine-tuning tokens/s: our jitted BertForSequenceClassification step vs transformers' PyTorch one.

Same config (the packaged all-MiniLM-L6-v2 by default, its weights loaded, a new 2-class head),
same batch and length, AdamW with the same hyperparameters, dropout on (train mode) on both
sides. Prints tokens/s of each, the ratio (ours / theirs) and, on a GPU, model FLOP utilisation
(FLOPs ~ 6 * non-embedding params * tokens + attention, over the chip's dense peak).

  python scripts/bench/bert_train_step.py --batch 32 --seq 128 --steps 10
  python scripts/bench/bert_train_step.py --gpu --dtype bfloat16 --batch 64 --seq 256 --steps 30
  python scripts/bench/bert_train_step.py --matmul-dtype bfloat16 --torch-bf16 --attention-share
  python scripts/bench/bert_train_step.py --quick   # batch 16 x seq 64, 3 steps, no ceiling

``--attention-share`` times ours once more with every attention layer returning its values (a
diagnostic, not the model): what attention's forward and backward cost, and the ratio ours
would reach if they were free.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench_utils import (add_json_argument, attention_replaced_by_values, bert_dot_ceiling,
                         bert_layer_weights, preset_defaults, result_row, set_cpu_threads,
                         version, write_json)

# Dense peak FLOP/s by device kind, for model FLOP utilisation (NVIDIA's data sheets; the
# sparse figures they also print are twice these).
_PEAK = {"H100": {"bfloat16": 989e12, "tf32": 494e12, "float32": 67e12},
         "H200": {"bfloat16": 989e12, "tf32": 494e12, "float32": 67e12},
         "A100": {"bfloat16": 312e12, "tf32": 156e12, "float32": 19.5e12}}


def matmul_peak(device_kind: str, dtype: str, default_precision: str | None):
  """(peak FLOP/s, its name) for the dots a run actually does, or None for an unknown chip.

  float32 dots on NVIDIA GPUs run as TF32 unless ``jax_default_matmul_precision`` asks for
  "highest" / "float32"; measuring them against the float32 peak would print over 100%.
  """
  kind = next((k for k in _PEAK if k in device_kind), None)
  if kind is None:
    return None
  if dtype == "bfloat16":
    name = "bfloat16"
  else:
    name = "float32" if default_precision in ("highest", "float32") else "tf32"
  return _PEAK[kind][name], name


def train_flops_per_step(config, batch: int, seq: int) -> float:
  """6 * params * tokens for the matmuls (embeddings excluded: lookups) + attention scores/context."""
  h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
  matmul_params = layers * bert_layer_weights(h, i) + h * h + h * config.num_labels  # + pooler, classifier
  attention = layers * 4 * seq * seq * h * batch  # QK^T and PV, forward, 2 FLOPs per MAC
  return 6 * matmul_params * batch * seq + 3 * attention


def run_ours(args, config, folder, ids, mask, labels):
  import jax
  import jax.numpy as jnp
  import optax

  from ycng_jax.models.bert import sequence_classification_loss
  from ycng_jax.models.hf_weights import load_pretrained
  from ycng_jax.train.mesh import data_sharding, make_mesh, replicated

  mesh = make_mesh()
  module, params, _ = load_pretrained(folder, head="classification", config=config,
                                      allow_missing=("classifier.*",),
                                      dtype=getattr(jnp, args.dtype), remat=args.remat,
                                      matmul_dtype=(getattr(jnp, args.matmul_dtype)
                                                    if args.matmul_dtype else None),
                                      attention_chunk=args.attention_chunk)
  tx = optax.inject_hyperparams(optax.adamw)(learning_rate=args.lr, weight_decay=args.wd)
  params = jax.device_put(params, replicated(mesh))
  opt_state = jax.jit(tx.init, out_shardings=replicated(mesh))(params)  # On the mesh: no retrace.

  def step(params, opt_state, ids, mask, labels, rng):
    def loss_fn(p):
      logits = module.apply({"params": p}, ids, mask, deterministic=False, rngs={"dropout": rng})
      return sequence_classification_loss(logits, labels, config)
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  rows = data_sharding(mesh)
  step = jax.jit(step, donate_argnums=(0, 1))
  ids, mask, labels = (jax.device_put(x, rows) for x in (ids, mask, labels))
  rng = jax.random.PRNGKey(0)
  for _ in range(args.warmup):
    params, opt_state, loss = step(params, opt_state, ids, mask, labels, rng)
  float(loss)
  t0, c0 = time.perf_counter(), time.process_time()
  for i in range(args.steps):
    params, opt_state, loss = step(params, opt_state, ids, mask, labels, jax.random.fold_in(rng, i))
  final = float(loss)  # Blocks until the last step is done.
  return time.perf_counter() - t0, time.process_time() - c0, final, jax.devices()[0]


def run_theirs(args, folder, ids, mask, labels):
  import torch
  import transformers

  device = "cuda" if args.gpu and torch.cuda.is_available() else "cpu"
  model = transformers.BertForSequenceClassification.from_pretrained(
      folder, num_labels=args.num_labels).to(device).train()
  opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.wd)
  ids, mask, labels = (torch.from_numpy(np.asarray(x)).long().to(device) for x in (ids, mask, labels))
  use_bf16 = args.dtype == "bfloat16" or args.torch_bf16

  def step():
    opt.zero_grad(set_to_none=True)
    with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=use_bf16):
      loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    opt.step()
    return loss.detach()

  for _ in range(args.warmup):
    step()
  sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
  sync()
  t0, c0 = time.perf_counter(), time.process_time()
  for _ in range(args.steps):
    loss = step()
  final = float(loss)
  sync()
  return time.perf_counter() - t0, time.process_time() - c0, final, device


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model", default="all-MiniLM-L6-v2")
  parser.add_argument("--batch", type=int, default=None, help="32 (16 with --quick)")
  parser.add_argument("--seq", type=int, default=None, help="128 (64 with --quick)")
  parser.add_argument("--steps", type=int, default=None, help="timed steps: 10 (3 with --quick)")
  parser.add_argument("--warmup", type=int, default=None, help="2 (1 with --quick)")
  parser.add_argument("--num-labels", type=int, default=2)
  parser.add_argument("--lr", type=float, default=2e-5)
  parser.add_argument("--wd", type=float, default=0.01)
  parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  parser.add_argument("--remat", action="store_true")
  parser.add_argument("--matmul-dtype", default=None, choices=["bfloat16"],
                      help="ours: float32 activations, bf16 matmul operands (the CPU recipe)")
  parser.add_argument("--attention-chunk", type=int, default=None,
                      help="ours: rows per attention chunk (default: 4 on the CPU; 0: off)")
  parser.add_argument("--torch-bf16", action="store_true",
                      help="run transformers under torch.autocast(bfloat16) (with float32 --dtype)")
  parser.add_argument("--gpu", action="store_true", help="run both on the GPU (jax's default "
                      "backend must be the GPU) and report model FLOP utilisation")
  parser.add_argument("--only", choices=["ours", "theirs"], help="run one side")
  parser.add_argument("--attention-share", action="store_true",
                      help="also time ours with every attention layer returning its values: "
                      "the share of our step that attention (forward and backward) takes")
  parser.add_argument("--no-ceiling", action="store_true",
                      help="skip the matmul ceiling (CPU only; times this model's dot shapes)")
  parser.add_argument("--threads", type=int, default=0,
                      help="CPU threads for each framework (0: their defaults); 1 gives "
                      "contention-proof CPU-time figures on a shared machine")
  parser.add_argument("--quick", action="store_true",
                      help="batch 16 x seq 64, 3 timed steps, no ceiling: the `ycng bench` preset")
  add_json_argument(parser)
  args = parser.parse_args(argv)
  preset_defaults(args, batch=(32, 16), seq=(128, 64), steps=(10, 3), warmup=(2, 1))
  args.no_ceiling = args.no_ceiling or args.quick
  return args


def main(argv=None) -> None:
  args = parse_args(argv)
  set_cpu_threads(args.threads)

  from ycng_jax.models.bert import BertConfig
  from ycng_jax.models.hf_weights import resolve_model_folder

  folder = resolve_model_folder(args.model)
  config = BertConfig.from_hf(folder, num_labels=args.num_labels)
  rng = np.random.default_rng(0)
  ids = rng.integers(1000, config.vocab_size, (args.batch, args.seq)).astype(np.int32)
  ids[:, 0] = 101
  lengths = rng.integers(args.seq // 2, args.seq + 1, args.batch)  # Mixed lengths, padded.
  mask = (np.arange(args.seq)[None] < lengths[:, None]).astype(np.int32)
  labels = rng.integers(0, args.num_labels, args.batch).astype(np.int32)
  tokens = args.batch * args.seq * args.steps
  ours_precision = args.dtype + (f", {args.matmul_dtype} matmuls" if args.matmul_dtype else "")
  theirs_precision = "autocast bfloat16" if args.dtype == "bfloat16" or args.torch_bf16 else "float32"
  print(f"{args.model}: batch {args.batch} x seq {args.seq}, {args.steps} timed steps after "
        f"{args.warmup} warm-up, ours {ours_precision}, theirs {theirs_precision}, AdamW lr "
        f"{args.lr} wd {args.wd}, dropout on")

  results, cpu_time = {}, {}
  if args.only != "theirs":
    wall, cpu, loss, device = run_ours(args, config, folder, ids, mask, labels)
    results["ours"], cpu_time["ours"] = tokens / wall, cpu
    print(f"ycng_jax (jax on {device.platform}): {tokens / wall:10.0f} tokens/s "
          f"({wall / args.steps * 1e3:.1f} ms/step, CPU {cpu:.1f} s, last loss {loss:.4f})")
    if device.platform == "gpu":
      import jax
      peak = matmul_peak(device.device_kind, args.dtype, jax.config.jax_default_matmul_precision)
      if peak:
        mfu = train_flops_per_step(config, args.batch, args.seq) * args.steps / wall / peak[0]
        print(f"  model FLOP utilisation {100 * mfu:.1f}% of {device.device_kind} dense "
              f"{peak[1]} peak {peak[0] / 1e12:.0f} TFLOP/s")
  bare = None
  if args.attention_share and args.only != "theirs":
    with attention_replaced_by_values():
      wall, _, _, _ = run_ours(args, config, folder, ids, mask, labels)
    bare = tokens / wall
    print(f"ycng_jax with attention replaced by its values (diagnostic): {bare:10.0f} tokens/s; "
          f"attention takes {100 * (1 - results['ours'] / bare):.0f}% of our step")
  if args.only != "ours":
    wall, cpu, loss, device = run_theirs(args, folder, ids, mask, labels)
    results["theirs"], cpu_time["theirs"] = tokens / wall, cpu
    print(f"transformers (torch on {device}): {tokens / wall:10.0f} tokens/s "
          f"({wall / args.steps * 1e3:.1f} ms/step, CPU {cpu:.1f} s, last loss {loss:.4f})")
  if len(results) == 2:
    print(f"ratio ours/theirs: {results['ours'] / results['theirs']:.2f}x by wall time, "
          f"{cpu_time['theirs'] / cpu_time['ours']:.2f}x by CPU time")
    if bare is not None:
      print(f"with attention free, ours would be {bare / results['theirs']:.2f}x theirs")
    import torch
    write_json(args.json, [result_row(
        f"BERT fine-tuning step, batch {args.batch} x seq {args.seq}", "tokens/s",
        results["ours"], results["theirs"],
        f"transformers {version('transformers')} (torch {torch.__version__}, {theirs_precision})",
        notes=f"{args.model}, ours {ours_precision}; {args.steps} timed steps after "
              f"{args.warmup} warm-up; AdamW, dropout on")])
  if not args.gpu and not args.no_ceiling:
    # The CPU's counterpart of model FLOP utilisation: the share of the tokens/s this machine's
    # XLA dots allow if the step's matmuls were its only cost.
    dtype = "bfloat16" if args.dtype == "bfloat16" or args.matmul_dtype else "float32"
    rate = bert_dot_ceiling(config.hidden_size, config.intermediate_size, dtype)
    ceiling = args.batch * args.seq / (train_flops_per_step(config, args.batch, args.seq) / rate)
    shares = ", ".join(f"{name} {100 * r / ceiling:.0f}%" for name, r in results.items())
    print(f"ceiling with {dtype} matmul operands (XLA dots at {rate / 1e9:.0f} GFLOP/s): "
          f"{ceiling:.0f} tokens/s; of it: {shares}")


if __name__ == "__main__":
  main()

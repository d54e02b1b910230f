"""Our EfficientNet-Lite0 feature extractor vs the same network in PyTorch, one process.

Both sides run the same ImageNet weights (the packaged .pth) to the pooled 1280-d
features, start from the same numpy batch and end with numpy features, so host
transfers and layout changes are inside the timing. PyTorch is the weights'
author's reference model (``efficientnet-lite-pytorch``) under
``torch.inference_mode``, timed in NCHW and channels-last; the faster of the two
is the baseline. Rows:

  224x224 RGB   a preprocessed float batch (the network alone)
  28x28 grey    uint8 Fashion-MNIST-sized images, made RGB, resized (bilinear,
                antialiased) and normalised inside the timed function on both
                sides, then the network at ``--small-size`` (96 by default)
  pipeline      ``extract_features`` writing .npy chunks, end to end, on the
                grey images (data in, features on disk)

Ratios are ours / torch in images/s: above 1 means ours is faster.

  python scripts/bench/features_vs_torch.py               # CPU, batch 64
  python scripts/bench/features_vs_torch.py --quick       # 3 timed batches of 32
  python scripts/bench/features_vs_torch.py --gpu         # accelerator: batch 256, bf16 row too;
                                                          # torch on CUDA if it has it
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

from bench_utils import add_json_argument, call_times, result_row, write_json


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--batch", type=int, default=None,
                      help="batch size (64; 32 with --quick; 256 with --gpu).")
  parser.add_argument("--iters", type=int, default=None, help="timed batches per side (median).")
  parser.add_argument("--small-size", type=int, default=96,
                      help="side the 28x28 grey images are resized to (e.g. 32, 96, 224).")
  parser.add_argument("--threads", type=int, default=os.cpu_count(),
                      help="torch intra-op threads (XLA:CPU uses every core).")
  parser.add_argument("--quick", action="store_true",
                      help="3 timed batches (of 32 on a CPU): a smoke run, the `ycng bench` preset.")
  parser.add_argument("--gpu", action="store_true",
                      help="accelerator sizes; adds a bfloat16 row; torch on CUDA if available.")
  add_json_argument(parser)
  args = parser.parse_args(argv)
  args.batch = args.batch or (256 if args.gpu else 32 if args.quick else 64)
  args.iters = args.iters or (3 if args.quick else 10 if args.gpu else 6)
  return args


def median_rate(step, batch: int, iters: int) -> float:
  """Images/s from the median of ``iters`` timed calls after one warm-up call."""
  return batch / statistics.median(call_times(step, iters))


def torch_side(args, pretrained_path: str):
  """Reference models and their timed steps (NCHW and channels-last)."""
  import torch
  import torch.nn.functional as F
  from efficientnet_lite_pytorch import EfficientNet
  torch.set_num_threads(args.threads)
  device = "cuda" if args.gpu and torch.cuda.is_available() else "cpu"

  def build(image_size, channels_last):
    # image_size=None: the reference's dynamic padding, right for any size.
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=pretrained_path,
                                         image_size=image_size).eval().to(device)
    if channels_last:
      model = model.to(memory_format=torch.channels_last)
    return model

  def sync():
    if device == "cuda":
      torch.cuda.synchronize()

  def rgb_step(model, images_nhwc, channels_last):
    def step():
      with torch.inference_mode():
        x = torch.from_numpy(images_nhwc).to(device).permute(0, 3, 1, 2)
        x = x.contiguous(memory_format=torch.channels_last if channels_last else
                         torch.contiguous_format)
        out = model.extract_features(x).mean(dim=(2, 3)).cpu().numpy()
      sync()
      return out
    return step

  def grey_step(model, grey_uint8, size, channels_last):
    def step():
      with torch.inference_mode():
        x = torch.from_numpy(grey_uint8).to(device).float()[:, None]
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                          align_corners=False)
        x = ((x - 127.0) / 128.0).expand(-1, 3, -1, -1)
        x = x.contiguous(memory_format=torch.channels_last if channels_last else
                         torch.contiguous_format)
        out = model.extract_features(x).mean(dim=(2, 3)).cpu().numpy()
      sync()
      return out
    return step

  return device, build, rgb_step, grey_step


def main(argv=None) -> int:
  args = parse_args(argv)
  import jax
  import jax.numpy as jnp
  import numpy as np

  from ycng_jax.models import efficientnet_weights as ew
  from ycng_jax.vision import features as vf

  try:
    torch_device, build_torch, torch_rgb, torch_grey = torch_side(
        args, str(ew.pretrained_weights_path()))
  except ImportError as err:
    print(f"needs torch and efficientnet-lite-pytorch for the baseline: {err}", file=sys.stderr)
    return 1
  import torch

  rng = np.random.default_rng(0)
  rgb = ew.preprocess(rng.integers(0, 256, (args.batch, 224, 224, 3), np.uint8), None)
  rgb = np.array(rgb)  # writable: torch.from_numpy warns on read-only arrays
  grey = rng.integers(0, 256, (args.batch, 28, 28), np.uint8)
  print(f"jax {jax.__version__} on {jax.default_backend()} ({len(jax.devices())} device(s)); "
        f"torch {torch.__version__} on {torch_device}, {args.threads} threads; "
        f"batch {args.batch}, median of {args.iters} batches")

  rows = []

  def ours_step(feature_model, batch):
    embed = jax.jit(feature_model.embed)
    params = jax.device_put(feature_model.params)
    return lambda: np.asarray(embed(params, batch))

  def compare(label, ours, theirs_by_layout):
    ours_rate = median_rate(ours, args.batch, args.iters)
    theirs = {layout: median_rate(step, args.batch, args.iters)
              for layout, step in theirs_by_layout.items()}
    best_layout = max(theirs, key=theirs.get)
    rows.append((label, ours_rate, theirs, best_layout))

  # The network on 224x224 RGB; preprocessing done beforehand on both sides.
  backbone, variables = ew.load_efficientnet_lite0(include_top=False)  # pooled (N, 1280)
  net_only = vf.FeatureModel(backbone.apply, variables, "lite0-pooled-224")

  torch224 = {name: build_torch(224, cl) for name, cl in (("nchw", False), ("channels_last", True))}
  check_ours = ours_step(net_only, rgb)()
  check_theirs = torch_rgb(torch224["nchw"], rgb, False)()
  max_diff = float(np.abs(check_ours - check_theirs).max())
  compare("224x224 RGB", ours_step(net_only, rgb),
          {name: torch_rgb(m, rgb, name == "channels_last") for name, m in torch224.items()})
  del torch224

  size = args.small_size
  small = vf.efficientnet_features(image_size=size)
  layouts = (("nchw", False), ("channels_last", True))
  torch_small = {name: build_torch(None, cl) for name, cl in layouts}
  grey_theirs = {name: torch_grey(m, grey, size, name == "channels_last")
                 for name, m in torch_small.items()}
  small_diff = float(np.abs(ours_step(small, grey)() - grey_theirs["nchw"]()).max())
  compare(f"28x28 grey -> {size}", ours_step(small, grey), grey_theirs)

  if args.gpu:
    half = vf.efficientnet_features(image_size=size, dtype=jnp.bfloat16)
    compare(f"28x28 grey -> {size} bf16", ours_step(half, grey), grey_theirs)

  # End to end: extract_features over the grey images, chunks on disk.
  repeats = args.iters + 1
  data = np.concatenate([grey] * repeats)
  with tempfile.TemporaryDirectory() as tmp:
    vf.extract_features(data[:args.batch], os.path.join(tmp, "warm"), small,
                        batch_size=args.batch, chunk_size=args.batch, progress=False)
    start = time.perf_counter()
    vf.extract_features(data, os.path.join(tmp, "run"), small, batch_size=args.batch,
                        chunk_size=args.batch * 2, progress=False)
    pipeline_rate = len(data) / (time.perf_counter() - start)
  best_grey = max(rows[1][2].values())
  print(f"\nmax |ours - torch| of the pooled features: {max_diff:.2e} (224x224 RGB), "
        f"{small_diff:.2e} (grey -> {size}, resize included)\n")
  print(f"{'row':<26}{'ours img/s':>12}{'torch img/s':>13}  {'torch layout':<14}{'ours/torch':>10}")
  for label, ours_rate, theirs, layout in rows:
    print(f"{label:<26}{ours_rate:>12.1f}{theirs[layout]:>13.1f}  {layout:<14}"
          f"{ours_rate / theirs[layout]:>9.2f}x")
  print(f"{'pipeline (grey, to disk)':<26}{pipeline_rate:>12.1f}{best_grey:>13.1f}  "
        f"{'(row 2 best)':<14}{pipeline_rate / best_grey:>9.2f}x")
  peer = f"torch {torch.__version__} efficientnet-lite-pytorch"
  timing = f"batch {args.batch}, median of {args.iters} batches"
  diffs = {rows[0][0]: max_diff, rows[1][0]: small_diff}
  json_rows = [result_row(f"EfficientNet-Lite0 features, {label}", "images/s", ours_rate,
                          theirs[layout], f"{peer} ({layout})",
                          notes=timing + (f"; max |ours - torch| {diffs[label]:.1e}"
                                          if label in diffs else ""))
               for label, ours_rate, theirs, layout in rows]
  json_rows.append(result_row(
      "EfficientNet-Lite0 features, pipeline (grey, to disk)", "images/s", pipeline_rate,
      best_grey, f"{peer} (network alone, best layout)",
      notes=f"extract_features writing .npy chunks vs torch's grey -> {size} row; {timing}"))
  write_json(args.json, json_rows)
  return 0


if __name__ == "__main__":
  sys.exit(main())

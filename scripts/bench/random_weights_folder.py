"""A copy of a BERT model folder with seeded random weights, for timing where the real ones can't go.

The packaged all-MiniLM-L6-v2 weights (91 MB) don't fit in what travels to a lent GPU machine. The
benchmarks time shapes, not values, so this copies the folder's config, tokenizer and pooling files
and writes ``model.safetensors`` from transformers' own ``BertModel`` initialisation (torch seeded
with ``--seed``). Loss and embedding values then differ from the real model's; every ratio holds.

  python scripts/bench/random_weights_folder.py SOURCE_FOLDER OUT_FOLDER
"""

from __future__ import annotations

import argparse
import os
import shutil


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("source", help="a Hugging Face BERT folder (its weights are not read)")
  parser.add_argument("out", help="the folder to write (must not exist)")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()

  import torch
  import transformers

  if os.path.exists(args.out):
    raise SystemExit(f"{args.out} exists: pass a new folder.")
  weights = {"model.safetensors", "pytorch_model.bin"}
  shutil.copytree(args.source, args.out, ignore=lambda _, names: [n for n in names if n in weights])
  torch.manual_seed(args.seed)
  model = transformers.BertModel(transformers.BertConfig.from_pretrained(args.source))
  model.save_pretrained(args.out, safe_serialization=True)
  print(f"{args.out}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M random parameters "
        f"(seed {args.seed})")


if __name__ == "__main__":
  main()

"""The baselines of a text experiment on its splits, without fine-tuning: TF-IDF + logistic
regression for one text, the frozen-embedding and TF-IDF cosines for a pair task.

A run made with ``--config.baselines=False`` (on a lent GPU, say, where time is short) leaves
them out; the splits depend on the data settings and the seed alone, so this gives the figures
the full run of the same seed would have reported, on a CPU:

  python3 scripts/text_baselines.py topic7/debtags_multilabel --config.seed=2 [--json OUT.json]
"""

import argparse
import json
import sys

from ycng_jax import experiments
from ycng_jax.cli import split_overrides
from ycng_jax.text import finetune


def main(argv=None) -> dict:
  argv, overrides = split_overrides(list(sys.argv[1:] if argv is None else argv))
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("experiment", help="a text experiment, e.g. topic7/debtags_multilabel")
  parser.add_argument("--json", help="also write the metrics here")
  args = parser.parse_args(argv)
  config = experiments.apply_overrides(experiments.load_module(args.experiment).get_config(),
                                       overrides)
  found = finetune.baselines_only(config)
  for name, metrics in found.items():
    print(f"{name} (seed {config.seed}, test split):")
    for key, value in metrics.items():
      print(f"  {key:28s} {value:.4f}")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(found, f, indent=2)
  return found


if __name__ == "__main__":
  main()

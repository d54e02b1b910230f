"""The ``ycng`` command.

  ycng list                                   experiments
  ycng run EXPERIMENT [--workdir DIR] [--config.KEY=VALUE ...]
  ycng data list                              datasets
  ycng data info NAME [--json] [--data-dir DIR]
  ycng index build CORPUS --out DIR [--backend exact] [--model all-MiniLM-L6-v2] [--limit N]
                   [--precision float32|bf16-matmul|bfloat16]
  ycng search DIR "query" [-k 10] [--json]
  ycng report WORKDIR... [--out DIR] [--slides]   an HTML report (and slide deck) of runs
  ycng bench [--full] [--only NAME ...] [--out DIR] [--list]
                                              ours vs peer libraries (scripts/bench/), side by side
  ycng predict FOLDER "text" ["text" ...] [--pair "text b" ...] [--json] [--batch-size N]
               [--top N] [--precision float32|bf16-matmul|bfloat16]
  ycng classify --labels "a,b,c" "text" ["text" ...] [--model FOLDER] [--multi-label]
                [--template "This example is {}."] [--json]   zero-shot classification
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys


def split_overrides(argv: list[str]) -> tuple[list[str], dict[str, str]]:
  """Pull ``--config.KEY=VALUE`` (or ``--config.KEY VALUE``) out of argv."""
  rest, overrides, i = [], {}, 0
  while i < len(argv):
    arg = argv[i]
    if arg.startswith("--config."):
      key, sep, value = arg[len("--config."):].partition("=")
      if not sep:
        if i + 1 >= len(argv):
          raise SystemExit(f"ycng: {arg} needs a value (--config.KEY=VALUE).")
        value, i = argv[i + 1], i + 1
      overrides[key] = value
    else:
      rest.append(arg)
    i += 1
  return rest, overrides


def _cmd_list(args) -> int:
  from ycng_jax import experiments  # pylint: disable=import-outside-toplevel
  listing = experiments.list_experiments()
  width = max((len(n) for n in listing), default=0)
  for name, doc in listing.items():
    print(f"{name:<{width}}  {doc}")
  return 0


def _cmd_run(args) -> int:
  from ycng_jax import experiments  # pylint: disable=import-outside-toplevel
  result = experiments.run(args.experiment, args.workdir, args.overrides)
  print(json.dumps({"experiment": args.experiment, **result}, indent=2, sort_keys=True))
  return 0


def _cmd_tune(args) -> int:
  from ycng_jax.tuning import cli as tune_cli  # pylint: disable=import-outside-toplevel
  return tune_cli.main(args)


def _cmd_data(args) -> int:
  from ycng_jax import data  # pylint: disable=import-outside-toplevel
  if args.data_command == "list":
    for name in data.list_datasets():
      print(name)
    return 0
  info = data.info(args.name, args.data_dir)
  if args.json:
    print(json.dumps(info))
  else:
    print(f"{info['name']}: {info['description']}")
    print(f"  source: {info['source']}")
    print("  splits: " + ", ".join(f"{k} {v}" for k, v in info["splits"].items()))
    for key, feature in info["features"].items():
      print(f"  {key}: {feature}")
    print(f"  prepared in: {info['data_dir']}")
  return 0


def _cmd_index(args) -> int:
  from ycng_jax.text import semantic_index  # pylint: disable=import-outside-toplevel
  info = semantic_index.build(args.corpus, args.out, model=args.model, backend=args.backend,
                              split=args.split, limit=args.limit, batch_size=args.batch_size,
                              precision=args.precision)
  print(json.dumps(info, indent=2))
  return 0


def _cmd_search(args) -> int:
  from ycng_jax.text import semantic_index  # pylint: disable=import-outside-toplevel
  results = semantic_index.search(args.folder, args.queries, args.k)
  if args.json:
    print(json.dumps([{"query": q, "results": r} for q, r in zip(args.queries, results)]))
    return 0
  for query, hits in zip(args.queries, results):
    print(f"query: {query}")
    for hit in hits:
      snippet = " ".join(hit["text"].split())[:100]
      print(f"  {hit['rank']:>3}. {hit['score']:.3f}  {hit['title']}: {snippet}")
  return 0


def _cmd_report(args) -> int:
  from ycng_jax.report import build  # pylint: disable=import-outside-toplevel
  written = build.build_report(args.inputs, args.out, slides=args.slides)
  for path in written.values():
    print(path)
  return 0


def _cmd_bench(args) -> int:
  from ycng_jax import benchmarks  # pylint: disable=import-outside-toplevel
  mode = "full" if args.full else "quick"
  selected = benchmarks.select(args.only)
  if args.list:
    scripts_dir = args.scripts_dir or benchmarks.default_scripts_dir()
    for bench in selected:
      print(f"{bench.name}: {bench.metric} vs {bench.peer}\n  "
            f"{benchmarks.command(bench, mode, pathlib.Path(scripts_dir))}")
    return 0
  report = benchmarks.run(args.only, mode=mode, out=args.out, scripts_dir=args.scripts_dir,
                          timeout_s=args.timeout)
  print(benchmarks.markdown(report), end="")
  statuses = [row["status"] for row in report["benchmarks"]]
  print(f"ycng bench: {statuses.count('ok')} ok, {statuses.count('skipped')} skipped, "
        f"{statuses.count('failed')} failed rows; wrote {args.out}/bench.json and bench.md",
        file=sys.stderr)
  return 1 if "failed" in statuses else 0


def _cmd_predict(args) -> int:
  from ycng_jax.errors import UserError  # pylint: disable=import-outside-toplevel
  from ycng_jax.text.classifier import TextClassifier  # pylint: disable=import-outside-toplevel
  if args.top < 1:
    raise UserError(f"--top must be at least 1, got {args.top}.")
  inputs = args.texts
  if args.pair:
    if len(args.pair) not in (1, len(args.texts)):
      raise UserError(f"{len(args.texts)} texts and {len(args.pair)} --pair texts: give one "
                      "--pair per text, or one --pair for them all.")
    inputs = list(zip(args.texts, args.pair * len(args.texts) if len(args.pair) == 1 else args.pair))
  classifier = TextClassifier.from_pretrained(args.folder, precision=args.precision)
  predictions = classifier.predict(inputs, batch_size=args.batch_size)
  if args.json:
    print(json.dumps([{"input": x, "labels": p.labels, "score": p.score, "scores": p.scores}
                      for x, p in zip(inputs, predictions)]))
    return 0
  for x, p in zip(inputs, predictions):
    shown = " | ".join(x) if isinstance(x, tuple) else x
    print(" ".join(shown.split())[:100])
    if classifier.problem_type == "regression":
      print(f"  score: {p.score:.4f}")
      continue
    print(f"  labels: {', '.join(p.labels) if p.labels else '(none over its threshold)'}")
    ranked = sorted(p.scores.items(), key=lambda item: -item[1])[:args.top]
    width = max(len(name) for name, _ in ranked)
    for name, score in ranked:
      print(f"  {name:<{width}}  {score:.4f}")
  return 0


def _cmd_classify(args) -> int:
  from ycng_jax.text.zero_shot import zero_shot_classify  # pylint: disable=import-outside-toplevel
  labels = [label.strip() for label in args.labels.split(",") if label.strip()]
  scores = zero_shot_classify(args.texts, labels, model=args.model, multi_label=args.multi_label,
                              hypothesis_template=args.template, batch_size=args.batch_size)
  if args.json:
    print(json.dumps([{"text": t, "scores": dict(zip(labels, map(float, row)))}
                      for t, row in zip(args.texts, scores)]))
    return 0
  width = max(len(label) for label in labels)
  for text, row in zip(args.texts, scores):
    print(" ".join(text.split())[:100])
    for j in sorted(range(len(labels)), key=lambda j: -row[j]):
      print(f"  {labels[j]:<{width}}  {row[j]:.4f}")
  return 0


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="ycng", description="ycng-jax experiments, data, search and benchmarks.")
  commands = parser.add_subparsers(dest="command", required=True)
  commands.add_parser("list", help="list experiments").set_defaults(fn=_cmd_list)
  run = commands.add_parser("run", help="run an experiment",
                            usage="ycng run EXPERIMENT [--workdir DIR] [--config.KEY=VALUE ...]")
  run.add_argument("experiment", help="name from `ycng list`, or a path to a config .py")
  run.add_argument("--workdir", help="checkpoints, metrics and report (default workdirs/EXPERIMENT)")
  run.set_defaults(fn=_cmd_run)
  from ycng_jax.tuning.cli import add_parser as add_tune_parser  # pylint: disable=import-outside-toplevel
  add_tune_parser(commands).set_defaults(fn=_cmd_tune)
  data = commands.add_parser("data", help="datasets").add_subparsers(dest="data_command", required=True)
  data.add_parser("list", help="list datasets").set_defaults(fn=_cmd_data)
  info = data.add_parser("info", help="splits, features and source of a dataset")
  info.add_argument("name")
  info.add_argument("--json", action="store_true", help="one JSON object")
  info.add_argument("--data-dir", help="prepared-data directory (default $YCNG_JAX_DATA_DIR or "
                    "~/.cache/ycng_jax/datasets)")
  info.set_defaults(fn=_cmd_data)
  index = commands.add_parser("index", help="semantic search index of a corpus").add_subparsers(
      dest="index_command", required=True)
  build = index.add_parser("build", help="embed a corpus (resumable) and save a searchable index")
  build.add_argument("corpus", help="dataset name (debtags, rotten_tomatoes, ...), a .txt file "
                     "(one document a line) or a .jsonl file with a 'text' field")
  build.add_argument("--out", required=True, help="folder for embeddings, index and documents")
  build.add_argument("--model", default="all-MiniLM-L6-v2")
  build.add_argument("--backend", default="exact", help="an Index backend (exact, approx, faiss-hnsw, ...)")
  build.add_argument("--split", default="all", help="dataset split, or all")
  build.add_argument("--limit", type=int, help="only the first N documents")
  build.add_argument("--batch-size", type=int, default=64)
  build.add_argument("--precision", default="float32",
                     choices=["float32", "bf16-matmul", "bfloat16"],
                     help="encoder arithmetic: bf16-matmul is ~1.6x faster on CPUs with "
                     "AVX512-BF16 (cosine to float32 > 0.9999); bfloat16 for GPUs and TPUs")
  build.set_defaults(fn=_cmd_index)
  search = commands.add_parser("search", help="query a folder made by `ycng index build`")
  search.add_argument("folder")
  search.add_argument("queries", nargs="+", help="one or more query texts")
  search.add_argument("-k", type=int, default=10)
  search.add_argument("--json", action="store_true")
  search.set_defaults(fn=_cmd_search)
  report = commands.add_parser("report", help="an HTML report of workdirs (and bench.json)",
                               usage="ycng report WORKDIR... [--out DIR] [--slides]")
  report.add_argument("inputs", nargs="+", metavar="WORKDIR",
                      help="workdirs of runs; also a bench.json (or a folder holding one)")
  report.add_argument("--out", help="folder for the report (default WORKDIR/report for one "
                      "workdir, else ./report)")
  report.add_argument("--slides", action="store_true",
                      help="also write slides.html: the same content as a slide deck")
  report.set_defaults(fn=_cmd_report)
  bench = commands.add_parser("bench", help="ours vs peer libraries, side by side (scripts/bench/)")
  bench.add_argument("--full", action="store_true",
                     help="the sizes docs/benchmarks.md quotes (default: quick sizes, minutes)")
  bench.add_argument("--only", nargs="+", action="extend", metavar="NAME",
                     help="run only these benchmarks (`ycng bench --list` names them)")
  bench.add_argument("--out", default="workdirs/bench",
                     help="folder for bench.json, bench.md and logs/ (default workdirs/bench)")
  bench.add_argument("--list", action="store_true", help="name the benchmarks and their commands")
  bench.add_argument("--scripts-dir", help="the benchmark scripts' folder (default: scripts/bench/ "
                     "of the checkout ycng_jax runs from)")
  bench.add_argument("--timeout", type=float, help="seconds a benchmark may take before it is "
                     "stopped and recorded as failed (default 900; 3600 with --full)")
  bench.set_defaults(fn=_cmd_bench)
  predict = commands.add_parser("predict", help="classify texts with a text classifier folder")
  predict.add_argument("folder", help="a folder written by save_classifier, or a Hugging Face "
                       "BertForSequenceClassification folder")
  predict.add_argument("texts", nargs="+", help="one or more texts")
  predict.add_argument("--pair", action="append", metavar="TEXT_B",
                       help="second text of a pair model: once per text, or once for all texts")
  predict.add_argument("--json", action="store_true", help="one JSON list of predictions")
  predict.add_argument("--batch-size", type=int, default=64)
  predict.add_argument("--top", type=int, default=5, help="scores printed per text (not --json)")
  predict.add_argument("--precision", default="float32",
                       choices=["float32", "bf16-matmul", "bfloat16"])
  predict.set_defaults(fn=_cmd_predict)
  classify = commands.add_parser("classify", help="zero-shot classification into labels you name")
  classify.add_argument("texts", nargs="+", help="one or more texts")
  classify.add_argument("--labels", required=True, help='candidate labels, comma-separated: "a,b,c"')
  classify.add_argument("--model", help="a sentence encoder (embedding mode; default "
                        "all-MiniLM-L6-v2) or an NLI sequence-classification folder (entailment mode)")
  classify.add_argument("--multi-label", action="store_true",
                        help="score each label on its own (several may apply)")
  classify.add_argument("--template", default="This example is {}.",
                        help="the hypothesis of a label; {} is replaced by the label")
  classify.add_argument("--json", action="store_true", help="one JSON list of texts and scores")
  classify.add_argument("--batch-size", type=int, default=32)
  classify.set_defaults(fn=_cmd_classify)
  return parser


def main(argv: list[str] | None = None) -> int:
  argv, overrides = split_overrides(list(sys.argv[1:] if argv is None else argv))
  args = build_parser().parse_args(argv)
  args.overrides = overrides
  if overrides and args.command not in ("run", "tune"):
    raise SystemExit("ycng: --config.KEY=VALUE overrides only apply to `ycng run` and `ycng tune`.")
  from ycng_jax.data import registry, sources  # pylint: disable=import-outside-toplevel
  from ycng_jax.errors import UserError  # pylint: disable=import-outside-toplevel
  # What the user can fix is one line; anything else (a bug) keeps its traceback.
  try:
    return args.fn(args)
  except (UserError, registry.UnknownDatasetError, sources.MissingSourceError) as e:
    print(f"ycng: error: {e}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())

"""Zero-shot evaluation of topic 11 (``ycng run topic11/debtags_zero_shot``).

Both modes of ``zero_shot_classify`` with the same hypotheses (``zero_shot_data.hypothesis``) on
the held-out debtags facets (tags the entailment model never saw, packages it never read), and
on rotten_tomatoes' fresh / rotten test reviews ("This review is positive." / "... negative."),
against the majority label. Single-choice facets: the argmax of the single-label scores
(accuracy, macro-F1, a confusion matrix); multi-label facets: scores above 0.5 of the
multi-label scores (micro and macro-F1). Writes ``results.json``, ``results.md``,
``per_label_f1.csv``, ``per_label_f1.png`` and the final line of ``metrics.jsonl``.
"""

from __future__ import annotations

import json
import os
import pathlib

import ml_collections
import numpy as np

from ycng_jax.errors import UserError
from ycng_jax.text import zero_shot_data
from ycng_jax.text.zero_shot import load_model, zero_shot_classify

MODES = ("entailment", "embedding")


def base_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.runner = "ycng_jax.text.zero_shot_experiment:run"
  config.entailment_model = "workdirs/topic11/debtags_nli_train/model"
  config.embedding_model = "all-MiniLM-L6-v2"
  config.eval_facets = ("scope",)
  config.min_tag_count = 10        # a tag needs this many evaluation-half packages
  config.max_texts = 200           # packages scored per facet
  config.rotten_tomatoes_texts = 500
  config.batch_size = 32
  config.seed = 0                  # the package halves: as in the training run
  return config


def _f1(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
  """Per-column F1 of multi-hot arrays (0 where a column has neither true nor predicted)."""
  tp = (y * pred).sum(0)
  denominator = y.sum(0) + pred.sum(0)
  return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def facet_metrics(labels: np.ndarray, scores: np.ndarray, single_choice: bool) -> dict:
  if single_choice:
    truth, guess = labels.argmax(1), scores.argmax(1)
    pred = np.eye(labels.shape[1], dtype=np.float32)[guess]
    confusion = np.zeros((labels.shape[1],) * 2, np.int64)
    np.add.at(confusion, (truth, guess), 1)
    out = {"accuracy": float((truth == guess).mean()), "confusion": confusion.tolist()}
  else:
    pred = (scores > 0.5).astype(np.float32)
    tp, positives = (labels * pred).sum(), labels.sum() + pred.sum()
    out = {"micro_f1": float(2 * tp / positives) if positives else 0.0}
  per_label = _f1(labels, pred)
  out.update(macro_f1=float(per_label.mean()), per_label_f1=per_label.tolist())
  return out


def majority(labels: np.ndarray, single_choice: bool) -> dict:
  """The most frequent tag of the facet, predicted for every package."""
  scores = np.zeros_like(labels)
  scores[:, labels.sum(0).argmax()] = 1.0
  out = facet_metrics(labels, scores, single_choice)
  out.pop("confusion", None)
  return out


def _check_entailment_model(path: str) -> None:
  if not os.path.isdir(path):
    raise UserError(f"config.entailment_model={path!r} does not exist: train it first with "
                    "`ycng run topic11/debtags_nli_train`, or point it at an NLI folder.")


def rotten_tomatoes(models: dict, config) -> dict:
  from ycng_jax import data  # pylint: disable=import-outside-toplevel
  names = data.label_names("rotten_tomatoes")
  test = data.load("rotten_tomatoes", "test")
  fresh, rotten = names.index("fresh"), names.index("rotten")
  rows = np.flatnonzero(np.isin(test["label"], [fresh, rotten]))
  rng = np.random.default_rng(config.seed)
  rows = np.sort(rng.permutation(rows)[:config.rotten_tomatoes_texts])
  texts = [str(t) for t in test["text"][rows]]
  truth = (test["label"][rows] == rotten).astype(np.int64)  # 0 fresh, 1 rotten
  out = {"texts": len(texts), "hypotheses": ["This review is positive.", "This review is negative."],
         "majority_accuracy": float(max(truth.mean(), 1 - truth.mean()))}
  for mode, model in models.items():
    scores = zero_shot_classify(texts, ["fresh", "rotten"], model=model, hypothesis_template="{}",
                                label_descriptions=out["hypotheses"], batch_size=config.batch_size)
    out[f"{mode}_accuracy"] = float((scores.argmax(1) == truth).mean())
  return out


def per_label_figure(facets: list, results: dict, path: pathlib.Path) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  names = [t for f in facets for t in f.tags]
  fig, ax = plt.subplots(figsize=(7, max(3, 0.16 * len(names))))
  y = np.arange(len(names))
  for k, mode in enumerate(MODES):
    f1 = [v for f in facets for v in results["facets"][f.name][mode]["per_label_f1"]]
    ax.barh(y + (k - 0.5) * 0.4, f1, height=0.4, label=f"{mode} mode")
  ax.set_yticks(y, names, fontsize=5)
  ax.invert_yaxis()
  ax.set_xlabel("F1 on held-out packages")
  ax.set_title("Zero-shot F1 per held-out debtag")
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def markdown(results: dict) -> str:
  lines = ["| facet | kind | tags | packages | metric | entailment | embedding | majority |",
           "|---|---|---|---|---|---|---|---|"]
  for name, r in results["facets"].items():
    metrics = ("accuracy", "macro_f1") if r["single_choice"] else ("micro_f1", "macro_f1")
    for metric in metrics:
      lines.append(f"| {name} | {'single' if r['single_choice'] else 'multi'} | {len(r['tags'])} "
                   f"| {r['texts']} | {metric} | {r['entailment'][metric]:.3f} | "
                   f"{r['embedding'][metric]:.3f} | {r['majority'][metric]:.3f} |")
  s = results["summary"]
  lines.append(f"| **all held-out facets** | | {s['tags']} | | mean macro-F1 | "
               f"**{s['entailment_mean_macro_f1']:.3f}** | **{s['embedding_mean_macro_f1']:.3f}** "
               f"| {s['majority_mean_macro_f1']:.3f} |")
  rt = results["rotten_tomatoes"]
  lines += ["", "| rotten_tomatoes (fresh / rotten) | texts | entailment | embedding | majority |",
            "|---|---|---|---|---|",
            f"| accuracy | {rt['texts']} | {rt['entailment_accuracy']:.3f} | "
            f"{rt['embedding_accuracy']:.3f} | {rt['majority_accuracy']:.3f} |"]
  return "\n".join(lines) + "\n"


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  _check_entailment_model(config.entailment_model)
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  models = {"entailment": load_model(config.entailment_model),
            "embedding": load_model(config.embedding_model)}
  vocabulary, _, halves = zero_shot_data.load(config.seed)
  facets = zero_shot_data.eval_facets(halves["eval"], vocabulary, config.eval_facets,
                                      min_tag_count=config.min_tag_count,
                                      max_texts=config.max_texts, seed=config.seed)
  results = {"entailment_model": config.entailment_model,
             "embedding_model": config.embedding_model, "facets": {}}
  for facet in facets:
    entry = {"single_choice": facet.single_choice, "tags": facet.tags,
             "hypotheses": facet.hypotheses, "texts": len(facet.texts),
             "majority": majority(facet.labels, facet.single_choice)}
    for mode, model in models.items():
      scores = zero_shot_classify(facet.texts, facet.tags, model=model, hypothesis_template="{}",
                                  label_descriptions=facet.hypotheses,
                                  multi_label=not facet.single_choice, batch_size=config.batch_size)
      entry[mode] = facet_metrics(facet.labels, scores, facet.single_choice)
    results["facets"][facet.name] = entry
    print(f"{facet.name}: macro-F1 entailment {entry['entailment']['macro_f1']:.3f}, embedding "
          f"{entry['embedding']['macro_f1']:.3f}, majority {entry['majority']['macro_f1']:.3f}",
          flush=True)
  facet_results = list(results["facets"].values())
  results["summary"] = {"tags": sum(len(r["tags"]) for r in facet_results), **{
      f"{mode}_mean_macro_f1": float(np.mean([r[mode]["macro_f1"] for r in facet_results]))
      for mode in MODES + ("majority",)}}
  results["rotten_tomatoes"] = rotten_tomatoes(models, config)
  (workdir / "results.json").write_text(json.dumps(results, indent=1))
  (workdir / "results.md").write_text(markdown(results))
  with (workdir / "per_label_f1.csv").open("w", encoding="utf-8") as f:
    f.write("facet,tag,entailment_f1,embedding_f1,majority_f1\n")
    for facet in facets:
      r = results["facets"][facet.name]
      for j, tag in enumerate(facet.tags):
        f.write(f"{facet.name},{tag},{r['entailment']['per_label_f1'][j]:.4f},"
                f"{r['embedding']['per_label_f1'][j]:.4f},{r['majority']['per_label_f1'][j]:.4f}\n")
  per_label_figure(facets, results, workdir / "per_label_f1.png")
  final = {**results["summary"], **{f"rotten_tomatoes_{k}": v for k, v in
                                    results["rotten_tomatoes"].items() if k.endswith("accuracy")}}
  with (workdir / "metrics.jsonl").open("a") as f:
    f.write(json.dumps({"step": 0, "final": True, **final}) + "\n")
  print(markdown(results), end="")
  return final

"""ycng_jax.text.finetune end to end on a tiny random BERT folder (tests/text/tiny_bert.py) and
task files the tests write: a multi-label jsonl, SNLI's jsonl and STS-B's tsv. Each run trains a
few steps on 8 simulated devices and writes a folder that TextClassifier and transformers load.
"""

import csv
import json
import os

import numpy as np
import pytest

from ycng_jax import cli, experiments
from ycng_jax.errors import UserError
from ycng_jax.text import TextClassifier, finetune
from ycng_jax.text import finetune_metrics as fm
from ycng_jax.text.tasks import load_task
from ycng_jax.train.checkpoint import ResumeMismatchError

from tiny_bert import write_tiny_bert

WORDS = ("good", "bad", "great", "awful", "movie", "film", "plot", "corn", "grain", "wheat",
         "price", "cat", "dog", "sat", "mat")


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
  # One layer compiles fast; numpy draws the weights (Flax's eager init compiles per shape).
  return write_tiny_bert(tmp_path_factory.mktemp("tiny_bert"), layers=1, numpy_init=True)


def _sentences(n, seed):
  rng = np.random.default_rng(seed)
  return [" ".join(rng.choice(WORDS, int(rng.integers(2, 7)))) for _ in range(n)]


def _config(model, dataset, **overrides):
  config = finetune.base_config()
  config.update({**dict(model=model, dataset=str(dataset), max_length=16, buckets=(16,),
                       batch_size=8, eval_batch_size=16, epochs=1, learning_rate=1e-3,
                       tensorboard=False, verbose=0, log_every_steps=1), **overrides})
  return config


def _read_final(workdir):
  lines = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  assert lines[-1]["final"]
  return lines[-1]


def test_multi_label_jsonl_baseline_thresholds_folder_and_resume_check(tiny_folder, tmp_path):
  texts = _sentences(48, seed=0)
  path = tmp_path / "tags.jsonl"
  with open(path, "w") as f:
    for text in texts:
      labels = [w for w in ("corn", "grain", "cat") if w in text.split()] or ["other"]
      f.write(json.dumps({"text": text, "labels": labels}) + "\n")
  workdir = str(tmp_path / "run")
  config = _config(tiny_folder, path, baselines=True, pos_weight=2.0)
  results = finetune.train(config, workdir)
  assert results["task"]["problem_type"] == "multi_label_classification"
  assert results["task"]["label_names"] == ["cat", "corn", "grain", "other"]
  for metrics in (results["fine_tuned"], results["baselines"]["tfidf_logistic_regression"]):
    assert {"micro_f1_global", "macro_f1_per_label", "precision_at_1",
            "mean_average_precision"} <= set(metrics)
  final = _read_final(workdir)
  assert final["test_micro_f1_global"] == pytest.approx(results["fine_tuned"]["micro_f1_global"])
  assert "tfidf_logistic_regression_test_macro_f1_global" in final
  assert "val_micro_f1" in results["history"] and "val_loss" in results["history"]
  for name in ("results.md", "per_label_f1.csv", "f1_vs_frequency.png", "pr_curve.png",
               "curves.png"):
    assert os.path.getsize(os.path.join(workdir, name)) > 0
  with open(os.path.join(workdir, "per_label_f1.csv")) as f:
    rows = list(csv.DictReader(f))
  assert [r["label"] for r in rows] == ["cat", "corn", "grain", "other"]
  assert "tfidf logistic regression" in open(os.path.join(workdir, "results.md")).read()
  # The baselines alone (scripts/text_baselines.py) give the run's figures: same splits.
  alone = finetune.baselines_only(_config(tiny_folder, path, baselines=False, epochs=2))
  assert list(alone) == ["tfidf_logistic_regression"]
  assert alone["tfidf_logistic_regression"] == pytest.approx(
      results["baselines"]["tfidf_logistic_regression"])

  # The saved folder gives the same test metrics with its own thresholds.
  classifier = TextClassifier.from_pretrained(os.path.join(workdir, "model"))
  assert classifier.problem_type == "multi_label_classification" and not classifier.pair
  test = load_task(str(path), seed=0).splits["test"]
  scores = classifier.scores(list(test["text"]))
  tuned = {"global": results["thresholds"]["global"], "per_label": classifier.thresholds}
  again = fm.task_metrics("multi_label_classification", test["label"], scores, thresholds=tuned)
  for key in ("micro_f1_per_label", "macro_f1_per_label", "mean_average_precision"):
    assert again[key] == pytest.approx(results["fine_tuned"][key], abs=1e-6)

  # The head's bias started at each label's log-odds in the training split (head_bias_prior):
  # 4 AdamW steps of at most about the learning rate each moved it by well under 0.01.
  from safetensors.numpy import load_file
  train_labels = load_task(str(path), seed=0).splits["train"]["label"]
  prior = train_labels.mean(axis=0)
  bias = load_file(os.path.join(workdir, "model", "model.safetensors"))["classifier.bias"]
  np.testing.assert_allclose(bias, np.log(prior / (1 - prior)), atol=0.01)
  assert np.all(np.abs(bias) > 0.3)  # far from transformers' zeros, so the check can fail

  # Another learning rate in the same workdir: refused before anything is trained.
  with pytest.raises(ResumeMismatchError, match="learning_rate: 0.001 -> 0.002"):
    finetune.train(_config(tiny_folder, path, baselines=True, pos_weight=2.0,
                           learning_rate=2e-3), workdir)


def test_snli_jsonl_pairs_three_way_and_transformers_logits(tiny_folder, tmp_path):
  transformers = pytest.importorskip("transformers")
  torch = pytest.importorskip("torch")
  gold = ("entailment", "neutral", "contradiction", "-")
  for name, n, seed in (("train", 40, 1), ("test", 12, 2)):
    premises, hypotheses = _sentences(n, seed), _sentences(n, seed + 10)
    with open(tmp_path / f"snli_{name}.jsonl", "w") as f:
      for i, (a, b) in enumerate(zip(premises, hypotheses)):
        f.write(json.dumps({"gold_label": gold[i % 4], "sentence1": a, "sentence2": b,
                            "annotator_labels": [gold[i % 4]]}) + "\n")
  workdir = str(tmp_path / "run")
  results = finetune.train(_config(tiny_folder, tmp_path / "snli_train.jsonl",
                                   test_file=str(tmp_path / "snli_test.jsonl")), workdir)
  assert results["task"]["pair"] and results["task"]["examples"]["test"] == 9  # "-" dropped
  assert results["task"]["label_names"] == ["entailment", "neutral", "contradiction"]
  assert {"accuracy", "macro_f1"} <= set(results["fine_tuned"]) and not results["baselines"]
  assert os.path.getsize(os.path.join(workdir, "confusion_matrix.png")) > 0

  folder = os.path.join(workdir, "model")
  pair = ("the cat sat on the mat", "a dog sat")
  ours = TextClassifier.from_pretrained(folder).logits([pair])
  tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
  model = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
  with torch.no_grad():
    theirs = model(**tokenizer([pair[0]], [pair[1]], return_tensors="pt")).logits.numpy()
  assert model.config.id2label == {0: "entailment", 1: "neutral", 2: "contradiction"}
  np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_stsb_tsv_regression_bf16_early_stopping_and_cosine_baselines(tiny_folder, tmp_path):
  rng = np.random.default_rng(3)
  for name, n in (("train", 40), ("dev", 12)):
    with open(tmp_path / f"{name}.tsv", "w") as f:
      f.write("index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2"
              "\tscore\n")
      for i, (a, b) in enumerate(zip(_sentences(n, 4), _sentences(n, 5))):
        f.write(f"{i}\tmain-captions\tMSRvid\t2012test\t{i}\tnone\tnone\t{a}\t{b}\t"
                f"{rng.uniform(0, 5):.3f}\n")
  workdir = str(tmp_path / "run")
  results = finetune.train(_config(tiny_folder, tmp_path / "train.tsv", baselines=True,
                                   test_file=str(tmp_path / "dev.tsv"), precision="bf16-matmul",
                                   baseline_model=tiny_folder, monitor="val_spearman", epochs=3,
                                   early_stopping_patience=1, restore_best=True), workdir)
  assert results["task"]["problem_type"] == "regression" and results["task"]["pair"]
  assert len(results["history"]["val_spearman"]) in (2, 3)  # stopped early, or not
  assert os.path.isdir(os.path.join(workdir, "checkpoints", "best"))  # the best epoch's weights
  assert {"pearson", "spearman", "mse"} <= set(results["fine_tuned"])
  assert set(results["baselines"]) == {"embedding_cosine", "tfidf_cosine"}
  assert set(results["baselines"]["tfidf_cosine"]) == {"pearson", "spearman"}
  assert os.path.getsize(os.path.join(workdir, "scatter.png")) > 0
  with open(os.path.join(workdir, "model", "config.json")) as f:
    saved = json.load(f)
  assert saved["problem_type"] == "regression" and len(saved["id2label"]) == 1


def test_bad_input_is_one_line_naming_the_place(tiny_folder, tmp_path, capsys):
  path = tmp_path / "reviews.jsonl"
  path.write_text('{"text": "good film", "label": "pos"}\n{"text": "bad plot", "label": "neg"}\n'
                  '{"txt": "great movie", "label": "pos"}\n')
  workdir = str(tmp_path / "run")
  with pytest.raises(UserError, match=r"reviews\.jsonl, line 3: no field 'text'"):
    experiments.run("topic7/reuters_corn_grain", workdir,
                    {"dataset": str(path), "model": tiny_folder})
  assert cli.main(["run", "topic6/stsb", "--workdir", workdir]) == 2
  assert capsys.readouterr().err.startswith("ycng: error: config.dataset is empty")
  with pytest.raises(UserError, match="config.monitor='val_pearson' is not logged for a "
                     "single_label_classification task"):
    finetune.check_monitor("val_pearson", "single_label_classification", 2)


@pytest.mark.parametrize("name", ["topic6/debian_synopses_cross_encoder", "topic6/snli",
                                  "topic6/stsb", "topic7/debtags_multilabel",
                                  "topic7/reuters_corn_grain"])
def test_experiment_configs_are_listed_and_valid(name):
  assert name in experiments.list_experiments()
  module = experiments.load_module(name)
  assert f"ycng run {name}" in module.__doc__
  config = module.get_config()
  assert config.runner == "ycng_jax.text.finetune:run"
  if not config.dataset:  # SNLI and STS-B: the user's files
    config.dataset = "train.jsonl"
  finetune.check_values(config)

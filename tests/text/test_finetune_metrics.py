"""Thresholds, metrics, losses and the optimizer schedule of ycng_jax.text.finetune on hand-made
arrays, against brute force, scikit-learn and transformers / torch (no model compiled)."""

import jax.numpy as jnp
import numpy as np
import pytest

from ycng_jax.text import finetune_metrics as fm
from ycng_jax.text import finetune_model

def _f1(y, predicted):
  tp = np.sum(y * predicted)
  return 2 * tp / max(np.sum(y) + np.sum(predicted), 1)

def test_best_threshold_is_the_best_cut_by_brute_force():
  rng = np.random.default_rng(0)
  for trial in range(20):
    n = int(rng.integers(2, 40))
    y = (rng.random(n) < 0.4).astype(int)
    y[0] = 1  # at least one positive
    scores = np.round(rng.random(n), 1 + trial % 2)  # rounding makes ties
    candidates = np.concatenate([np.unique(scores), np.unique(scores) - 1e-9])
    for objective, value_of in (("f1", _f1),
                                ("accuracy", lambda y, p: np.mean(y == p))):
      threshold, value = fm.best_threshold(y, scores, objective)
      assert value == pytest.approx(value_of(y, (scores > threshold).astype(int)))
      best = max(value_of(y, (scores > t).astype(int)) for t in candidates)
      assert value == pytest.approx(best)
  # a cut falls midway between the scores it separates
  assert fm.best_threshold([1, 1, 0, 0], [0.9, 0.7, 0.3, 0.1]) == (pytest.approx(0.5), 1.0)
  # with no positive, nothing is predicted positive
  threshold, value = fm.best_threshold([0, 0], [0.2, 0.6], "f1")
  assert value == 0.0 and not np.any(np.array([0.2, 0.6]) > threshold)

def test_tune_thresholds_global_and_per_label():
  y = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]])
  scores = np.array([[0.9, 0.2, 0.5], [0.8, 0.35, 0.1], [0.1, 0.3, 0.7], [0.2, 0.1, 0.4]])
  tuned = fm.tune_thresholds(y, scores)
  assert tuned["per_label"][0] == pytest.approx(0.5)  # (0.8 + 0.2) / 2
  assert tuned["per_label"][1] == pytest.approx(0.25)  # (0.3 + 0.2) / 2: both positives kept
  assert tuned["per_label"][2] == tuned["global"]  # no positive in validation: the global one
  micro = fm.multi_label_metrics(y, scores, tuned["global"])["micro_f1"]
  assert micro == pytest.approx(tuned["validation_micro_f1_global"])
  # labels 0 and 1 are separable: their own thresholds make no mistake
  per_label = fm.multi_label_metrics(y[:, :2], scores[:, :2], tuned["per_label"][:2])
  assert per_label["micro_f1"] == 1.0 and per_label["macro_f1"] == 1.0

def test_ranking_and_per_label_metrics():
  from sklearn.metrics import average_precision_score
  y = np.array([[1, 0, 0, 1, 0, 0], [0, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 1]])
  scores = np.array([[.9, .1, .2, .3, .0, .0], [.8, .7, .1, .0, .0, .0],
                     [.1, .2, .3, .4, .5, .6]])
  out = fm.ranking_metrics(y, scores)
  assert out["precision_at_1"] == pytest.approx(2 / 3)  # rows 1 and 3 rank a true label first
  assert out["precision_at_5"] == pytest.approx((2 + 1 + 2) / 15)
  present = y.any(0)
  assert out["mean_average_precision"] == pytest.approx(
      average_precision_score(y[:, present], scores[:, present], average="macro"))
  assert "precision_at_5" not in fm.ranking_metrics(y[:, :3], scores[:, :3])  # 3 labels
  table = fm.per_label_table(y, scores, 0.5, train_counts=np.arange(6))
  assert table["f1"][0] == pytest.approx(2 / 3)
  assert table["test_support"].tolist() == [1, 1, 1, 1, 0, 1]

def test_single_label_and_regression_metrics():
  probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.6, 0.4]])
  out = fm.single_label_metrics(np.array([0, 1, 0, 1]), probs)
  assert out["accuracy"] == 0.5 and out["f1"] == 0.5 and out["roc_auc"] == 0.5
  three = fm.single_label_metrics(np.array([0, 1, 2]), np.eye(3)[[0, 1, 1]])
  assert three["accuracy"] == pytest.approx(2 / 3) and "roc_auc" not in three
  x = np.linspace(0, 1, 20)
  reg = fm.regression_metrics(x, x ** 3)
  assert reg["spearman"] == pytest.approx(1.0) and reg["pearson"] < 0.95
  assert fm.thresholded_binary_metrics(np.array([0, 1, 1]), np.array([.1, .4, .9]), 0.3) == {
      "accuracy": 1.0, "threshold": 0.3, "f1": 1.0, "roc_auc": 1.0, "average_precision": 1.0}

@pytest.mark.parametrize("problem_type,pos_weight", [
    ("single_label_classification", 0.0), ("multi_label_classification", 0.0),
    ("multi_label_classification", 3.0), ("regression", 0.0)])
def test_losses_match_torch_and_each_other(problem_type, pos_weight):
  torch = pytest.importorskip("torch")
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(6, 1 if problem_type == "regression" else 4)).astype(np.float32)
  if problem_type == "single_label_classification":
    labels = rng.integers(0, 4, 6).astype(np.int32)
    reference = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(labels).long())
  elif problem_type == "regression":
    labels = rng.uniform(0, 5, 6).astype(np.float32)
    reference = torch.nn.functional.mse_loss(torch.tensor(logits[:, 0]), torch.tensor(labels))
  else:
    labels = (rng.random((6, 4)) < 0.4).astype(np.float32)
    weight = torch.full((4,), pos_weight) if pos_weight else None
    reference = torch.nn.BCEWithLogitsLoss(pos_weight=weight)(torch.tensor(logits),
                                                              torch.tensor(labels))
  ours = finetune_model.per_example_loss(problem_type, pos_weight)(jnp.asarray(logits),
                                                                   jnp.asarray(labels))
  assert ours.shape == (6,)
  assert float(jnp.mean(ours)) == pytest.approx(float(reference), rel=1e-5)
  assert fm.mean_loss(problem_type, logits, labels, pos_weight) == pytest.approx(
      float(reference), rel=1e-5)

def test_schedule_and_weight_decay_follow_transformers():
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  total, warmup, peak = 25, 3, 5e-5
  optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=peak)
  theirs = transformers.get_linear_schedule_with_warmup(optimizer, warmup, total)
  ours = finetune_model.linear_warmup_decay(peak, warmup, total)
  for step in range(total + 2):
    expected = peak * theirs.lr_lambdas[0](step)
    assert float(ours(step)) == pytest.approx(expected, rel=1e-6, abs=1e-12)
  params = {"bert": {"embeddings": {"LayerNorm": {"scale": 1, "bias": 0},
                                    "word_embeddings": {"embedding": 1}}},
            "classifier": {"kernel": 1, "bias": 0}}
  assert finetune_model.decay_mask(params) == {
      "bert": {"embeddings": {"LayerNorm": {"scale": False, "bias": False},
                              "word_embeddings": {"embedding": True}}},
      "classifier": {"kernel": True, "bias": False}}

def test_head_lr_multiplier_scales_the_heads_updates_alone():
  import ml_collections
  params = {"bert": {"pooler": {"kernel": jnp.ones((3, 3)), "bias": jnp.zeros(3)}},
            "classifier": {"kernel": jnp.ones((3, 2)), "bias": jnp.zeros(2)}}
  rng = np.random.default_rng(0)
  grads = {"bert": {"pooler": {"kernel": jnp.asarray(rng.normal(size=(3, 3))),
                               "bias": jnp.asarray(rng.normal(size=3))}},
           "classifier": {"kernel": jnp.asarray(rng.normal(size=(3, 2))),
                          "bias": jnp.asarray(rng.normal(size=2))}}

  def updates(multiplier):
    config = ml_collections.ConfigDict(dict(learning_rate=1e-3, warmup_ratio=0.0,
                                            weight_decay=0.01, clip_norm=1.0,
                                            head_lr_multiplier=multiplier))
    tx = finetune_model.make_optimizer(config, total_steps=10)
    state = tx.init(params)
    for _ in range(2):  # the second step has a nonzero rate and moments from the first
      result, state = tx.update(grads, state, params)
    return result

  plain, tenfold = updates(1.0), updates(10.0)
  np.testing.assert_allclose(tenfold["bert"]["pooler"]["kernel"], plain["bert"]["pooler"]["kernel"])
  for name in ("kernel", "bias"):
    assert np.all(np.abs(plain["classifier"][name]) > 0)
    np.testing.assert_allclose(tenfold["classifier"][name], 10 * plain["classifier"][name],
                               rtol=1e-6)

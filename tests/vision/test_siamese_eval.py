"""Verification accuracy (held-out threshold) and one-shot episodes on embeddings with known answers."""

import numpy as np
import pytest

from ycng_jax.vision import siamese_eval as ev


def test_best_threshold_separable_pairs():
  d = np.array([0.1, 0.3, 0.2, 0.9, 0.7, 0.8])
  same = np.array([1, 1, 1, 0, 0, 0])
  threshold, acc = ev.best_threshold(d, same)
  assert acc == 1.0 and threshold == pytest.approx(0.5)  # midpoint of the gap 0.3 .. 0.7
  assert ev.verification_accuracy(d, same, threshold) == 1.0
  assert ev.verification_auc(d, same) == 1.0


def test_best_threshold_matches_brute_force():
  rng = np.random.default_rng(0)
  same = rng.integers(0, 2, 300)
  d = np.round(rng.normal(1.0 - 0.5 * same, 0.4), 2)    # rounding makes ties
  threshold, acc = ev.best_threshold(d, same)
  brute = max(np.mean((d <= t) == (same == 1)) for t in np.concatenate([[-1.0], np.unique(d)]))
  assert acc == pytest.approx(brute)
  assert ev.verification_accuracy(d, same, threshold) == pytest.approx(acc)


def test_threshold_from_validation_applied_to_test():
  val_d, val_same = np.array([0.2, 0.4, 0.6, 0.8]), np.array([1, 1, 0, 0])
  threshold, _ = ev.best_threshold(val_d, val_same)      # 0.5
  test_d, test_same = np.array([0.45, 0.55, 0.1, 0.9]), np.array([0, 1, 1, 0])
  assert ev.verification_accuracy(test_d, test_same, threshold) == 0.5


def test_pair_distances_and_input_checks():
  emb = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0]])
  np.testing.assert_allclose(ev.pair_distances(emb, np.array([0, 1]), np.array([1, 2])),
                             [5.0, np.sqrt(20.0)])
  with pytest.raises(ValueError, match="0 \\(different\\) or 1"):
    ev.best_threshold(np.ones(3), np.array([0, 2, 1]))


def test_episodes_are_well_formed_and_seeded():
  labels = np.repeat(np.arange(5, 10), 4)
  ep = ev.one_shot_episodes(labels, n_way=5, num_episodes=200, seed=7)
  assert ep.support.shape == (200, 5) and ep.query.shape == (200,)
  np.testing.assert_array_equal(labels[ep.support], ep.classes)
  assert np.all(np.sort(ep.classes, axis=1) == np.arange(5, 10))   # 5 distinct classes
  assert np.all(labels[ep.query] == ep.classes[np.arange(200), ep.target])
  assert np.all(ep.query != ep.support[np.arange(200), ep.target])
  again = ev.one_shot_episodes(labels, n_way=5, num_episodes=200, seed=7)
  np.testing.assert_array_equal(again.support, ep.support)
  np.testing.assert_array_equal(again.query, ep.query)


def test_one_shot_accuracy_known_answers():
  rng = np.random.default_rng(1)
  labels = np.repeat(np.arange(6), 30)
  episodes = ev.one_shot_episodes(labels, n_way=5, num_episodes=1000, seed=0)
  perfect = np.eye(6)[labels] * 10 + rng.normal(0, 0.1, (len(labels), 6))
  assert ev.one_shot_accuracy(perfect, episodes) == 1.0
  # classes 0 and 1 share one cluster: an episode fails only when both are present and the
  # query belongs to one of them; then the nearest is a coin flip.
  merged = np.eye(6)[np.where(labels == 1, 0, labels)] * 10 + rng.normal(0, 0.1, (180, 6))
  both = np.isin(episodes.classes, [0, 1]).sum(1) == 2
  ambiguous = both & np.isin(episodes.classes[np.arange(1000), episodes.target], [0, 1])
  expected = 1.0 - 0.5 * ambiguous.mean()
  assert ev.one_shot_accuracy(merged, episodes) == pytest.approx(expected, abs=0.03)
  noise = rng.normal(size=(len(labels), 6))
  assert abs(ev.one_shot_accuracy(noise, episodes) - 0.2) < 0.04  # chance, 1000 episodes


def test_one_shot_predictions_match_a_loop():
  rng = np.random.default_rng(2)
  labels = np.repeat(np.arange(5), 5)
  emb = rng.normal(size=(25, 3))
  ep = ev.one_shot_episodes(labels, 5, 50, seed=1)
  loop = [np.argmin([np.linalg.norm(emb[q] - emb[s]) for s in sup])
          for q, sup in zip(ep.query, ep.support)]
  np.testing.assert_array_equal(ev.one_shot_predictions(emb, ep), loop)

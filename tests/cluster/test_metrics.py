"""Clustering metrics on hand-made cases whose answers are known."""

import numpy as np
import pytest

from ycng_jax.cluster import metrics


def test_permuted_labels_are_perfect():
  y_true = np.array([0, 0, 1, 1, 2, 2, 2])
  y_pred = np.array([2, 2, 0, 0, 1, 1, 1])  # the same partition, renamed
  assert metrics.cluster_accuracy(y_true, y_pred) == 1.0
  assert metrics.nmi(y_true, y_pred) == pytest.approx(1.0)
  assert metrics.ari(y_true, y_pred) == pytest.approx(1.0)
  assert metrics.cluster_mapping(y_true, y_pred) == {2: 0, 0: 1, 1: 2}


def test_known_confusion_matrix():
  # Clusters x classes:   c0  c1
  #   cluster 7           30  10
  #   cluster 9            5  55     best matching 7->c0, 9->c1: (30 + 55) / 100
  y_true = np.array([0] * 30 + [1] * 10 + [0] * 5 + [1] * 55)
  y_pred = np.array([7] * 40 + [9] * 60)
  assert metrics.cluster_accuracy(y_true, y_pred) == pytest.approx(0.85)
  table, clusters, classes = metrics.contingency(y_true, y_pred)
  np.testing.assert_array_equal(table, [[30, 10], [5, 55]])
  np.testing.assert_array_equal(clusters, [7, 9])
  np.testing.assert_array_equal(classes, [0, 1])


def test_hungarian_beats_greedy_majority():
  # Both clusters are majority class "a"; a one-to-one matching must give one of them "b".
  y_true = np.array(["a"] * 6 + ["b"] * 4 + ["a"] * 5 + ["b"] * 1)
  y_pred = np.array([0] * 10 + [1] * 6)
  # 0->b (4) + 1->a (5) = 9 beats 0->a (6) + 1->b (1) = 7.
  assert metrics.cluster_accuracy(y_true, y_pred) == pytest.approx(9 / 16)


def test_more_clusters_than_classes_count_as_errors():
  y_true = np.array([0, 0, 0, 1, 1, 1])
  y_pred = np.array([0, 0, 2, 1, 1, 1])  # cluster 2 has no class left to match
  assert metrics.cluster_accuracy(y_true, y_pred) == pytest.approx(5 / 6)


def test_fewer_clusters_than_classes():
  y_true = np.array([0, 0, 1, 1, 2, 2])
  y_pred = np.zeros(6, int)  # one cluster can match only one class
  assert metrics.cluster_accuracy(y_true, y_pred) == pytest.approx(2 / 6)
  assert metrics.nmi(y_true, y_pred) == pytest.approx(0.0)
  assert metrics.ari(y_true, y_pred) == pytest.approx(0.0)


def test_ari_and_nmi_known_values():
  # A classic small example: ARI of these two partitions is 0.24242...
  y_true = [0, 0, 0, 1, 1, 1]
  y_pred = [0, 0, 1, 1, 2, 2]
  assert metrics.ari(y_true, y_pred) == pytest.approx(0.24242424, abs=1e-6)
  # NMI: I = 0.636514 nats (2/3 ln 2 + 1/3 ln 3 - ...) over the mean entropy; check by definition.
  p_true = np.array([0.5, 0.5])
  p_pred = np.array([1 / 3, 1 / 3, 1 / 3])
  joint = np.array([[2, 1, 0], [0, 1, 2]]) / 6
  mi = sum(joint[i, j] * np.log(joint[i, j] / (p_true[i] * p_pred[j]))
           for i in range(2) for j in range(3) if joint[i, j] > 0)
  h = lambda p: -(p * np.log(p)).sum()
  assert metrics.nmi(y_true, y_pred) == pytest.approx(mi / ((h(p_true) + h(p_pred)) / 2))


def test_all_metrics_keys():
  out = metrics.all_metrics([0, 1, 1], [1, 0, 0])
  assert out == {"acc": 1.0, "nmi": pytest.approx(1.0), "ari": pytest.approx(1.0)}


@pytest.mark.parametrize("fn", [metrics.cluster_accuracy, metrics.nmi, metrics.ari])
def test_length_mismatch_is_an_error(fn):
  with pytest.raises(ValueError, match="same points"):
    fn([0, 1, 2], [0, 1])


def test_one_hot_input_is_an_error():
  with pytest.raises(ValueError, match="1-D"):
    metrics.cluster_accuracy([0, 1], np.eye(2))


def test_empty_is_an_error():
  with pytest.raises(ValueError, match="empty"):
    metrics.cluster_accuracy([], [])

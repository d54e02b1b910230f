"""topic5/oneshot_mnist end to end with a tiny config: triplet mining on digits 0-4, one-shot 5-9."""

import json
import os

from ycng_jax import experiments

TINY = {"train_examples": "480", "test_examples": "300", "num_epochs": "1", "eval_batch_size": "128",
        "num_val_pairs": "96", "num_test_pairs": "200", "num_episodes": "100",
        "model.features": "(8,)", "model.dense": "32", "model.embedding_dim": "16",
        "verbose": "0", "tensorboard": "False", "log_every_steps": "4"}


def test_oneshot_on_unseen_classes(tmp_path):
  overrides = {**TINY, "loss": "semi_hard", "classes_per_batch": "5", "examples_per_class": "8"}
  result = experiments.run("topic5/oneshot_mnist", str(tmp_path), overrides)
  final = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")][-1]
  assert final["final"] and final["one_shot_accuracy"] == result["one_shot_accuracy"]
  assert result["one_shot_classes_seen_in_training"] == 0.0
  assert result["one_shot_chance"] == 0.2 and result["one_shot_episodes"] == 100
  assert result["one_shot_accuracy"] > 0.3 and result["pixel_one_shot_accuracy"] > 0.3
  assert "test_semi_hard_fraction" in result
  assert os.path.exists(tmp_path / "one_shot.png")

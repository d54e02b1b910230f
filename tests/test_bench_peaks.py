"""The GPU benchmark's model FLOP utilisation divides by the peak of the dots that really run."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "scripts" / "bench"))

import bert_train_step  # noqa: E402  pylint: disable=wrong-import-position


def test_float32_dots_count_against_the_tf32_peak_unless_full_precision_is_asked_for():
  peak = bert_train_step.matmul_peak
  assert peak("NVIDIA H200", "float32", None) == (494e12, "tf32")
  assert peak("NVIDIA H100 80GB HBM3", "float32", "highest") == (67e12, "float32")
  assert peak("NVIDIA A100-SXM4-40GB", "float32", "float32") == (19.5e12, "float32")
  assert peak("NVIDIA H100 80GB HBM3", "bfloat16", "highest") == (989e12, "bfloat16")
  assert peak("TPU v5 lite", "bfloat16", None) is None

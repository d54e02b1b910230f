"""The sharded grain pipeline on 8 simulated devices."""

import json

import jax
import numpy as np
import pytest

from ycng_jax import data
from ycng_jax.data import text
from ycng_jax.data.pipeline import Loader
from ycng_jax.train import mesh as mesh_lib

SOURCE = {"x": np.arange(101, dtype=np.int32), "y": np.arange(101, dtype=np.float32) * 2}


def _take(loader, n):
  return [{k: np.asarray(v) for k, v in next(loader).items()} for _ in range(n)]


def test_eval_epoch_sees_every_example_once_on_8_devices():
  assert jax.device_count() == 8
  loader = Loader(SOURCE, global_batch_size=16, shuffle=False, num_epochs=1, drop_remainder=False)
  seen, batches = [], 0
  for batch in loader:
    assert batch["x"].shape == (16,) and len(batch["x"].sharding.device_set) == 8
    assert batch["x"].sharding.spec == jax.sharding.PartitionSpec("data")
    mask = np.asarray(batch["mask"])
    seen += list(np.asarray(batch["x"])[mask > 0])
    np.testing.assert_array_equal(np.asarray(batch["y"])[mask > 0], np.asarray(batch["x"])[mask > 0] * 2)
    batches += 1
  assert sorted(seen) == list(range(101)) and batches == loader.steps_per_epoch == 7
  assert np.asarray(batch["mask"]).sum() == 101 - 6 * 16


def test_a_split_smaller_than_one_eval_batch_is_padded_only_to_the_devices():
  """101 examples at an eval batch of 512: one batch of 104 (8 devices), not 512."""
  loader = Loader(SOURCE, global_batch_size=512, shuffle=False, num_epochs=1,
                  drop_remainder=False)
  batches = list(loader)
  assert loader.global_batch_size == 104 and loader.steps_per_epoch == len(batches) == 1
  assert batches[0]["x"].shape == (104,) and np.asarray(batches[0]["mask"]).sum() == 101
  np.testing.assert_array_equal(np.asarray(batches[0]["x"])[:101], np.arange(101))
  one = Loader(SOURCE, global_batch_size=512, mesh=mesh_lib.make_mesh(1), shuffle=False,
               num_epochs=1, drop_remainder=False)
  assert one.global_batch_size == 101


def test_same_seed_same_batches_other_seed_other_batches():
  a = _take(Loader(SOURCE, global_batch_size=8, seed=3), 20)
  b = _take(Loader(SOURCE, global_batch_size=8, seed=3), 20)
  c = _take(Loader(SOURCE, global_batch_size=8, seed=4), 20)
  assert all((p["x"] == q["x"]).all() for p, q in zip(a, b))
  assert not all((p["x"] == q["x"]).all() for p, q in zip(a, c))
  # A training epoch (drop_remainder) is a permutation: no example twice within an epoch.
  first_epoch = np.concatenate([batch["x"] for batch in a[:12]])
  assert len(set(first_epoch)) == 96
  # ... and the next epoch is shuffled differently.
  assert not (np.concatenate([batch["x"] for batch in a[12:20]]) == first_epoch[:64]).all()


@pytest.mark.parametrize("prefetch", [0, 3])
def test_restore_mid_epoch_continues_exactly(prefetch):
  loader = Loader(SOURCE, global_batch_size=8, seed=7, prefetch=prefetch)
  _take(loader, 5)
  state = json.loads(json.dumps(loader.get_state()))  # checkpoints store it as JSON
  expected = _take(loader, 15)  # crosses the epoch boundary at step 12
  restored = Loader(SOURCE, global_batch_size=8, seed=7, prefetch=prefetch)
  restored.set_state(state)
  for want, got in zip(expected, _take(restored, 15)):
    np.testing.assert_array_equal(want["x"], got["x"])


def test_bad_batch_sizes_and_string_features():
  with pytest.raises(ValueError, match="multiple of the number of devices in the mesh \\(8\\)"):
    Loader(SOURCE, global_batch_size=12)
  with pytest.raises(ValueError, match="fewer than one batch"):
    Loader(SOURCE, global_batch_size=128)
  loader = Loader({"text": np.array(["a", "b"] * 8, object)}, global_batch_size=8)
  with pytest.raises(TypeError, match="holds strings; give the Loader a transform"):
    next(loader)


def test_smaller_mesh_and_record_source():
  mesh = mesh_lib.make_mesh(2)
  source = data.data_source("digits", "test")
  loader = Loader(source, global_batch_size=32, mesh=mesh, shuffle=False, num_epochs=1,
                  drop_remainder=False)
  batches = list(loader)
  assert len(batches) == 12 and batches[0]["image"].shape == (32, 8, 8, 1)
  assert len(batches[0]["image"].sharding.device_set) == 2
  labels = np.concatenate([np.asarray(b["label"])[np.asarray(b["mask"]) > 0] for b in batches])
  assert len(labels) == 359 and set(labels) == set(range(10))


class _WhitespaceTokenizer:
  """A real (if simple) tokenizer with the Hugging Face call signature, for bucketing tests."""
  pad_token_id = 0

  def __call__(self, texts, pairs=None, *, truncation, max_length, padding, return_token_type_ids):
    ids = [[1] + [len(w) + 2 for w in t.split()][:max_length - 1] for t in texts]
    return {"input_ids": ids, "token_type_ids": [[0] * len(i) for i in ids]}


def test_tokenize_pads_to_few_length_buckets():
  texts = np.array(["word " * n for n in (1, 3, 20, 40, 2, 5, 1, 1)], object)
  transform = text.Tokenize(_WhitespaceTokenizer(), max_length=32, buckets=(8, 16, 32))
  out = transform({"text": texts, "mask": np.ones(8, np.float32)})
  assert "text" not in out and out["input_ids"].shape == (8, 32) and out["input_ids"].dtype == np.int32
  np.testing.assert_array_equal(out["attention_mask"].sum(1), [2, 4, 21, 32, 3, 6, 2, 2])
  short = transform({"text": texts[[0, 1, 4]], "mask": np.ones(3, np.float32)})
  assert short["input_ids"].shape == (3, 8)
  assert text.bucket_length(9, (8, 16), 128) == 16 and text.bucket_length(300, (8, 16), 128) == 128


def test_a_batch_size_that_is_not_a_whole_number_is_refused():
  with pytest.raises(ValueError, match=r"^global_batch_size must be an integer >= 1, got 32\.5 "
                     r"\(float\)\.$"):
    Loader(SOURCE, global_batch_size=32.5)

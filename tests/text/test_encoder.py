"""ycng_jax.text.Encoder on the packaged all-MiniLM-L6-v2 (8 simulated devices, see conftest)."""

import json

import jax
import numpy as np
import pytest

from ycng_jax.models.bert import pooling_mode_from_folder
from ycng_jax.models.hf_weights import resolve_model_folder
from ycng_jax.text import Encoder
from ycng_jax.text.encoder import length_buckets, max_seq_length_of_folder, pack_rows

from tiny_bert import write_tiny_bert

# Short texts (all under 16 tokens) keep the compiled shapes few and the file fast.
TEXTS = ["A man is playing a guitar.", "", "Debian packages.", "ok", "The cat sat on the mat.",
         "Free software respects freedom.", "x", "Kernels run on accelerators quickly."]


@pytest.fixture(scope="module")
def encoder():
  try:
    return Encoder.from_pretrained("all-MiniLM-L6-v2")
  except FileNotFoundError as e:
    pytest.skip(str(e))


@pytest.fixture(scope="module")
def few_buckets(tmp_path_factory):
  """A one-layer random BERT with three length buckets: precompile's tests compile every
  bucket, and each bucket of the real model is seconds of compiling on 2 cores. What they
  test (which shapes run) does not depend on the weights."""
  folder = write_tiny_bert(tmp_path_factory.mktemp("tiny_bert"), layers=1, numpy_init=True,
                           max_position_embeddings=128)
  return Encoder.from_pretrained(folder, max_seq_length=128, buckets=(64, 96, 128))


@pytest.fixture(scope="module")
def vectors(encoder):
  return encoder.encode(TEXTS, batch_size=4)


def test_shape_dtype_norm_and_properties(encoder, vectors):
  assert encoder.dim == 384 and encoder.max_seq_length == 256
  assert encoder.config.hidden_size == 384 and encoder.config.num_hidden_layers == 6
  assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
  np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
  assert np.all(np.isfinite(vectors[1]))  # The empty string is [CLS] [SEP]: a real vector.
  assert encoder.encode([]).shape == (0, 384)


def test_input_order_is_restored(encoder, vectors):
  perm = np.random.default_rng(0).permutation(len(TEXTS))
  shuffled = encoder.encode([TEXTS[i] for i in perm], batch_size=3)
  np.testing.assert_allclose(shuffled, vectors[perm], atol=1e-5)


def test_packing_equals_one_text_at_a_time(encoder, vectors):
  alone = np.concatenate([encoder.encode([t]) for t in TEXTS])
  np.testing.assert_allclose(alone, vectors, atol=1e-5)
  # A single str is one text, not a sequence of characters.
  np.testing.assert_allclose(encoder.encode(TEXTS[0]), vectors[:1], atol=1e-5)


def test_length_groups_keep_every_text_exact(encoder, vectors):
  # Texts of ~70 and ~140 tokens fall in other length groups (96- and 192-token rows) than the
  # short ones; every text still gets the vector it gets alone, in input order.
  long_texts = [" ".join(["free software"] * 34), " ".join(["cat"] * 140)]
  mixed = [TEXTS[0], long_texts[0], TEXTS[2], long_texts[1], TEXTS[4]]
  together = encoder.encode(mixed, batch_size=2)
  alone = np.concatenate([encoder.encode([t]) for t in mixed])
  np.testing.assert_allclose(together, alone, atol=1e-5)
  np.testing.assert_allclose(together[[0, 2, 4]], vectors[[0, 2, 4]], atol=1e-5)


def test_precompile_leaves_nothing_to_compile(few_buckets):
  encoder = few_buckets
  # batch_size 64 gives 32 rows of 64 tokens; 17 texts of ~50 tokens fill 17 rows, a full step.
  encoder.precompile(batch_size=64)
  compiled = encoder._embed._cache_size()  # pylint: disable=protected-access
  texts = [" ".join(["cat"] * (40 + i % 8)) for i in range(17)]
  together = encoder.encode(texts, batch_size=64)
  assert encoder._embed._cache_size() == compiled  # pylint: disable=protected-access
  np.testing.assert_allclose(together[:1], encoder.encode(texts[:1]), atol=1e-5)
  with pytest.raises(ValueError, match="batch_size"):
    encoder.precompile(batch_size=0)


def test_a_large_call_runs_only_precompiled_steps(few_buckets):
  encoder = few_buckets
  # 40 texts of ~45 tokens fill a step of 64-token rows (32 rows at batch_size 64) and leave 8
  # rows; with 3 texts of ~70 and 2 of ~100 tokens no other group fills a step. The leftovers
  # move on to longer rows instead of running as short steps, each a new shape to compile.
  encoder.precompile(batch_size=64)
  compiled = encoder._embed._cache_size()  # pylint: disable=protected-access
  texts = ([" ".join(["cat"] * (40 + i % 8)) for i in range(40)]
           + [" ".join(["cat"] * (66 + i)) for i in range(3)]
           + [" ".join(["cat"] * (96 + i)) for i in range(2)])
  together = encoder.encode(texts, batch_size=64)
  assert encoder._embed._cache_size() == compiled  # pylint: disable=protected-access
  picks = [0, 39, 40, 44]
  alone = np.concatenate([encoder.encode([texts[i]]) for i in picks])
  np.testing.assert_allclose(together[picks], alone, atol=1e-5)


def test_matches_pytorch_mean_pooling(encoder, vectors):
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  folder = resolve_model_folder("all-MiniLM-L6-v2")
  model = transformers.BertModel.from_pretrained(folder).eval()
  tok = transformers.AutoTokenizer.from_pretrained(folder)
  batch = tok(TEXTS, padding=True, truncation=True, max_length=256, return_tensors="pt")
  with torch.no_grad():
    hidden = model(**batch).last_hidden_state.numpy()
  mask = batch["attention_mask"].numpy()[..., None]
  theirs = (hidden * mask).sum(1) / mask.sum(1)
  theirs /= np.linalg.norm(theirs, axis=1, keepdims=True)
  assert np.sum(theirs * vectors, axis=1).min() >= 0.9999


def test_long_texts_are_truncated_with_one_warning(encoder):
  long = "word " * 400
  with pytest.warns(UserWarning, match="1 of 2 texts .* truncated") as record:
    out = encoder.encode([long, "short"])
  assert len([w for w in record if "truncated" in str(w.message)]) == 1
  ids, truncated = encoder.tokenize([long])
  assert len(ids[0]) == 256 and truncated == 1
  assert out.shape == (2, 384)


def test_bad_input_gives_clear_errors(encoder):
  with pytest.raises(TypeError, match=r"texts\[1\] is int"):
    encoder.encode(["fine", 3])
  with pytest.raises(TypeError, match="bytes"):
    encoder.encode(b"raw bytes")
  with pytest.raises(TypeError, match="NoneType"):
    encoder.encode(None)
  with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
    encoder.encode(["a"], batch_size=0)
  with pytest.raises(TypeError, match=r"batch_size must be an integer >= 1, got 2.5 \(float\)"):
    encoder.encode(["a"], batch_size=2.5)
  with pytest.raises(TypeError, match="batch_size must be an integer"):
    encoder.token_positions(["a"], batch_size="64")
  with pytest.raises(FileNotFoundError, match="neither a local model folder"):
    Encoder.from_pretrained("no-such-model")
  with pytest.raises(ValueError, match="positive whole numbers of tokens"):
    Encoder.from_pretrained("all-MiniLM-L6-v2", buckets=(0, 256))
  with pytest.raises(ValueError, match="add a bucket of 256 tokens"):
    Encoder.from_pretrained("all-MiniLM-L6-v2", buckets=(64, 128))


def test_pack_rows_respects_capacity_and_segments():
  lengths = np.random.default_rng(1).integers(2, 60, 500)
  rows = pack_rows(lengths, capacity=64, max_segments=4)
  flat = sorted(i for row in rows for i in row)
  assert flat == list(range(500))
  assert all(sum(lengths[i] for i in row) <= 64 and len(row) <= 4 for row in rows)
  # Best fit decreasing leaves little space: within 10% of the lower bound on rows.
  assert len(rows) <= 1.1 * max(np.ceil(lengths.sum() / 64), np.ceil(500 / 4))
  with pytest.raises(ValueError, match="does not fit"):
    pack_rows(np.array([70]), capacity=64, max_segments=4)


def test_token_positions_count_the_packed_rows(encoder):
  ids, _ = encoder.tokenize(["a cat"])
  # Three short texts share one row of the shortest usable bucket (64); a step has a row per device.
  assert encoder.token_positions(["a cat"] * 3, batch_size=4) == (
      3 * len(ids[0]), 64 * jax.device_count())


def test_length_buckets():
  assert length_buckets(256) == (16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256)
  assert length_buckets(100) == (16, 32, 48, 64, 80, 96, 100)
  assert length_buckets(512)[-6:] == (224, 256, 320, 384, 448, 512)
  assert length_buckets(8) == (8,)


def test_bf16_matmul_precision_keeps_the_embeddings(vectors):
  from ycng_jax.text.encoder import precision_kwargs
  fast = Encoder.from_pretrained("all-MiniLM-L6-v2", **precision_kwargs("bf16-matmul"))
  cosine = np.sum(fast.encode(TEXTS, batch_size=4) * vectors, axis=1)
  assert cosine.min() > 0.9995
  with pytest.raises(ValueError, match="unknown precision 'fp8'"):
    precision_kwargs("fp8")


def test_reads_both_sentence_transformers_folder_formats(tmp_path):
  """Folders saved by sentence-transformers < 6 (one flag per pooling mode, max_seq_length in
  sentence_bert_config.json) and >= 6 (pooling_mode, model_max_length in tokenizer_config.json)."""
  old, new = tmp_path / "old", tmp_path / "new"
  for folder in (old, new):
    (folder / "1_Pooling").mkdir(parents=True)
  (old / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
  (old / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 200}))
  (new / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "mean_sqrt_len_tokens"}))
  (new / "sentence_bert_config.json").write_text(json.dumps({"transformer_task": "feature-extraction"}))
  (new / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 128}))
  assert pooling_mode_from_folder(old) == "cls" and max_seq_length_of_folder(str(old), 512) == 200
  assert pooling_mode_from_folder(new) == "mean_sqrt_len"
  assert max_seq_length_of_folder(str(new), 512) == 128
  (new / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 10**30}))
  assert max_seq_length_of_folder(str(new), 512) == 512
  (new / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "lasttoken"}))
  with pytest.raises(ValueError, match="lasttoken"):
    pooling_mode_from_folder(new)

"""Our Flax BERT with the packaged all-MiniLM-L6-v2 weights vs transformers' PyTorch BertModel."""

import jax.numpy as jnp
import numpy as np
import pytest

from ycng_jax.models.bert import pool_tokens
from ycng_jax.models.hf_weights import load_pretrained, read_state_dict, resolve_model_folder

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SENTENCES = [
    "A man is playing a guitar.",
    "",
    "Debian is a free operating system, developed and maintained by volunteers all over the world "
    "since 1993; this sentence is long on purpose so that the batch needs padding.",
    "ok",
    "Tokenization splits unaffordable words into word-pieces: ##able ##ness.",
]


@pytest.fixture(scope="module")
def folder():
  try:
    return resolve_model_folder("all-MiniLM-L6-v2")
  except FileNotFoundError as e:
    pytest.skip(str(e))


@pytest.fixture(scope="module")
def batch(folder):
  tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
  out = tokenizer(SENTENCES, padding=True, truncation=True, max_length=256, return_tensors="np")
  assert out["attention_mask"].min() == 0, "the batch must contain padding"
  return out["input_ids"].astype(np.int32), out["attention_mask"].astype(np.int32)


@pytest.fixture(scope="module")
def reference(folder, batch):
  model = transformers.BertModel.from_pretrained(folder).eval()
  ids, mask = batch
  with torch.no_grad():
    out = model(input_ids=torch.from_numpy(ids).long(), attention_mask=torch.from_numpy(mask).long())
  return out.last_hidden_state.numpy(), out.pooler_output.numpy()


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_last_hidden_state_and_sentence_embeddings_match_pytorch(folder, batch, reference):
  module, params, report = load_pretrained(folder)
  assert not report.missing and not report.unexpected
  assert len(report.loaded) == 103  # 104 tensors minus the position_ids buffer.
  ids, mask = batch
  hidden, pooled = module.apply({"params": params}, ids, mask)
  ref_hidden, ref_pooled = reference
  real = mask.astype(bool)
  assert np.abs(np.asarray(hidden)[real] - ref_hidden[real]).max() < 1e-4
  assert np.abs(np.asarray(pooled) - ref_pooled).max() < 1e-4
  ours = _unit(np.asarray(pool_tokens(hidden, mask, "mean")))
  m = mask[..., None].astype(np.float32)
  theirs = _unit((ref_hidden * m).sum(1) / m.sum(1))
  assert np.sum(ours * theirs, axis=1).min() >= 0.9999


def test_bf16_compute_stays_close(folder, batch, reference):
  module, params, _ = load_pretrained(folder, head="none", allow_unexpected=("pooler.*",),
                                      dtype=jnp.bfloat16)
  ids, mask = batch
  hidden, pooled = module.apply({"params": params}, ids, mask)
  assert pooled is None and hidden.dtype == jnp.bfloat16
  ours = _unit(np.asarray(pool_tokens(hidden, mask, "mean")))
  m = mask[..., None].astype(np.float32)
  theirs = _unit((reference[0] * m).sum(1) / m.sum(1))
  assert np.sum(ours * theirs, axis=1).min() >= 0.99


def test_bf16_matmuls_keep_sentence_embeddings(folder, batch, reference):
  module, params, _ = load_pretrained(folder, head="none", allow_unexpected=("pooler.*",),
                                      matmul_dtype=jnp.bfloat16)
  ids, mask = batch
  hidden, _ = module.apply({"params": params}, ids, mask)
  assert hidden.dtype == jnp.float32
  ours = _unit(np.asarray(pool_tokens(hidden, mask, "mean")))
  m = mask[..., None].astype(np.float32)
  theirs = _unit((reference[0] * m).sum(1) / m.sum(1))
  assert np.sum(ours * theirs, axis=1).min() >= 0.9995


def test_pytorch_bin_checkpoint_loads_like_safetensors(folder, tmp_path):
  state = read_state_dict(folder)
  torch.save({k: torch.from_numpy(v) for k, v in state.items()}, tmp_path / "pytorch_model.bin")
  (tmp_path / "config.json").write_text(open(f"{folder}/config.json").read())
  from_bin = read_state_dict(tmp_path)
  assert sorted(from_bin) == sorted(state)
  for name in ("encoder.layer.3.attention.self.key.weight", "pooler.dense.bias"):
    np.testing.assert_array_equal(from_bin[name], state[name])

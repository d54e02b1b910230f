"""The bi-encoder: global in-batch negatives over 8 simulated devices, the sentence-transformers
folder, training, retrieval metrics. A tiny random-weight 2-layer tower keeps it fast."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ycng_jax.models.bert import BertConfig
from ycng_jax.models.hf_weights import resolve_model_folder
from ycng_jax.text.biencoder import BiEncoder, save_sentence_transformer, tokenize_fixed
from ycng_jax.train.mesh import data_sharding, make_mesh
from ycng_jax.train.ranking_loss import global_ranking_loss

from numpy_variables import numpy_variables

# No dropout: its random bits take a third of the train step's compile time on the CPU.
TINY = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0)
TEXTS = ["a tool to convert audio files", "", "Debian packages.",
         "library for parsing XML documents - development files", "x",
         " ".join(["free software"] * 40)]  # longer than max_seq_length: truncated


def _unit(x):
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def _embeddings(n=16, d=8, seed=0):
  rng = np.random.default_rng(seed)
  a = _unit(rng.normal(size=(n, d))).astype(np.float32)
  b = _unit(a + 0.7 * rng.normal(size=(n, d))).astype(np.float32)  # noisy positives
  return a, b


def _losses_on(mesh, a, b):
  """Per-example losses and their gradients (plain, symmetric) under jit, batch split over mesh."""
  rows = data_sharding(mesh)

  def both(a, b, mask, groups):
    out = {}
    for name, symmetric in (("plain", False), ("symmetric", True)):
      fn = lambda a, b: jnp.sum(global_ranking_loss(a, b, mesh, mask=mask, groups=groups,
                                                    symmetric=symmetric)["loss"])
      out[name] = (global_ranking_loss(a, b, mesh, mask=mask, groups=groups, symmetric=symmetric),
                   jax.grad(fn, argnums=(0, 1))(a, b))
    return out

  mask = np.ones(len(a), np.float32)
  mask[-3:] = 0  # batch padding: neither an anchor nor a negative
  groups = np.stack([np.arange(len(a)), 100 + np.arange(len(a))], 1).astype(np.int32)
  groups[1, 0] = groups[0, 0]  # rows 0 and 1 are siblings: not each other's negatives
  groups[3, 1] = groups[2, 1]  # rows 2 and 3 share their other id (e.g. the same synopsis)
  return jax.tree.map(np.asarray, jax.jit(both, in_shardings=(rows,) * 4)(a, b, mask, groups))


def _reference_rows(a, b, symmetric):
  """sentence-transformers' loss per row in numpy, negatives = the rows given, nothing left out."""
  def rows(x, y):
    logits = 20.0 * x @ y.T
    top = logits.max(1, keepdims=True)
    return np.log(np.exp(logits - top).sum(1)) + top[:, 0] - np.diag(logits)
  return (rows(a, b) + rows(b, a)) / 2 if symmetric else rows(a, b)


def test_negatives_are_the_global_batch():
  a, b = _embeddings()
  eight, one = _losses_on(make_mesh(8), a, b), _losses_on(make_mesh(1), a, b)
  for name, symmetric in (("plain", False), ("symmetric", True)):
    (out8, grads8), (out1, grads1) = eight[name], one[name]
    np.testing.assert_allclose(out8["loss"], out1["loss"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out8["in_batch_accuracy"], out1["in_batch_accuracy"])
    for g8, g1 in zip(grads8, grads1):
      np.testing.assert_allclose(g8, g1, rtol=1e-4, atol=1e-6)
    assert np.all(out8["loss"][-3:] == 0) and np.all(out8["loss"][:-3] > 0)
    # Rows 4.. of the 13 real ones against all 13 real positives, as sentence-transformers has it;
    # rows 0-3 lose their group's column: each pair's loss is that of the other row left out.
    reference = _reference_rows(a[:13], b[:13], symmetric)
    np.testing.assert_allclose(out8["loss"][4:13], reference[4:], rtol=1e-4)
    if not symmetric:
      for row, other in ((0, 1), (1, 0), (2, 3), (3, 2)):
        keep = [j for j in range(13) if j != other]
        alone = _reference_rows(a[keep], b[keep], False)[keep.index(row)]
        np.testing.assert_allclose(out8["loss"][row], alone, rtol=1e-4)
    # Each device's own 2 rows as the only negatives would give another loss: this can fail.
    local = np.concatenate([_reference_rows(a[i:i + 2], b[i:i + 2], symmetric)
                            for i in range(4, 12, 2)])
    assert not np.allclose(local, out8["loss"][4:12], atol=1e-3)


def test_ranking_loss_equals_sentence_transformers():
  st_losses = pytest.importorskip("sentence_transformers.sentence_transformer.losses")
  torch = pytest.importorskip("torch")
  a, b = _embeddings(seed=1)
  mesh = make_mesh(8)
  for symmetric, reference in ((False, st_losses.MultipleNegativesRankingLoss),
                               (True, st_losses.MultipleNegativesSymmetricRankingLoss)):
    ours = global_ranking_loss(jnp.asarray(a), jnp.asarray(b), mesh, symmetric=symmetric)
    theirs = reference(model=None).compute_loss_from_embeddings(
        [torch.from_numpy(a), torch.from_numpy(b)], labels=None)
    np.testing.assert_allclose(float(jnp.mean(ours["loss"])), float(theirs), rtol=1e-5)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
  """A sentence-transformers folder of a random 2-layer tower with the packaged tokenizer."""
  try:
    source = resolve_model_folder("all-MiniLM-L6-v2")
  except FileNotFoundError as e:
    pytest.skip(str(e))
  module = BiEncoder(TINY)
  ids = np.zeros((1, 4), np.int32)
  params = numpy_variables(module, ids, ids, scale=0.02)["params"]  # no compile, no dispatch
  folder = save_sentence_transformer(params["bert"], TINY, tmp_path_factory.mktemp("tiny") / "st",
                                     tokenizer_folder=source, max_seq_length=24)
  return folder, module, params


def test_saved_folder_loads_in_encoder_and_sentence_transformers(tiny_folder):
  folder, module, params = tiny_folder
  from ycng_jax.text import Encoder
  from ycng_jax.text.encoder import load_fast_tokenizer
  with pytest.warns(UserWarning, match="1 of 6 texts were longer than max_seq_length=24"):
    ours = Encoder.from_pretrained(folder).encode(TEXTS, batch_size=4)
  assert ours.shape == (len(TEXTS), 32)
  # The module the trainer trains gives the same vectors from fixed-length token arrays.
  tokens = tokenize_fixed(load_fast_tokenizer(folder, 24), TEXTS, 24)
  # Cut to 24 by tokenize_fixed (the runner's shorter first texts) as by the tokenizer: [SEP] last.
  for key, value in tokenize_fixed(load_fast_tokenizer(folder, 64), TEXTS, 24).items():
    np.testing.assert_array_equal(value, tokens[key])
  trained = np.asarray(module.apply({"params": params}, tokens["input_ids"],
                                    tokens["attention_mask"]))
  np.testing.assert_allclose(trained, ours, atol=1e-5)
  sentence_transformers = pytest.importorskip("sentence_transformers")
  theirs = sentence_transformers.SentenceTransformer(str(folder), device="cpu").encode(TEXTS)
  assert np.max(np.abs(theirs - ours)) <= 1e-4


def _pair_file(path, packages=40):
  """A pair task in the jsonl format of ``load_task``: each package's own pair and another's."""
  import json
  topics = ["audio", "video", "python", "kernel", "game", "font", "editor", "shell", "mail", "web"]
  rows = []
  for i in range(packages):
    topic, other = topics[i % 10], topics[(i + 3) % 10]
    rows.append({"text": f"{topic} tool {i}", "group": f"src{i // 2}", "label": 1,
                 "text_b": f"this package provides the {topic} program number {i}"})
    rows.append({"text": f"{topic} tool {i}", "group": f"src{i // 2}", "label": 0,
                 "text_b": f"this package provides the {other} program number {i + 5}"})
  path.write_text("".join(json.dumps(r) + "\n" for r in rows))
  return str(path)


def test_runner_trains_saves_evaluates_and_refuses_other_settings(tiny_folder, tmp_path):
  """``train`` end to end on a pair file: the loss falls, the folder and the report are written;
  a rerun with another learning rate is refused before anything compiles."""
  from safetensors.numpy import load_file
  from ycng_jax.errors import UserError
  from ycng_jax.text import biencoder_experiment as experiment
  folder, _, _ = tiny_folder
  config = experiment.base_config()
  config.update(dataset=_pair_file(tmp_path / "pairs.jsonl"), model=str(folder),
                validation_fraction=0.2, test_fraction=0.2, max_length_a=8, max_length_b=16,
                batch_size=8, epochs=2, learning_rate=3e-3, warmup_ratio=0.2, eval_batch_size=8,
                backup_every_steps=0, verbose=0)
  workdir = str(tmp_path / "run")
  results = experiment.train(config, workdir)
  history = results["history"]
  assert history["loss"][1] < history["loss"][0] and len(history["val_loss"]) == 2
  for name in ("embedding_cosine", "fine_tuned"):
    assert set(results["pair_classification"][name]) == {"accuracy", "f1", "roc_auc",
                                                         "average_precision", "threshold"}
    assert set(results["retrieval"][name]) == {"recall_at_1", "recall_at_10", "mrr_at_10"}
  assert results["retrieval_queries"] == results["pairs"]["test"] // 2 > 0
  assert results["training"]["steps"] == 2 * results["training"]["pairs"] // 8
  flat = experiment.report.flat(results)
  assert "test_recall_at_1" in flat and "embedding_cosine_test_roc_auc" in flat
  for name in ("results.json", "results.md", "retrieval.png", "metrics.jsonl", "history.csv"):
    assert (tmp_path / "run" / name).is_file(), name
  # The saved folder holds the trained tower (the folder test shows such a folder loads right).
  tuned, base = (load_file(os.path.join(f, "model.safetensors"))
                 for f in (tmp_path / "run" / "model", folder))
  assert tuned.keys() == base.keys()
  assert max(np.max(np.abs(tuned[k] - base[k])) for k in base) > 1e-4
  config.learning_rate = 1e-3
  with pytest.raises(UserError, match="learning_rate"):
    experiment.train(config, workdir)


def test_recall_at_k_on_hand_made_vectors():
  from ycng_jax.text import retrieval
  from ycng_jax.text.biencoder_report import pair_metrics
  # Two answers are the same text: one document, either query finds it.
  documents, positive = retrieval.unique_documents(["d0", "d1", "d0", "d2"])
  assert documents == ["d0", "d1", "d2"] and positive.tolist() == [0, 1, 0, 2]
  docs = np.eye(3, dtype=np.float32)
  queries = np.asarray([[0.9, 0.1, 0.0],   # d0 first: rank 0
                        [0.6, 0.5, 0.2],   # d1 second: rank 1
                        [1.0, 0.0, 0.0],   # d0 first: rank 0
                        [0.5, 0.4, 0.3]],  # d2 third: rank 2
                       np.float32)
  ranks = retrieval.positive_ranks(queries, docs, positive, block=3)  # two blocks
  assert ranks.tolist() == [0, 1, 0, 2]
  found = retrieval.recall_at(ranks, (1, 2))
  assert found["recall_at_1"] == 0.5 and found["recall_at_2"] == 0.75
  assert found["mrr_at_10"] == pytest.approx((1 + 0.5 + 1 + 1 / 3) / 4)
  np.testing.assert_allclose(retrieval.recall_curve(ranks, 4), [0.5, 0.75, 1.0, 1.0])
  with pytest.raises(ValueError, match="indices"):
    retrieval.positive_ranks(queries, docs, np.asarray([0, 1, 0, 3]))
  # The threshold of best validation accuracy lies between 0.4 and 0.6; a score >= it is a pair.
  metrics = pair_metrics(np.asarray([0.9, 0.6, 0.4, 0.1]), np.asarray([1, 1, 0, 0]),
                         np.asarray([0.7, 0.55, 0.5, 0.3]), np.asarray([1, 0, 1, 0]))
  assert 0.4 < metrics["threshold"] < 0.6
  assert metrics["roc_auc"] == 0.75 and set(metrics) >= {"accuracy", "f1", "average_precision"}


def test_positives_group_ids_without_fixed_width_copies():
  """Equal texts share ids, and a long text costs its own size, not rows x its size.

  The ids once came from np.unique(texts.astype(str)): a unicode array as wide as the longest
  text for every row, 13 GB on the full debian_synopses split (the run was OOM-killed).
  """
  import tracemalloc  # pylint: disable=import-outside-toplevel
  from ycng_jax.text.biencoder_experiment import positives  # pylint: disable=import-outside-toplevel
  long_text = "x" * 1_000_000
  extra = 40  # more positives: the old copy would be 44 x 4 MB wide
  split = {"text": np.array(["s0", "s1", "s2", "s0"] + [f"t{i}" for i in range(extra)],
                            dtype=object),
           "text_b": np.array(["d0", "d1", long_text, "d1"] + [f"d{i}" for i in range(extra)],
                              dtype=object),
           "label": np.ones(4 + extra, np.int64),
           "group": np.array(["g0", "g0", "g1", "g2"] + ["g"] * extra, dtype=object)}
  tracemalloc.start()
  out = positives(split)
  peak = tracemalloc.get_traced_memory()[1]
  tracemalloc.stop()
  assert peak < 20 * 2**20, f"{peak / 2**20:.0f} MiB for 44 texts"
  group, first, second = out["group"].T
  assert list(out["text"][:4]) == ["s0", "s1", "s2", "s0"]
  assert group[0] == group[1] != group[2] != group[3] != group[0]
  assert first[0] == first[3] and len({first[0], first[1], first[2]}) == 3
  assert second[1] == second[3] and len({second[0], second[1], second[2]}) == 3

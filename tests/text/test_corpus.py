"""Semantic similarity at scale: near-duplicates, neighbour quality, corpus embedding, index CLI,
the topic-10 experiment."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from ycng_jax import cli
from ycng_jax.text import corpus, semantic_index


def _unit(x):
  return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_near_duplicates_equal_brute_force_with_many_copies():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(300, 16))
  x[50:90] = x[10] + 0.01 * rng.normal(size=(40, 16))  # 41 near-copies of row 10: more than k
  x[200] = x[7] + 0.02 * rng.normal(size=16)
  x = _unit(x)
  pairs = corpus.near_duplicates(x, 0.98, k=4, query_block=64, progress=False)
  sims = x @ x.T
  i, j = np.nonzero(np.triu(sims >= 0.98, 1))
  assert len(pairs) == len(i) >= 41 * 40 // 2 + 1
  np.testing.assert_array_equal(pairs["i"], i)
  np.testing.assert_array_equal(pairs["j"], j)
  np.testing.assert_allclose(pairs["score"], sims[i, j], atol=1e-5)
  with pytest.raises(ValueError, match="must lie in \\[-1, 1\\]"):
    corpus.near_duplicates(x, 1.5)


def test_shared_labels_and_tfidf_baseline():
  labels = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1]], np.uint8)
  ids = np.array([[1, 2], [0, -1]])
  # query 0 shares 1 tag with doc 1 and 1 with doc 2; query 1 shares 1 with doc 0.
  assert corpus.shared_labels_at_k(ids, labels[:2], labels) == pytest.approx(1.0)
  texts = ["apache web server daemon", "python xml parsing library", "web server for static files",
           "xml parser bindings for python", "music player audio"] * 2
  neighbours = corpus.tfidf_neighbours(["fast web server", "python xml"], texts, k=2)
  assert set(neighbours[0]) <= {0, 2, 5, 7} and set(neighbours[1]) <= {1, 3, 6, 8}


@pytest.fixture(scope="module")
def encoder():
  from ycng_jax.text import Encoder
  try:
    return Encoder.from_pretrained("all-MiniLM-L6-v2")
  except FileNotFoundError as e:  # the packaged model is not installed (scripts/install.sh installs it)
    pytest.skip(str(e))


TEXTS = ["A command-line tool to convert audio files between formats.",
         "Library for parsing and writing XML documents in C.",
         "A space shooter game with spaceships and lasers.",
         "Utilities to convert sound files (mp3, ogg, flac).",
         "Python bindings for an XML parser.",
         "Arcade game: pilot a spaceship through asteroid fields.",
         "", "Fonts for typesetting mathematics."] * 2


def test_embed_corpus_resumes_after_a_kill(tmp_path, encoder):
  straight = corpus.embed_corpus(TEXTS, tmp_path / "a", encoder=encoder, chunk_size=4, progress=False)
  np.testing.assert_allclose(straight, encoder.encode(TEXTS), atol=1e-5)

  class Killed(Exception):
    pass

  calls = []

  class DiesOnThirdChunk:
    def encode(self, texts, batch_size):
      calls.append(len(texts))
      if len(calls) == 3:
        raise Killed
      return encoder.encode(texts, batch_size=batch_size)

  with pytest.raises(Killed):
    corpus.embed_corpus(TEXTS, tmp_path / "b", encoder=DiesOnThirdChunk(), chunk_size=4, progress=False)
  resumed = corpus.embed_corpus(TEXTS, tmp_path / "b", encoder=DiesOnThirdChunk(), chunk_size=4,
                                progress=False)
  assert calls == [4, 4, 4, 4, 4]  # chunks 0 and 1 were not computed again
  np.testing.assert_array_equal(np.asarray(resumed), np.asarray(straight))
  with pytest.raises(TypeError, match="texts\\[1\\] is a int"):
    corpus.embed_corpus(["a", 3], tmp_path / "c", encoder=encoder)


def test_index_build_and_search_from_the_command_line(tmp_path, capsys, monkeypatch, encoder):
  docs = tmp_path / "docs.txt"
  docs.write_text("\n".join(t for t in TEXTS[:8] if t) + "\n")
  from ycng_jax.text import encoder as encoder_module
  monkeypatch.setattr(encoder_module.Encoder, "from_pretrained", classmethod(lambda cls, *a, **k: encoder))
  out = tmp_path / "index"
  assert cli.main(["index", "build", str(docs), "--out", str(out)]) == 0
  assert json.loads((out / "info.json").read_text())["documents"] == 7
  capsys.readouterr()
  assert cli.main(["search", str(out), "convert mp3 to ogg", "-k", "2", "--json"]) == 0
  hits = json.loads(capsys.readouterr().out)[0]["results"]
  assert {h["id"] for h in hits} == {0, 3}  # the two audio-conversion tools
  results = semantic_index.search(out, ["xml parsing"], k=2, encoder=encoder)
  assert {h["id"] for h in results[0]} == {1, 4}
  with pytest.raises(FileNotFoundError, match="not an index folder"):
    semantic_index.search(tmp_path, ["x"])


def test_similarity_experiment_writes_the_topic_map(tmp_path, monkeypatch, encoder):
  from ycng_jax.text import encoder as encoder_module
  from ycng_jax.text import similarity_experiment
  monkeypatch.setattr(encoder_module.Encoder, "from_pretrained", classmethod(lambda cls, *a, **k: encoder))
  docs = tmp_path / "docs.txt"
  docs.write_text("\n".join(t for t in TEXTS if t) + "\n")
  config = similarity_experiment.base_config()
  config.dataset, config.num_topics, config.queries = str(docs), 3, ("convert mp3",)
  config.topic_map.projection = "pca"  # UMAP is tested in tests/cluster/test_manifold.py
  results = similarity_experiment.run(config, str(tmp_path / "run"))
  assert results["documents"] == 14 and results["near_duplicate_pairs"] == 7  # each text twice
  run = tmp_path / "run"
  topics = json.loads((run / "topics.json").read_text())
  assert sorted(topics) == ["0", "1", "2"]
  # Audio converters, XML libraries (with the fonts package) and space games, each named by its
  # most distinctive word.
  assert sorted(t["size"] for t in topics.values()) == [4, 4, 6]
  assert {t["label"].split(", ")[0] for t in topics.values()} == {"convert", "xml", "game"}, topics
  topic_map = json.loads((run / "topic_map.json").read_text())
  assert len(topic_map["points"]) == 14 and [t["id"] for t in topic_map["topics"]] == [0, 1, 2]
  assert [t["terms"] for t in topic_map["topics"]] == [topics[str(i)]["terms"] for i in range(3)]
  assert (run / "topic_map.png").stat().st_size > 10_000


def test_index_precision_is_recorded_and_used_for_queries(tmp_path, monkeypatch, encoder):
  docs = tmp_path / "docs.txt"
  docs.write_text("\n".join(t for t in TEXTS[:8] if t) + "\n")
  from ycng_jax.text import encoder as encoder_module
  loads = []
  monkeypatch.setattr(encoder_module.Encoder, "from_pretrained",
                      classmethod(lambda cls, *a, **k: loads.append(k) or encoder))
  out = tmp_path / "index"
  assert cli.main(["index", "build", str(docs), "--out", str(out),
                   "--precision", "bf16-matmul"]) == 0
  assert json.loads((out / "info.json").read_text())["precision"] == "bf16-matmul"
  semantic_index.search(out, ["xml parsing"], k=2)
  assert [k.get("matmul_dtype") for k in loads] == [jnp.bfloat16, jnp.bfloat16]
  # Embeddings of another precision never mix into a resumed directory.
  same_texts = [t for t in TEXTS[:8] if t]
  with pytest.raises(ValueError, match="output of another run"):
    corpus.embed_corpus(same_texts, out / "embeddings", encoder=encoder, progress=False)
  with pytest.raises(ValueError, match="unknown precision"):
    corpus.embed_corpus(TEXTS, tmp_path / "x", encoder=encoder, precision="fp8")


@pytest.fixture
def docs(tmp_path):
  path = tmp_path / "docs.txt"
  path.write_text("\n".join(t for t in TEXTS[:8] if t) + "\n")
  return path


@pytest.mark.parametrize("corpus, kwargs, error, match", [
    ("missing.txt", {}, FileNotFoundError, r"corpus file '.*missing.txt' not found; a corpus is "),
    ("missing/docs.csv", {}, FileNotFoundError, "no such file, nor a dataset name"),
    ("folder", {}, ValueError, "'.*folder' is not a corpus: a corpus is a .txt file"),
    ("empty.txt", {}, ValueError, "holds no documents"),
    ("docs", dict(backend="nosuch"), ValueError,
     r"backend must be one of \[.*'exact'.*\], got 'nosuch'"),
    ("docs", dict(limit=-1), ValueError, r"limit \(the number of documents to keep\) must be an "
     "integer >= 1, got -1"),
    ("docs", dict(limit=0), ValueError, "limit .* must be an integer >= 1, got 0"),
    ("docs", dict(batch_size=2.5), TypeError, "batch_size must be an integer >= 1, got 2.5"),
    ("docs", dict(model="no-such-model"), FileNotFoundError, "neither a local model folder"),
])
def test_index_build_checks_everything_before_any_work(tmp_path, docs, corpus, kwargs, error,
                                                       match):
  (tmp_path / "folder").mkdir()
  (tmp_path / "empty.txt").write_text("\n  \n")
  corpus = str(docs) if corpus == "docs" else str(tmp_path / corpus)
  out = tmp_path / "out"
  with pytest.raises(error, match=match):
    semantic_index.build(corpus, out, progress=False, **kwargs)
  assert not out.exists()  # nothing was created, so nothing is left to clean up


def test_index_build_out_that_is_a_file_is_a_clear_error(tmp_path, docs):
  with pytest.raises(ValueError, match="out='.*docs.txt' is a file; give a folder"):
    semantic_index.build(str(docs), docs, progress=False)


def test_limit_keeps_the_first_documents(docs):
  every = semantic_index.corpus_documents(str(docs))["text"]
  assert semantic_index.corpus_documents(str(docs), limit=2)["text"] == every[:2]
  assert semantic_index.corpus_documents(str(docs), limit=100)["text"] == every == [
      t for t in TEXTS[:8] if t]


@pytest.mark.parametrize("lines, match", [
    (['{"text": "fine"}', "", '{"title": "no text"}'],
     r"docs.jsonl, line 3: the record has no 'text' field \(its fields: \['title'\]\)"),
    (['{"text": "fine"}', '{"text": "broken"'],
     r"docs.jsonl, line 2: not valid JSON \(Expecting ',' delimiter at column 18\)"),
    (['{"text": "fine"}', '["a", "list"]'], "docs.jsonl, line 2: a JSON list, not an object"),
    (['{"text": 3}'], "docs.jsonl, line 1: 'text' is a int, not a string"),
])
def test_jsonl_errors_name_the_file_and_the_line(tmp_path, lines, match):
  path = tmp_path / "docs.jsonl"
  path.write_text("\n".join(lines) + "\n")
  with pytest.raises(ValueError, match=match):
    semantic_index.corpus_documents(str(path))


def test_corpus_files_are_read_line_by_line(tmp_path):
  path = tmp_path / "docs.jsonl"
  path.write_bytes(b'{"text": "caf\xc3\xa9", "title": "one"}\r\n\n{"text": "two", "id": 7}\n')
  assert semantic_index.corpus_documents(str(path)) == {"text": ["café", "two"],
                                                        "title": ["one", "7"]}
  text = tmp_path / "docs.txt"
  text.write_bytes(b"good\nbad \xff byte\n")
  with pytest.raises(ValueError, match=r"docs.txt, line 2: not UTF-8 text \(invalid start byte"):
    semantic_index.corpus_documents(str(text))

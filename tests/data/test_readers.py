"""Published formats of corpora that are not offline (SNLI/MNLI jsonl, STS-B tsv), on small files,
and Debian's debtags vocabulary."""

import json

import numpy as np
import pytest

from ycng_jax.data import readers, sources
from ycng_jax.errors import UserError


def test_snli_jsonl(tmp_path):
  path = tmp_path / "snli_1.0_dev.jsonl"
  rows = [
      {"gold_label": "entailment", "sentence1": "A man plays.", "sentence2": "Someone plays.",
       "annotator_labels": ["entailment"], "pairID": "1"},
      {"gold_label": "-", "sentence1": "A dog.", "sentence2": "A cat.", "pairID": "2"},
      {"gold_label": "contradiction", "sentence1": "It rains.", "sentence2": "It is dry.",
       "pairID": "3", "genre": "fiction"},
  ]
  path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
  out = readers.read_nli_jsonl(path)
  assert list(out["premise"]) == ["A man plays.", "It rains."]
  np.testing.assert_array_equal(out["label"], [0, 2])
  np.testing.assert_array_equal(out["line"], [1, 3])


def test_nli_jsonl_bad_record(tmp_path):
  path = tmp_path / "bad.jsonl"
  path.write_text('{"sentence1": "x"}\n')
  with pytest.raises(UserError, match=r"bad.jsonl, line 1: not an SNLI/MNLI jsonl record"):
    readers.read_nli_jsonl(path)


def test_stsb_tsv(tmp_path):
  path = tmp_path / "dev.tsv"
  path.write_text(
      "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
      "0\tmain-captions\tMSRvid\t2012test\t0000\tnone\tnone\tA man with a hard hat is dancing.\t"
      "A man wearing a hard hat is dancing.\t5.000\n"
      "1\tmain-captions\tMSRvid\t2012test\t0002\tnone\tnone\tA young child is riding a horse.\t"
      "A child is riding a horse.\t4.750\n")
  out = readers.read_stsb_tsv(path)
  assert out["sentence2"][1] == "A child is riding a horse."
  np.testing.assert_allclose(out["score"], [5.0, 4.75])
  bad = tmp_path / "bad.tsv"
  bad.write_text("a\tb\n1\t2\n")
  with pytest.raises(UserError, match="not an STS-B tsv"):
    readers.read_stsb_tsv(bad)


def test_arff_unescaping(tmp_path):
  path = tmp_path / "x.arff"
  path.write_text("@relation r\n@attribute Text string\n@attribute c {0,1}\n@data\n"
                  "'it\\'s a\\ntest, really',1\n'plain',0\n")
  texts, labels = readers.read_arff_text(path)
  assert texts == ["it's a\ntest, really", "plain"] and labels == [1, 0]


def test_debtags_vocabulary(tmp_path, monkeypatch):
  vocabulary = readers.read_debtags_vocabulary()  # Debian's debtags package
  facets, tags = vocabulary["facets"], vocabulary["tags"]
  assert len(facets) >= 30 and len(tags) >= 600
  assert facets["role"]["description"] == "Role"
  assert tags["role::program"] == {"description": "Program", "facet": "role",
                                   "long_description": "Executable computer program."}
  # a "." line of the long text is a paragraph break
  at_spi = tags["accessibility::accessible-via:at-spi"]["long_description"]
  assert at_spi.startswith("Applies to applications") and "\n\nThis does not imply" in at_spi
  assert {t["facet"] for t in tags.values()} <= set(facets)
  monkeypatch.setenv("YCNG_DEBTAGS_VOCABULARY", str(tmp_path / "vocabulary"))
  with pytest.raises(sources.MissingSourceError,
                     match="apt-get install --no-install-recommends debtags"):
    readers.read_debtags_vocabulary()
  (tmp_path / "vocabulary").write_text("Package: foo\nDescription: not a vocabulary\n")
  with pytest.raises(UserError, match="no 'Tag:' stanza"):
    readers.read_debtags_vocabulary()

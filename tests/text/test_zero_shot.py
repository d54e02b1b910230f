"""zero_shot_classify: entailment mode against transformers' zero-shot pipeline on a small random
NLI-shaped folder (our save_classifier), embedding mode on the tiny BERT, errors, and `ycng classify`."""

import warnings

import numpy as np
import pytest

from ycng_jax import cli
from ycng_jax.errors import UserError, UserTypeError
from ycng_jax.models.bert import BertConfig
from ycng_jax.models.hf_weights import resolve_model_folder
from ycng_jax.text import save_classifier, zero_shot_classify
from ycng_jax.text.encoder import Encoder
from ycng_jax.text.zero_shot import BACKGROUND, TEMPERATURE, load_model

from tiny_bert import random_classifier_params, write_tiny_bert

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

MAX_LENGTH = 48
TEXTS = ["A man is playing a guitar.", "Debian packages ship free software.",
         "word " * 80,  # longer than MAX_LENGTH: truncated, the hypothesis kept whole
         "The cat sat on the mat."]
LABELS = ["music", "software", "animals", "sport"]
TEMPLATE = "This text is about {}."


@pytest.fixture(scope="module")
def nli_folder(tmp_path_factory):
  """3-way NLI-shaped folder, entailment in the middle (contradiction is then label 0)."""
  try:
    tokenizer_folder = resolve_model_folder("all-MiniLM-L6-v2")
  except FileNotFoundError as e:
    pytest.skip(str(e))
  config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, max_position_embeddings=64, initializer_range=0.2,
                      num_labels=3)
  return save_classifier(tmp_path_factory.mktemp("nli") / "nli", params=random_classifier_params(config, 0),
                         config=config, tokenizer_folder=tokenizer_folder,
                         problem_type="single_label_classification",
                         label_names=["contradiction", "entailment", "neutral"],
                         max_length=MAX_LENGTH, pair=True)


@pytest.fixture(scope="module")
def pipeline_scores(nli_folder):
  pipe = transformers.pipeline("zero-shot-classification", model=nli_folder, device="cpu")
  out = {}
  for multi in (False, True):
    results = pipe(TEXTS, candidate_labels=LABELS, hypothesis_template=TEMPLATE, multi_label=multi)
    out[multi] = np.asarray([[dict(zip(r["labels"], r["scores"]))[label] for label in LABELS]
                             for r in results], np.float32)
  return out


@pytest.mark.parametrize("multi_label", [False, True])
def test_entailment_mode_equals_transformers_pipeline(nli_folder, pipeline_scores, multi_label):
  with pytest.warns(UserWarning, match=r"1 of 4 texts, with a hypothesis, were longer than the "
                    r"model's max_length=48 tokens"):
    ours = zero_shot_classify(TEXTS, LABELS, model=nli_folder, hypothesis_template=TEMPLATE,
                              multi_label=multi_label, batch_size=2)
  assert ours.shape == (4, 4) and ours.dtype == np.float32
  np.testing.assert_allclose(ours, pipeline_scores[multi_label], atol=1e-5, rtol=0)
  if not multi_label:
    np.testing.assert_allclose(ours.sum(1), 1.0, atol=1e-5)
  else:
    assert not np.allclose(ours.sum(1), 1.0, atol=1e-2)


def test_entailment_one_label_and_descriptions(nli_folder, pipeline_scores):
  # One label: entailment against contradiction, as the pipeline does (its multi-label score).
  one = zero_shot_classify(TEXTS[:2], ["music"], model=nli_folder, hypothesis_template=TEMPLATE)
  np.testing.assert_allclose(one[:, 0], pipeline_scores[True][:2, 0], atol=1e-5)
  # A description replaces the label in the template; the label keeps its column.
  described = zero_shot_classify(TEXTS[:2], ["x", "software"], model=nli_folder,
                                 hypothesis_template=TEMPLATE, multi_label=True,
                                 label_descriptions={"x": "music"})
  np.testing.assert_allclose(described, pipeline_scores[True][:2, :2], atol=1e-5)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
  folder = write_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert", layers=1, numpy_init=True)
  return Encoder.from_pretrained(folder)


def test_embedding_mode(encoder):
  texts, labels = ["the cat sat on the mat", "a good movie", "grain price"], ["cat", "film", "corn"]
  single = zero_shot_classify(texts, labels, model=encoder)
  multi = zero_shot_classify(texts, labels, model=encoder, multi_label=True)
  vectors = encoder.encode(texts)
  hyps = encoder.encode([f"This example is {label}." for label in labels])
  cosine = vectors @ hyps.T
  expected = np.exp(cosine / TEMPERATURE)
  np.testing.assert_allclose(single, expected / expected.sum(1, keepdims=True), atol=1e-5)
  # Multi-label: each label against its own threshold, calibrated on the texts and BACKGROUND.
  calibration = np.concatenate([cosine, encoder.encode(list(BACKGROUND)) @ hyps.T])
  above = cosine > calibration.mean(0) + calibration.std(0)
  assert multi.shape == (3, 3) and multi.dtype == np.float32
  np.testing.assert_array_equal(multi > 0.5, above)
  # A one-text call is calibrated by the background sentences, not by nothing.
  alone = zero_shot_classify(texts[:1], labels, model=encoder, multi_label=True)
  assert np.all((alone > 0) & (alone < 1))
  by_description = zero_shot_classify(texts, ["a", "b", "c"], model=encoder,
                                      label_descriptions=labels)
  np.testing.assert_allclose(by_description, single, atol=1e-6)


def test_errors(encoder, nli_folder, tmp_path):
  call = lambda labels=("a", "b"), **kw: zero_shot_classify(["some text"], labels,
                                                            model=encoder, **kw)
  with pytest.raises(UserError, match="labels is empty"):
    call([])
  with pytest.raises(UserError, match=r"labels repeat \['a'\]"):
    call(["a", "b", "a"])
  with pytest.raises(UserError, match="has no {} for the label"):
    call(hypothesis_template="This example is.")
  with pytest.raises(UserError, match="cannot be filled with a label"):
    call(hypothesis_template="This is {label}.")
  with pytest.raises(UserError, match="1 label_descriptions for 2 labels"):
    call(label_descriptions=["x"])
  with pytest.raises(UserError, match=r"labels not in labels: \['z'\]"):
    call(label_descriptions={"z": "x"})
  with pytest.raises(UserError, match=r"texts\[1\] is empty"):
    zero_shot_classify(["ok", " "], ["a"], model=encoder)
  with pytest.raises(UserTypeError, match="multi_label must be True or False"):
    call(multi_label="yes")
  with pytest.raises(UserError, match="leaves no room for the text"):
    zero_shot_classify(["ok"], ["a"], model=nli_folder, hypothesis_template="{} " + "word " * 60)
  # A sequence classifier without an entailment label cannot score hypotheses.
  config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, max_position_embeddings=64, num_labels=2)
  other = save_classifier(tmp_path / "sentiment", params=random_classifier_params(config, 1), config=config,
                          tokenizer_folder=nli_folder, problem_type="single_label_classification",
                          label_names=["negative", "positive"], max_length=MAX_LENGTH)
  with pytest.raises(UserError, match="have no entailment label"):
    load_model(other)
  assert zero_shot_classify([], ["a"], model=encoder).shape == (0, 1)


def test_cli_classify(nli_folder, capsys):
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    assert cli.main(["classify", "--labels", "music, software", TEXTS[0], TEXTS[1],
                     "--model", nli_folder, "--template", TEMPLATE, "--json"]) == 0
  import json
  rows = json.loads(capsys.readouterr().out)
  assert [r["text"] for r in rows] == TEXTS[:2]
  assert abs(sum(rows[0]["scores"].values()) - 1) < 1e-5
  assert cli.main(["classify", "--labels", "a,a", "text", "--model", nli_folder]) == 2
  assert "ycng: error: labels repeat ['a']" in capsys.readouterr().err

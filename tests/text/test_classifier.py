"""save_classifier and TextClassifier on small random BERTs, against transformers' PyTorch models
(8 simulated devices, see conftest). The packaged all-MiniLM-L6-v2 gives the tokenizer."""

import json
import os

import numpy as np
import pytest

from ycng_jax import cli
from ycng_jax.errors import UserError, UserFileError, UserTypeError
from ycng_jax.models.bert import BertConfig
from ycng_jax.models.hf_weights import resolve_model_folder
from ycng_jax.text import TextClassifier, save_classifier

from tiny_bert import random_classifier_params

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

MAX_LENGTH = 48  # One row length (48 tokens): one compiled shape per classifier.
TEXTS = ["A man is playing a guitar.", "Debian packages ship free software.", "ok",
         "word " * 80, "Tokenizers split unaffordable words: ##able."]  # the 4th is truncated
PAIRS = [("A man plays a guitar.", "Someone makes music."), ("x y", "free software " * 40),
         ("debian " * 50, "short"), ("The cat sat.", "A dog barked at the mailman.")]
MULTI_THRESHOLDS = [0.0, 1.0, 0.5, 0.45]  # label a always, label b never


def _config(**kwargs):
  # initializer_range 0.2: logits of order 1, so a 1e-4 match means something.
  return BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                    intermediate_size=64, max_position_embeddings=64, initializer_range=0.2,
                    **kwargs)


def _params(config, seed):
  return random_classifier_params(config, seed)


@pytest.fixture(scope="module")
def tokenizer_folder():
  try:
    return resolve_model_folder("all-MiniLM-L6-v2")
  except FileNotFoundError as e:
    pytest.skip(str(e))


@pytest.fixture(scope="module")
def folders(tokenizer_folder, tmp_path_factory):
  """Three folders: ours for single-label pairs and for multi-label texts, and a folder that
  transformers itself wrote (a regression head, no ycng_classifier.json)."""
  root = tmp_path_factory.mktemp("classifiers")
  out = {}
  config = _config(num_labels=4)  # as many labels as "multi": one compiled shape serves both
  out["pair"] = save_classifier(
      root / "pair", params=_params(config, 0), config=config, tokenizer_folder=tokenizer_folder,
      problem_type="single_label_classification", label_names=["entail", "neutral", "contra", "off"],
      max_length=MAX_LENGTH, pair=True, extra={"trained_on": "nothing"})
  config = _config(num_labels=4)
  out["multi"] = save_classifier(
      root / "multi", params=_params(config, 1), config=config, tokenizer_folder="all-MiniLM-L6-v2",
      problem_type="multi_label_classification", label_names=["a", "b", "c", "d"],
      thresholds=MULTI_THRESHOLDS, max_length=MAX_LENGTH)
  torch.manual_seed(2)
  hf_config = transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                      intermediate_size=64, max_position_embeddings=64,
                                      initializer_range=0.2, num_labels=1)
  model = transformers.BertForSequenceClassification(hf_config)
  out["hf"] = str(root / "hf")
  model.save_pretrained(out["hf"])
  tokenizer = transformers.AutoTokenizer.from_pretrained(tokenizer_folder)
  tokenizer.model_max_length = MAX_LENGTH
  tokenizer.save_pretrained(out["hf"])
  return out


@pytest.fixture(scope="module")
def classifiers(folders):
  return {name: TextClassifier.from_pretrained(folder) for name, folder in folders.items()}


def _reference_logits(folder, inputs):
  model = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
  tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
  if isinstance(inputs[0], tuple):
    batch = tokenizer([a for a, _ in inputs], [b for _, b in inputs], padding=True,
                      truncation=True, return_tensors="pt")
    assert batch["token_type_ids"].max() == 1
  else:
    batch = tokenizer(inputs, padding=True, truncation=True, return_tensors="pt")
  assert batch["input_ids"].shape[1] == MAX_LENGTH  # truncation happened at the same length
  with torch.no_grad():
    return model(**batch).logits.numpy()


@pytest.mark.filterwarnings("ignore:.*truncated:UserWarning")
@pytest.mark.parametrize("name, inputs", [("pair", PAIRS), ("multi", TEXTS), ("hf", TEXTS),
                                          ("hf", PAIRS)])
def test_logits_match_transformers(classifiers, folders, name, inputs):
  ours = classifiers[name].logits(inputs, batch_size=2)
  theirs = _reference_logits(folders[name], inputs)
  assert ours.shape == theirs.shape and ours.dtype == np.float32
  assert np.abs(ours - theirs).max() < 1e-4
  assert np.abs(theirs).max() > 0.1  # not a match of two near-zero outputs


def test_labels_and_settings_round_trip(classifiers, folders):
  for name, labels, problem in (("pair", ("entail", "neutral", "contra", "off"), "single_label_classification"),
                                ("multi", ("a", "b", "c", "d"), "multi_label_classification"),
                                ("hf", ("LABEL_0",), "regression")):
    hf = transformers.AutoConfig.from_pretrained(folders[name])
    assert hf.id2label == dict(enumerate(labels)) and hf.label2id == {n: i for i, n in enumerate(labels)}
    assert hf.problem_type == (problem if name != "hf" else None)
    assert classifiers[name].label_names == labels and classifiers[name].problem_type == problem
  pair, multi, plain = classifiers["pair"], classifiers["multi"], classifiers["hf"]
  assert pair.pair is True and multi.pair is False and plain.pair is None
  assert pair.thresholds is None and plain.thresholds is None
  np.testing.assert_array_equal(multi.thresholds, MULTI_THRESHOLDS)
  assert pair.extra == {"trained_on": "nothing"} and pair.max_length == MAX_LENGTH
  assert plain.max_length == MAX_LENGTH  # the tokenizer's model_max_length
  # Classifiers of one architecture share compiled steps: a reload compiles nothing.
  assert TextClassifier.from_pretrained(folders["multi"])._forward is multi._forward  # pylint: disable=protected-access
  settings = json.loads(open(os.path.join(folders["multi"], "ycng_classifier.json")).read())
  assert settings["thresholds"] == MULTI_THRESHOLDS and settings["pair"] is False
  tokenizer = json.loads(open(os.path.join(folders["multi"], "tokenizer.json")).read())
  assert tokenizer["padding"] is None and tokenizer["truncation"]["max_length"] == MAX_LENGTH


@pytest.mark.filterwarnings("ignore:.*truncated:UserWarning")
def test_predictions_use_softmax_thresholds_and_raw_outputs(classifiers):
  multi = classifiers["multi"]
  logits = multi.logits(TEXTS)
  scores = multi.scores(TEXTS)
  np.testing.assert_allclose(scores, 1 / (1 + np.exp(-logits)), rtol=1e-6)
  for row, prediction in zip(scores, multi.predict(TEXTS)):
    over = [i for i in range(4) if row[i] > MULTI_THRESHOLDS[i]]
    assert prediction.labels == ["abcd"[i] for i in sorted(over, key=lambda i: -row[i])]
    assert "a" in prediction.labels and "b" not in prediction.labels
    assert prediction.scores == pytest.approx(dict(zip("abcd", row.tolist())))
  pair = classifiers["pair"]
  probs = pair.scores(PAIRS)
  np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
  for row, prediction in zip(probs, pair.predict(PAIRS)):
    assert prediction.labels == [pair.label_names[int(np.argmax(row))]]
    assert prediction.score == pytest.approx(row.max())
  plain = classifiers["hf"]
  outputs = plain.scores(TEXTS)
  np.testing.assert_array_equal(outputs, plain.logits(TEXTS))
  for value, prediction in zip(outputs[:, 0], plain.predict(TEXTS)):
    assert prediction.labels == [] and prediction.score == pytest.approx(value)
  # The input order comes back whatever the packing; a single str is one text.
  np.testing.assert_allclose(multi.logits(TEXTS[::-1]), logits[::-1], atol=1e-5)
  np.testing.assert_allclose(multi.logits(TEXTS[0]), logits[:1], atol=1e-5)
  assert multi.predict([]) == [] and multi.logits([]).shape == (0, 4)


def test_bad_inputs_and_folders_raise_user_errors(classifiers, folders, tokenizer_folder, tmp_path):
  pair, multi, plain = classifiers["pair"], classifiers["multi"], classifiers["hf"]
  with pytest.raises(UserError, match="takes single texts, not pairs"):
    multi.predict([("a", "b")])
  with pytest.raises(UserError, match="takes text pairs"):
    pair.predict(["a"])
  with pytest.raises(UserError, match=r"inputs\[1\] is empty"):
    multi.predict(["fine", "  "])
  with pytest.raises(UserError, match=r"inputs\[0\]\[1\] is empty"):
    pair.predict([("fine", "")])
  with pytest.raises(UserTypeError, match=r"inputs\[1\] is int"):
    multi.predict(["fine", 3])
  with pytest.raises(UserTypeError, match="mix single texts and pairs"):
    plain.predict(["a", ("a", "b")])
  with pytest.raises(UserError, match=r"inputs\[0\] has 3 texts"):
    plain.predict([("a", "b", "c")])
  for bad in (("a", "b"), None, b"bytes"):
    with pytest.raises(UserTypeError, match="pass a list of texts"):
      multi.predict(bad)
  with pytest.raises(UserError, match="batch_size must be an integer >= 1"):
    multi.predict(["a"], batch_size=0)
  with pytest.raises(UserFileError, match="neither a local model folder"):
    TextClassifier.from_pretrained(str(tmp_path / "missing"))
  with pytest.raises(UserError, match="holds a BertModel, not a sequence classifier"):
    TextClassifier.from_pretrained(tokenizer_folder)
  with pytest.raises(UserError, match="unknown precision 'fp8'"):
    TextClassifier.from_pretrained(folders["multi"], precision="fp8")
  (tmp_path / "no_weights").mkdir()
  (tmp_path / "no_weights" / "config.json").write_text(
      open(os.path.join(folders["multi"], "config.json")).read())
  with pytest.raises(UserFileError, match="model.safetensors"):
    TextClassifier.from_pretrained(str(tmp_path / "no_weights"))

  config = _config(num_labels=4)
  params = _params(config, 1)
  save = lambda **kw: save_classifier(tmp_path / "out", **{
      "params": params, "config": config, "tokenizer_folder": tokenizer_folder,
      "problem_type": "multi_label_classification", "label_names": list("abcd"),
      "max_length": MAX_LENGTH, **kw})
  with pytest.raises(UserError, match="2 label_names but the classifier head has 4 outputs"):
    save(label_names=["a", "b"])
  with pytest.raises(UserError, match="thresholds apply to multi-label models"):
    save(problem_type="single_label_classification", thresholds=0.3)
  with pytest.raises(UserError, match=r"thresholds\[1\] must be a number in \[0, 1\]"):
    save(thresholds=[0.5, 1.5, 0.5, 0.5])
  with pytest.raises(UserError, match="3 thresholds for 4 labels"):
    save(thresholds=[0.5, 0.5, 0.5])
  with pytest.raises(UserError, match="regression model has one output"):
    save(problem_type="regression")
  with pytest.raises(UserError, match="problem_type='binary'"):
    save(problem_type="binary")
  with pytest.raises(UserError, match="repeat a name"):
    save(label_names=["a", "b", "a", "d"])
  with pytest.raises(UserFileError, match="tokenizer_folder"):
    save(tokenizer_folder=str(tmp_path / "nowhere"))
  with pytest.raises(UserError, match="max_length must be an integer in"):
    save(max_length=1000)
  assert not (tmp_path / "out").exists()  # nothing is written before the checks pass


def test_predict_command(folders, capsys):
  assert cli.main(["predict", folders["multi"], "A man is playing a guitar.", "ok", "--top", "2"]) == 0
  out = capsys.readouterr().out.splitlines()
  assert out[0] == "A man is playing a guitar." and out[1].startswith("  labels: ")
  assert "a" in out[1][len("  labels: "):].split(", ")  # its threshold is 0
  assert len(out) == 2 * 4  # text, labels and the top 2 scores per text
  assert cli.main(["predict", folders["pair"], "a cat", "a dog", "--pair", "an animal",
                   "--json"]) == 0
  result = json.loads(capsys.readouterr().out)
  assert [r["input"] for r in result] == [["a cat", "an animal"], ["a dog", "an animal"]]
  assert set(result[0]["scores"]) == {"entail", "neutral", "contra", "off"} and len(result[0]["labels"]) == 1
  for argv, message in (
      ([folders["multi"], "a", "--pair", "b"], "takes single texts, not pairs"),
      ([folders["pair"], "a", "b", "c", "--pair", "x", "--pair", "y"], "3 texts and 2 --pair texts"),
      ([folders["multi"], ""], r"inputs[0] is empty"),
      ([folders["multi"] + "-missing", "a"], "neither a local model folder")):
    assert cli.main(["predict", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ycng: error: ") and message in err and len(err.splitlines()) == 1

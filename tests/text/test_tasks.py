"""load_task: a user's jsonl / csv files, SNLI / STS-B, their errors (file:line), min_label_count,
limit, and the built-in debtags / reuters_corn_grain / rotten_tomatoes tasks."""

import json

import numpy as np
import pytest

from ycng_jax import data
from ycng_jax.data import splits
from ycng_jax.errors import UserError
from ycng_jax.text.tasks import load_task


def _jsonl(path, rows):
  path.write_text("".join(json.dumps(r) + "\n" for r in rows))
  return path


def test_jsonl_single_label_split_by_group_and_seeded(tmp_path):
  rows = [{"text": f"review {i}", "label": ["bad", "good", "fine"][i % 3], "group": f"film{i // 4}"}
          for i in range(200)]
  path = _jsonl(tmp_path / "reviews.jsonl", rows)
  task = load_task(path)
  assert (task.problem_type, task.label_names, task.pair) == (
      "single_label_classification", ["bad", "fine", "good"], False)
  sizes = {name: len(split["label"]) for name, split in task.splits.items()}
  assert sum(sizes.values()) == 200 and sizes["test"] == 40 and sizes["validation"] == 20
  groups = {name: set(split["group"]) for name, split in task.splits.items()}
  assert not groups["train"] & groups["test"] and not groups["train"] & groups["validation"]
  train = task.splits["train"]
  assert train["label"].dtype == np.int32 and train["text"].dtype == object
  index = {f"review {i}": i for i in range(200)}
  assert all(task.label_names[label] == rows[index[text]]["label"]
             for text, label in zip(train["text"], train["label"]))
  again = load_task(path)
  assert list(again.splits["test"]["text"]) == list(task.splits["test"]["text"])
  assert list(load_task(path, seed=1).splits["test"]["text"]) != list(task.splits["test"]["text"])
  summary = task.summary()
  assert summary["splits"]["test"]["examples"] == 40
  assert sum(summary["splits"]["train"]["label_counts"].values()) == sizes["train"]
  json.dumps(summary)
  small = load_task(path, limit=10)
  assert {len(s["label"]) for s in small.splits.values()} == {10}
  assert set(small.splits["train"]["text"]) <= set(train["text"])
  fewer = load_task(path, train_limit=10)
  assert len(fewer.splits["train"]["label"]) == 10 and fewer.info["train_limit"] == 10
  assert set(fewer.splits["train"]["text"]) <= set(train["text"])
  for held_out in ("validation", "test"):
    assert list(fewer.splits[held_out]["text"]) == list(task.splits[held_out]["text"])


def test_csv_multi_label_pairs_with_a_test_file(tmp_path):
  (tmp_path / "train.csv").write_text(
      "text,text_b,labels\n" + '"pkg a, with a comma",doc a,x|y\npkg b,doc b,y\npkg c,doc c,\n' * 4)
  (tmp_path / "test.csv").write_text("text,text_b,labels\npkg d,doc d,x\n")
  task = load_task(tmp_path / "train.csv", test_file=tmp_path / "test.csv",
                   validation_fraction=0.25)
  assert (task.problem_type, task.label_names, task.pair) == (
      "multi_label_classification", ["x", "y"], True)
  assert [len(task.splits[s]["label"]) for s in ("train", "validation", "test")] == [9, 3, 1]
  train = task.splits["train"]
  assert train["label"].dtype == np.float32 and train["label"].shape == (9, 2)
  first = list(train["text"]).index("pkg a, with a comma")
  assert list(train["label"][first]) == [1, 1] and train["text_b"][first] == "doc a"
  assert task.splits["test"]["label"].tolist() == [[1, 0]]
  assert task.summary()["splits"]["train"]["without_label"] == 3
  (tmp_path / "grouped.csv").write_text("text,text_b,labels,group\n" + "a,b,x,g1\nc,d,y,g2\n" * 5)
  grouped = load_task(tmp_path / "grouped.csv")
  assert all("group" in split for split in grouped.splits.values())
  tested = load_task(tmp_path / "grouped.csv", test_file=tmp_path / "test.csv")
  assert not any("group" in split for split in tested.splits.values())  # same keys everywhere
  (tmp_path / "single.csv").write_text("text,text_b,label\npkg e,doc e,x\n")
  with pytest.raises(UserError, match=r"single.csv, line 2: the test file is not in the layout"):
    load_task(tmp_path / "train.csv", test_file=tmp_path / "single.csv")
  (tmp_path / "unpaired.csv").write_text("text,labels\npkg f,x\n")
  with pytest.raises(UserError, match=r"unpaired.csv, line 2: .*train.csv holds pairs"):
    load_task(tmp_path / "train.csv", test_file=tmp_path / "unpaired.csv")


def test_numeric_labels_classes_or_regression(tmp_path):
  ints = tmp_path / "ints.csv"
  ints.write_text("text,label\n" + "a,10\nb,2\nc,1\n" * 10)
  task = load_task(ints)
  assert task.problem_type == "single_label_classification" and task.label_names == ["1", "2", "10"]
  forced = load_task(ints, problem_type="regression")
  assert forced.label_names == [] and forced.splits["train"]["label"].dtype == np.float32
  assert set(forced.splits["train"]["label"]) <= {1.0, 2.0, 10.0}
  scores = _jsonl(tmp_path / "scores.jsonl",
                  [{"text": "a", "text_b": "b", "label": i / 4} for i in range(20)])
  task = load_task(scores)
  assert task.problem_type == "regression" and task.pair
  assert task.summary()["splits"]["train"]["label_max"] <= 4.75


def test_snli_jsonl_and_stsb_tsv(tmp_path):
  snli = [{"gold_label": g, "sentence1": f"premise {i // 3}", "sentence2": f"hypothesis {i}",
           "annotator_labels": [g], "pairID": str(i)}
          for i, g in enumerate(["entailment", "neutral", "contradiction", "-"] * 15)]
  train = _jsonl(tmp_path / "snli_1.0_train.jsonl", snli)
  dev = _jsonl(tmp_path / "snli_1.0_dev.jsonl", snli[:8])
  task = load_task(train, test_file=dev)
  assert task.label_names == ["entailment", "neutral", "contradiction"] and task.pair
  assert sum(len(s["label"]) for s in task.splits.values()) == 45 + 6  # "-" rows dropped
  premises = [set(task.splits[s]["text"]) for s in ("train", "validation")]
  assert not premises[0] & premises[1]  # hypotheses of one premise stay in one split
  header = "\t".join(["index", "genre", "filename", "year", "old_index", "source1", "source2",
                      "sentence1", "sentence2", "score"]) + "\n"
  rows = [f"{i}\tmain-captions\tMSRvid\t2012test\t{i:04d}\tnone\tnone\tA man {i}.\tA person {i}."
          f"\t{i % 6}.000\n" for i in range(30)]
  (tmp_path / "train.tsv").write_text(header + "".join(rows))
  (tmp_path / "dev.tsv").write_text(header + "".join(rows[:3]))
  task = load_task(tmp_path / "train.tsv", test_file=tmp_path / "dev.tsv")
  assert task.problem_type == "regression" and task.pair and task.label_names == []
  assert task.splits["test"]["label"].tolist() == [0, 1, 2]
  assert task.splits["test"]["text_b"][2] == "A person 2."
  (tmp_path / "test.tsv").write_text(header.replace("\tscore", "")
                                     + "0\tx\ty\t2012\t0\tn\tn\tA.\tB.\n")
  with pytest.raises(UserError, match=r"test.tsv, line 2: no score.*use dev.tsv"):
    load_task(tmp_path / "train.tsv", test_file=tmp_path / "test.tsv")


ERRORS = [  # file name, content, what the error says
    ("empty.jsonl", "", r"empty.jsonl: the file is empty"),
    ("header.csv", "text,label\n", r"header.csv: no examples"),
    ("nolabel.jsonl", '{"text": "a", "label": "x"}\n{"text": "b"}\n',
     r"nolabel.jsonl, line 2: no field 'label'"),
    ("notext.csv", "body,label\na,x\n",
     r"notext.csv, line 1: the header \['body', 'label'\] needs"),
    ("nopair.jsonl", '{"text": "a", "text_b": "b", "label": "x"}\n\n{"text": "c", "label": "x"}\n',
     r"nopair.jsonl, line 3: no field 'text_b'"),
    ("broken.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": \n',
     r"broken.jsonl, line 2: not valid JSON"),
    ("cells.csv", "text,label\na,x\nb,x,extra\n",
     r"cells.csv, line 3: 3 cells where the header has 2"),
    ("mixed.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "labels": ["x"]}\n',
     r"mixed.jsonl, line 2: mixed single- and multi-label rows.*mixed.jsonl, line 1 has 'label'"),
    ("emptytext.csv", 'text,label\n"",x\n',
     r"emptytext.csv, line 2: field 'text' must be a non-empty string"),
    ("binary.jsonl", b'{"text": "a", "label": "x"}\n{"text": "\xff"}\n',
     r"binary.jsonl, line 2: not UTF-8"),
    ("binary.csv", b"text,label\na,x\n\xff,x\n", r"binary.csv, line 3: not UTF-8"),
    ("words.txt", "a\n", r"words.txt: unknown file type '.txt'"),
]


@pytest.mark.parametrize("name,content,message", ERRORS, ids=[e[0] for e in ERRORS])
def test_file_errors_name_the_file_and_line(tmp_path, name, content, message):
  path = tmp_path / name
  path.write_bytes(content if isinstance(content, bytes) else content.encode())
  with pytest.raises(UserError, match=message):
    load_task(path)


def test_label_seen_only_in_test_is_named(tmp_path):
  train = _jsonl(tmp_path / "train.jsonl",
                 [{"text": f"t{i}", "label": "ab"[i % 2]} for i in range(8)])
  test = tmp_path / "test.jsonl"
  test.write_text('{"text": "u", "label": "a"}\n\n{"text": "v", "label": "zebra"}\n')
  with pytest.raises(UserError,
                     match=r"test.jsonl, line 3: label 'zebra' is never in the training data"):
    load_task(train, test_file=test)
  # a rare label that the seeded split puts in test only: its one row is a test row of seed 0
  rare_row = int(min(splits.seeded_partition(10, {"test": 0.5, "validation": 0.1}, 0)["test"]))
  rare = _jsonl(tmp_path / "rare.jsonl",
                [{"text": f"t{i}", "labels": ["a"] + ["rare"] * (i == rare_row)} for i in range(10)])
  with pytest.raises(UserError, match=rf"rare.jsonl, line {rare_row + 1}: label 'rare'.*"
                                      r"all its 1 example\(s\) in test"):
    load_task(rare, test_fraction=0.5)
  # min_label_count=1 drops it instead (the single-label example goes with it)
  task = load_task(train, test_file=test, min_label_count=1)
  assert task.label_names == ["a", "b"] and list(task.splits["test"]["text"]) == ["u"]
  assert task.summary()["min_label_count"]["labels_dropped"] == 1


def test_bad_arguments_and_unknown_names(tmp_path):
  with pytest.raises(UserError, match="Unknown text task 'no_such_task'"):
    load_task("no_such_task")
  with pytest.raises(UserError, match="missing.jsonl: no such file"):
    load_task(tmp_path / "missing.jsonl")
  with pytest.raises(UserError, match="validation_fraction \\+ test_fraction must be below 1"):
    load_task("rotten_tomatoes", validation_fraction=0.5, test_fraction=0.5)
  with pytest.raises(UserError, match="problem_type must be one of"):
    load_task("rotten_tomatoes", problem_type="ranking")
  with pytest.raises(UserError, match="'debtags' is a multi_label_classification task"):
    load_task("debtags", problem_type="regression")
  path = tmp_path / "x.csv"
  path.write_text("text,label\na,cat\nb,1.5\n")
  with pytest.raises(UserError, match=r"x.csv, line 2: the label 'cat' is not a number"):
    load_task(path, problem_type="regression")


def test_built_in_tasks_keep_their_test_splits():
  debtags = load_task("debtags", min_label_count=100)
  train = debtags.splits["train"]["label"]
  assert train.dtype == np.float32 and (train.sum(0) >= 100).all()
  assert 100 <= len(debtags.label_names) <= 135  # 135 tags have >= 100 examples in all 30,300
  original = data.load("debtags", "train")
  assert len(train) + len(debtags.splits["validation"]["label"]) == len(original["text"])
  assert set(debtags.splits["validation"]["text"]) <= set(original["text"])
  assert list(debtags.splits["test"]["text"]) == list(data.load("debtags", "test")["text"])
  # examples left without a kept tag stay (they are negatives of every kept tag)
  assert debtags.summary()["splits"]["test"]["without_label"] > 0
  reuters = load_task("reuters_corn_grain")
  assert reuters.label_names == ["corn", "grain"]
  assert reuters.splits["test"]["label"].shape == (604, 2)
  tomatoes = load_task("rotten_tomatoes")
  assert tomatoes.splits["train"]["label"].dtype == np.int32
  assert not set(tomatoes.splits["train"]["group"]) & set(tomatoes.splits["validation"]["group"])

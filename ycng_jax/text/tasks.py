"""Text tasks for fine-tuning: one loader for built-in data sets and a user's own files.

``load_task(dataset)`` gives a ``TextTask``: train / validation / test splits of texts (pairs
for pair tasks) and labels, with the problem type and label names the classifier head needs.
``dataset`` is a built-in name (``debtags``, ``reuters_corn_grain``, ``rotten_tomatoes``,
``debian_synopses``) or a file: jsonl / csv of ``text`` (``text_b``) and ``label`` /
``labels``, SNLI / MNLI jsonl, or STS-B tsv (``task_files.py``). See docs/data.md.
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np

from ycng_jax import checks
from ycng_jax.data import debian_synopses, splits as splitting
from ycng_jax.errors import UserError
from ycng_jax.text import task_files

SINGLE, MULTI, REGRESSION = ("single_label_classification", "multi_label_classification",
                             "regression")
PROBLEM_TYPES = (SINGLE, MULTI, REGRESSION)
SPLITS = ("train", "validation", "test")
BUILT_IN = {"debtags": MULTI, "reuters_corn_grain": MULTI, "rotten_tomatoes": SINGLE,
            "debian_synopses": SINGLE}


@dataclasses.dataclass
class TextTask:
  """Splits "train", "validation", "test", each ``{"text": object array of str, "text_b"
  (pairs only), "label": int32 (N,) | float32 (N,) for regression | float32 (N, L) multi-hot,
  "group" (optional): what the split kept together}``."""
  name: str
  problem_type: str
  label_names: list[str]
  pair: bool
  splits: dict[str, dict[str, np.ndarray]]
  info: dict = dataclasses.field(default_factory=dict)  # how it was made, for the summary

  def summary(self) -> dict:
    """Sizes and label counts of every split (JSON-ready), for a run's results."""
    return {"name": self.name, "problem_type": self.problem_type, "pair": self.pair,
            "num_labels": len(self.label_names), "label_names": list(self.label_names),
            "splits": {name: self._split_summary(split["label"])
                       for name, split in self.splits.items()},
            **self.info}

  def _split_summary(self, label: np.ndarray) -> dict:
    out = {"examples": int(len(label))}
    if self.problem_type == REGRESSION:
      if len(label):
        out.update(label_mean=float(label.mean()), label_std=float(label.std()),
                   label_min=float(label.min()), label_max=float(label.max()))
      return out
    if self.problem_type == MULTI:
      counts = label.sum(0)
      out["without_label"] = int((label.sum(1) == 0).sum())
    else:
      counts = np.bincount(label, minlength=len(self.label_names))
    out["label_counts"] = {n: int(c) for n, c in zip(self.label_names, counts)}
    return out


def load_task(dataset: str | os.PathLike, *, problem_type: str | None = None,
              test_file: str | os.PathLike | None = None, validation_fraction: float = 0.1,
              test_fraction: float = 0.2, seed: int = 0, min_label_count: int = 0,
              limit: int = 0, train_limit: int = 0) -> TextTask:
  """The task ``dataset`` names: a built-in name or a task file (see the module doc).

  Splits are drawn with ``seed``, keeping each ``group`` in one split. A file without
  ``test_file`` (and ``debian_synopses``) is split three ways: ``test_fraction`` of it for
  test, ``validation_fraction`` for validation. Otherwise validation is a
  ``validation_fraction`` of the training data; built-in data sets keep their test split.
  ``min_label_count`` keeps the labels with at least that many training examples (examples of
  a dropped single label go; multi-label examples stay, maybe with no label left). ``limit``
  keeps a seeded sample of at most that many examples in each split, for quick runs;
  ``train_limit`` one of the training split only (before ``min_label_count``), so that a run
  on less training data is still judged on the whole held-out split.
  """
  validation_fraction = checks.real_number("validation_fraction", validation_fraction, 0, 1)
  test_fraction = checks.real_number("test_fraction", test_fraction, 0, 1)
  if validation_fraction + test_fraction >= 1:
    raise UserError(f"validation_fraction + test_fraction must be below 1 (some data must be "
                    f"left to train on), got {validation_fraction} + {test_fraction}.")
  seed = checks.check_seed(seed) % 2**64  # numpy's generators take non-negative seeds
  min_label_count = checks.whole_number("min_label_count", min_label_count, 0)
  limit = checks.whole_number("limit", limit, 0)
  train_limit = checks.whole_number("train_limit", train_limit, 0)
  if problem_type is not None and problem_type not in PROBLEM_TYPES:
    raise UserError(f"problem_type must be one of {', '.join(PROBLEM_TYPES)} (or None to "
                    f"infer it), got {problem_type!r}.")
  dataset = os.fspath(dataset)
  fractions = {"validation": validation_fraction, "test": test_fraction}
  if dataset in BUILT_IN:
    if problem_type not in (None, BUILT_IN[dataset]):
      raise UserError(f"'{dataset}' is a {BUILT_IN[dataset]} task; problem_type={problem_type} "
                      "does not fit it (leave it unset).")
    if test_file is not None:
      raise UserError(f"test_file is for a task file of your own; '{dataset}' has its test split.")
    task = _load_built_in(dataset, fractions, seed)
  elif os.path.exists(dataset) or os.sep in dataset or "." in dataset:
    task = _load_files(dataset, test_file, problem_type, fractions, seed,
                       check_held_out_labels=min_label_count == 0)
  else:
    raise UserError(f"Unknown text task '{dataset}': give one of {', '.join(BUILT_IN)} or a "
                    f"task file ({task_files.FORMATS}).")
  task.splits = {name: _take(split, splitting.seeded_subset(len(split["label"]), limit, seed))
                 for name, split in task.splits.items()}
  if train_limit:
    train = task.splits["train"]
    task.splits["train"] = _take(train, splitting.seeded_subset(len(train["label"]),
                                                                train_limit, seed))
    task.info["train_limit"] = train_limit
  if min_label_count:
    _keep_frequent_labels(task, min_label_count)
  if not len(task.splits["train"]["label"]):
    raise UserError(f"'{dataset}': no training examples are left; give more data or lower "
                    "validation_fraction / test_fraction.")
  if limit:
    task.info["limit"] = limit
  return task


def synopsis_pairs(split: str, *, validation_fraction: float = 0.1, test_fraction: float = 0.2,
                   seed: int = 0, limit: int = 0) -> dict[str, np.ndarray]:
  """The (synopsis, long description) pairs of the packages ``load_task("debian_synopses")``
  with the same fractions and seed puts in ``split``, for retrieval: ``package``, ``synopsis``,
  ``description``, ``description_id`` (equal for equal descriptions), ``group`` (source
  package). See ``ycng_jax.data.debian_synopses.synopsis_pairs``."""
  return debian_synopses.synopsis_pairs(
      split, validation_fraction=validation_fraction, test_fraction=test_fraction,
      seed=checks.check_seed(seed) % 2**64, limit=checks.whole_number("limit", limit, 0))


def _take(split: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
  return {key: values[rows] for key, values in split.items()}


def _partition(split: dict[str, np.ndarray], fractions: dict[str, float],
               seed: int) -> dict[str, dict[str, np.ndarray]]:
  """``split`` cut into "train" and the parts of ``fractions``, by ``group`` if it has one."""
  n = len(split["label"])
  parts = (splitting.group_partition(split["group"], fractions, seed) if "group" in split
           else splitting.seeded_partition(n, fractions, seed))
  return {name: _take(split, rows) for name, rows in parts.items()}


# --- built-in data sets -------------------------------------------------------------------

def _load_built_in(name: str, fractions: dict[str, float], seed: int) -> TextTask:
  if name == "debian_synopses":
    return _debian_synopses(fractions, seed)
  from ycng_jax import data  # pylint: disable=import-outside-toplevel  (TFDS: slow to import)
  group_key = {"rotten_tomatoes": "movie"}.get(name)

  def columns(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {"text": arrays["text"]}
    out["label"] = (arrays["labels"].astype(np.float32) if BUILT_IN[name] == MULTI
                    else arrays["label"].astype(np.int32))
    if group_key:
      out["group"] = arrays[group_key]
    return out

  parts = _partition(columns(data.load(name, "train")), {"validation": fractions["validation"]},
                     seed)
  return TextTask(name, BUILT_IN[name], data.label_names(name), False,
                  {"train": parts["train"], "validation": parts["validation"],
                   "test": columns(data.load(name, "test"))},
                  info={"source": data.info(name)["source"],
                        "test_split": f"the {name} dataset's own test split"})


def _debian_synopses(fractions: dict[str, float], seed: int) -> TextTask:
  by_split = debian_synopses.split_packages(
      debian_synopses.packages(), validation_fraction=fractions["validation"],
      test_fraction=fractions["test"], seed=seed)
  task_splits, negatives = {}, {}
  for number, name in enumerate(SPLITS):
    examples = debian_synopses.pair_examples(by_split[name], seed=[seed, number])
    task_splits[name] = {k: examples[k] for k in ("text", "text_b", "label", "group")}
    kinds, counts = np.unique(examples["negative"][examples["label"] == 0], return_counts=True)
    negatives[name] = {str(k): int(c) for k, c in zip(kinds, counts)}
  info = {"source": "apt's Packages + Translation-en lists (synopsis, long description, Source)",
          "packages": {name: len(by_split[name]) for name in SPLITS},
          "source_packages": {name: len({r["source"] for r in by_split[name]}) for name in SPLITS},
          "negatives": negatives}
  return TextTask("debian_synopses", SINGLE, list(debian_synopses.LABEL_NAMES), True,
                  task_splits, info)


# --- task files ---------------------------------------------------------------------------

def _load_files(path: str, test_file, problem_type: str | None, fractions: dict[str, float],
                seed: int, check_held_out_labels: bool) -> TextTask:
  files = [task_files.read_rows(path)]
  if test_file is not None:
    files.append(task_files.read_rows(test_file))
    _check_same_layout(*files)
  problem_type, label_names = _problem_type(files, problem_type)
  encoded = [_encode(rows, problem_type, label_names) for rows in files]
  if test_file is None:
    task_splits = _partition(encoded[0], {"test": fractions["test"],
                                          "validation": fractions["validation"]}, seed)
  else:
    task_splits = _partition(encoded[0], {"validation": fractions["validation"]}, seed)
    task_splits["test"] = encoded[1]
  if check_held_out_labels and problem_type != REGRESSION and files[0].label_names is None:
    _check_held_out_labels(task_splits, label_names, problem_type, files)
  grouped = all("group" in split for split in task_splits.values())
  for split in task_splits.values():
    del split["where"]
    if not grouped:  # a test file without the training file's groups: no split has them
      split.pop("group", None)
  info = {"source": str(path),
          "test_split": str(test_file) if test_file is not None else "seeded split of the source"}
  return TextTask(os.path.basename(str(path)), problem_type, label_names,
                  files[0].text_b is not None, {name: task_splits[name] for name in SPLITS}, info)


def _check_same_layout(train: task_files.Rows, test: task_files.Rows) -> None:
  where = test.where(0)
  if (test.text_b is None) != (train.text_b is None):
    pairs, single = (train, test) if test.text_b is None else (test, train)
    raise UserError(f"{where}: {pairs.path} holds pairs (text, text_b) but {single.path} single "
                    "texts; give the training and the test file the same fields.")
  if (test.multi, test.label_names, test.regression) != (train.multi, train.label_names,
                                                          train.regression):
    raise UserError(f"{where}: the test file is not in the layout of the training file "
                    f"{train.path} (one has 'label', the other 'labels', or they are different "
                    "formats); give both in the same format.")


def _number(value) -> float | None:
  """``value`` as a finite float (a number, or a csv cell such as "3.5"), else None."""
  try:
    number = float(value)
  except (TypeError, ValueError):
    return None
  return number if math.isfinite(number) else None


def _problem_type(files: list[task_files.Rows], forced: str | None) -> tuple[str, list[str]]:
  """The problem type (``forced`` or inferred) and the sorted label names of the files."""
  first = files[0]
  fixed = REGRESSION if first.regression else SINGLE if first.label_names else None
  if fixed:  # STS-B, SNLI / MNLI
    if forced not in (None, fixed):
      raise UserError(f"{first.path} is a {fixed} data set; problem_type={forced} does not fit.")
    return fixed, list(first.label_names or [])
  rows = [(f, i, label) for f in files for i, label in enumerate(f.labels)]
  if first.multi:
    if forced in (SINGLE, REGRESSION):
      raise UserError(f"{first.where(0)}: problem_type={forced} needs one label a row ('label'); "
                      "this file has 'labels' (multi-label).")
    return MULTI, _sorted_names({str(v) for _, _, labels in rows for v in labels})
  numbers = [_number(label) for _, _, label in rows]
  inferred_regression = (forced is None and None not in numbers
                         and any(not x.is_integer() for x in numbers))
  if forced == REGRESSION or inferred_regression:
    for (f, i, label), x in zip(rows, numbers):
      if x is None:
        raise UserError(f"{f.where(i)}: the label {label!r} is not a number, and regression "
                        "needs numbers.")
    return REGRESSION, []
  return forced or SINGLE, _sorted_names({str(label) for _, _, label in rows})


def _sorted_names(names: set[str]) -> list[str]:
  """Numeric class names in numeric order (2 before 10), others alphabetically."""
  if all(_number(n) is not None for n in names):
    return sorted(names, key=float)
  return sorted(names)


def _encode(rows: task_files.Rows, problem_type: str, label_names: list[str]) -> dict:
  out = {"text": np.asarray(rows.text, object),
         "where": np.asarray([rows.where(i) for i in range(len(rows.text))], object)}
  if rows.text_b is not None:
    out["text_b"] = np.asarray(rows.text_b, object)
  if rows.groups is not None:
    out["group"] = np.asarray(rows.groups, object)
  if problem_type == REGRESSION:
    out["label"] = np.asarray([float(v) for v in rows.labels], np.float32)
  elif rows.label_names:  # NLI: the reader gives ids
    out["label"] = np.asarray(rows.labels, np.int32)
  else:
    index = {name: i for i, name in enumerate(label_names)}
    if problem_type == MULTI:
      out["label"] = np.zeros((len(rows.labels), len(label_names)), np.float32)
      for row, labels in enumerate(rows.labels):
        out["label"][row, [index[str(v)] for v in (labels if rows.multi else [labels])]] = 1
    else:
      out["label"] = np.asarray([index[str(v)] for v in rows.labels], np.int32)
  return out


def _check_held_out_labels(task_splits: dict, label_names: list[str], problem_type: str,
                           files: list[task_files.Rows]) -> None:
  """A label of validation or test must be in train: a model cannot learn a class it never saw."""
  def present(label: np.ndarray) -> np.ndarray:  # (N, L) bool
    return label > 0 if problem_type == MULTI else np.eye(len(label_names), dtype=bool)[label]

  in_train = present(task_splits["train"]["label"]).any(0)
  for split in ("validation", "test"):
    held_out = present(task_splits[split]["label"])
    unseen = np.flatnonzero(held_out.any(0) & ~in_train)
    if not len(unseen):
      continue
    name, rows = label_names[unseen[0]], np.flatnonzero(held_out[:, unseen[0]])
    where = task_splits[split]["where"][rows[0]]
    how = "it is in the test file but never in the training file" if len(files) > 1 and \
        split == "test" else (f"the seeded split put all its {len(rows)} example(s) in "
                              f"{split}, none in train")
    raise UserError(f"{where}: label '{name}' is never in the training data ({files[0].path}): "
                    f"{how}. Add training examples of it, remove it, or pass min_label_count=1 "
                    "to drop labels without training examples.")


def _keep_frequent_labels(task: TextTask, minimum: int) -> None:
  """Keeps the labels with >= ``minimum`` training examples (counted after ``limit``)."""
  if task.problem_type == REGRESSION:
    raise UserError("min_label_count is for classification tasks, not regression.")
  train = task.splits["train"]["label"]
  counts = (train.sum(0) if task.problem_type == MULTI
            else np.bincount(train, minlength=len(task.label_names)))
  keep = np.flatnonzero(counts >= minimum)
  if not len(keep):
    raise UserError(f"min_label_count={minimum}: no label has that many training examples "
                    f"(the most frequent has {int(counts.max(initial=0))}).")
  for name, split in task.splits.items():
    if task.problem_type == MULTI:
      split["label"] = split["label"][:, keep]
    else:
      new_id = np.full(len(task.label_names), -1, np.int32)
      new_id[keep] = np.arange(len(keep))
      labels = new_id[split["label"]]
      split = task.splits[name] = _take(split, np.flatnonzero(labels >= 0))
      split["label"] = labels[labels >= 0]
  task.info["min_label_count"] = {"minimum": minimum, "labels_kept": int(len(keep)),
                                  "labels_dropped": len(task.label_names) - int(len(keep))}
  task.label_names = [task.label_names[i] for i in keep]

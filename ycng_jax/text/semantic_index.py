"""A searchable folder of a corpus: embeddings, a saved ``Index`` and the documents.

  ycng index build debtags --out runs/debtags_index        # or a .txt (one doc a line) / .jsonl
  ycng search runs/debtags_index "tool to convert audio files" -k 10

The folder holds ``embeddings/`` (resumable chunk store), ``index.ycng`` (``Index.save``),
``documents.jsonl`` (id, title, text) and ``info.json`` (model, backend, sizes).
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Sequence

from ycng_jax.checks import whole_number
from ycng_jax.data import readers
from ycng_jax.errors import UserError, UserFileError
from ycng_jax.search import Index
from ycng_jax.search.index import check_backend
from ycng_jax.text import corpus as corpus_lib

INFO, INDEX, DOCUMENTS, EMBEDDINGS = "info.json", "index.ycng", "documents.jsonl", "embeddings"
TITLE_KEYS = ("package", "movie", "title", "id")
CORPUS_FILES = (".txt", ".jsonl")
CORPUS_KINDS = ("a .txt file (one document a line), a .jsonl file (one JSON object with a 'text' "
                "field a line) or a dataset name (`ycng data list`)")


def _jsonl_records(path: pathlib.Path) -> list[dict]:
  records = []
  for number, record in readers.jsonl_objects(path, "with a 'text' field"):
    where = f"{path}, line {number}"
    if "text" not in record:
      raise UserError(f"{where}: the record has no 'text' field (its fields: {sorted(record)}); "
                       "every record needs one.")
    if not isinstance(record["text"], str):
      raise UserError(f"{where}: 'text' is a {type(record['text']).__name__}, not a string.")
    records.append(record)
  return records


def _looks_like_a_path(corpus: str) -> bool:
  """A name with a folder or a file extension in it; dataset names have neither."""
  return "/" in corpus or os.sep in corpus or bool(pathlib.Path(corpus).suffix)


def corpus_documents(corpus: str, *, split: str = "all", limit: int | None = None) -> dict[str, list]:
  """``{"text": [...], "title": [...]}`` of a dataset name, a .txt file or a .jsonl file.

  Raises:
    FileNotFoundError: ``corpus`` names a file (a .txt / .jsonl one, or a path that is not a
      dataset name) that does not exist.
    ValueError: a file that is not a corpus, a .jsonl line that is not a record with a 'text'
      string, or ``limit`` < 1.
  """
  if limit is not None:
    limit = whole_number("limit (the number of documents to keep)", limit, 1)
  path = pathlib.Path(corpus)
  if path.suffix in CORPUS_FILES and not path.exists():
    raise UserFileError(f"corpus file {corpus!r} not found; a corpus is {CORPUS_KINDS}.")
  if path.suffix in CORPUS_FILES and path.is_file():
    if path.suffix == ".txt":
      texts = [line for _, line in readers.numbered_lines(path)]
      titles = [f"line {i + 1}" for i in range(len(texts))]
    else:
      rows = _jsonl_records(path)
      texts = [r["text"] for r in rows]
      titles = [str(next((r[k] for k in TITLE_KEYS if k in r), i)) for i, r in enumerate(rows)]
  else:
    from ycng_jax.data import registry  # pylint: disable=import-outside-toplevel
    if corpus not in registry.list_datasets() and not corpus.startswith(registry.TFDS_PREFIX):
      if path.exists():
        raise UserError(f"{corpus!r} is not a corpus: a corpus is {CORPUS_KINDS}.")
      if _looks_like_a_path(corpus):
        raise UserFileError(f"{corpus!r}: no such file, nor a dataset name; a corpus is "
                                f"{CORPUS_KINDS}.")
    splits = ["train", "test"] if split == "all" else [split]
    texts, titles = [], []
    for s in splits:
      arrays = registry.load(corpus, s)
      if "text" not in arrays:
        raise UserError(f"Dataset '{corpus}' has no 'text' feature; it has {sorted(arrays)}.")
      key = next((k for k in TITLE_KEYS if k in arrays), None)
      texts += list(arrays["text"])
      titles += [str(t) for t in arrays[key]] if key else [f"{s} {i}" for i in range(len(arrays["text"]))]
  if limit is not None:
    texts, titles = texts[:limit], titles[:limit]
  return {"text": texts, "title": titles}


def build(corpus: str, out: str | os.PathLike, *, model: str = "all-MiniLM-L6-v2",
          backend: str = "exact", split: str = "all", limit: int | None = None,
          batch_size: int = 64, chunk_size: int = 4096, precision: str = "float32",
          progress: bool = True) -> dict:
  """Embeds the corpus (resumable), builds and saves the index; returns ``info.json``'s dict.

  Every argument, and the corpus, is checked before anything is embedded or ``out`` is made.
  """
  from ycng_jax.text.encoder import precision_kwargs  # pylint: disable=import-outside-toplevel
  from ycng_jax.models.hf_weights import (  # pylint: disable=import-outside-toplevel
      resolve_model_folder)
  check_backend(backend)
  whole_number("batch_size", batch_size, 1)
  whole_number("chunk_size", chunk_size, 1)
  precision_kwargs(precision)
  resolve_model_folder(model)
  out = pathlib.Path(out)
  if out.exists() and not out.is_dir():
    raise UserError(f"out={os.fspath(out)!r} is a file; give a folder (it is created if missing).")
  documents = corpus_documents(corpus, split=split, limit=limit)
  if not documents["text"]:
    raise UserError(f"the corpus {corpus!r} holds no documents (blank lines do not count): "
                     "nothing to index.")
  out.mkdir(parents=True, exist_ok=True)
  embeddings = corpus_lib.embed_corpus(documents["text"], out / EMBEDDINGS, model=model,
                                       batch_size=batch_size, chunk_size=chunk_size,
                                       precision=precision, progress=progress)
  index = corpus_lib.build_index(embeddings, backend=backend)
  index.save(out / INDEX)
  with (out / DOCUMENTS).open("w", encoding="utf-8") as f:
    for i, (title, text) in enumerate(zip(documents["title"], documents["text"])):
      f.write(json.dumps({"id": i, "title": title, "text": text}) + "\n")
  info = {"corpus": corpus, "model": model, "precision": precision, "backend": backend,
          "documents": len(documents["text"]),
          "dim": int(embeddings.shape[1])}
  (out / INFO).write_text(json.dumps(info, indent=2))
  return info


def _read_documents(folder: pathlib.Path) -> list[dict]:
  with (folder / DOCUMENTS).open(encoding="utf-8") as f:
    return [json.loads(line) for line in f]


def search(folder: str | os.PathLike, queries: Sequence[str], k: int = 10, *, encoder=None) -> list[list[dict]]:
  """The ``k`` best documents for each query: dicts of rank, score, id, title, text."""
  folder = pathlib.Path(folder)
  if not (folder / INFO).is_file():
    raise UserFileError(f"{folder} is not an index folder (no {INFO}); build one with "
                        "`ycng index build CORPUS --out DIR`.")
  info = json.loads((folder / INFO).read_text())
  if encoder is None:
    from ycng_jax.text.encoder import (  # pylint: disable=import-outside-toplevel
        Encoder, precision_kwargs)
    encoder = Encoder.from_pretrained(info["model"],
                                      **precision_kwargs(info.get("precision", "float32")))
  index = Index.load(folder / INDEX)
  scores, ids = index.search(encoder.encode(list(queries)), min(k, index.ntotal))
  documents = _read_documents(folder)
  return [[{"rank": r + 1, "score": float(s), **documents[i]}
           for r, (s, i) in enumerate(zip(row_scores, row_ids)) if i >= 0]
          for row_scores, row_ids in zip(scores, ids)]

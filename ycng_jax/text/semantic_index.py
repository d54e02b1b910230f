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


from ycng_jax.errors import UserFileError
from ycng_jax.search import Index
from ycng_jax.text import corpus as corpus_lib

INFO, INDEX, DOCUMENTS, EMBEDDINGS = "info.json", "index.ycng", "documents.jsonl", "embeddings"
TITLE_KEYS = ("package", "movie", "title", "id")


def corpus_documents(corpus: str, *, split: str = "all", limit: int | None = None) -> dict[str, list]:
  """``{"text": [...], "title": [...]}`` of a dataset name, a .txt file or a .jsonl file."""
  path = pathlib.Path(corpus)
  if path.suffix == ".txt" and path.is_file():
    texts = [line.rstrip("\n") for line in path.open(encoding="utf-8") if line.strip()]
    titles = [f"line {i + 1}" for i in range(len(texts))]
  elif path.suffix == ".jsonl" and path.is_file():
    rows = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
    if rows and "text" not in rows[0]:
      raise ValueError(f"{path}: each jsonl record needs a 'text' field; the first has {sorted(rows[0])}.")
    texts = [r["text"] for r in rows]
    titles = [str(next((r[k] for k in TITLE_KEYS if k in r), i)) for i, r in enumerate(rows)]
  else:
    from ycng_jax import data  # pylint: disable=import-outside-toplevel
    splits = ["train", "test"] if split == "all" else [split]
    texts, titles = [], []
    for s in splits:
      arrays = data.load(corpus, s)
      if "text" not in arrays:
        raise ValueError(f"Dataset '{corpus}' has no 'text' feature; it has {sorted(arrays)}.")
      key = next((k for k in TITLE_KEYS if k in arrays), None)
      texts += list(arrays["text"])
      titles += [str(t) for t in arrays[key]] if key else [f"{s} {i}" for i in range(len(arrays["text"]))]
  if limit:
    texts, titles = texts[:limit], titles[:limit]
  return {"text": texts, "title": titles}


def build(corpus: str, out: str | os.PathLike, *, model: str = "all-MiniLM-L6-v2",
          backend: str = "exact", split: str = "all", limit: int | None = None,
          batch_size: int = 64, chunk_size: int = 4096, precision: str = "float32",
          progress: bool = True) -> dict:
  """Embeds the corpus (resumable), builds and saves the index; returns ``info.json``'s dict."""
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  documents = corpus_documents(corpus, split=split, limit=limit)
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

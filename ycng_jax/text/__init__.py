"""Text: sentence embeddings (``Encoder``), text classification (``TextClassifier``,
``save_classifier``), zero-shot classification (``zero_shot_classify``), and the text tasks built on them.

Names are imported lazily (PEP 562): ``import ycng_jax.text`` does not load jax or a model.
"""

from ycng_jax._lazy import lazy_exports

_EXPORTS = {
    "Encoder": "encoder", "length_buckets": "packing",
    "Prediction": "classifier", "TextClassifier": "classifier", "save_classifier": "classifier",
    "zero_shot_classify": "zero_shot",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

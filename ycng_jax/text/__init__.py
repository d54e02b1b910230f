"""Text: sentence embeddings (``Encoder``), and the text tasks built on them."""

from ycng_jax.text.encoder import Encoder, length_buckets

__all__ = ["Encoder", "length_buckets"]

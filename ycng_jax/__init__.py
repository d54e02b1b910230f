"""ycng-jax: a JAX/Flax research codebase for a graduate deep-learning course.

Models are pure functions (Flax Linen ``init``/``apply``), steps are jitted over a
device ``Mesh``, and every experiment is a config under ``experiments/``.
"""

__version__ = "0.1.0"

from ycng_jax import allocator as _allocator  # pylint: disable=wrong-import-position

_allocator.tune()  # with YCNG_JAX_MALLOC=reuse: see ycng_jax/allocator.py

"""JAX's persistent compilation cache in a folder of a run's own, for as long as the run lasts.

A resumed run (after ``kill -9``, a pre-emption or a crash) compiles the same programs as the
run it continues: with the cache, it loads their executables from disk instead. That is seconds
a program on a CPU and can be minutes on a GPU. ``ycng run`` keeps it in
``WORKDIR/xla_cache/HOST``, the tuner in ``STUDY_DIR/xla_cache/HOST``: one folder per host (an
executable is built for its machine), deleted with the run's folder, safe to delete any time.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import socket


def host() -> str:
  return socket.gethostname()


@contextlib.contextmanager
def persistent_compilation_cache(folder: str | os.PathLike):
  """Cache every compiled program in ``folder``, however quick its compile: the eval step
  (~0.5 s) and small programs count too.

  A cache the user configured (``JAX_COMPILATION_CACHE_DIR``, ``jax_enable_compilation_cache
  =False``), or an enclosing one (a tuner's trial), is left as it is; yields the folder in use,
  or None then.
  """
  import jax  # pylint: disable=import-outside-toplevel
  from jax.experimental.compilation_cache import compilation_cache as cc  # pylint: disable=import-outside-toplevel
  if jax.config.jax_compilation_cache_dir or not jax.config.jax_enable_compilation_cache:
    yield None
    return
  key = "jax_persistent_cache_min_compile_time_secs"
  saved = getattr(jax.config, key)
  jax.config.update("jax_compilation_cache_dir", str(folder))
  jax.config.update(key, 0.0)
  cc.reset_cache()  # JAX decides once per process whether it uses a cache: ask again
  try:
    yield pathlib.Path(folder)
  finally:
    jax.config.update("jax_compilation_cache_dir", None)
    jax.config.update(key, saved)
    cc.reset_cache()

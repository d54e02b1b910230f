"""For tests of our persistent compilation caches: the suite's own cache (tests/conftest.py)
unset while the block runs, and JAX's monitoring events of the block in a list."""

import contextlib


@contextlib.contextmanager
def without_the_suites_cache():
  """Yields the list of JAX monitoring events (cache hits among them) recorded in the block;
  the suite's cache and a clean JAX state are put back after it, and the block must leave no
  cache set behind (checked)."""
  import jax  # pylint: disable=import-outside-toplevel
  from jax.experimental.compilation_cache import compilation_cache as cc  # pylint: disable=import-outside-toplevel
  events = []

  def listen(event, **_):
    events.append(event)

  outer = jax.config.jax_compilation_cache_dir
  jax.config.update("jax_compilation_cache_dir", None)
  cc.reset_cache()
  jax.monitoring.register_event_listener(listen)
  try:
    yield events
    assert jax.config.jax_compilation_cache_dir is None  # put back as it was
  finally:
    jax.monitoring.unregister_event_listener(listen)
    jax.config.update("jax_compilation_cache_dir", outer)
    cc.reset_cache()

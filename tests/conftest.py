"""Every test process sees 8 simulated CPU devices, so sharding is always exercised."""

import os
import shutil
import tempfile

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# 2, not 3: XLA's errors (a collective "may be stuck", a fatal abort's reason) stay visible;
# pyproject's --capture=sys lets them reach the terminal even when a process aborts.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# One persistent XLA compilation cache per test run, shared by both pytest-xdist workers and by
# the `ycng` subprocesses the tests start (they inherit the environment): the same small
# programs then compile once per run, not once per process, per resumed run or per
# jax.clear_caches() of the tuner's trials (15% less CPU on the experiment, tuning and resume
# tests). The process that creates the directory (pytest's main process, which starts the
# workers) removes it at the end, so nothing carries over from one run to the next.
_OWN_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _OWN_CACHE = tempfile.mkdtemp(prefix="ycng-jax-test-xla-cache-")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "-1"


def pytest_unconfigure(config):
  if _OWN_CACHE is not None and not hasattr(config, "workerinput"):
    shutil.rmtree(_OWN_CACHE, ignore_errors=True)

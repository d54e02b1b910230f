"""ycng_jax.allocator: with YCNG_JAX_MALLOC=reuse, XLA:CPU's large temporaries reuse their pages
instead of faulting them in again on every run (a fresh process each way: glibc's settings are
per process); so do they under tcmalloc (LD_PRELOAD), the alternative docs/training.md gives and
scripts/install.sh installs."""

import json
import os
import subprocess
import sys

import pytest

# A program with a 29 MB temporary on every run (a 3x3 convolution's shifted copies, as
# ycng_jax.models.layers.PatchConv makes them, then one matmul): the median of its minor page
# faults over 15 runs is ~13,000 with glibc's defaults (new pages every run) and 0 with reuse
# (measured: one or two runs in ten still fault, where Python's small blocks took the freed
# space; hence the median, not the mean).
PROBE = """
import json, resource, sys
import ycng_jax
import jax, jax.numpy as jnp

def conv(x, k):
  p = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  shifted = [p[:, i:i + 14, j:j + 14, :] for i in range(3) for j in range(3)]
  return (jnp.concatenate(shifted, -1) @ k).sum()

f = jax.jit(conv)
x, k = jnp.ones((128, 14, 14, 32), jnp.float32), jnp.ones((288, 64), jnp.float32)
for _ in range(5):
  f(x, k).block_until_ready()
faults = []
for _ in range(15):
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  f(x, k).block_until_ready()
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
tcmalloc = "tcmalloc" in open("/proc/self/maps").read()
print(json.dumps({"tuned": ycng_jax.allocator.tune(), "faults": sorted(faults)[7],
                  "tcmalloc": tcmalloc}))
"""


def probe(**env):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "LD_PRELOAD": "", **env}
  out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
                       env=env, timeout=120)
  return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_large_temporaries_reuse_their_pages_when_the_user_asks():
  ours, system = probe(YCNG_JAX_MALLOC="reuse"), probe(YCNG_JAX_MALLOC="")
  print(ours, system)
  assert ours["tuned"] and not system["tuned"]
  assert system["faults"] > 5_000  # 29 MB of new pages a run: 7,000 at 4 KiB, and more
  assert ours["faults"] < system["faults"] / 10


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="LD_PRELOAD of a .so")
def test_large_temporaries_reuse_their_pages_under_tcmalloc():
  tcmalloc, system = probe(LD_PRELOAD="libtcmalloc_minimal.so.4"), probe(YCNG_JAX_MALLOC="")
  print(tcmalloc, system)
  assert tcmalloc["tcmalloc"], ("tcmalloc did not load: install Debian's libtcmalloc-minimal4 "
                                "(scripts/install.sh does)")
  assert not tcmalloc["tuned"] and not system["tcmalloc"]
  assert tcmalloc["faults"] < system["faults"] / 10

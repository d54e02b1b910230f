"""Two real processes on localhost (CPU, gloo collectives) train together on process-sharded
data and end with the same params as one process that sees the whole batch."""

import os
import socket
import subprocess
import sys

import numpy as np

WORKER = os.path.join(os.path.dirname(__file__), "multihost_worker.py")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _env():
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)  # each worker sets its own device count
  return env


def test_two_processes_match_one_process(tmp_path):
  port = _free_port()
  procs = [subprocess.Popen([sys.executable, WORKER, str(i), "2", str(port), str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=_env()) for i in range(2)]
  reference = subprocess.run([sys.executable, WORKER, "0", "1", "0", str(tmp_path)],
                             capture_output=True, text=True, env=_env(), timeout=300)
  outputs = [p.communicate(timeout=300)[0] for p in procs]
  for p, out in zip(procs, outputs):
    assert p.returncode == 0, out[-3000:]
  assert reference.returncode == 0, reference.stderr[-3000:]
  one = np.load(tmp_path / "params_1_0.npz")
  p0, p1 = np.load(tmp_path / "params_2_0.npz"), np.load(tmp_path / "params_2_1.npz")
  for key in one.files:
    np.testing.assert_array_equal(p0[key], p1[key])  # the two processes agree exactly
    np.testing.assert_allclose(p0[key], one[key], rtol=1e-5, atol=1e-6)
  # both processes wrote one shared backup (orbax coordinates the processes)
  assert sorted(os.listdir(tmp_path / "backup_2")) == sorted(os.listdir(tmp_path / "backup_1"))

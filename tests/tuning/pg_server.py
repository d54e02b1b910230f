"""A real PostgreSQL server for a test: initdb + pg_ctl on a temporary data dir, localhost only.

Debian's `postgresql` package (scripts/install.sh --test) puts the server programs in
/usr/lib/postgresql/VERSION/bin. PostgreSQL refuses to run as root, so as root the data dir
belongs to the `postgres` user the package creates and the programs run through `runuser`.
"""

import glob
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time


def _program(name: str) -> str:
  found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                                                 reverse=True)), None)
  if not found:
    raise RuntimeError(f"PostgreSQL's {name} is not installed; run `bash scripts/install.sh --test` "
                       "(it installs Debian's postgresql package)")
  return found


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


class Server:
  """``with Server() as url:`` a running server and its ``postgresql://`` URL.

  The data dir is a fresh folder in /tmp (pytest's tmp_path is private to root, so the
  postgres user could not enter it), removed at the end.
  """

  def __init__(self):
    self.root = pathlib.Path(tempfile.mkdtemp(prefix="ycng-pg-"))
    self.data = self.root / "pgdata"
    self.port = _free_port()
    self.as_root = os.geteuid() == 0

  def _run(self, argv):
    if self.as_root:
      argv = ["runuser", "-u", "postgres", "--"] + argv
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode:
      raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stdout}{done.stderr}")
    return done

  def __enter__(self) -> str:
    if self.as_root:
      shutil.chown(self.root, "postgres")
      os.chmod(self.root, 0o755)
    self._run([_program("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
               "-E", "UTF8", "--no-sync"])
    options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
    self._run([_program("pg_ctl"), "-D", str(self.data), "-o", options, "-l",
               str(self.root / "server.log"), "-w", "-t", "60", "start"])
    return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

  def __exit__(self, *exc):
    try:
      self._run([_program("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])
    finally:
      shutil.rmtree(self.root, ignore_errors=True)

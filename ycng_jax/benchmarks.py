"""``ycng bench``: the side-by-side benchmarks of ``scripts/bench/`` in one run.

Each benchmark script times ours and a peer library in one process and, given ``--json PATH``,
writes its rows there (``scripts/bench/bench_utils.py: result_row``). This runs the scripts one
after another, each in its own process: a crash, a timeout or a missing peer library costs
only that benchmark's rows (recorded as failed or skipped, with the reason), and no process
holds an accelerator while the next one wants it. The results go to ``bench.json`` (the
schema below, which ``ycng report`` reads) and ``bench.md`` (one markdown table), rewritten
after every benchmark so that an interrupted run keeps what it measured.

``bench.json``: ``{"created", "mode": "quick"|"full", "machine": {"cpu", "cores",
"accelerator", "platform", "versions"}, "benchmarks": [{"name", "script", "command",
"metric", "ours", "theirs", "peer", "ratio", "higher_is_better", "notes", "status":
"ok"|"failed"|"skipped", "error", "seconds"}]}``; ``ratio`` above 1 means ours is faster.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from typing import Iterable, Sequence, TextIO

from ycng_jax.errors import UserError, UserFileError

MODES = ("quick", "full")
DEFAULT_TIMEOUT_S = {"quick": 900.0, "full": 3600.0}


@dataclasses.dataclass(frozen=True)
class Benchmark:
  """One script of ``scripts/bench/``: ``{name}.py``, run with ``full_args`` (the command
  ``docs/benchmarks.md`` quotes) or ``--quick`` plus those. ``requires`` names the peer's
  modules, each with how to install it; ``metric``, ``peer`` and ``higher_is_better`` describe
  the rows it writes, and fill the row of a run that wrote none."""
  name: str
  peer: str
  metric: str
  full_args: tuple[str, ...] = ()
  requires: tuple[tuple[str, str], ...] = ()
  higher_is_better: bool = True

  @property
  def script(self) -> str:
    return f"{self.name}.py"

  def args(self, mode: str) -> list[str]:
    return (["--quick"] if mode == "quick" else []) + list(self.full_args)


_TORCH = ("torch", "pip install torch")
BENCHMARKS = (
    Benchmark("knn_vs_faiss", "faiss IndexFlatIP", "queries/s", ("--no-ann", "--bf16"),
              (("faiss", "pip install faiss-cpu"),)),
    Benchmark("kmeans_vs_sklearn", "scikit-learn KMeans, faiss Kmeans", "seconds", (),
              (("sklearn", "pip install scikit-learn"), ("faiss", "pip install faiss-cpu")),
              higher_is_better=False),
    Benchmark("trainer_vs_keras", "Keras 3 model.fit", "steps/s", (),
              (("keras", "pip install keras"),)),
    Benchmark("input_pipeline", "the train step it feeds", "examples/s"),
    Benchmark("features_vs_torch", "efficientnet-lite-pytorch", "images/s", (),
              (_TORCH, ("efficientnet_lite_pytorch",
                        "pip install efficientnet-lite-pytorch==0.1.0"))),
    Benchmark("encode_vs_sentence_transformers", "sentence-transformers", "sentences/s",
              ("--matmul-dtype", "bfloat16", "--torch-bf16"),
              (_TORCH, ("sentence_transformers",
                        "pip install --no-deps sentence-transformers==6.2.0"))),
    Benchmark("bert_train_step", "transformers BertForSequenceClassification", "tokens/s",
              ("--matmul-dtype", "bfloat16", "--torch-bf16"),
              (_TORCH, ("transformers", "pip install transformers"))),
    Benchmark("attention_cpu", "torch scaled_dot_product_attention", "ms/call", (), (_TORCH,),
              higher_is_better=False),
    Benchmark("population_vs_sequential", "the same trials one after another", "trials/hour"),
    Benchmark("zero_shot_vs_transformers", "transformers zero-shot-classification pipeline",
              "texts/s", (), (_TORCH, ("transformers", "pip install transformers"))),
    Benchmark("tuner_vs_kerastuner", "KerasTuner Hyperband and RandomSearch", "seconds", (),
              (("keras", "pip install keras"),
               ("keras_tuner", "pip install keras-tuner==1.4.8")), higher_is_better=False),
)

# What a row from a script must hold (result_row writes exactly these).
_ROW_TYPES = {"name": str, "metric": str, "ours": (float, int, type(None)),
              "theirs": (float, int, type(None)), "peer": str,
              "ratio": (float, int, type(None)), "higher_is_better": bool, "notes": str}
_VERSIONS = ("jax", "jaxlib", "flax", "optax", "numpy", "grain", "faiss", "torch",
             "transformers", "scikit-learn", "sentence-transformers", "keras",
             "efficientnet-lite-pytorch")


def default_scripts_dir(package_dir: pathlib.Path | None = None) -> pathlib.Path:
  """``scripts/bench/`` of the checkout this package runs from, or a UserError without one."""
  package_dir = package_dir or pathlib.Path(__file__).resolve().parent
  folder = package_dir.parent / "scripts" / "bench"
  if not (folder / "bench_utils.py").is_file():
    raise UserFileError(
        f"ycng bench runs the scripts in scripts/bench/ of a source checkout, and ycng_jax "
        f"here ({package_dir}) is installed without one: run it from a clone of the "
        f"repository (pip install -e .), or pass --scripts-dir DIR.")
  return folder


def select(names: Sequence[str] | None,
           benchmarks: Sequence[Benchmark] = BENCHMARKS) -> list[Benchmark]:
  """The benchmarks named (all when none are), in their usual order."""
  known = {b.name: b for b in benchmarks}
  unknown = [n for n in names or () if n not in known]
  if unknown:
    raise UserError(f"Unknown benchmark {unknown[0]!r}: choose from {', '.join(known)} "
                    f"(`ycng bench --list` says what each compares).")
  return [b for b in benchmarks if not names or b.name in names]


def command(bench: Benchmark, mode: str, scripts_dir: pathlib.Path) -> str:
  """The shell command that reruns ``bench`` alone (relative to here when the script is below)."""
  script = os.path.relpath(scripts_dir / bench.script)
  if script.startswith(".."):
    script = str((scripts_dir / bench.script).resolve())
  return shlex.join(["python3", script, *bench.args(mode)])


def _versions() -> dict[str, str]:
  found = {"python": platform.python_version()}
  faiss_dists = importlib.metadata.packages_distributions().get("faiss", [])
  for name in _VERSIONS:
    dist = faiss_dists[0] if name == "faiss" and faiss_dists else name
    try:
      found[name] = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
      pass
  return found


def _cpu_model() -> str:
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("model name"):
          return line.partition(":")[2].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def _accelerator() -> str | None:
  """jax's default device kind unless it is the CPU. Asked in a child process: jax in this one
  would hold the accelerator (and much of its memory) while the benchmarks run."""
  if os.environ.get("JAX_PLATFORMS", "").strip().lower() == "cpu":
    return None
  code = ("import jax; d = jax.devices()[0]; "
          "print(jax.default_backend() + '\\t' + d.device_kind)")
  env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
  try:
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=300, env=env, check=True)
    backend, kind = probe.stdout.strip().splitlines()[-1].split("\t")
  except (subprocess.SubprocessError, ValueError, IndexError):
    return None
  return None if backend == "cpu" else kind


def machine_info() -> dict:
  return {"cpu": _cpu_model(), "cores": os.cpu_count() or 1, "accelerator": _accelerator(),
          "platform": platform.platform(), "versions": _versions()}


def _last_line(log: str) -> str:
  lines = [line.strip() for line in log.splitlines() if line.strip()]
  return lines[-1][:300] if lines else "(no output)"


def _read_rows(path: pathlib.Path) -> list[dict]:
  """The rows a script wrote, checked against the schema (ValueError says what is wrong)."""
  if not path.is_file():
    raise ValueError("exited 0 but wrote no --json results")
  rows = json.loads(path.read_text(encoding="utf-8")).get("rows")
  if not isinstance(rows, list) or not rows:
    raise ValueError("its --json results hold no rows")
  for row in rows:
    for key, kind in _ROW_TYPES.items():
      if not isinstance(row, dict) or not isinstance(row.get(key, ...), kind):
        raise ValueError(f"a --json row lacks {key!r} of the right type: {row!r:.200}")
  return rows


def run_one(bench: Benchmark, mode: str, scripts_dir: pathlib.Path, logs_dir: pathlib.Path,
            timeout_s: float) -> list[dict]:
  """Runs one benchmark script in a child process; its rows, or one failed / skipped row."""
  base = {"script": f"scripts/bench/{bench.script}", "command": command(bench, mode, scripts_dir)}

  def outcome(status: str, error: str, seconds: float = 0.0) -> list[dict]:
    return [{"name": bench.name, **base, "metric": bench.metric, "ours": None, "theirs": None,
             "peer": bench.peer, "ratio": None, "higher_is_better": bench.higher_is_better,
             "notes": "", "status": status, "error": error, "seconds": round(seconds, 1)}]

  missing = [f"{module} is not installed ({how})" for module, how in bench.requires
             if importlib.util.find_spec(module) is None]
  if missing:
    return outcome("skipped", "; ".join(missing))
  script = scripts_dir / bench.script
  if not script.is_file():
    return outcome("failed", f"{script} does not exist")
  log_path = logs_dir / f"{bench.name}.log"
  with tempfile.TemporaryDirectory() as tmp, open(log_path, "w", encoding="utf-8") as log:
    json_path = pathlib.Path(tmp) / "rows.json"
    start = time.perf_counter()
    try:
      done = subprocess.run([sys.executable, str(script), *bench.args(mode), "--json",
                             str(json_path)], stdout=log, stderr=subprocess.STDOUT,
                            timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
      return outcome("failed", f"timed out after {timeout_s:.0f} s (log: {log_path})", timeout_s)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
      how = (f"killed by signal {-done.returncode}" if done.returncode < 0 else
             f"exit status {done.returncode}")
      last = _last_line(log_path.read_text(encoding="utf-8", errors="replace"))
      return outcome("failed", f"{how}: {last} (log: {log_path})", seconds)
    try:
      rows = _read_rows(json_path)
    except ValueError as e:  # json.JSONDecodeError is one too
      return outcome("failed", f"{e} (log: {log_path})", seconds)
  return [{"name": row["name"], **base, **{k: row[k] for k in _ROW_TYPES if k != "name"},
           "status": "ok", "error": None, "seconds": round(seconds, 1)} for row in rows]


def _number(value: float | None) -> str:
  if value is None:
    return ""
  return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def markdown(report: dict) -> str:
  """``bench.md``: what ran where, then one table with a row per result."""
  machine = report["machine"]
  versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
  lines = [f"# `ycng bench` ({report['mode']})", "",
           f"{report['created']}; {machine['cpu']}, {machine['cores']} cores, accelerator "
           f"{machine['accelerator'] or 'none'}; {machine['platform']}; {versions}.", "",
           "ratio: above 1 means ours is faster (ours / theirs for rates, theirs / ours for "
           "times).", "",
           "| benchmark | metric | ours | theirs | peer | ratio | status |",
           "|---|---|---|---|---|---|---|"]
  for row in report["benchmarks"]:
    status = row["status"] + (f": {row['error']}" if row["error"] else "")
    ratio = f"{row['ratio']:.2f}x" if row["ratio"] is not None else ""
    cells = [row["name"], row["metric"], _number(row["ours"]), _number(row["theirs"]),
             row["peer"], ratio, status]
    lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
  return "\n".join(lines) + "\n"


def _write(report: dict, out: pathlib.Path) -> None:
  (out / "bench.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
  (out / "bench.md").write_text(markdown(report), encoding="utf-8")


def run(names: Sequence[str] | None = None, *, mode: str = "quick",
        out: str | os.PathLike = "workdirs/bench", scripts_dir: str | os.PathLike | None = None,
        timeout_s: float | None = None, benchmarks: Iterable[Benchmark] = BENCHMARKS,
        progress: TextIO | None = None) -> dict:
  """Runs the benchmarks named (all by default) and returns the ``bench.json`` report, also
  written with ``bench.md`` into ``out`` (and each script's output into ``out/logs/``). A line
  per benchmark goes to ``progress`` (stderr by default)."""
  progress = progress or sys.stderr
  if mode not in MODES:
    raise UserError(f"Unknown mode {mode!r}: use one of {', '.join(MODES)}.")
  selected = select(names, tuple(benchmarks))
  if scripts_dir is None:
    scripts_dir = default_scripts_dir()
  scripts_dir = pathlib.Path(scripts_dir)
  if not scripts_dir.is_dir():
    raise UserFileError(f"--scripts-dir {scripts_dir} is not a folder: give the folder that "
                        f"holds the benchmark scripts (scripts/bench/ of a checkout).")
  timeout_s = timeout_s or DEFAULT_TIMEOUT_S[mode]
  out = pathlib.Path(out)
  (out / "logs").mkdir(parents=True, exist_ok=True)
  report = {"created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "mode": mode, "machine": machine_info(), "benchmarks": []}
  for i, bench in enumerate(selected, 1):
    print(f"ycng bench [{i}/{len(selected)}] {bench.name} ({mode}) ...", end=" ",
          file=progress, flush=True)
    rows = run_one(bench, mode, scripts_dir, out / "logs", timeout_s)
    report["benchmarks"].extend(rows)
    _write(report, out)
    ratios = ", ".join(f"{r['ratio']:.2f}x" for r in rows if r["ratio"] is not None)
    print(rows[0]["status"] + (f": {rows[0]['error']}" if rows[0]["error"] else "")
          + (f", ratios {ratios}" if ratios else "") + f", {rows[0]['seconds']:.0f} s",
          file=progress, flush=True)
  return report

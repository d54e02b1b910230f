"""The TPU VM and SLURM launch scripts: their dry runs print the exact commands and run none.

Every script runs under bash with PATH holding only stand-ins for the tools it would call
(gcloud, srun, git, mkdir, a fake metadata-server curl...), each of which records its call: a
dry run must leave that record empty, and without --dry-run the record must be what the dry
run printed. No jax, no network; a few seconds in all.
"""

from __future__ import annotations

import os
import pathlib
import shlex
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
TPU_VM = ROOT / "scripts" / "tpu_vm" / "tpu_vm.sh"
ON_WORKER = ROOT / "scripts" / "tpu_vm" / "on_worker.sh"
SBATCH = ROOT / "scripts" / "slurm" / "ycng_multinode.sbatch"
BASH = shutil.which("bash")
RECORDED = ("gcloud", "srun", "sbatch", "git", "mkdir", "tar", "ssh", "scp", "python3", "ycng")

# What a 3-worker slice's metadata server answers (the old name:id:ip form).
FAKE_CURL = """#!{bash}
case "${{@: -1}}" in
  */worker-network-endpoints)
    printf %s "${{FAKE_ENDPOINTS-w-0:0:10.0.0.2,w-1:1:10.0.0.3,w-2:2:10.0.0.4}}" ;;
  */agent-worker-number) printf %s 2 ;;
  *) exit 22 ;;
esac
"""


@pytest.fixture
def sandbox(tmp_path):
  """A bin/ with bash and recording stand-ins; run(script, *args, env=...) -> CompletedProcess."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  (bin_dir / "bash").symlink_to(BASH)
  log = tmp_path / "called.log"
  for tool in RECORDED:
    stub = bin_dir / tool
    stub.write_text(f'#!{BASH}\nprintf "%q " "${{0##*/}}" "$@" >> {log}; echo >> {log}\n')
    stub.chmod(0o755)

  def fail_on(text):  # gcloud fails when its arguments contain text
    gcloud = bin_dir / "gcloud"
    gcloud.write_text(gcloud.read_text() + f'[[ "$*" != *{shlex.quote(text)}* ]]\n')

  def run(script, *args, env=None, curl=False):
    if curl:
      (bin_dir / "curl").write_text(FAKE_CURL.format(bash=BASH))
      (bin_dir / "curl").chmod(0o755)
    environment = {"PATH": str(bin_dir), "TMPDIR": "/tmp/ycng-test", **(env or {})}
    return subprocess.run([BASH, str(script), *args], capture_output=True, text=True,
                          env=environment, cwd=tmp_path, timeout=30)

  run.fail_on, run.bin_dir = fail_on, bin_dir
  run.called = lambda: log.read_text() if log.exists() else ""
  run.called_argvs = lambda: [shlex.split(line) for line in run.called().splitlines()]
  return run


def lines(result):
  assert result.returncode == 0, result.stderr
  return result.stdout.splitlines()


def argvs(result):
  """Each printed command as the argv a shell would run (comment lines dropped)."""
  return [shlex.split(line) for line in lines(result) if not line.startswith("#")]


def remote(argv):
  """The --command=... of a gcloud ssh line, split as the worker's shell splits it."""
  [command] = [a[len("--command="):] for a in argv if a.startswith("--command=")]
  return shlex.split(command)


# ----- scripts/tpu_vm/tpu_vm.sh ---------------------------------------------------------------

GCLOUD = ["gcloud", "compute", "tpus", "tpu-vm"]
AT = ["--zone=europe-west4-b"]
TARBALL = "/tmp/ycng-test/ycng-jax-ycng-tpu.tar.gz"
INSTALL = ("mkdir -p ycng-jax && tar -xzf ycng-jax.tar.gz -C ycng-jax && cd ycng-jax"
           " && python3 -m pip install --user --quiet uv"
           " && (test -x .venv/bin/python || python3 -m uv venv --seed --python 3.12 .venv)"
           ' && python3 -m uv pip install --python .venv/bin/python -e . "jax[tpu]"')
STEPS = {
    "create": [GCLOUD + ["create", "ycng-tpu", *AT, "--accelerator-type=v5litepod-8",
                         "--version=v2-alpha-tpuv5-lite"]],
    "install": [["git", "-C", str(ROOT), "archive", "--format=tar.gz", f"--output={TARBALL}",
                 "HEAD"],
                GCLOUD + ["scp", TARBALL, "ycng-tpu:ycng-jax.tar.gz", *AT, "--worker=all"],
                GCLOUD + ["ssh", "ycng-tpu", *AT, "--worker=all", f"--command={INSTALL}"]],
    "run": [GCLOUD + ["ssh", "ycng-tpu", *AT, "--worker=all",
                      "--command=cd ycng-jax && bash scripts/tpu_vm/on_worker.sh .venv/bin/ycng "
                      "run topic1/sequential_cnn --workdir workdirs/topic1/sequential_cnn "
                      "--config.num_epochs=3"]],
    "fetch": [["mkdir", "-p", "workdirs/tpu/ycng-tpu"],
              GCLOUD + ["scp", "ycng-tpu:ycng-jax/workdirs/topic1/sequential_cnn",
                        "workdirs/tpu/ycng-tpu", *AT, "--worker=0", "--recurse"]],
    "delete": [GCLOUD + ["delete", "ycng-tpu", *AT, "--quiet"]],
}
EXPERIMENT = ["topic1/sequential_cnn", "--config.num_epochs=3"]


def test_all_prints_every_step_in_order_and_runs_nothing(sandbox):
  result = sandbox(TPU_VM, "all", "--dry-run", *EXPERIMENT)
  assert argvs(result) == [argv for step in STEPS.values() for argv in step]
  assert sandbox.called() == ""


def test_without_dry_run_it_runs_what_the_dry_run_prints(sandbox):
  printed = argvs(sandbox(TPU_VM, "all", "--dry-run", *EXPERIMENT))
  result = sandbox(TPU_VM, "all", *EXPERIMENT)  # the stand-ins record and succeed
  assert result.returncode == 0, result.stderr
  ran = [argv for argv in sandbox.called_argvs() if argv[:4] != ["git", "-C", str(ROOT), "status"]]
  assert ran == printed


def test_all_stops_at_a_failed_step_and_says_how_to_delete_the_vm(sandbox):
  sandbox.fail_on("--worker=all --command=cd ycng-jax")  # the run step
  result = sandbox(TPU_VM, "all", "--zone", "us-west4-a", *EXPERIMENT)
  assert result.returncode != 0
  assert ("ycng-tpu, if created, is still up: bash scripts/tpu_vm/tpu_vm.sh delete "
          "--name ycng-tpu --zone=us-west4-a\n") in result.stderr
  assert [argv[4] for argv in sandbox.called_argvs() if argv[0] == "gcloud"] == [
      "create", "scp", "ssh", "ssh"]


@pytest.mark.parametrize("step", list(STEPS))
def test_each_step_prints_its_own_commands(sandbox, step):
  result = sandbox(TPU_VM, step, "--dry-run", *EXPERIMENT)
  assert argvs(result) == STEPS[step]
  assert sandbox.called() == ""


def test_printed_lines_are_exact_and_quoted_for_pasting(sandbox):
  printed = lines(sandbox(TPU_VM, "all", "--dry-run", *EXPERIMENT))
  assert printed[0] == ("gcloud compute tpus tpu-vm create ycng-tpu --zone=europe-west4-b "
                        "--accelerator-type=v5litepod-8 --version=v2-alpha-tpuv5-lite")
  assert printed[3] == ("gcloud compute tpus tpu-vm ssh ycng-tpu --zone=europe-west4-b "
                        f"--worker=all --command='{INSTALL}'")
  assert printed[4] == (
      "gcloud compute tpus tpu-vm ssh ycng-tpu --zone=europe-west4-b --worker=all "
      "--command='cd ycng-jax && bash scripts/tpu_vm/on_worker.sh .venv/bin/ycng run "
      "topic1/sequential_cnn --workdir workdirs/topic1/sequential_cnn --config.num_epochs=3'")
  assert printed[-1] == "gcloud compute tpus tpu-vm delete ycng-tpu --zone=europe-west4-b --quiet"


def test_options_reach_every_gcloud_command(sandbox):
  result = sandbox(TPU_VM, "all", "--dry-run", "--name", "my tpu", "--zone=us-west4-a",
                   "--project", "proj-1", "--accelerator-type", "v5litepod-16", *EXPERIMENT)
  gcloud = [argv for argv in argvs(result) if argv[0] == "gcloud"]
  assert [argv[4:6] for argv in gcloud] == [
      ["create", "my tpu"], ["scp", "/tmp/ycng-test/ycng-jax-my tpu.tar.gz"], ["ssh", "my tpu"],
      ["ssh", "my tpu"], ["scp", "my tpu:ycng-jax/workdirs/topic1/sequential_cnn"],
      ["delete", "my tpu"]]
  for argv in gcloud:
    assert argv.count("--zone=us-west4-a") == 1 and argv.count("--project=proj-1") == 1
  assert "--accelerator-type=v5litepod-16" in gcloud[0]
  assert argvs(result)[-3] == ["mkdir", "-p", "workdirs/tpu/my tpu"]


@pytest.mark.parametrize("accelerator, version", [
    ("v6e-8", "v2-alpha-tpuv6e"), ("v5p-8", "v2-alpha-tpuv5"),
    ("v5litepod-32", "v2-alpha-tpuv5-lite"), ("v4-8", "tpu-ubuntu2204-base")])
def test_create_picks_the_documented_runtime_for_the_type(sandbox, accelerator, version):
  [argv] = argvs(sandbox(TPU_VM, "create", "--dry-run", "--accelerator-type", accelerator))
  assert argv[-2:] == [f"--accelerator-type={accelerator}", f"--version={version}"]
  [argv] = argvs(sandbox(TPU_VM, "create", "--dry-run", "--accelerator-type", accelerator,
                         "--version", "my-runtime"))
  assert argv[-1] == "--version=my-runtime"


def test_install_with_data_also_runs_install_sh(sandbox):
  argv = argvs(sandbox(TPU_VM, "install", "--dry-run", "--with-data"))[-1]
  assert "--worker=all" in argv
  assert remote(argv)[-6:] == ["&&", ".", ".venv/bin/activate", "&&", "bash", "scripts/install.sh"]
  assert 'pip install --python .venv/bin/python -e . "jax[tpu]" && . .venv/bin/activate' in argv[-1]


def test_run_passes_workdir_and_awkward_overrides_through_two_shells(sandbox):
  result = sandbox(TPU_VM, "run", "--dry-run", "experiments/topic1/my.py", "--workdir",
                   "/mnt/shared/w", "--config.note=it's a \"test\"", "--config.seed", "7")
  [argv] = argvs(result)
  assert argv[:6] == GCLOUD + ["ssh", "ycng-tpu"] and "--worker=all" in argv
  assert remote(argv) == ["cd", "ycng-jax", "&&", "bash", "scripts/tpu_vm/on_worker.sh",
                          ".venv/bin/ycng", "run", "experiments/topic1/my.py",
                          "--workdir", "/mnt/shared/w", "--config.note=it's a \"test\"",
                          "--config.seed=7"]


def test_default_workdir_is_ycng_runs_own(sandbox):
  argv = argvs(sandbox(TPU_VM, "run", "--dry-run", "experiments/topic1/my.py"))[0]
  assert remote(argv)[-2:] == ["--workdir", "workdirs/experiments/topic1/my"]


def test_fetch_copies_from_worker_0_only(sandbox):
  result = sandbox(TPU_VM, "fetch", "--dry-run", "--workdir", "/mnt/shared/w",
                   "--dest", "back here")
  assert argvs(result) == [
      ["mkdir", "-p", "back here"],
      GCLOUD + ["scp", "ycng-tpu:/mnt/shared/w", "back here", *AT, "--worker=0", "--recurse"]]


def test_all_keep_leaves_the_vm_up(sandbox):
  result = sandbox(TPU_VM, "all", "--dry-run", "--keep", *EXPERIMENT)
  verbs = [argv[4] for argv in argvs(result) if argv[0] == "gcloud"]
  assert verbs == ["create", "scp", "ssh", "ssh", "scp"]


@pytest.mark.parametrize("args, message", [
    (["run", "--dry-run", "--wokdir", "w", "x"], "unknown option '--wokdir'"),
    (["all", "--dry-run", "-n", "x"], "unknown option '-n'"),
    (["launch", "--dry-run"], "unknown step 'launch'"),
    ([], "no step given"),
    (["run", "--dry-run"], "run needs an EXPERIMENT"),
    (["all", "--dry-run"], "all needs an EXPERIMENT"),
    (["fetch", "--dry-run"], "fetch needs an EXPERIMENT"),
    (["create", "--dry-run", "--zone"], "--zone needs a value"),
    (["run", "--dry-run", "a", "b"], "one experiment only"),
])
def test_tpu_vm_refuses_bad_arguments(sandbox, args, message):
  result = sandbox(TPU_VM, *args)
  assert result.returncode != 0 and message in result.stderr, result.stderr
  assert result.stdout == "" and sandbox.called() == ""


# ----- scripts/tpu_vm/on_worker.sh -----------------------------------------------------------

def test_on_worker_exports_the_slice_layout_from_metadata(sandbox):
  result = sandbox(ON_WORKER, "--dry-run", ".venv/bin/ycng", "run", "a b", curl=True)
  assert lines(result) == [
      "export YCNG_COORDINATOR_ADDRESS=10.0.0.2:8482 YCNG_NUM_PROCESSES=3 YCNG_PROCESS_ID=2",
      ".venv/bin/ycng run 'a b'"]
  assert sandbox.called() == ""
  # Not a dry run: the command sees the variables (bash itself is the command here).
  result = sandbox(ON_WORKER, BASH, "-c", 'echo "$YCNG_COORDINATOR_ADDRESS $YCNG_NUM_PROCESSES '
                   '$YCNG_PROCESS_ID"', curl=True)
  assert lines(result) == ["10.0.0.2:8482 3 2"]


@pytest.mark.parametrize("env", [
    {"FAKE_ENDPOINTS": "w-0:0:10.0.0.2"},                       # one worker: nothing to set up
    {"YCNG_COORDINATOR_ADDRESS": "h:1", "YCNG_NUM_PROCESSES": "2", "YCNG_PROCESS_ID": "0"},
    {"MEGASCALE_COORDINATOR_ADDRESS": "h"},                     # multislice: JAX's own detection
])
def test_on_worker_leaves_other_layouts_alone(sandbox, env):
  result = sandbox(ON_WORKER, "--dry-run", "ycng", "run", "x", curl=True, env=env)
  assert lines(result) == ["ycng run x"]


def test_on_worker_without_metadata_server_runs_the_command_unchanged(sandbox):
  assert lines(sandbox(ON_WORKER, "--dry-run", "ycng", "run", "x")) == ["ycng run x"]  # no curl


def test_on_worker_refuses_unknown_options(sandbox):
  result = sandbox(ON_WORKER, "--verbose", "ycng")
  assert result.returncode != 0 and "unknown option '--verbose'" in result.stderr
  result = sandbox(ON_WORKER, "--dry-run")
  assert result.returncode != 0 and "no COMMAND" in result.stderr


# ----- scripts/slurm/ycng_multinode.sbatch ---------------------------------------------------

def test_slurm_dry_run_one_process_per_gpu(sandbox):
  result = sandbox(SBATCH, *EXPERIMENT, "--workdir", "/shared/w", env={"DRY_RUN": "1"})
  printed = lines(result)
  assert printed[-2:] == [
      "export JAX_LOCAL_DEVICE_IDS=0",
      "srun --nodes=2 --ntasks=16 --ntasks-per-node=8 --gpus-per-task=1 --kill-on-bad-exit=1 "
      "ycng run topic1/sequential_cnn --config.num_epochs=3 --workdir /shared/w"]
  comments = "\n".join(printed[:-2])
  assert "16 processes" in comments
  for variable in ("SLURM_JOB_ID", "SLURM_NTASKS=16", "SLURM_PROCID", "SLURM_LOCALID",
                   "SLURM_STEP_NODELIST"):
    assert variable in comments
  assert sandbox.called() == ""


def test_slurm_one_process_per_node_with_sizes_from_the_allocation(sandbox):
  env = {"LAYOUT": "node", "SLURM_JOB_NUM_NODES": "4", "SLURM_GPUS_ON_NODE": "4",
         "SLURM_CPUS_PER_TASK": "16"}
  result = sandbox(SBATCH, "--dry-run", "topic1/x", "--config.name", "a b", env=env)
  assert argvs(result) == [
      ["export", "JAX_LOCAL_DEVICE_IDS=0,1,2,3"],
      ["srun", "--nodes=4", "--ntasks=4", "--ntasks-per-node=1", "--gpus-per-task=4",
       "--kill-on-bad-exit=1", "--cpus-per-task=16",
       "ycng", "run", "topic1/x", "--config.name", "a b"]]
  assert sandbox.called() == ""


def test_slurm_sizes_can_be_given_outside_slurm(sandbox):
  result = sandbox(SBATCH, "x", env={"DRY_RUN": "1", "NODES": "3", "GPUS_PER_NODE": "2"})
  assert argvs(result)[-1][:5] == ["srun", "--nodes=3", "--ntasks=6", "--ntasks-per-node=2",
                                   "--gpus-per-task=1"]


def test_slurm_without_dry_run_runs_what_the_dry_run_prints(sandbox):
  env = {"SLURM_JOB_ID": "42", "SLURM_JOB_NUM_NODES": "2", "SLURM_GPUS_ON_NODE": "4"}
  printed = argvs(sandbox(SBATCH, "x", "--workdir=w", env={"DRY_RUN": "1", **env}))
  srun = sandbox.bin_dir / "srun"  # this stand-in also shows what srun would pass on
  srun.write_text(srun.read_text() + 'echo "export JAX_LOCAL_DEVICE_IDS=$JAX_LOCAL_DEVICE_IDS"\n')
  result = sandbox(SBATCH, "x", "--workdir=w", env=env)
  assert argvs(result) == printed[:1] and sandbox.called_argvs() == printed[1:]


def test_sbatch_header_matches_the_default_layout():
  header = [line for line in SBATCH.read_text().splitlines() if line.startswith("#SBATCH")]
  assert "#SBATCH --nodes=2" in header and "#SBATCH --ntasks-per-node=8" in header
  assert "#SBATCH --gpus-per-task=1" in header


@pytest.mark.parametrize("args, env, message", [
    (["x", "--wokdir", "w"], {}, "unknown option '--wokdir'"),
    (["x", "extra"], {}, "unexpected argument 'extra'"),
    ([], {}, "must be an EXPERIMENT"),
    (["--workdir", "w"], {}, "must be an EXPERIMENT"),
    (["x", "--workdir"], {}, "--workdir needs a value"),
    (["x"], {"LAYOUT": "socket"}, "LAYOUT must be gpu or node"),
    (["x"], {"DRY_RUN": "yes"}, "DRY_RUN must be 0 or 1"),
    (["x"], {"NODES": "two"}, "bad sizes"),
])
def test_slurm_refuses_bad_arguments(sandbox, args, env, message):
  result = sandbox(SBATCH, *args, env={"DRY_RUN": "1", **env})
  assert result.returncode != 0 and message in result.stderr, result.stderr
  assert result.stdout == "" and sandbox.called() == ""


# ----- all of them ---------------------------------------------------------------------------

@pytest.mark.parametrize("script", [TPU_VM, ON_WORKER, SBATCH])
def test_help_and_syntax(sandbox, script):
  result = sandbox(script, "--help")
  assert result.returncode == 0 and result.stdout.startswith("Usage:")
  assert "--dry-run" in result.stdout
  assert subprocess.run([BASH, "-n", str(script)], capture_output=True).returncode == 0
  assert os.access(script, os.X_OK)
  assert sandbox.called() == ""

#!/usr/bin/env bash
# Run one `ycng run` on a Cloud TPU VM or pod slice with gcloud; each step is a subcommand.
set -euo pipefail

USAGE='Usage: bash scripts/tpu_vm/tpu_vm.sh STEP [options]
                 [EXPERIMENT [--workdir DIR] [--config.KEY=VALUE ...]]

Steps (each runs gcloud from this machine):
  create   gcloud compute tpus tpu-vm create: a TPU VM, or a pod slice of several workers
  install  copy this checkout (git archive HEAD) to every worker; there, a Python 3.12
           venv (made by uv: the images are Ubuntu 22.04, whose Python 3.10 is too old for
           ycng-jax) with `pip install -e . jax[tpu]`
  run      the same `ycng run EXPERIMENT ...` on every worker (--worker=all); each writes
           the workdir on its own disk, relative to ~/ycng-jax unless absolute
  fetch    copy the workdir back from worker 0 (gcloud ... scp --recurse --worker=0)
  delete   gcloud compute tpus tpu-vm delete --quiet
  all      create, install, run, fetch and delete, stopping at the first failure

Options:
  --name NAME              TPU VM name (default ycng-tpu)
  --zone ZONE              (default europe-west4-b, which has v5e)
  --project PROJECT        (default: gcloud'"'"'s configured project)
  --accelerator-type TYPE  create: version and size (default v5litepod-8: one host, 8 chips;
                           v5litepod-16 and up are slices with several workers)
  --version RUNTIME        create: TPU software version (default: the one Google documents for
                           the type: v2-alpha-tpuv6e, v2-alpha-tpuv5, v2-alpha-tpuv5-lite,
                           tpu-ubuntu2204-base for v4 and older)
  --with-data              install: also run scripts/install.sh (data sources and weights;
                           uses apt, so it takes a few minutes)
  --workdir DIR            run, fetch: workdir on the workers (default workdirs/EXPERIMENT)
  --dest DIR               fetch: local folder the workdir is copied into
                           (default workdirs/tpu/NAME)
  --keep                   all: leave the TPU VM up at the end
  --dry-run                print the commands, one per line and shell-quoted; run nothing
  -h, --help               this text

Example:
  bash scripts/tpu_vm/tpu_vm.sh all --name my-tpu topic1/sequential_cnn --config.num_epochs=3
'

die() { printf 'tpu_vm.sh: %s\n' "$*" >&2; exit 2; }

# Repository root, found without external tools so that --dry-run and --help need none.
here=${BASH_SOURCE[0]%/*}
[[ $here == "${BASH_SOURCE[0]}" ]] && here=.
REPO=$(cd "$here/../.." && pwd)

step=${1:-}
case $step in
  create|install|run|fetch|delete|all) shift ;;
  -h|--help) printf '%s' "$USAGE"; exit 0 ;;
  '') die "no step given; try --help" ;;
  *) die "unknown step '$step': choose from create install run fetch delete all" ;;
esac

name=ycng-tpu zone=europe-west4-b project='' accel=v5litepod-8 version='' with_data=0
workdir='' dest='' keep=0 dry_run=0 experiment='' overrides=()
need_value() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --name) need_value "$@"; name=$2; shift 2 ;;
    --zone) need_value "$@"; zone=$2; shift 2 ;;
    --project) need_value "$@"; project=$2; shift 2 ;;
    --accelerator-type) need_value "$@"; accel=$2; shift 2 ;;
    --version) need_value "$@"; version=$2; shift 2 ;;
    --workdir) need_value "$@"; workdir=$2; shift 2 ;;
    --dest) need_value "$@"; dest=$2; shift 2 ;;
    --name=*|--zone=*|--project=*|--accelerator-type=*|--version=*|--workdir=*|--dest=*)
      set -- "${1%%=*}" "${1#*=}" "${@:2}" ;;
    --with-data) with_data=1; shift ;;
    --keep) keep=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) printf '%s' "$USAGE"; exit 0 ;;
    --config.*=*) overrides+=("$1"); shift ;;
    --config.*) need_value "$@"; overrides+=("$1=$2"); shift 2 ;;
    -*) die "unknown option '$1'; try --help" ;;
    *) [[ -z $experiment ]] || die "one experiment only (got '$experiment' and '$1')"
       experiment=$1; shift ;;
  esac
done

if [[ -z $version ]]; then
  case $accel in  # Google's documented software version for each TPU generation
    v6e-*) version=v2-alpha-tpuv6e ;;
    v5p-*) version=v2-alpha-tpuv5 ;;
    v5litepod-*|v5e-*) version=v2-alpha-tpuv5-lite ;;
    *) version=tpu-ubuntu2204-base ;;
  esac
fi
if [[ $step == run || $step == all || ($step == fetch && -z $workdir) ]]; then
  [[ -n $experiment ]] || die "$step needs an EXPERIMENT (as for ycng run)"
fi
[[ -n $workdir ]] || workdir=workdirs/${experiment%.py}  # ycng run's own default
[[ -n $dest ]] || dest=workdirs/tpu/$name
REMOTE_DIR=ycng-jax  # on every worker, relative to the home folder
TARBALL=${TMPDIR:-/tmp}/ycng-jax-$name.tar.gz

# quote / quote_all: shell-quoting for printed commands (beside this script; the run step
# copies the whole checkout to the workers, so on_worker.sh finds it there too).
source "$here/quote.sh"
do_cmd() {
  if (( dry_run )); then printf '%s\n' "$(quote_all "$@")"; else "$@"; fi
}
TPU=(gcloud compute tpus tpu-vm)
AT=("--zone=$zone")  # where the TPU VM is, given to every gcloud command
[[ -z $project ]] || AT+=("--project=$project")

step_create() {
  do_cmd "${TPU[@]}" create "$name" "${AT[@]}" "--accelerator-type=$accel" "--version=$version"
}

step_install() {
  if (( ! dry_run )) && [[ -n $(git -C "$REPO" status --porcelain --untracked-files=no) ]]; then
    echo "tpu_vm.sh: note: uncommitted changes are not copied (git archive HEAD)" >&2
  fi
  do_cmd git -C "$REPO" archive --format=tar.gz "--output=$TARBALL" HEAD
  do_cmd "${TPU[@]}" scp "$TARBALL" "$name:$REMOTE_DIR.tar.gz" "${AT[@]}" --worker=all
  # Extracting over an earlier copy keeps its .venv and workdirs. uv brings its own
  # Python 3.12 where the image's python3 is too old for ycng-jax.
  local remote="mkdir -p $REMOTE_DIR && tar -xzf $REMOTE_DIR.tar.gz -C $REMOTE_DIR && cd $REMOTE_DIR"
  remote+=" && python3 -m pip install --user --quiet uv"
  remote+=" && (test -x .venv/bin/python || python3 -m uv venv --seed --python 3.12 .venv)"
  remote+=' && python3 -m uv pip install --python .venv/bin/python -e . "jax[tpu]"'
  if (( with_data )); then remote+=" && . .venv/bin/activate && bash scripts/install.sh"; fi
  do_cmd "${TPU[@]}" ssh "$name" "${AT[@]}" --worker=all "--command=$remote"
}

step_run() {
  # on_worker.sh hands ycng the slice's process layout, which a TPU VM publishes only in
  # its metadata server (ycng_jax.train.distributed reads environment variables).
  local remote="cd $REMOTE_DIR && $(quote_all bash scripts/tpu_vm/on_worker.sh .venv/bin/ycng run \
    "$experiment" --workdir "$workdir" ${overrides[@]+"${overrides[@]}"})"
  do_cmd "${TPU[@]}" ssh "$name" "${AT[@]}" --worker=all "--command=$remote"
}

step_fetch() {
  local source=$workdir
  [[ $source == /* ]] || source=$REMOTE_DIR/$source  # scp's remote paths start at home
  do_cmd mkdir -p "$dest"
  do_cmd "${TPU[@]}" scp "$name:$source" "$dest" "${AT[@]}" --worker=0 --recurse
}

step_delete() {
  do_cmd "${TPU[@]}" delete "$name" "${AT[@]}" --quiet
}

if [[ $step != all ]]; then
  "step_$step"
  exit 0
fi

# A TPU VM bills until deleted: if a step fails, say how to delete it.
on_exit() {
  local status=$?
  (( status == 0 )) || printf 'tpu_vm.sh: a step failed; %s, if created, is still up: %s\n' \
    "$name" "$(quote_all bash scripts/tpu_vm/tpu_vm.sh delete --name "$name" "${AT[@]}")" >&2
}
(( dry_run )) || trap on_exit EXIT
step_create
step_install
step_run
step_fetch
(( keep )) || step_delete

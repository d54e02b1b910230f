#!/usr/bin/env bash
# On a TPU VM worker: run COMMAND with the slice's process layout in ycng's YCNG_* variables.
set -euo pipefail

USAGE='Usage: bash scripts/tpu_vm/on_worker.sh [--dry-run] COMMAND [ARG ...]

Run on every worker of a TPU VM slice (tpu_vm.sh run does). A slice made by
`gcloud compute tpus tpu-vm create` publishes its layout only in the metadata server
(worker-network-endpoints, agent-worker-number), not in environment variables, so
ycng_jax.train.distributed cannot see it. With more than one worker this sets
  YCNG_COORDINATOR_ADDRESS  worker 0, port 8482 (the port JAX picks on TPU slices)
  YCNG_NUM_PROCESSES        the number of workers
  YCNG_PROCESS_ID           this worker'"'"'s number
and ycng calls jax.distributed.initialize with them. One worker, a layout already given
(YCNG_COORDINATOR_ADDRESS, or MEGASCALE_* for multislice) or no metadata server: COMMAND
runs unchanged.

  --dry-run   print the variables and COMMAND, shell-quoted; run nothing
  -h, --help  this text
'

# quote / quote_all: shell-quoting for printed commands (beside this script; the run step
# copies the whole checkout to the workers, so on_worker.sh finds it there too).
here=${BASH_SOURCE[0]%/*}; [[ $here == "${BASH_SOURCE[0]}" ]] && here=.
source "$here/quote.sh"
die() { printf 'on_worker.sh: %s\n' "$*" >&2; exit 2; }

dry_run=0
case ${1:-} in
  -h|--help) printf '%s' "$USAGE"; exit 0 ;;
  --dry-run) dry_run=1; shift ;;
  -*) die "unknown option '$1'; try --help" ;;
esac
[[ $# -gt 0 ]] || die "no COMMAND given; try --help"

metadata() {  # one attribute of this VM; fails off Google Cloud
  command -v curl >/dev/null || return 1
  curl --silent --fail --max-time 10 -H 'Metadata-Flavor: Google' \
    "http://metadata.google.internal/computeMetadata/v1/instance/attributes/$1"
}

layout=()
if [[ -z ${YCNG_COORDINATOR_ADDRESS:-} && -z ${MEGASCALE_COORDINATOR_ADDRESS:-} ]] &&
   endpoints=$(metadata worker-network-endpoints) && [[ $endpoints == *,* ]]; then
  IFS=, read -ra workers <<<"$endpoints"
  first=${workers[0]}  # a hostname, or name:id:ip; workers are in process order
  id=$(metadata agent-worker-number) || die "no agent-worker-number in the metadata server"
  layout=("YCNG_COORDINATOR_ADDRESS=${first##*:}:8482" "YCNG_NUM_PROCESSES=${#workers[@]}"
          "YCNG_PROCESS_ID=$id")
fi

if (( dry_run )); then
  (( ${#layout[@]} == 0 )) || printf 'export %s\n' "${layout[*]}"
  printf '%s\n' "$(quote_all "$@")"
  exit 0
fi
(( ${#layout[@]} == 0 )) || export "${layout[@]}"
exec "$@"

# Sourced by tpu_vm.sh and on_worker.sh. (scripts/slurm keeps its own copy: sbatch runs a
# spooled copy of the batch script, away from the checkout.)

# One shell word, quoted only when it needs to be, so printed commands can be pasted;
# --flag=VALUE keeps the flag outside the quotes, where it is easier to read.
quote() {
  if [[ $1 =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then printf '%s' "$1"
  elif [[ $1 =~ ^(--[a-z-]+=)(.*)$ ]]; then
    printf '%s' "${BASH_REMATCH[1]}"; quote "${BASH_REMATCH[2]}"
  else printf "'%s'" "${1//\'/\'\\\'\'}"; fi
}
quote_all() {
  local out='' word
  for word in "$@"; do out+="${out:+ }$(quote "$word")"; done
  printf '%s' "$out"
}

#!/usr/bin/env bash
# Every benchmark at accelerator sizes, for a lent GPU machine: one prepared run, under 8 minutes.
# Needs a CUDA build of jax there (pip install -U "jax[cuda12]") and the project installed.
#   bash scripts/bench/gpu.sh 2>&1 | tee gpu_bench.log
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1
python -c 'import jax; print("devices:", jax.devices())'
run() { echo; echo "== $*"; timeout "$1" "${@:2}" || echo "(exit $?)"; }
run 170 bash scripts/bench/gpu_search.sh --no-ann
run 60  python scripts/bench/kmeans_vs_sklearn.py --repeats 1
run 90  python scripts/bench/bert_train_step.py --gpu --dtype bfloat16 --batch 64 --seq 128 --steps 20
run 60  python scripts/bench/bert_train_step.py --gpu --dtype float32 --batch 64 --seq 128 --steps 20
run 90  python scripts/bench/features_vs_torch.py --gpu
exit 0

#!/usr/bin/env bash
# kNN at accelerator sizes (1M x 128 and 1M x 384 databases, 10k queries):
# our exact kernel in float32 and bfloat16, the approx_max_k path, and faiss
# (faiss-cpu, on the host's cores, timed on 2,000 of the queries) for reference.
# Sized to finish in under 8 minutes on one H100 with 16 host cores; needs a
# CUDA build of jax.
#
#   scripts/bench/gpu_search.sh             # defaults
#   scripts/bench/gpu_search.sh --no-ann    # exact and approx rows only (~2 minutes)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="${PWD}${PYTHONPATH:+:${PYTHONPATH}}"
python -c 'import jax; print("devices:", jax.devices())'
exec timeout 470 python scripts/bench/knn_vs_faiss.py --large --repeats 3 --faiss-queries 2000 "$@"

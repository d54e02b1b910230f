#!/usr/bin/env bash
# Every benchmark at accelerator sizes, for a lent GPU machine: one prepared run, under 8 minutes.
# Needs a CUDA build of jax there (pip install -U "jax[cuda12]") and the project installed.
#   bash scripts/bench/gpu.sh 2>&1 | tee gpu_bench.log           # the default five
#   bash scripts/bench/gpu.sh bert search 2>&1 | tee gpu_bench.log # some: bert search encode kmeans features
#   bash scripts/bench/gpu.sh classify zeroshot 2>&1 | tee -a gpu_bench.log # not in the default set:
#     TextClassifier.predict and zero-shot (entailment) vs transformers' pipelines, strict float32 both sides
#   bash scripts/bench/gpu.sh population   # not in the default set: 32 and 128 MLP trials as one population
#     vs one after another (up to 5 minutes)
# Where the data can't be installed, point at copies:
#   MODEL=folder       a BERT folder (default: the packaged all-MiniLM-L6-v2; random_weights_folder.py
#                      makes a timing-only copy where the weights can't travel)
#   TEXTS=file         texts for encode, classify and zeroshot, one per line (default: the debtags corpus)
#   FASHION_DIR=folder the Fashion-MNIST idx .gz files (default: Debian's dataset-fashion-mnist)
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1
MODEL=${MODEL:-all-MiniLM-L6-v2}
texts=() && [ -n "${TEXTS:-}" ] && texts=(--texts "$TEXTS")
data=() && [ -n "${FASHION_DIR:-}" ] && data=(--data-dir "$FASHION_DIR")
python -c 'import jax; print("jax", jax.__version__, "devices:", jax.devices())'
run() { echo; echo "== $*"; timeout "$1" "${@:2}" || echo "(exit $?)"; }
for bench in "${@:-bert search encode kmeans features}"; do for b in $bench; do case $b in
  bert)
    run 90 python scripts/bench/bert_train_step.py --gpu --model "$MODEL" --dtype bfloat16 --batch 64 --seq 128 --steps 20
    run 60 python scripts/bench/bert_train_step.py --gpu --model "$MODEL" --dtype float32 --batch 64 --seq 128 --steps 20 ;;
  search)
    run 170 bash scripts/bench/gpu_search.sh --no-ann ;;
  encode)
    run 150 python scripts/bench/encode_vs_sentence_transformers.py --gpu --model "$MODEL" "${texts[@]}" \
      --n 5000 --batch-size 256 --dtype bfloat16 --torch-bf16 ;;
  kmeans)
    run 60 python scripts/bench/kmeans_vs_sklearn.py --repeats 1 "${data[@]}" ;;
  features)
    run 90 python scripts/bench/features_vs_torch.py --gpu ;;
  classify)
    run 120 python scripts/bench/classify_vs_transformers.py --gpu --model "$MODEL" "${texts[@]}" --n 2000 ;;
  population)  # the project's loader reads Fashion-MNIST from YCNG_FASHION_MNIST_DIR
    (export YCNG_FASHION_MNIST_DIR=${FASHION_DIR:-${YCNG_FASHION_MNIST_DIR:-}}
     run 300 python scripts/bench/population_vs_sequential.py --model mlp --sizes 32 128) ;;
  zeroshot)
    run 120 python scripts/bench/zero_shot_vs_transformers.py --gpu --model "$MODEL" "${texts[@]}" \
      --n 500 --rounds 2 ;;
  *) echo "unknown benchmark $b: choose from bert search encode kmeans features classify zeroshot population"; exit 2 ;;
esac; done; done
exit 0

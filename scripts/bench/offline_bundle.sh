#!/usr/bin/env bash
# Packs what scripts/bench/gpu.sh needs onto a GPU machine that has jax (CUDA), torch,
# transformers and sentence-transformers but no network, in under 64 MiB:
#   wheels (faiss-cpu, flax, optax, chex, ml_collections; Python 3.12, manylinux x86-64),
#   the MiniLM folder without its weights (run.sh makes seeded random ones there: timings need
#   shapes, not values), 5,000 debtags texts (one per line) and the Fashion-MNIST idx files.
# Then, on the machine, from the repository root:  bash BUNDLE/run.sh [bert search encode kmeans]
# (any of gpu.sh's names, e.g. classify zeroshot, which are not in the default set).
#
#   bash scripts/bench/offline_bundle.sh .devcarry     # BUNDLE folder (made, must not exist)
set -euo pipefail
out=${1:?usage: offline_bundle.sh OUT_FOLDER}
[ -e "$out" ] && { echo "$out exists: pass a new folder." >&2; exit 2; }
cd "$(dirname "$0")/../.."
mkdir -p "$out/whl" "$out/fashion"
for spec in faiss-cpu==1.15.1 flax==0.12.8 optax==0.2.8 chex==0.1.92 ml_collections==1.1.0; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$out/whl" "$spec"
done
model=$(python3 -c 'from ycng_jax.models.hf_weights import resolve_model_folder as r; print(r("all-MiniLM-L6-v2"))')
(cd "$model" && tar cf - --exclude model.safetensors --exclude pytorch_model.bin --exclude README.md \
  --exclude data_config.json .) | (mkdir -p "$out/minilm" && cd "$out/minilm" && tar xf -)
python3 - "$out/texts.txt" <<'PY'
import sys
sys.path.insert(0, "scripts/bench")
from bench_utils import debtags_texts
with open(sys.argv[1], "w", encoding="utf-8") as f:
  f.writelines(" ".join(t.split()) + "\n" for t in debtags_texts(5000))
PY
cp /usr/share/datasets/fashion-mnist/*-ubyte.gz "$out/fashion/"
cat > "$out/run.sh" <<'RUN'
#!/usr/bin/env bash
# On the GPU machine, from the repository root: bash BUNDLE/run.sh [bert search encode kmeans classify zeroshot]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p /tmp/bin && printf '#!/bin/sh\nexec %s "$@"\n' "$(command -v python3)" > /tmp/bin/python
chmod +x /tmp/bin/python
export PATH=/tmp/bin:$PATH PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=.5
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site "$here"/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
[ -d /tmp/minilm ] || python3 scripts/bench/random_weights_folder.py "$here/minilm" /tmp/minilm
MODEL=/tmp/minilm TEXTS="$here/texts.txt" FASHION_DIR="$here/fashion" \
  bash scripts/bench/gpu.sh "${@:-bert search encode kmeans}"
RUN
du -sh "$out"

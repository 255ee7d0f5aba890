#!/usr/bin/env bash
# Installs what loom needs on a fresh Debian 12 machine: the Debian packages
# for building loom and its programs, and a Python virtual environment (.venv)
# with the packages the tests use. Idempotent and quiet when all is there.
#   scripts/setup.sh          build and test dependencies
#   scripts/setup.sh models   also PyTorch and transformers, for models/*/export.py
#   scripts/setup.sh bench    also onnxruntime, the baseline of bench/infer_vs_ort.py
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(build-essential protobuf-c-compiler libprotobuf-c-dev libonnx-dev libonnx-testdata
      liblpsolve55-dev libopenblas-dev openmpi-bin libopenmpi-dev clang libclang-rt-14-dev
      python3-venv)
missing=()
for p in "${debs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing Debian packages: ${missing[*]}"
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Python for test oracles and model export only; loom itself never needs it.
py=python3
pips=(numpy==1.26.4 onnx==1.17.0)
[ "${1:-}" = models ] && pips+=(torch==2.5.1 transformers==4.46.3 onnxruntime==1.20.1)
[ "${1:-}" = bench ] && pips+=(onnxruntime==1.20.1)
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    $py -m venv .venv
fi
want=""
for p in "${pips[@]}"; do
    name=${p%%==*}; ver=${p##*==}
    have=$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('$name'))" 2>/dev/null || true)
    [ "$have" = "$ver" ] || want="$want $p"
done
if [ -n "$want" ]; then
    echo "setup: installing Python packages:$want"
    .venv/bin/pip install -q --disable-pip-version-check $want
fi

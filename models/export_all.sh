#!/usr/bin/env bash
# Re-exports every model of the zoo (used by `make models`).
# Python: $PYTHON, default .venv/bin/python relative to the repository root
# (scripts/setup.sh models installs the pinned torch/transformers/onnx/onnxruntime there).
#   models/export_all.sh              all models
#   models/export_all.sh mlp vit_tiny only these
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
PYTHON="${PYTHON:-.venv/bin/python}"
if ! command -v "$PYTHON" >/dev/null 2>&1 && [ ! -x "$PYTHON" ]; then
    echo "export_all: no python at '$PYTHON' (run scripts/setup.sh models, or set PYTHON)" >&2
    exit 1
fi
all=(mlp gpt2_tiny llama_tiny resnet_small unet_small vit_tiny fno_small)
names=("${@:-${all[@]}}")
# Deterministic, single-threaded exports; no stray bytecode in the tree.
export PYTHONDONTWRITEBYTECODE=1 PYTHONHASHSEED=0 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
for name in "${names[@]}"; do
    if [ ! -f "models/$name/export.py" ]; then
        echo "export_all: no model '$name' (models/$name/export.py)" >&2
        exit 1
    fi
    echo "== $name"
    "$PYTHON" "models/$name/export.py"
done
"$PYTHON" models/summarize.py "${names[@]}"

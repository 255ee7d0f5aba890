#!/usr/bin/env bash
# The parity tier: every zoo model compiled by `loom compile --mode train
# --target cpu` with the loss and optimizer of models/train_ref.py (cross-entropy
# or mean squared error against target_y, AdamW lr 1e-3 and PyTorch's other
# defaults), built, and compared with PyTorch's references committed beside the
# model: one step's loss and gradients (--dump-grads) against
# ref_grads.safetensors, relative error ||a-b||/||b|| < 1e-4 per tensor; ten
# steps' losses (--log) against ref_losses.json, |a-b|/|b| < 1e-4 per step.
# Then, where a Python with torch is found ($LOOM_TORCH_PYTHON, .venv,
# /work/pyenv-models), the references are re-derived and must equal the
# committed ones within 1e-6; without one that check is skipped (said, not
# counted).
# Env: LOOM (the loom binary), LOOM_ROOT (repo root), LOOM_TORCH_PYTHON.
set -u
root=${LOOM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root" || exit 1
loom=${LOOM:-build/asan/loom}
py=$root/.venv/bin/python
cmp=$root/tests/parity/compare.py
out=build/parity
rm -rf "$out" && mkdir -p "$out"

. "$root/tests/lib.sh"

models=(mlp gpt2_tiny llama_tiny resnet_small unet_small vit_tiny fno_small)
for model in "${models[@]}"; do
    case $model in
        unet_small|fno_small) loss=mse ;;
        *) loss=ce ;;
    esac
    dir=$out/$model
    ref=models/$model
    if ! "$loom" compile "$ref/model.onnx" --mode train --target cpu -o "$dir" --loss $loss \
        --loss-target target_y --optimizer adamw --lr 0.001 > "$dir.compile.log" 2>&1; then
        fail "parity_${model}_compile" "$(tail -3 "$dir.compile.log")"
        continue
    fi
    if ! make -s -C "$dir" LOOM_PREBUILT="$root/build/rel" > "$dir.build.log" 2>&1; then
        fail "parity_${model}_build" "$(tail -5 "$dir.build.log")"
        continue
    fi
    # the graph inputs' batch files and the target
    data=()
    for f in "$ref"/*.npy; do
        b=$(basename "$f" .npy)
        case $b in expected_*) continue ;; esac
        data+=(--data "$b=$f")
    done
    if ! "$dir/train" "${data[@]}" --steps 1 --dump-grads "$dir/grads.safetensors" > "$dir.step1.log" 2>&1; then
        fail "parity_${model}_grads" "train --steps 1 --dump-grads failed: $(tail -3 "$dir.step1.log")"
    elif msg=$("$py" "$cmp" grads "$dir/grads.safetensors" "$ref/ref_grads.safetensors" 2>&1); then
        pass "parity_${model}_grads ($msg)"
    else
        fail "parity_${model}_grads" "$msg"
    fi
    if ! "$dir/train" "${data[@]}" --steps 10 --log "$dir/log.jsonl" > "$dir.steps10.log" 2>&1; then
        fail "parity_${model}_losses" "train --steps 10 --log failed: $(tail -3 "$dir.steps10.log")"
    elif msg=$("$py" "$cmp" losses "$dir/log.jsonl" "$ref/ref_losses.json" 2>&1); then
        pass "parity_${model}_losses ($msg)"
    else
        fail "parity_${model}_losses" "$msg"
    fi
done

# ---- the committed references are what models/train_ref.py computes ----
tpy=""
for p in "${LOOM_TORCH_PYTHON:-}" "$root/.venv/bin/python" /work/pyenv-models/bin/python; do
    if [ -n "$p" ] && [ -x "$p" ] && "$p" -c "import torch, transformers, onnx" > /dev/null 2>&1; then
        tpy=$p
        break
    fi
done
if [ -z "$tpy" ]; then
    echo "SKIP parity_refs_reproduce: no Python with torch, transformers and onnx (set LOOM_TORCH_PYTHON or run scripts/setup.sh models)"
elif ! PYTHONDONTWRITEBYTECODE=1 "$tpy" models/train_ref.py --out "$out/refs" > "$out/refs.log" 2>&1; then
    fail parity_refs_reproduce "models/train_ref.py failed: $(tail -3 "$out/refs.log")"
elif msg=$("$py" "$cmp" refs "$out/refs" models "${models[@]}" 2>&1); then
    pass "parity_refs_reproduce ($msg)"
else
    fail parity_refs_reproduce "$msg"
fi

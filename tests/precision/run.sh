#!/usr/bin/env bash
# The precision tier: `--precision bf16` (ir/autocast.c) on the cpu target,
# for the zoo models whose work is matrix products (mlp, gpt2_tiny,
# llama_tiny, vit_tiny):
#  - training, compiled as the parity tier compiles it (AdamW lr 1e-3): the
#    first step's loss and gradients (--dump-grads) against PyTorch's float32
#    references (models/MODEL/ref_grads.safetensors), relative error per
#    tensor under 5e-2, and ten steps' losses against ref_losses.json under
#    1e-2. bfloat16 keeps 8 significant bits (a rounding error up to 2^-9),
#    so gradients of a few hundred products' sums land near 1e-2; the bounds
#    are a few times what the models show. The worst gradient error must
#    also be over 1e-4, the float32 program's bound: the products did round.
#  - inference: the outputs against the committed float32 ones
#    (expected_*.npy), normalized error under 2e-2, and over 1e-6; gpt2_tiny's
#    weights file holds bf16 tensors, and a float32 one given with --weights
#    gives the same outputs bit for bit (rounded at load as at compile);
#  - recomputation: gpt2_tiny's bf16 step at its least feasible budget has
#    the gradients and losses of the unlimited bf16 step, bit for bit, and a
#    peak within the budget;
#  - a bad --precision is refused naming the choices.
# That backward keeps the products' bf16 operands is test_autocast's; the
# memory it saves on GPT-2 124M is bench/results/gpu.md's. The cuda target's
# bf16 program is checked against this one by the cuda tier. Env: LOOM (the loom binary), LOOM_ROOT (repo root).
set -u
root=${LOOM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root" || exit 1
loom=${LOOM:-build/asan/loom}
py=$root/.venv/bin/python
cmp=$root/tests/parity/compare.py
out=build/precision
rm -rf "$out" && mkdir -p "$out"

. "$root/tests/lib.sh"

# nerr.py GOT.npy WANT.npy: ||got - want|| / ||want||, float64
cat > "$out/nerr.py" <<'PY'
import sys, numpy as np
a, b = (np.asarray(np.load(p), np.float64) for p in sys.argv[1:3])
if a.shape != b.shape: sys.exit(f"shape {a.shape} != {b.shape}")
print(f"{np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30):.3g}")
PY

for model in mlp gpt2_tiny llama_tiny vit_tiny; do
    ref=models/$model
    dir=$out/$model.train
    if ! "$loom" compile "$ref/model.onnx" --mode train --target cpu --precision bf16 -o "$dir" --loss ce \
        --loss-target target_y --optimizer adamw --lr 0.001 > "$dir.compile.log" 2>&1 ||
       ! make -s -C "$dir" LOOM_PREBUILT="$root/build/rel" > "$dir.build.log" 2>&1; then
        fail "precision_${model}_train_build" "$(tail -c 800 "$dir.compile.log" "$dir.build.log")"
        continue
    fi
    mapfile -t args < <(data "$model")
    if ! "$dir/train" "${args[@]}" --steps 1 --dump-grads "$dir/grads.safetensors" > "$dir.step1.log" 2>&1; then
        fail "precision_${model}_grads" "train --steps 1 --dump-grads failed: $(tail -3 "$dir.step1.log")"
    elif ! msg=$("$py" "$cmp" grads "$dir/grads.safetensors" "$ref/ref_grads.safetensors" 5e-2 2>&1); then
        fail "precision_${model}_grads" "$msg"
    elif ! "$py" -c "import sys; sys.exit(float(sys.argv[1]) <= 1e-4)" "$(echo "$msg" | awk '{print $3}' | tr -d ,)"; then
        fail "precision_${model}_grads" "the gradients are as close as float32's ($msg): were the products bf16?"
    else
        pass "precision_${model}_grads ($msg)"
    fi
    if ! "$dir/train" "${args[@]}" --steps 10 --log "$dir/log.jsonl" > "$dir.steps10.log" 2>&1; then
        fail "precision_${model}_losses" "train --steps 10 --log failed: $(tail -3 "$dir.steps10.log")"
    elif msg=$("$py" "$cmp" losses "$dir/log.jsonl" "$ref/ref_losses.json" 1e-2 2>&1); then
        pass "precision_${model}_losses ($msg)"
    else
        fail "precision_${model}_losses" "$msg"
    fi

    dir=$out/$model.infer
    if ! "$loom" compile "$ref/model.onnx" --mode infer --target cpu --precision bf16 -o "$dir" > "$dir.compile.log" 2>&1 ||
       ! make -s -C "$dir" LOOM_PREBUILT="$root/build/rel" > "$dir.build.log" 2>&1; then
        fail "precision_${model}_infer" "$(tail -c 800 "$dir.compile.log" "$dir.build.log")"
        continue
    fi
    in=() outs=()
    for f in "$ref"/*.npy; do
        b=$(basename "$f" .npy)
        case $b in expected_*) outs+=(--output "${b#expected_}=$dir/${b#expected_}.npy") ;; target_*) ;;
            *) in+=(--input "$b=$f") ;; esac
    done
    if ! "$dir/infer" "${in[@]}" "${outs[@]}" > "$dir.run.log" 2>&1; then
        fail "precision_${model}_infer" "$(tail -3 "$dir.run.log")"
        continue
    fi
    ok=1 msgs=""
    for f in "$ref"/expected_*.npy; do
        b=$(basename "$f" .npy)
        e=$("$py" "$out/nerr.py" "$dir/${b#expected_}.npy" "$f" 2>&1)
        msgs+="${b#expected_} $e "
        "$py" -c "import sys; e = float(sys.argv[1]); sys.exit(not 1e-6 < e < 2e-2)" "$e" 2>/dev/null || ok=0
    done
    if [ $ok = 1 ]; then pass "precision_${model}_infer (normalized error: $msgs)"
    else fail "precision_${model}_infer" "normalized error not in (1e-6, 2e-2): $msgs"; fi
    # the products' weights are stored in bf16, cast once by the compiler; a
    # float32 weights file (the float32 program's) is rounded the same way
    # at load: the same outputs, bit for bit
    [ "$model" = gpt2_tiny ] || continue
    f32=$out/$model.infer32
    if ! head -c 65536 "$dir/weights.safetensors" | grep -q '"BF16"'; then
        fail precision_${model}_infer_weights "weights.safetensors holds no bfloat16 tensor"
    elif ! "$loom" compile "$ref/model.onnx" --mode infer --target cpu -o "$f32" > "$f32.compile.log" 2>&1 ||
         ! "$dir/infer" "${in[@]}" --output "$out/w32.npy" --weights "$f32/weights.safetensors" > "$f32.run.log" 2>&1; then
        fail precision_${model}_infer_weights "$(tail -c 600 "$f32.compile.log" "$f32.run.log")"
    elif cmp -s "$out/w32.npy" "$dir/$(basename "$(ls "$ref"/expected_*.npy | head -1)" .npy | sed 's/^expected_//').npy"; then
        pass precision_${model}_infer_weights
    else
        fail precision_${model}_infer_weights "--weights with float32 tensors gave other outputs than the compiled bf16 weights"
    fi
done

# ---- recomputation under a budget changes no bit of a bf16 step either ----
m=gpt2_tiny
mapfile -t args < <(data "$m")
if least=$("$loom" plan "models/$m/model.onnx" --loss ce --loss-target target_y --precision bf16 --json 2>&1 |
           "$py" -c "import json, sys; print(json.load(sys.stdin)['min_feasible_bytes'])"); then
    ok=1
    for b in none "$least"; do
        d=$out/$m.remat.$b
        extra=()
        [ "$b" != none ] && extra=(--budget "$b")
        "$loom" compile "models/$m/model.onnx" --mode train --target cpu --precision bf16 --loss ce \
            --loss-target target_y -o "$d" "${extra[@]}" > "$d.compile.log" 2>&1 &&
            make -s -C "$d" LOOM_PREBUILT="$root/build/rel" > "$d.build.log" 2>&1 &&
            "$d/train" "${args[@]}" --steps 2 --dump-grads "$d.grads.st" --log "$d.log.jsonl" > "$d.run.log" 2>&1 || ok=0
    done
    a=$out/$m.remat.none b=$out/$m.remat.$least
    peak=$(sed -n 's/.*"peak_device_bytes": \([0-9]*\).*/\1/p' "$b.log.jsonl" | sort -n | tail -1)
    if [ $ok = 1 ] && cmp -s "$a.grads.st" "$b.grads.st" && [ "$(losses "$a.log.jsonl")" = "$(losses "$b.log.jsonl")" ] &&
       [ -n "$peak" ] && [ "$peak" -le "$least" ]; then
        pass "precision_remat_$m (bf16 at its least feasible budget $least bytes: gradients and 2 losses identical, peak $peak)"
    else
        fail "precision_remat_$m" "ok $ok, peak ${peak:-?} of $least: $(tail -c 400 "$b.compile.log" "$b.run.log" 2>/dev/null)"
    fi
else
    fail "precision_remat_$m" "loom plan failed: $least"
fi

expect precision_bad_flag 2 "unknown precision 'fp8' (fp32, bf16)" \
    "$loom" compile models/mlp/model.onnx --mode infer --target cpu --precision fp8 -o "$out/bad"

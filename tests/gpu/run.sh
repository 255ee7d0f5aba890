#!/usr/bin/env bash
# The gpu tier, for a machine with an NVIDIA GPU (not part of `make test`:
# CI has no GPU). Usage:
#   tests/gpu/run.sh                 build and run everything in build/gpu;
#                                    says so and skips when no GPU answers
#   tests/gpu/run.sh --prepare DIR   only what needs no GPU, into DIR: the
#                                    kernels and programs built by nvcc, the
#                                    cpu programs built and their results
#   tests/gpu/run.sh --run DIR       only the GPU part, on what --prepare put
#                                    in DIR (build on one machine, run on another)
# What it checks and times:
#  1. every cuda kernel against its cpu kernel on random inputs
#     (tests/gpu/test_kernels.cu, normalized error < 1e-5);
#  2. every zoo model the cuda target builds (tests/cuda/expected.txt,
#     "built"), beside the cpu program of the same model: inference outputs
#     within 1e-5 (normalized); training's first-step loss and gradients
#     within 1e-5 and the 10-step loss curve within 1e-4 relative
#     (tests/cuda/compare.py); and the matmul models (BF16_MODELS) compiled
#     with --precision bf16 on both targets: gradients and 10-step losses
#     within 1e-2 (cuBLASLt's bf16 products against the cpu's rounding), or
#     a gradient no further from the float32 cpu program's than 1.5 times
#     the bf16 cpu program's is;
#  3. training step times, median of 20 steps after 3 warm-up steps: each zoo
#     model and GPT-2 124M (batch 8 x 1024, fp32; the ONNX file written by
#     `python models/gpt2_124m.py`, skipped when absent), against PyTorch
#     eager and torch.compile on the same model, batch and precision
#     (bench/gpu_torch.py), and GPT-2 124M again compiled with --budget half
#     the store-all activation memory (DEVICE: the cost model's profile,
#     default h100-sxm, or where --prepare finds a GPU, the profile
#     bench/gpu_device.cu measures on it; with offload, its default there, and with
#     --offload off: recomputation alone; each one's 23-step loss curve
#     against store-all's within 1e-4) and with --precision bf16 (against PyTorch's bf16
#     autocast; and under half the bf16 store-all activation memory, the same two
#     ways, its curve against the bf16 store-all's); prints one table and writes it to
#     $RESULTS (default bench/results/gpu.md) with the GPU named.
# Env: LOOM (build/rel/loom), PREBUILT (build/rel: libloomrt.a,
# libloomk_cpu.a), CUDA (/usr/local/cuda), ARCH (the GPU's; sm_90 when
# preparing without one), PY (.venv/bin/python, else python3), GPT2 (the
# GPT-2 124M ONNX file), TORCH_COMPILE (all; none, or the models to time
# compiled, comma-separated: torch.compile takes a minute or more a model),
# BLAS_LIBS (-lopenblas: the cpu kernels' BLAS, linked into test_kernels).
set -u
root=${LOOM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root" || exit 1
. "$root/tests/lib.sh"
phase=both out=build/gpu
case ${1:-} in
    --prepare) phase=prepare out=${2:?--prepare DIR} ;;
    --run) phase=run out=${2:?--run DIR} ;;
    "") ;;
    *) echo "usage: tests/gpu/run.sh [--prepare DIR | --run DIR]" >&2; exit 2 ;;
esac
has_gpu() { command -v nvidia-smi > /dev/null 2>&1 && nvidia-smi -L > /dev/null 2>&1; }
if [ $phase != prepare ] && ! has_gpu; then
    echo "no GPU on this machine (nvidia-smi finds none): the gpu tier is skipped"
    exit 0
fi
CUDA=${CUDA:-/usr/local/cuda}
if [ -z "${ARCH:-}" ]; then
    if has_gpu; then ARCH=sm_$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d ' .')
    else ARCH=sm_90; fi
fi
loom=${LOOM:-build/rel/loom}
PREBUILT=${PREBUILT:-build/rel}
if [ -z "${PY:-}" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
GPT2=${GPT2:-build/models/gpt2_124m/model.onnx}
jobs=$(nproc)
K=codegen/kernels/cuda
loss_of() { case $1 in unet_small|fno_small) echo mse ;; *) echo ce ;; esac; }
built_models() { awk '$3 == "built" { print $1, $2 }' tests/cuda/expected.txt; }
mode_bin() { [ "$1" = train ] && echo train || echo infer; }
BF16_MODELS=${BF16_MODELS:-mlp gpt2_tiny llama_tiny vit_tiny}

prepare() {
    rm -rf "$out" && mkdir -p "$out/nv"
    echo "prepare: ARCH=$ARCH into $out"
    local NV="$CUDA/bin/nvcc -std=c++17 -O2 -gencode arch=compute_${ARCH#sm_},code=$ARCH -D_GNU_SOURCE -I$K -Iruntime -Icodegen/kernels/cpu"
    local f pids=() ok=1
    for f in $K/lk_*.cu runtime/rt_cuda.cu; do
        $NV -x cu -c "$f" -o "$out/nv/$(basename "$f" .cu).o" 2> "$out/nv/$(basename "$f" .cu).log" &
        pids+=($!)
        if [ ${#pids[@]} -ge "$jobs" ]; then wait "${pids[0]}" || ok=0; pids=("${pids[@]:1}"); fi
    done
    for f in "${pids[@]}"; do wait "$f" || ok=0; done
    ar rcs "$out/libloomk_cuda.a" "$out"/nv/*.o && cp "$PREBUILT/libloomrt.a" "$out/"
    [ $ok = 1 ] || { fail gpu_kernels_build "$(cat "$out"/nv/*.log | head -c 1500)"; return 1; }
    if $NV -x cu -c tests/gpu/test_kernels.cu -o "$out/nv/test_kernels.o" > "$out/test_kernels.build.log" 2>&1 &&
        $NV "$out/nv/test_kernels.o" "$out/libloomk_cuda.a" "$PREBUILT/libloomrt.a" "$PREBUILT/libloomk_cpu.a" \
            -L"$CUDA/lib64" -lcublasLt -lcufft -lcudart ${BLAS_LIBS:--lopenblas} -lpthread -o "$out/test_kernels" >> "$out/test_kernels.build.log" 2>&1; then
        pass gpu_test_kernels_build
    else
        fail gpu_test_kernels_build "$(head -c 1500 "$out/test_kernels.build.log")"
    fi
    $NV bench/gpu_attn.cu $K/lk_attn.cu runtime/rt_cuda.cu "$PREBUILT/libloomrt.a" -lcudart -o "$out/gpu_attn" \
        > "$out/gpu_attn.build.log" 2>&1 || fail gpu_attn_build "$(head -c 800 "$out/gpu_attn.build.log")"
    $NV bench/gpu_device.cu $K/lk_gemm.cu runtime/rt_cuda.cu "$PREBUILT/libloomrt.a" -lcublasLt -lcudart \
        -o "$out/gpu_device" > "$out/gpu_device.build.log" 2>&1 ||
        fail gpu_device_build "$(head -c 800 "$out/gpu_device.build.log")"
    # the budgets' plans: on DEVICE's profile, or, on a machine with a GPU, on
    # the profile bench/gpu_device.cu measures on it (its host link above all)
    if [ -z "${DEVICE:-}" ] && has_gpu && [ -x "$out/gpu_device" ] &&
        "$out/gpu_device" > "$out/device.measured.json" 2> "$out/device.measured.txt"; then
        DEVICE=$out/device.measured.json
    fi
    echo "${DEVICE:-h100-sxm}" > "$out/plan_device.txt"
    # every built zoo model, cuda and cpu, compiled and built (in parallel);
    # then the cpu program's results, the reference of the --run phase
    local m mode d c extra
    while read -r m mode; do
        d=$out/$m.$mode c=$out/$m.$mode.cpu extra=()
        [ "$mode" = train ] && extra=(--loss "$(loss_of "$m")" --loss-target target_y)
        ( "$loom" compile "models/$m/model.onnx" --mode "$mode" --target cuda -o "$d" "${extra[@]}" > "$d.compile.log" 2>&1 &&
            make -s -C "$d" ARCH="$ARCH" LOOM_PREBUILT="$root/$out" > "$d.build.log" 2>&1 &&
            "$loom" compile "models/$m/model.onnx" --mode "$mode" --target cpu -o "$c" "${extra[@]}" > "$c.compile.log" 2>&1 &&
            make -s -C "$c" LOOM_PREBUILT="$root/$PREBUILT" > "$c.build.log" 2>&1 && rm -f "$d"/*.o "$c"/*.o ||
            { echo "FAIL gpu_build_${m}_$mode"; tail -c 800 "$d.compile.log" "$d.build.log" "$c.compile.log" "$c.build.log" 2> /dev/null; } ) &
        while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
    done < <(built_models)
    wait
    while read -r m mode; do
        c=$out/$m.$mode.cpu
        [ -x "$c/$(mode_bin "$mode")" ] || continue
        if [ "$mode" = infer ]; then
            run_infer "$m" "$c" > "$c.run.log" 2>&1 || fail "gpu_cpu_run_${m}_$mode" "$(tail -c 400 "$c.run.log")"
        else
            mapfile -t data < <(data "$m")
            "$c/train" "${data[@]}" --steps 10 --dump-grads "$c.grads.st" --log "$c.log.jsonl" > "$c.run.log" 2>&1 ||
                fail "gpu_cpu_run_${m}_$mode" "$(tail -c 400 "$c.run.log")"
        fi
    done < <(built_models)
    # the matmul models in bf16, cuda and cpu, and the cpu program's results
    for m in $BF16_MODELS; do
        d=$out/$m.bf16.train c=$out/$m.bf16.train.cpu
        extra=(--mode train --precision bf16 --loss "$(loss_of "$m")" --loss-target target_y)
        mapfile -t data < <(data "$m")
        ( "$loom" compile "models/$m/model.onnx" --target cuda -o "$d" "${extra[@]}" > "$d.compile.log" 2>&1 &&
            make -s -C "$d" ARCH="$ARCH" LOOM_PREBUILT="$root/$out" > "$d.build.log" 2>&1 &&
            "$loom" compile "models/$m/model.onnx" --target cpu -o "$c" "${extra[@]}" > "$c.compile.log" 2>&1 &&
            make -s -C "$c" LOOM_PREBUILT="$root/$PREBUILT" > "$c.build.log" 2>&1 && rm -f "$d"/*.o "$c"/*.o &&
            "$c/train" "${data[@]}" --steps 10 --dump-grads "$c.grads.st" --log "$c.log.jsonl" > "$c.run.log" 2>&1 ||
            { echo "FAIL gpu_build_${m}_bf16"; tail -c 800 "$d.compile.log" "$d.build.log" "$c.compile.log" "$c.build.log" "$c.run.log" 2> /dev/null; } ) &
        while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
    done
    wait
    # GPT-2 124M, for timing only (its cpu program would take minutes a step):
    # store-all, under half the store-all activation memory (weights and
    # optimizer state whole), and in bf16
    if [ -f "$GPT2" ]; then
        local d=$out/gpt2_124m.train budget
        if gpt2_build gpt2_124m 1 && "$PY" -c "import numpy as np, sys
r = np.random.default_rng(0)
for n in ('input_ids', 'target_y'): np.save(f'{sys.argv[1]}/{n}.npy', r.integers(0, 50257, (8, 1024), dtype=np.int64))" "$d"; then
            pass gpu_build_gpt2_124m
            budget=$("$loom" plan "$GPT2" --mode train --target cuda --device "${DEVICE:-h100-sxm}" --loss ce --loss-target target_y --json |
                "$PY" -c "import json, sys; d = json.load(sys.stdin); print(d['weights_bytes'] + d['store_all_arena_bytes'] // 2)") &&
                gpt2_build gpt2_124m_half 0 --device "${DEVICE:-h100-sxm}" --budget "$budget" &&
                pass "gpu_build_gpt2_124m_half (--budget $budget)" &&
                gpt2_build gpt2_124m_half_remat 0 --device "${DEVICE:-h100-sxm}" --budget "$budget" --offload off &&
                pass "gpu_build_gpt2_124m_half_remat (--budget $budget --offload off)"
            gpt2_build gpt2_124m_bf16 1 --precision bf16 && pass gpu_build_gpt2_124m_bf16
            # and bf16 under half its own store-all activation memory (the issue's goal: within 5%)
            budget=$("$loom" plan "$GPT2" --mode train --target cuda --device "${DEVICE:-h100-sxm}" --loss ce --loss-target target_y \
                        --precision bf16 --json |
                "$PY" -c "import json, sys; d = json.load(sys.stdin); print(d['weights_bytes'] + d['store_all_arena_bytes'] // 2)") &&
                gpt2_build gpt2_124m_bf16_half 0 --precision bf16 --device "${DEVICE:-h100-sxm}" --budget "$budget" &&
                pass "gpu_build_gpt2_124m_bf16_half (--budget $budget)" &&
                gpt2_build gpt2_124m_bf16_half_remat 0 --precision bf16 --device "${DEVICE:-h100-sxm}" --budget "$budget" \
                    --offload off && pass "gpu_build_gpt2_124m_bf16_half_remat (--budget $budget --offload off)"
        fi
    else
        echo "no $GPT2 (python models/gpt2_124m.py writes it): GPT-2 124M is left out"
    fi
}

# gpt2_build NAME PROFILE [FLAG...]: GPT-2 124M compiled for cuda with the
# flags into $out/NAME.train and built (PROFILE 1: the PROFILE=1 build too, as
# train.profile); the batch copied from gpt2_124m's folder where it is there
gpt2_build() {
    local name=$1 p=$out/$1.train prof=$2
    shift 2
    if "$loom" compile "$GPT2" --mode train --target cuda --loss ce --loss-target target_y -o "$p" "$@" \
            > "$p.compile.log" 2>&1 &&
        { [ "$prof" = 0 ] || { make -s -C "$p" ARCH="$ARCH" LOOM_PREBUILT="$root/$out" PROFILE=1 > "$p.build.log" 2>&1 &&
                                mv "$p/train" "$p/train.profile" && rm -f "$p"/*.o; }; } &&
        make -s -C "$p" ARCH="$ARCH" LOOM_PREBUILT="$root/$out" > "$p.build.log" 2>&1 && rm -f "$p"/*.o; then
        [ "$name" = gpt2_124m ] || cp "$out/gpt2_124m.train"/*.npy "$p/"
        return 0
    fi
    fail "gpu_build_$name" "$(tail -c 800 "$p.compile.log" "$p.build.log" 2> /dev/null)"
    return 1
}

# run_infer MODEL DIR: runs DIR/infer on the model's committed inputs, output to DIR.out.npy
run_infer() {
    local m=$1 p=$2 in=() f b o
    for f in models/$m/*.npy; do
        b=$(basename "$f" .npy)
        case $b in expected_*|target_y) continue ;; esac
        in+=(--input "$b=$f")
    done
    o=$(sed -n 's/^  \([^ ]*\) .*/\1/p' < <("$p/infer" --help | sed -n '/^outputs:/,$p') | head -1)
    "$p/infer" "${in[@]}" --output "$o=$p.out.npy"
}

median_ms() { # FILE FIRST: the median step_ms of a --log file from step FIRST on
    "$PY" -c "import json, sys, statistics as s
v = [json.loads(l) for l in open(sys.argv[1])]
print(f\"{s.median(x['step_ms'] for x in v if x['step'] >= int(sys.argv[2])):.3f}\")" "$1" "$2"
}

# gpt2_run NAME: GPT-2 124M's program $out/NAME.train timed (23 steps; the
# median from step 4 into $times) and, where its PROFILE=1 build is, profiled
gpt2_run() {
    local p=$out/$1.train
    [ -x "$p/train" ] || return 0
    local in=(--data "input_ids=$p/input_ids.npy" --data "target_y=$p/target_y.npy")
    "$p/train" "${in[@]}" --steps 23 --print-every 100 --log "$p.time.jsonl" > "$p.run.log" 2>&1 &&
        echo "$1 loom $(median_ms "$p.time.jsonl" 4)" >> "$times" || fail "gpu_train_$1" "$(tail -c 600 "$p.run.log")"
    [ -x "$p/train.profile" ] && "$p/train.profile" "${in[@]}" --steps 4 --print-every 100 --profile "$p.profile.json" \
        > "$p.profile.log" 2>&1
    return 0
}

run() {
    local gpu m mode d c r times=$out/times.txt
    gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
    echo "GPU: $gpu (driver $(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1)), ARCH=$ARCH"
    if [ -x "$out/test_kernels" ]; then
        "$out/test_kernels" 2>&1 | tee "$out/test_kernels.log"
        grep -q '^PASS' "$out/test_kernels.log" || fail gpu_test_kernels "no result"
    fi
    : > "$times"
    while read -r m mode; do
        d=$out/$m.$mode c=$out/$m.$mode.cpu
        [ -x "$d/$(mode_bin "$mode")" ] || { fail "gpu_run_${m}_$mode" "not built"; continue; }
        if [ "$mode" = infer ]; then
            if run_infer "$m" "$d" > "$d.run.log" 2>&1 && r=$("$PY" tests/cuda/compare.py out "$d.out.npy" "$c.out.npy" 2>&1); then
                pass "gpu_infer_$m ($r)"
            else fail "gpu_infer_$m" "${r:-} $(tail -c 400 "$d.run.log")"; fi
            continue
        fi
        mapfile -t data < <(data "$m")
        if "$d/train" "${data[@]}" --steps 10 --dump-grads "$d.grads.st" --log "$d.log.jsonl" > "$d.run.log" 2>&1; then
            r=$("$PY" tests/cuda/compare.py grads "$d.grads.st" "$c.grads.st" 2>&1) && pass "gpu_grads_$m ($r)" || fail "gpu_grads_$m" "$r"
            r=$("$PY" tests/cuda/compare.py curve "$d.log.jsonl" "$c.log.jsonl" 2>&1) && pass "gpu_losses_$m ($r)" || fail "gpu_losses_$m" "$r"
        else
            fail "gpu_train_$m" "$(tail -c 600 "$d.run.log")"; continue
        fi
        "$d/train" "${data[@]}" --steps 23 --print-every 100 --log "$d.time.jsonl" > /dev/null 2>&1 &&
            echo "$m loom $(median_ms "$d.time.jsonl" 4)" >> "$times"
        echo "$m cpu $(median_ms "$c.log.jsonl" 2)" >> "$times"
    done < <(built_models)
    for m in $BF16_MODELS; do
        d=$out/$m.bf16.train c=$out/$m.bf16.train.cpu
        [ -x "$d/train" ] && [ -f "$c.grads.st" ] || { fail "gpu_run_${m}_bf16" "not built"; continue; }
        mapfile -t data < <(data "$m")
        if "$d/train" "${data[@]}" --steps 10 --dump-grads "$d.grads.st" --log "$d.log.jsonl" > "$d.run.log" 2>&1; then
            # beside the cpu program's bf16 gradients, or as near the float32 ones ($m.train.cpu's first step)
            r=$("$PY" tests/cuda/compare.py grads "$d.grads.st" "$c.grads.st" 1e-2 "$out/$m.train.cpu.grads.st" 2>&1) &&
                pass "gpu_grads_${m}_bf16 ($r)" || fail "gpu_grads_${m}_bf16" "$r"
            r=$("$PY" tests/cuda/compare.py curve "$d.log.jsonl" "$c.log.jsonl" 1e-2 2>&1) && pass "gpu_losses_${m}_bf16 ($r)" || fail "gpu_losses_${m}_bf16" "$r"
        else
            fail "gpu_train_${m}_bf16" "$(tail -c 600 "$d.run.log")"
        fi
    done
    b=$out/gpt2_124m_bf16.train d=$out/gpt2_124m.train
    gpt2_run gpt2_124m
    gpt2_run gpt2_124m_half
    gpt2_run gpt2_124m_half_remat
    gpt2_run gpt2_124m_bf16
    gpt2_run gpt2_124m_bf16_half
    gpt2_run gpt2_124m_bf16_half_remat
    # the budget's plans (offload by default on a GPU profile, and recomputation
    # alone) train the same model on the same batches as store-all
    for h in gpt2_124m_half gpt2_124m_half_remat gpt2_124m_bf16_half gpt2_124m_bf16_half_remat; do
        local ref=$d
        case $h in *bf16*) ref=$b ;; esac
        [ -f "$out/$h.train.time.jsonl" ] && [ -f "$ref.time.jsonl" ] || continue
        if r=$("$PY" tests/cuda/compare.py curve "$out/$h.train.time.jsonl" "$ref.time.jsonl" 2>&1); then pass "gpu_losses_$h ($r)"
        else fail "gpu_losses_$h" "$r"; fi
    done
    local tm=()
    [ -x "$d/train" ] && tm+=(--gpt2-124m)
    tm+=(--compile "${TORCH_COMPILE:-all}")
    PYTHONUNBUFFERED=1 "$PY" bench/gpu_torch.py --steps 20 --warmup 3 "${tm[@]}" --out "$out/torch.txt" $(built_models | awk '$2 == "train" { print $1 }') 2>&1 |
        tee "$out/torch.log"
    [ "${PIPESTATUS[0]}" = 0 ] || fail gpu_torch "$(tail -c 800 "$out/torch.log")"
    [ -x "$out/gpu_attn" ] && "$out/gpu_attn" > "$out/attn.txt" 2>&1
    # this GPU's measured profile (a device file for --device; the budgets
    # above were planned on the profile in plan_device.txt), measured here
    # unless --prepare already did on this machine
    [ -x "$out/gpu_device" ] && [ ! -s "$out/device.measured.json" ] &&
        { "$out/gpu_device" > "$out/device.measured.json" 2> "$out/device.measured.txt" ||
            fail gpu_device "$(tail -c 400 "$out/device.measured.txt")"; }
    { "$PY" tests/gpu/table.py "$gpu" "$times" "$out/torch.txt" "$d.profile.json" "$b.profile.json"
      [ -s "$out/attn.txt" ] && printf '\nThe attention kernels alone (bench/gpu_attn.cu, GPT-2 124M'"'"'s shape):\n\n' &&
          sed 's/^/    /' "$out/attn.txt"
      [ -s "$out/device.measured.json" ] &&
          printf '\nThis GPU measured (bench/gpu_device.cu; the budgets were planned on %s):\n\n' \
              "$(cat "$out/plan_device.txt" 2> /dev/null || echo "${DEVICE:-h100-sxm}")" &&
          sed 's/^/    /' "$out/device.measured.txt" "$out/device.measured.json"; } | tee "${RESULTS:-bench/results/gpu.md}"
}

case $phase in
    prepare) prepare ;;
    run) run ;;
    both) prepare && run ;;
esac

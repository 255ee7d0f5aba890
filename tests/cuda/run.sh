#!/usr/bin/env bash
# The cuda tier: the cuda target without a GPU (docs/ARCHITECTURE.md, "CUDA
# target"). With the CUDA toolkit's nvcc, and its host emulator
# (codegen/kernels/cuda/emu.h) standing in for the GPU:
#  1. the emulator itself against plain loops (tests/cuda/test_emu.cu:
#     shared memory, barriers, every shuffle, atomics, host access to device
#     memory refused), and the same file compiled by nvcc;
#  2. every cuda kernel against its cpu kernel on random inputs
#     (tests/gpu/test_kernels.cu, normalized error < 1e-5), under the
#     emulator, and compiled by nvcc;
#  3. every zoo model in both modes: `loom compile --target cuda` either
#     writes a program that nvcc builds and links (ARCH=sm_90), or refuses
#     naming the op it cannot emit yet; tests/cuda/expected.txt holds which,
#     and any change fails until the file is updated;
#  4. each program that builds, built again with `make EMU=1` and run on the
#     emulator beside the cpu program of the same model: inference outputs
#     within a normalized error of 1e-5; training's first-step loss and
#     --dump-grads gradients within 1e-5, and 5 steps of loss within 1e-4;
#     gpt2_tiny's training also with --no-fuse-attention (Softmax and its
#     gradient, batched MatMul), resnet_small's with --fold-add-relu on (its
#     residual ReLUs' gradients in loops that make the Add again);
#  4b. gpt2_tiny with --offload only under a budget: its copies to host
#     memory and back on the copy streams, built by nvcc, and emulated
#     beside the cpu program: gradients and 3 steps within 1e-5 / 1e-4;
#  4c. gpt2_tiny and resnet_small with --lowbit bf16 under a budget: the
#     conversions (resnet_small's fused into its loops and kernels), built by
#     nvcc, and emulated: gradients within 2e-2 of the float32 cpu program's,
#     3 steps of loss within 1e-3;
#  4d. gpt2_tiny on h100-sxm under the first budget whose plan comes from
#     the remat solver's priced tables (checkpoints planned on the host):
#     within its budget, built by nvcc, and emulated: gradients and 3 steps
#     within 1e-5 of the float32 cpu program's;
#  5. bfloat16 products (tests/cuda/bf16_graph.py: MatMul, batched MatMul
#     of a Transpose, Gemm with transA / transB, a Sum and Casts of bf16
#     values, a float16 Mul): compiled for both targets, the nvcc build, and
#     the emulated program's outputs within a normalized error of 1e-2 of
#     the cpu program's; and gpt2_tiny trained with --precision bf16 (its
#     head lk_linear_ce_bf16) beside the cpu program: gradients and 3 steps
#     of loss within 1e-2, and its bf16 inference program's logits within 1e-2;
#  6. measured costs: mlp's PROFILE=1 training program, emulated, its step
#     profile turned into an h100-sxm costs file by `loom profile --target
#     cuda --from`, which `loom plan --costs` takes.
# The kernels, rt_cuda and the emulator are compiled once (nvcc and g++)
# and linked by every program (LOOM_PREBUILT). Env: LOOM, LOOM_ROOT, CUDA.
set -u
root=${LOOM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root" || exit 1
loom=${LOOM:-build/asan/loom}
py=$root/.venv/bin/python
out=build/cuda
rm -rf "$out" && mkdir -p "$out/nv" "$out/emu"
. "$root/tests/lib.sh"

CUDA=${CUDA:-/usr/local/cuda}
NVCC=$CUDA/bin/nvcc
if [ ! -x "$NVCC" ]; then
    fail cuda_toolkit "no nvcc at $NVCC: install the CUDA toolkit, or set CUDA"
    exit 1
fi
K=codegen/kernels/cuda
ARCH=sm_90
EMU_CXX="g++ -std=c++17 -O1 -g -DLOOM_EMU -D_GNU_SOURCE -I$root/$K -I$root/runtime -I$root/codegen/kernels/cpu -isystem $CUDA/include"
NV_CXX="$NVCC -std=c++17 -O2 -gencode arch=compute_90,code=sm_90 -D_GNU_SOURCE -I$root/$K -I$root/runtime -I$root/codegen/kernels/cpu"
RT=$root/build/rel/libloomrt.a
KCPU=$root/build/rel/libloomk_cpu.a

# ---- the shared objects: kernels, rt_cuda, the emulator ----
prebuilt() {
    local pids=() f b ok=1
    for f in $K/lk_*.cu runtime/rt_cuda.cu; do
        b=$(basename "$f" .cu)
        $EMU_CXX -x c++ -c "$f" -o "$out/emu/$b.o" 2> "$out/emu/$b.log" || ok=0
    done
    for f in $K/emu.cpp $K/emu_cublaslt.cpp $K/emu_cufft.cpp; do
        b=$(basename "$f" .cpp)
        $EMU_CXX -c "$f" -o "$out/emu/$b.o" 2> "$out/emu/$b.log" || ok=0
    done
    ar rcs "$out/libloomk_cuda_emu.a" "$out"/emu/*.o
    for f in $K/lk_*.cu runtime/rt_cuda.cu; do
        b=$(basename "$f" .cu)
        $NV_CXX -x cu -c "$f" -o "$out/nv/$b.o" 2> "$out/nv/$b.log" &
        pids+=($!)
        if [ ${#pids[@]} -ge 2 ]; then wait "${pids[0]}" || ok=0; pids=("${pids[@]:1}"); fi
    done
    for p in "${pids[@]}"; do wait "$p" || ok=0; done
    ar rcs "$out/libloomk_cuda.a" "$out"/nv/*.o
    cp "$RT" "$out/libloomrt.a"
    [ $ok = 1 ]
}
if prebuilt; then pass cuda_kernels_build; else fail cuda_kernels_build "$(cat "$out"/emu/*.log "$out"/nv/*.log | head -c 1500)"; exit 1; fi

# ---- 1, 2: the emulator and the kernels ----
for t in tests/cuda/test_emu.cu tests/gpu/test_kernels.cu; do
    b=$(basename "$t" .cu)
    if $EMU_CXX -x c++ "$t" -x none "$out/libloomk_cuda_emu.a" "$RT" "$KCPU" -lopenblas -pthread -lm \
            -o "$out/$b" 2> "$out/$b.build.log"; then
        "$out/$b" > "$out/$b.log" 2>&1
        cat "$out/$b.log"
        grep -q '^PASS' "$out/$b.log" || fail "$b" "no result: $(tail -c 400 "$out/$b.log")"
    else
        fail "${b}_emu_build" "$(head -c 1500 "$out/$b.build.log")"
    fi
    if $NV_CXX -x cu -c "$t" -o "$out/$b.nv.o" 2> "$out/$b.nv.log"; then pass "${b}_nvcc"
    else fail "${b}_nvcc" "$(head -c 1500 "$out/$b.nv.log")"; fi
done

# bench/gpu_attn.cu (the attention kernels timed alone on a GPU) still builds
if $NV_CXX bench/gpu_attn.cu $K/lk_attn.cu runtime/rt_cuda.cu "$RT" -lcudart \
        -o "$out/gpu_attn" > "$out/gpu_attn.log" 2>&1; then pass gpu_attn_nvcc
else fail gpu_attn_nvcc "$(head -c 1500 "$out/gpu_attn.log")"; fi
# and bench/gpu_lince.cu (the fused head and its products)
if $NV_CXX bench/gpu_lince.cu $K/lk_lince.cu $K/lk_gemm.cu runtime/rt_cuda.cu "$RT" -lcublasLt -lcudart \
        -o "$out/gpu_lince" > "$out/gpu_lince.log" 2>&1; then pass gpu_lince_nvcc
else fail gpu_lince_nvcc "$(head -c 1500 "$out/gpu_lince.log")"; fi
# and bench/gpu_device.cu (a GPU's measured profile, for --device)
if $NV_CXX bench/gpu_device.cu $K/lk_gemm.cu runtime/rt_cuda.cu "$RT" -lcublasLt -lcudart \
        -o "$out/gpu_device" > "$out/gpu_device.log" 2>&1; then pass gpu_device_nvcc
else fail gpu_device_nvcc "$(head -c 1500 "$out/gpu_device.log")"; fi

# ---- 3, 4: the zoo ----
loss_of() { case $1 in unet_small|fno_small) echo mse ;; *) echo ce ;; esac; }

got=$out/got.txt
: > "$got"
for dir in models/*/; do
    m=$(basename "$dir")
    [ -f "models/$m/model.onnx" ] || continue
    for mode in infer train; do
        d=$out/$m.$mode
        args=(compile "models/$m/model.onnx" --mode "$mode" --target cuda -o "$d")
        [ "$mode" = train ] && args+=(--loss "$(loss_of "$m")" --loss-target target_y)
        if ! "$loom" "${args[@]}" > "$d.compile.log" 2>&1; then
            op=$(sed -n 's/.*(\([A-Za-z.]*\), opset [0-9]*): .*not supported by the cuda target.*/\1/p' "$d.compile.log" | head -1)
            if [ -z "$op" ]; then
                fail "cuda_compile_${m}_$mode" "neither built nor refused with an op: $(head -c 400 "$d.compile.log")"
                continue
            fi
            echo "$m $mode refused $op" >> "$got"
            echo "refused: $m $mode: $(head -c 300 "$d.compile.log")"
            continue
        fi
        if make -s -C "$d" ARCH=$ARCH LOOM_PREBUILT="$root/$out" > "$d.build.log" 2>&1 && [ -x "$d/$([ $mode = train ] && echo train || echo infer)" ]; then
            echo "$m $mode built" >> "$got"
        else
            echo "$m $mode build-failed" >> "$got"
            fail "cuda_nvcc_${m}_$mode" "$(tail -c 1200 "$d.build.log")"
            continue
        fi
        # the same program on the emulator, beside the cpu program
        rm -f "$d"/*.o "$d"/train "$d"/infer
        c=$out/$m.$mode.cpu
        cargs=(compile "models/$m/model.onnx" --mode "$mode" --target cpu -o "$c")
        [ "$mode" = train ] && cargs+=(--loss "$(loss_of "$m")" --loss-target target_y)
        if ! make -s -C "$d" EMU=1 LOOM_PREBUILT="$root/$out" > "$d.emu.log" 2>&1 ||
           ! "$loom" "${cargs[@]}" > "$c.compile.log" 2>&1 ||
           ! make -s -C "$c" LOOM_PREBUILT="$root/build/rel" > "$c.build.log" 2>&1; then
            fail "cuda_emu_build_${m}_$mode" "$(tail -c 1200 "$d.emu.log" "$c.compile.log" "$c.build.log")"
            continue
        fi
        if [ "$mode" = infer ]; then
            in=(); outs=()
            for f in models/$m/*.npy; do
                b=$(basename "$f" .npy)
                case $b in expected_*|target_y) continue ;; esac
                in+=(--input "$b=$f")
            done
            o=$(sed -n 's/^  \([^ ]*\) .*/\1/p' < <("$c/infer" --help | sed -n '/^outputs:/,$p') | head -1)
            "$d/infer" "${in[@]}" --output "$o=$d.out.npy" > "$d.run.log" 2>&1 &&
                "$c/infer" "${in[@]}" --output "$o=$c.out.npy" > "$c.run.log" 2>&1
            if r=$("$py" tests/cuda/compare.py out "$d.out.npy" "$c.out.npy" 2>&1); then pass "cuda_emu_infer_$m ($r)"
            else fail "cuda_emu_infer_$m" "$r $(tail -c 400 "$d.run.log")"; fi
        else
            mapfile -t data < <(data "$m")
            "$d/train" "${data[@]}" --steps 5 --dump-grads "$d.grads.st" --log "$d.log.jsonl" > "$d.run.log" 2>&1 &&
                "$c/train" "${data[@]}" --steps 5 --dump-grads "$c.grads.st" --log "$c.log.jsonl" > "$c.run.log" 2>&1
            if r=$("$py" tests/cuda/compare.py grads "$d.grads.st" "$c.grads.st" 2>&1); then pass "cuda_emu_grads_$m ($r)"
            else fail "cuda_emu_grads_$m" "$r $(tail -c 400 "$d.run.log")"; fi
            if r=$("$py" tests/cuda/compare.py curve "$d.log.jsonl" "$c.log.jsonl" 2>&1); then pass "cuda_emu_losses_$m ($r)"
            else fail "cuda_emu_losses_$m" "$r"; fi
        fi
    done
done
# an op the cuda target has no kernel for is refused with its name (no zoo model needs one now)
m=/usr/share/libonnx-testdata/data/node/test_averagepool_2d_default/model.onnx
if [ -f "$m" ]; then
    expect cuda_refuses_op 1 "AveragePool.*not supported by the cuda target" \
        "$loom" compile "$m" --mode infer --target cuda -o "$out/refused"
else
    fail cuda_refuses_op "no $m: install libonnx-testdata (scripts/setup.sh installs it)"
fi

if diff -u tests/cuda/expected.txt "$got" > "$out/expected.diff"; then
    pass "cuda_zoo_expected ($(grep -c ' built' "$got") built, $(grep -c ' refused' "$got") refused)"
else
    fail cuda_zoo_expected "the zoo's cuda results changed (update tests/cuda/expected.txt if intended):" \
        "$(cat "$out/expected.diff")"
fi
echo "cuda target, by model and mode:"
sed 's/^/  /' "$got"

# emu_beside_cpu NAME MODEL PATTERN FLAG...: MODEL's training program compiled
# with FLAG for both targets (the cuda one's model.cu holding PATTERN, grep -E,
# unless it is empty), the cuda one built for the emulator, each run 3 steps:
# gradients and losses compared (compare.py)
emu_beside_cpu() {
    local name=$1 m=$2 pat=$3 r r2
    shift 3
    local d=$out/$m.$name c=$out/$m.$name.cpu args data
    mapfile -t data < <(data "$m")
    args=(compile "models/$m/model.onnx" --mode train --loss ce --loss-target target_y "$@")
    if "$loom" "${args[@]}" --target cuda -o "$d" > "$d.compile.log" 2>&1 &&
       "$loom" "${args[@]}" --target cpu -o "$c" > "$c.compile.log" 2>&1 &&
       { [ -z "$pat" ] || grep -qE "$pat" "$d/model.cu"; } &&
       make -s -C "$d" EMU=1 LOOM_PREBUILT="$root/$out" > "$d.emu.log" 2>&1 &&
       make -s -C "$c" LOOM_PREBUILT="$root/build/rel" > "$c.build.log" 2>&1 &&
       "$d/train" "${data[@]}" --steps 3 --dump-grads "$d.grads.st" --log "$d.log.jsonl" > "$d.run.log" 2>&1 &&
       "$c/train" "${data[@]}" --steps 3 --dump-grads "$c.grads.st" --log "$c.log.jsonl" > "$c.run.log" 2>&1; then
        if r=$("$py" tests/cuda/compare.py grads "$d.grads.st" "$c.grads.st" 2>&1) &&
           r2=$("$py" tests/cuda/compare.py curve "$d.log.jsonl" "$c.log.jsonl" 2>&1); then
            pass "cuda_emu_${name}_$m ($r; $r2)"
        else fail "cuda_emu_${name}_$m" "$r ${r2:-}"; fi
    else
        fail "cuda_emu_${name}_$m" "$(tail -c 1200 "$d.compile.log" "$d.emu.log" "$d.run.log" 2>/dev/null)"
    fi
}

# ---- attention left unfused (Softmax, its gradient, batched MatMul in a program) ----
emu_beside_cpu unfused_attention gpt2_tiny "" --no-fuse-attention

# ---- a residual ReLU's gradient reading the Add made again (--fold-add-relu on):
# resnet_small's loops of BatchNormalization, Add and ReLU gradient ----
emu_beside_cpu fold_add_relu resnet_small "node 'bwd/[^']*' BatchNormalization:" --fold-add-relu on

# within_budget NAME DIR BUDGET: the plan DIR was compiled with (placed with
# the cuda target's selection) fits BUDGET, weights and arena together
within_budget() {
    local r
    if r=$("$py" -c "import json; p = json.load(open('$2/plan.json')); n = p['arena_bytes'] + p['weights_bytes']; print(n); assert n <= ${3:-0}" 2>&1); then
        pass "$1 ($r <= $3)"
    else
        fail "$1" "$r"
    fi
}

# nvcc_builds NAME DIR: DIR's training program built by nvcc (ARCH), its
# objects removed after for the emulated build
nvcc_builds() {
    if make -s -C "$2" ARCH=$ARCH LOOM_PREBUILT="$root/$out" > "$2.build.log" 2>&1 && [ -x "$2/train" ]; then
        pass "$1"
    else
        fail "$1" "$(tail -c 1200 "$2.build.log")"
    fi
    rm -f "$2"/*.o "$2"/train
}

# ---- offload: gpt2_tiny compiled with --offload only under a budget: loom.ToHost and
# loom.FromHost on the copy streams (rt_cuda_copy_*), built by nvcc, and on the
# emulator beside the cpu program of the same schedule ----
m=gpt2_tiny d=$out/$m.offload c=$out/$m.offload.cpu
mapfile -t data < <(data "$m")
oargs=(compile "models/$m/model.onnx" --mode train --loss ce --loss-target target_y --offload only)
budget=$("$loom" plan "models/$m/model.onnx" --loss ce --loss-target target_y --offload only --json 2>/dev/null |
    "$py" -c "import json, sys; d = json.load(sys.stdin); print((d['min_feasible_bytes'] + d['budget_bytes']) // 2)")
if "$loom" "${oargs[@]}" --budget "${budget:-0}" --target cuda -o "$d" > "$d.compile.log" 2>&1 &&
   "$loom" "${oargs[@]}" --budget "${budget:-0}" --target cpu -o "$c" > "$c.compile.log" 2>&1 &&
   grep -q rt_cuda_copy_out "$d/model.cu" && grep -q rt_cuda_copy_in_wait "$d/model.cu"; then
    within_budget "cuda_offload_within_budget_$m" "$d" "$budget"
    nvcc_builds "cuda_nvcc_offload_$m" "$d"
    if make -s -C "$d" EMU=1 LOOM_PREBUILT="$root/$out" > "$d.emu.log" 2>&1 &&
       make -s -C "$c" LOOM_PREBUILT="$root/build/rel" > "$c.build.log" 2>&1 &&
       "$d/train" "${data[@]}" --steps 3 --dump-grads "$d.grads.st" --log "$d.log.jsonl" > "$d.run.log" 2>&1 &&
       "$c/train" "${data[@]}" --steps 3 --dump-grads "$c.grads.st" --log "$c.log.jsonl" > "$c.run.log" 2>&1 &&
       r=$("$py" tests/cuda/compare.py grads "$d.grads.st" "$c.grads.st" 2>&1) &&
       r2=$("$py" tests/cuda/compare.py curve "$d.log.jsonl" "$c.log.jsonl" 2>&1); then
        pass "cuda_emu_offload_$m ($r; $r2)"
    else
        fail "cuda_emu_offload_$m" "${r:-} ${r2:-} $(tail -c 800 "$d.emu.log" "$d.run.log" "$c.run.log" 2>/dev/null)"
    fi
else
    fail "cuda_compile_offload_$m" "budget '${budget:-}': $(tail -c 1200 "$d.compile.log" "$c.compile.log" 2>/dev/null)"
fi

# first_budget MODEL COND ARG...: the first of eight budgets from the least
# toward store-all whose `loom plan MODEL ARG... --json` object d makes the
# Python expression COND true; nothing when none does
first_budget() {
    local m=$1 cond=$2 lim least top b i
    shift 2
    lim=$("$loom" plan "models/$m/model.onnx" "$@" --json 2>/dev/null |
          "$py" -c "import json, sys; d = json.load(sys.stdin); print(d['min_feasible_bytes'], d['budget_bytes'])") || return 0
    read -r least top <<< "$lim"
    for i in 0 1 2 3 4 5 6 7; do
        b=$((least + (top - least) * i / 8))
        if "$loom" plan "models/$m/model.onnx" "$@" --budget "$b" --json 2>/dev/null |
           "$py" -c "import json, sys; d = json.load(sys.stdin); sys.exit(0 if $cond else 1)"; then
            echo "$b"
            return 0
        fi
    done
}

# ---- low-bit storage: gpt2_tiny and resnet_small compiled with --lowbit bf16
# (no offload) at the first of eight budgets from the least toward store-all
# whose plan stores activations as bfloat16: the conversions built by nvcc
# (resnet_small's narrowed inside its forward loops and read as bfloat16 by
# lk_batchnorm*_grad_bf16x and lk_conv_grad_weight_bn_relu_bf16x), and on the
# emulator the gradients within the stated bound (2e-2, tests/remat) of the
# float32 cpu program's and 3 steps of loss within 1e-3 ----
for m in gpt2_tiny resnet_small; do
d=$out/$m.lowbit c=$out/$m.train.cpu
mapfile -t data < <(data "$m")
largs=(--loss ce --loss-target target_y --target cuda --offload off --lowbit bf16)
budget=$(first_budget "$m" "d['lowbit_values']" "${largs[@]}")
if [ -n "$budget" ] && "$loom" compile "models/$m/model.onnx" --mode train "${largs[@]}" --budget "$budget" -o "$d" \
       > "$d.compile.log" 2>&1 && grep -q 'low-bit storage' "$d/model.cu"; then
    if [ "$m" = resnet_small ] && ! { grep -q 'stored by this loop' "$d/model.cu" && grep -q '_bf16x(' "$d/model.cu"; }; then
        fail cuda_fused_lowbit_$m "model.cu: no conversion fused into a loop or read as bfloat16 at use"
    elif [ "$m" = resnet_small ]; then
        pass cuda_fused_lowbit_$m
    fi
    nvcc_builds "cuda_nvcc_lowbit_$m" "$d"
    if [ -f "$c.grads.st" ] && make -s -C "$d" EMU=1 LOOM_PREBUILT="$root/$out" > "$d.emu.log" 2>&1 &&
       "$d/train" "${data[@]}" --steps 3 --dump-grads "$d.grads.st" --log "$d.log.jsonl" > "$d.run.log" 2>&1 &&
       head -3 "$c.log.jsonl" > "$d.cpu3.jsonl" &&
       r=$("$py" tests/cuda/compare.py grads "$d.grads.st" "$c.grads.st" 2e-2 2>&1) &&
       r2=$("$py" tests/cuda/compare.py curve "$d.log.jsonl" "$d.cpu3.jsonl" 1e-3 2>&1); then
        pass "cuda_emu_lowbit_$m (budget $budget: $r; $r2)"
    else
        fail "cuda_emu_lowbit_$m" "${r:-} ${r2:-} $(tail -c 800 "$d.emu.log" "$d.run.log" 2>/dev/null)"
    fi
else
    fail "cuda_compile_lowbit_$m" "budget '${budget:-none stores a value as bfloat16}': $(tail -c 1200 "$d.compile.log" 2>/dev/null)"
fi
done

# ---- a priced table's plan (optimizer/remat.c: checkpoints chosen on the host
# while later stages run, the copies put in after): gpt2_tiny on h100-sxm at
# the first of eight budgets from the least toward store-all whose plan comes
# from one (`plan_from`), within its budget, built by nvcc, and on the emulator
# the float32 cpu program's gradients and 3 steps of loss ----
m=gpt2_tiny d=$out/$m.priced c=$out/$m.train.cpu
mapfile -t data < <(data "$m")
pargs=(--loss ce --loss-target target_y --target cuda --device h100-sxm)
budget=$(first_budget "$m" "d['plan_from'] == 'priced table'" "${pargs[@]}")
if [ -n "$budget" ] && "$loom" compile "models/$m/model.onnx" --mode train "${pargs[@]}" --budget "$budget" -o "$d" \
       > "$d.compile.log" 2>&1 && grep -q rt_cuda_copy_out "$d/model.cu"; then
    within_budget "cuda_priced_within_budget_$m" "$d" "$budget"
    nvcc_builds "cuda_nvcc_priced_$m" "$d"
    if [ -f "$c.grads.st" ] && make -s -C "$d" EMU=1 LOOM_PREBUILT="$root/$out" > "$d.emu.log" 2>&1 &&
       "$d/train" "${data[@]}" --steps 3 --dump-grads "$d.grads.st" --log "$d.log.jsonl" > "$d.run.log" 2>&1 &&
       head -3 "$c.log.jsonl" > "$d.cpu3.jsonl" &&
       r=$("$py" tests/cuda/compare.py grads "$d.grads.st" "$c.grads.st" 2>&1) &&
       r2=$("$py" tests/cuda/compare.py curve "$d.log.jsonl" "$d.cpu3.jsonl" 2>&1); then
        pass "cuda_emu_priced_$m (budget $budget: $r; $r2)"
    else
        fail "cuda_emu_priced_$m" "${r:-} ${r2:-} $(tail -c 800 "$d.emu.log" "$d.run.log" 2>/dev/null)"
    fi
else
    fail "cuda_compile_priced_$m" "budget '${budget:-none comes from a priced table}': $(tail -c 1200 "$d.compile.log" 2>/dev/null)"
fi

# ---- 5: bfloat16 products and elementwise loops, cpu and cuda programs ----
b=$out/bf16 d=$out/bf16.cuda c=$out/bf16.cpu
if "$py" tests/cuda/bf16_graph.py "$b" > "$b.log" 2>&1 &&
   "$loom" compile "$b/model.onnx" --mode infer --target cuda -o "$d" > "$d.compile.log" 2>&1 &&
   "$loom" compile "$b/model.onnx" --mode infer --target cpu -o "$c" > "$c.compile.log" 2>&1; then
    if make -s -C "$d" ARCH=$ARCH LOOM_PREBUILT="$root/$out" > "$d.build.log" 2>&1 && [ -x "$d/infer" ]; then
        pass cuda_nvcc_bf16
    else
        fail cuda_nvcc_bf16 "$(tail -c 1200 "$d.build.log")"
    fi
    rm -f "$d"/*.o "$d"/infer
    if make -s -C "$d" EMU=1 LOOM_PREBUILT="$root/$out" > "$d.emu.log" 2>&1 &&
       make -s -C "$c" LOOM_PREBUILT="$root/build/rel" > "$c.build.log" 2>&1; then
        for o in y z u; do
            r=""
            if "$d/infer" --input "x=$b/x.npy" --output "$o=$d.$o.npy" > "$d.run.log" 2>&1 &&
               "$c/infer" --input "x=$b/x.npy" --output "$o=$c.$o.npy" > "$c.run.log" 2>&1 &&
               r=$("$py" tests/cuda/compare.py out "$d.$o.npy" "$c.$o.npy" 1e-2 2>&1); then
                pass "cuda_emu_bf16_$o ($r)"
            else
                fail "cuda_emu_bf16_$o" "${r:-} $(tail -c 400 "$d.run.log" "$c.run.log")"
            fi
        done
    else
        fail cuda_emu_build_bf16 "$(tail -c 1200 "$d.emu.log" "$c.build.log")"
    fi
else
    fail cuda_compile_bf16 "$(tail -c 1200 "$b.log" "$d.compile.log" "$c.compile.log" 2>/dev/null)"
fi

# ---- gpt2_tiny trained with --precision bf16 (bf16 products, the bf16 head) on both targets ----
m=gpt2_tiny d=$out/$m.bf16 c=$out/$m.bf16.cpu
mapfile -t data < <(data "$m")
bargs=(compile "models/$m/model.onnx" --mode train --loss ce --loss-target target_y --precision bf16)
if "$loom" "${bargs[@]}" --target cuda -o "$d" > "$d.compile.log" 2>&1 &&
   "$loom" "${bargs[@]}" --target cpu -o "$c" > "$c.compile.log" 2>&1 &&
   grep -q lk_linear_ce_bf16 "$d/model.cu" &&
   make -s -C "$d" EMU=1 LOOM_PREBUILT="$root/$out" > "$d.emu.log" 2>&1 &&
   make -s -C "$c" LOOM_PREBUILT="$root/build/rel" > "$c.build.log" 2>&1 &&
   "$d/train" "${data[@]}" --steps 3 --dump-grads "$d.grads.st" --log "$d.log.jsonl" > "$d.run.log" 2>&1 &&
   "$c/train" "${data[@]}" --steps 3 --dump-grads "$c.grads.st" --log "$c.log.jsonl" > "$c.run.log" 2>&1; then
    if r=$("$py" tests/cuda/compare.py grads "$d.grads.st" "$c.grads.st" 1e-2 2>&1) &&
       r2=$("$py" tests/cuda/compare.py curve "$d.log.jsonl" "$c.log.jsonl" 1e-2 2>&1); then
        pass "cuda_emu_bf16_train_$m ($r; $r2)"
    else fail "cuda_emu_bf16_train_$m" "$r ${r2:-}"; fi
else
    fail "cuda_emu_bf16_train_$m" "$(tail -c 1200 "$d.compile.log" "$d.emu.log" "$d.run.log" 2>/dev/null)"
fi

# ---- and its inference program in bf16 on both targets ----
d=$out/$m.bf16.infer c=$out/$m.bf16.infer.cpu
iargs=(compile "models/$m/model.onnx" --mode infer --precision bf16)
if "$loom" "${iargs[@]}" --target cuda -o "$d" > "$d.compile.log" 2>&1 &&
   "$loom" "${iargs[@]}" --target cpu -o "$c" > "$c.compile.log" 2>&1 &&
   make -s -C "$d" EMU=1 LOOM_PREBUILT="$root/$out" > "$d.emu.log" 2>&1 &&
   make -s -C "$c" LOOM_PREBUILT="$root/build/rel" > "$c.build.log" 2>&1 &&
   "$d/infer" --input "input_ids=models/$m/input_ids.npy" --output "logits=$d.out.npy" > "$d.run.log" 2>&1 &&
   "$c/infer" --input "input_ids=models/$m/input_ids.npy" --output "logits=$c.out.npy" > "$c.run.log" 2>&1; then
    if r=$("$py" tests/cuda/compare.py out "$d.out.npy" "$c.out.npy" 1e-2 2>&1); then pass "cuda_emu_bf16_infer_$m ($r)"
    else fail "cuda_emu_bf16_infer_$m" "$r"; fi
else
    fail "cuda_emu_bf16_infer_$m" "$(tail -c 1200 "$d.compile.log" "$d.emu.log" "$d.run.log" "$c.run.log" 2>/dev/null)"
fi

# ---- the program's refusal of a device too small (cudaMemGetInfo, emulated) ----
t=$out/mlp.train
if [ -d "$t" ] && make -s -C "$t" EMU=1 LOOM_PREBUILT="$root/$out" > /dev/null 2>&1; then
    mapfile -t data < <(data mlp)
    LOOM_EMU_DEVICE_BYTES=100000 expect cuda_device_too_small 1 "needs [0-9]* bytes of GPU memory.*has [0-9]* bytes free" \
        "$t/train" "${data[@]}" --steps 1
fi

# ---- measured costs for the cuda target: loom profile --from ----
# mlp's training program built with PROFILE=1 (emulated here, as on a GPU
# machine), its step profile read by `loom profile --target cuda --from`:
# a costs file for h100-sxm with every node, the views' steps at about zero
# (the profiled step's device sync, the views' median, taken off every
# step), and `loom plan --costs` takes it
p=$out/mlp.prof
mapfile -t data < <(data mlp)
if "$loom" compile models/mlp/model.onnx --mode train --target cuda --loss ce --loss-target target_y -o "$p" > /dev/null 2>&1 &&
    make -s -C "$p" EMU=1 PROFILE=1 LOOM_PREBUILT="$root/$out" > "$p.emu.log" 2>&1 &&
    "$p/train" "${data[@]}" --steps 3 --print-every 10 --profile "$p.json" > "$p.run.log" 2>&1 &&
    "$loom" profile models/mlp/model.onnx --mode train --target cuda --loss ce --loss-target target_y --from "$p.json" \
        --device h100-sxm -o "$p.costs.json" > "$p.costs.log" 2>&1 &&
    r=$("$py" - "$p.costs.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["target"] == "cuda" and d["device"] == "h100-sxm" and d["mode"] == "train" and d["repeat"] == 2, d
views = [n for n in d["nodes"] if n["op"] in ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity")]
work = [n for n in d["nodes"] if n not in views]
vs, ws = sum(n["seconds"] for n in views), sum(n["seconds"] for n in work)
assert work and views and all(n["seconds"] >= 0 for n in d["nodes"]) and ws > 0 and vs < 0.001 * ws, d["nodes"]
print(f"{len(d['nodes'])} nodes, {len(views)} views at {vs * 1e6:.3f} us in all")
PY
    ) &&
    "$loom" plan models/mlp/model.onnx --mode train --target cuda --loss ce --loss-target target_y --device h100-sxm \
        --costs "$p.costs.json" > "$p.plan.log" 2>&1 && grep -q "measured, $p.costs.json" "$p.plan.log"; then
    pass "cuda_profile_from ($r)"
else
    fail cuda_profile_from "$(tail -c 1200 "$p.emu.log" "$p.run.log" "$p.costs.log" "$p.plan.log" 2>/dev/null) ${r:-}"
fi

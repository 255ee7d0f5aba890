#!/usr/bin/env bash
# The gpu tier, for a machine with an NVIDIA GPU (not part of `make test`'s
# default run on machines without one): it says so and skips when no GPU
# answers nvidia-smi. With one: builds the kernel comparison
# (tests/gpu/test_kernels.cu, every cuda kernel against its cpu kernel,
# normalized error < 1e-5) with nvcc for this GPU and runs it; then every
# zoo model the cuda target compiles (tests/cuda/expected.txt, "built"),
# in both modes, built with nvcc and run beside the cpu program as
# tests/cuda does under the emulator (outputs; first-step loss and
# gradients; 5 steps of loss), and 20 timed training steps (median step ms
# from the log). Env: LOOM, LOOM_ROOT, CUDA, ARCH (default: this GPU's).
set -u
root=${LOOM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root" || exit 1
. "$root/tests/lib.sh"
if ! command -v nvidia-smi > /dev/null 2>&1 || ! nvidia-smi -L > /dev/null 2>&1; then
    echo "no GPU on this machine (nvidia-smi finds none): the gpu tier is skipped"
    exit 0
fi
CUDA=${CUDA:-/usr/local/cuda}
cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d ' .')
ARCH=${ARCH:-sm_$cap}
echo "GPU: $(nvidia-smi -L | head -1), ARCH=$ARCH"
loom=${LOOM:-build/asan/loom}
out=build/gpu
rm -rf "$out" && mkdir -p "$out"
K=codegen/kernels/cuda
NV="$CUDA/bin/nvcc -std=c++17 -O2 -gencode arch=compute_${ARCH#sm_},code=$ARCH -D_GNU_SOURCE -I$K -Iruntime -Icodegen/kernels/cpu"
if $NV -x cu tests/gpu/test_kernels.cu $K/lk_*.cu runtime/rt_cuda.cu -x none build/rel/libloomrt.a build/rel/libloomk_cpu.a \
        -L"$CUDA/lib64" -lcublasLt -lcudart -lopenblas -Xcompiler -fopenmp -o "$out/test_kernels" > "$out/build.log" 2>&1; then
    "$out/test_kernels"
else
    fail gpu_test_kernels_build "$(head -c 1500 "$out/build.log")"
fi
py=$root/.venv/bin/python
loss_of() { case $1 in unet_small|fno_small) echo mse ;; *) echo ce ;; esac; }
printf '%-14s %-6s %s\n' model mode result
while read -r m mode what _; do
    [ "$what" = built ] || continue
    d=$out/$m.$mode c=$out/$m.$mode.cpu
    extra=()
    [ "$mode" = train ] && extra=(--loss "$(loss_of "$m")" --loss-target target_y)
    "$loom" compile "models/$m/model.onnx" --mode "$mode" --target cuda -o "$d" "${extra[@]}" > /dev/null &&
        "$loom" compile "models/$m/model.onnx" --mode "$mode" --target cpu -o "$c" "${extra[@]}" > /dev/null &&
        make -s -C "$d" ARCH="$ARCH" > "$d.build.log" 2>&1 && make -s -C "$c" LOOM_PREBUILT="$root/build/rel" > "$c.build.log" 2>&1 ||
        { fail "gpu_build_${m}_$mode" "$(tail -c 800 "$d.build.log")"; continue; }
    if [ "$mode" = train ]; then
        mapfile -t data < <(data "$m")
        "$d/train" "${data[@]}" --steps 5 --dump-grads "$d.g.st" --log "$d.log" > /dev/null &&
            "$c/train" "${data[@]}" --steps 5 --dump-grads "$c.g.st" --log "$c.log" > /dev/null &&
            "$d/train" "${data[@]}" --steps 20 --log "$d.time.log" > /dev/null
        r1=$("$py" tests/cuda/compare.py grads "$d.g.st" "$c.g.st" 2>&1) && pass "gpu_grads_$m ($r1)" || fail "gpu_grads_$m" "$r1"
        ms=$("$py" -c "import json,sys,statistics as s; print(s.median(json.loads(l)['step_ms'] for l in open(sys.argv[1])))" "$d.time.log")
        printf '%-14s %-6s median step %s ms\n' "$m" "$mode" "$ms"
    fi
done < tests/cuda/expected.txt

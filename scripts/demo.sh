#!/usr/bin/env bash
# `make demo`: the main job on the bundled tiny GPT-2 (models/gpt2_tiny: 2
# layers, width 64, 96 characters, input [4,32]). Makes character-level
# training data from the licence texts of /usr/share/common-licenses
# (scripts/demo.py data), compiles the model into a training program, builds
# and trains it (AdamW, cosine schedule), printing the loss every DEMO_STEPS/8
# steps; then compiles the model into an inference program and samples text
# from the trained checkpoint with it (scripts/demo.py sample). Every command
# is printed as it runs; what each writes goes to a log beside its output.
# Env: LOOM (default bin/loom), DEMO_OUT (build/demo), DEMO_STEPS (8000),
# DEMO_CHARS (characters per sample, 200), DEMO_PREBUILT (the kernels and
# runtime the programs link, build/rel; empty to compile the copies in each
# folder, which is slower to build and no faster to run).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
loom=${LOOM:-bin/loom}
out=${DEMO_OUT:-build/demo}
steps=${DEMO_STEPS:-8000}
chars=${DEMO_CHARS:-200}
prebuilt=${DEMO_PREBUILT-$root/build/rel}
py=$root/.venv/bin/python
model=models/gpt2_tiny/model.onnx
start=$SECONDS

say() { echo "demo: $*"; }
# run LOG CMD...: print the command, run it with its output in LOG; on failure show LOG's end
run() {
    local log=$1
    shift
    echo "\$ $*"
    if ! "$@" > "$log" 2>&1; then
        tail -15 "$log" >&2
        say "failed: $* (log: $log)" >&2
        exit 1
    fi
}
# build DIR: make the program, linking the prebuilt libraries when there are some
build() {
    local t=$SECONDS
    run "$1.build.log" make -s -C "$1" ${prebuilt:+LOOM_PREBUILT=$prebuilt}
    say "built $1 in $((SECONDS - t)) s"
}

for v in steps chars; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "demo: DEMO_${v^^} must be a whole number from 1, not '${!v}'" >&2; exit 2; }
done

rm -rf "$out/data" "$out/train" "$out/infer" "$out/ckpt.safetensors"
mkdir -p "$out"

say "1. training data: the licence texts of this machine, one token per character"
"$py" scripts/demo.py data "$out/data" | sed 's/^/   /'

say "2. the tiny GPT-2 ($model) compiled into a training program"
warmup=$((steps / 20))
run "$out/train.compile.log" "$loom" compile "$model" --mode train --target cpu -o "$out/train" \
    --loss ce --loss-target target_y --optimizer adamw --lr 3e-3 --schedule cosine --warmup "$warmup"
grep -E '^(nodes|arena|weights) ' "$out/train.compile.log" | sed 's/^/   /'
build "$out/train"

say "3. training $steps steps of 4 windows of 32 characters (loss: cross-entropy, ln 96 = 4.56 for a uniform guess)"
every=$((steps >= 8 ? steps / 8 : 1))
t=$SECONDS
echo "\$ $out/train/train --data input_ids=$out/data/input_ids.npy --data target_y=$out/data/target_y.npy" \
    "--steps $steps --shuffle --log $out/train.jsonl --save $out/ckpt.safetensors"
# The program prints a line per step; show the first and every $every-th, with the mean loss and time of the
# steps since the last one shown (one step's loss, on 128 characters, is noisy).
if ! "$out/train/train" --data "input_ids=$out/data/input_ids.npy" --data "target_y=$out/data/target_y.npy" \
    --steps "$steps" --shuffle --log "$out/train.jsonl" --save "$out/ckpt.safetensors" 2>&1 |
    tee "$out/train.log" | awk -v every="$every" '
    /^step / { split($2, s, "/"); sum += $4; ms += $7; n++
               if (s[1] == 1 || s[1] % every == 0 || s[1] == s[2]) {
                   printf "   step %5d/%d  loss %.3f   steps %5d-%-5d mean loss %.3f, %.2f ms/step\n",
                          s[1], s[2], $4, s[1] - n + 1, s[1], sum / n, ms / n
                   sum = 0; ms = 0; n = 0 }
               fflush(); next }
    { print "   " $0 }'; then
    say "failed: training (log: $out/train.log)" >&2
    exit 1
fi
say "trained in $((SECONDS - t)) s; checkpoint $out/ckpt.safetensors"

say "4. the same model compiled into an inference program"
run "$out/infer.compile.log" "$loom" compile "$model" --mode infer --target cpu -o "$out/infer"
build "$out/infer"

say "5. sampling with the trained weights: 4 samples of $chars characters after a [prompt], temperature 0.8"
echo "\$ scripts/demo.py sample $out/infer/infer --weights $out/ckpt.safetensors --chars $chars --out $out/samples.npy"
"$py" scripts/demo.py sample "$out/infer/infer" --weights "$out/ckpt.safetensors" --chars "$chars" \
    --out "$out/samples.npy" | tee "$out/samples.txt"
say "done in $((SECONDS - start)) s (outputs under $out)"

#!/usr/bin/env bash
# The profile tier: `loom profile` on the zoo's mlp (training and inference)
# and gpt2_tiny (integer inputs: token ids within the vocabulary, class
# targets within the classes, or its program refuses them), built against the
# prebuilt -O2 kernels and runtime: costs.json holds every node with positive
# seconds summing to within 25% of the measured step, and the temporary
# folder is gone. Then the refusals: loom's flags (exit 2) and bad input
# (exit 1, one line): no -o, a bad --repeat, the cuda target without --from,
# a missing model, a build that fails (the folder and its log kept and
# named); and the programs' --profile flag: not a PROFILE=1 build, --steps
# 1, no --repeat. Last, --from: the step profile of a PROFILE=1 program run
# elsewhere read instead of building and running (the cuda target's way;
# its emulated round trip is the cuda tier's), and its refusals.
# Checks behaviour, not speed.
# Env: LOOM (the loom binary), LOOM_ROOT (repo root).
set -u
root=${LOOM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root" || exit 1
loom=${LOOM:-build/asan/loom}
py=$root/.venv/bin/python
out=$root/build/profile
rm -rf "$out" && mkdir -p "$out/tmp"
export TMPDIR=$out/tmp LOOM_PREBUILT=$root/build/rel

. "$root/tests/lib.sh"

# costs_ok.py FILE MODE [TARGET DEVICE]: the file's shape, positive seconds, sum within 25% of step_s
cat > "$out/costs_ok.py" <<'PY'
import sys, json
d = json.load(open(sys.argv[1]))
for k in ("model", "mode", "target", "device", "repeat", "step_s", "median_run_s", "nodes"):
    if k not in d: sys.exit(f"no '{k}'")
target, device = (sys.argv[3], sys.argv[4]) if len(sys.argv) > 4 else ("cpu", "cpu")
if d["mode"] != sys.argv[2] or d["device"] != device or d["target"] != target: sys.exit(f"header: {d}")
nodes = d["nodes"]
for n in nodes:
    if set(n) != {"name", "op", "seconds", "step", "flops", "bytes"}: sys.exit(f"fields of {n}")
    if not n["seconds"] > 0: sys.exit(f"seconds of {n}")
steps = [n["step"] for n in nodes]
if sorted(set(steps)) != list(range(max(steps) + 1)): sys.exit("steps are not 0..N")
total = sum(n["seconds"] for n in nodes)
ratio = total / d["step_s"]
print(f"{len(nodes)} nodes, step {d['step_s'] * 1e3:.3f} ms, nodes sum {total * 1e3:.3f} ms ({ratio:.2f})")
if not 0.75 <= ratio <= 1.25: sys.exit(f"nodes sum to {ratio:.2f} of the step")
PY

# profile NAME MODE MODEL [flags...]: loom profile, then the file's checks
profile() {
    local name=$1 mode=$2 model=$3
    shift 3
    if "$loom" profile "models/$model/model.onnx" --mode "$mode" --target cpu -o "$out/$name.json" --repeat 10 "$@" \
        > "$out/$name.out" 2> "$out/$name.err" && "$py" "$out/costs_ok.py" "$out/$name.json" "$mode" > "$out/$name.check" 2>&1 &&
        grep -q "^costs .*$name.json" "$out/$name.out"; then
        pass "$name"
    else
        fail "$name" "$(head -c 600 "$out/$name.err")" "$(cat "$out/$name.check" 2>/dev/null)"
    fi
}
profile profile_mlp_train train mlp --loss ce --loss-target target_y
profile profile_mlp_infer infer mlp
profile profile_gpt2_train train gpt2_tiny --loss ce --loss-target target_y
if [ -z "$(ls -A "$out/tmp")" ]; then pass profile_cleans_up; else fail profile_cleans_up "left: $(ls "$out/tmp")"; fi

m=models/mlp/model.onnx
expect profile_no_output 2 "no output file given (-o COSTS.json)" "$loom" profile $m --mode train --target cpu --loss ce
expect profile_repeat_zero 2 "--repeat needs a count from 1 to 100000, not '0'" "$loom" profile $m --mode infer --target cpu -o "$out/x.json" --repeat 0
expect profile_repeat_word 2 "--repeat needs a count" "$loom" profile $m --mode infer --target cpu -o "$out/x.json" --repeat many
expect profile_repeat_missing 2 "--repeat needs a count" "$loom" profile $m --mode infer --target cpu -o "$out/x.json" --repeat
expect profile_o_missing 2 "-o needs a file" "$loom" profile $m --mode infer --target cpu -o
expect profile_no_mode 2 "no --mode given" "$loom" profile $m --target cpu -o "$out/x.json"
expect profile_unknown_flag 2 "unknown flag '--bogus'" "$loom" profile $m --mode infer --target cpu -o "$out/x.json" --bogus
expect profile_cuda 2 "--target cuda: loom profile runs only cpu programs here" "$loom" profile $m --mode infer --target cuda -o "$out/x.json"
expect profile_missing_model 1 "cannot open" "$loom" profile "$out/none.onnx" --mode infer --target cpu -o "$out/x.json"
expect profile_unwritable 1 "cannot write $out/no/such/x.json" "$loom" profile $m --mode infer --target cpu -o "$out/no/such/x.json"
# a build that fails keeps the folder and names the log
expect profile_build_fails 1 "building the program (make PROFILE=1) failed" env CC=false "$loom" profile $m --mode infer --target cpu -o "$out/x.json"
log=$(grep -o "$out/tmp/loom-profile-[A-Za-z0-9]*/build.log" "$out/profile_build_fails.err")
if [ -n "$log" ] && [ -s "$log" ] && [ ! -e "$out/x.json" ]; then pass profile_build_log_kept; else fail profile_build_log_kept "log '$log'"; fi
if "$loom" profile --help | grep -q "^usage: loom profile"; then pass profile_help; else fail profile_help; fi

# the programs' --profile
for kind in train infer; do
    for b in plain prof; do
        d=$out/mlp_${kind}_$b
        flags=(--mode "$kind")
        [ $kind = train ] && flags+=(--loss ce --loss-target target_y)
        mk=(make -s -C "$d")
        [ $b = prof ] && mk+=(PROFILE=1)
        "$loom" compile $m --target cpu -o "$d" "${flags[@]}" > /dev/null 2>&1 && "${mk[@]}" > "$d.build.log" 2>&1
    done
done
td=(--data x=models/mlp/x.npy --data target_y=models/mlp/target_y.npy)
expect train_profile_plain_build 1 "not built with make PROFILE=1" "$out/mlp_train_plain/train" "${td[@]}" --steps 2 --profile "$out/p.json"
expect train_profile_one_step 2 "--profile needs --steps 2 or more" "$out/mlp_train_prof/train" "${td[@]}" --steps 1 --profile "$out/p.json"
expect infer_profile_plain_build 1 "not built with make PROFILE=1" "$out/mlp_infer_plain/infer" --input models/mlp/x.npy --repeat 2 --profile "$out/p.json"
expect infer_profile_no_repeat 2 "--profile needs --repeat N" "$out/mlp_infer_prof/infer" --input models/mlp/x.npy --profile "$out/p.json"

# --from: the train program's step profile (4 steps: 3 runs) read instead of a build and a run here
pj=$out/mlp_train_prof.profile.json
if "$out/mlp_train_prof/train" "${td[@]}" --steps 4 --profile "$pj" > /dev/null 2>&1 &&
    "$loom" profile $m --mode train --target cpu --loss ce --loss-target target_y --from "$pj" --device cpu \
        -o "$out/from.json" > "$out/from.out" 2> "$out/from.err" &&
    "$py" "$out/costs_ok.py" "$out/from.json" train cpu cpu > "$out/from.check" 2>&1 &&
    grep -q "^measured .*3 runs of cpu on cpu" "$out/from.out" && "$py" -c "import json, sys
sys.exit(json.load(open(sys.argv[1]))['repeat'] != 3)" "$out/from.json"; then
    pass "profile_from ($(cat "$out/from.check"))"
else
    fail profile_from "$(cat "$out/from.err" "$out/from.check" 2>/dev/null | head -c 600)"
fi
tf=(--mode train --target cpu --loss ce --loss-target target_y -o "$out/x.json")
expect profile_from_no_device 2 "--from needs --device" "$loom" profile $m "${tf[@]}" --from "$pj"
expect profile_from_bad_device 2 "--device: " "$loom" profile $m "${tf[@]}" --from "$pj" --device no-such-gpu
expect profile_from_missing 1 "--from: " "$loom" profile $m "${tf[@]}" --from "$out/none.json" --device cpu
expect profile_from_no_runs 1 "not a step profile" "$loom" profile $m "${tf[@]}" --from "$out/from.json" --device cpu
# the inference program's profile is not this training graph's
"$out/mlp_infer_prof/infer" --input models/mlp/x.npy --repeat 3 --profile "$out/pi.json" > /dev/null 2>&1
expect profile_from_other_program 1 "not the step profile of this program" "$loom" profile $m "${tf[@]}" --from "$out/pi.json" --device cpu

#!/usr/bin/env bash
# The remat tier: for every zoo model, `loom plan --json` gives the least
# feasible budget and the store-all one; the model is compiled with
# `--budget` at the least feasible budget and halfway to store-all, and
# without a budget. Each program trains 2 steps: the losses and the
# gradients (--dump-grads) must equal the unlimited program's bit for bit
# (recomputation runs the same kernels on the same bits), the plan's device
# bytes and the program's peak_device_bytes must be within the budget, and
# the plan below store-all must recompute something. Then: `plan --sweep`
# predicts a step time that never grows with the budget and writes its plot;
# a budget below the least feasible is refused naming it; bad --budget flags;
# --device without --budget; low-bit storage within its stated error bound;
# a program refuses to start, naming the bytes,
# where the machine lacks them; and --solver ilp proves rotor's plan within
# 1% of the optimum where lp_solve can.
# Env: LOOM (the loom binary), LOOM_ROOT (repo root).
set -u
root=${LOOM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root" || exit 1
loom=${LOOM:-build/asan/loom}
py=$root/.venv/bin/python
out=build/remat
rm -rf "$out" && mkdir -p "$out"

. "$root/tests/lib.sh"

# field.py FILE KEY: a top-level field of a JSON object
cat > "$out/field.py" <<'PY'
import sys, json
print(json.load(open(sys.argv[1]))[sys.argv[2]])
PY
# peak.py LOG BUDGET: every record's peak_device_bytes within BUDGET
cat > "$out/peak.py" <<'PY'
import sys, json
recs = [json.loads(l) for l in open(sys.argv[1])]
worst = max(r["peak_device_bytes"] for r in recs)
print(worst)
sys.exit(0 if recs and worst <= int(sys.argv[2]) else 1)
PY

# check_peak NAME DIR BUDGET: the program's peak_device_bytes within BUDGET
check_peak() {
    local peak
    if peak=$("$py" "$out/peak.py" "$2/log.jsonl" "$3" 2>&1); then pass "$1_peak_within_budget ($peak <= $3)"
    else fail "$1_peak_within_budget" "peak_device_bytes $peak, budget $3"; fi
}

# least_top NAME DIR: least and top, the least feasible and the store-all
# budgets of the plan with $m and ${flags[@]} (DIR.least.json); 1 when refused
least_top() {
    if ! "$loom" plan "$m" "${flags[@]}" --json > "$2.least.json" 2> "$2.plan.err"; then
        fail "$1_plan" "$(tail -3 "$2.plan.err")"
        return 1
    fi
    least=$("$py" "$out/field.py" "$2.least.json" min_feasible_bytes)
    top=$("$py" "$out/field.py" "$2.least.json" budget_bytes)
}

# run_prog NAME DIR: 2 steps with the log and the gradients
run_prog() {
    local name=$1 dir=$2
    make -s -C "$dir" LOOM_PREBUILT="$root/build/rel" > "$dir.build.log" 2>&1 &&
        "$dir/train" "${args[@]}" --steps 2 --log "$dir/log.jsonl" --dump-grads "$dir/grads.safetensors" \
            > "$dir.run.log" 2>&1
}

declare -A loss_of=([mlp]=ce [gpt2_tiny]=ce [llama_tiny]=ce [resnet_small]=ce [vit_tiny]=ce [unet_small]=mse [fno_small]=mse)
for model in mlp gpt2_tiny llama_tiny resnet_small unet_small vit_tiny fno_small; do
    flags=(--mode train --target cpu --loss "${loss_of[$model]}" --loss-target target_y)
    m=models/$model/model.onnx
    mapfile -t args < <(data "$model")
    if ! "$loom" plan "$m" "${flags[@]}" --json > "$out/$model.plan.json" 2> "$out/$model.plan.err"; then
        fail "remat_${model}_plan" "$(tail -3 "$out/$model.plan.err")"
        continue
    fi
    least=$("$py" "$out/field.py" "$out/$model.plan.json" min_feasible_bytes)
    top=$("$py" "$out/field.py" "$out/$model.plan.json" budget_bytes)
    # the activations saved for backward are part of the store-all arena, and not none of it
    saved=$("$py" "$out/field.py" "$out/$model.plan.json" store_all_saved_bytes)
    sa=$("$py" "$out/field.py" "$out/$model.plan.json" store_all_arena_bytes)
    if [ "${saved:-0}" -gt 0 ] && [ "$saved" -le "${sa:-0}" ]; then
        pass "remat_${model}_plan (least feasible $least, store-all $top bytes, $saved of its arena $sa saved for backward)"
    else
        fail "remat_${model}_plan" "store_all_saved_bytes '$saved' not in (0, store_all_arena_bytes $sa]"
    fi
    base=$out/$model.all
    if ! "$loom" compile "$m" "${flags[@]}" -o "$base" > "$base.compile.log" 2>&1 || ! run_prog "$model" "$base"; then
        fail "remat_${model}_store_all" "$(tail -3 "$base.compile.log" "$base.build.log" "$base.run.log" 2>/dev/null)"
        continue
    fi
    for which in least half; do
        if [ $which = least ]; then budget=$least; else budget=$(((least + top) / 2)); fi
        dir=$out/$model.$which
        name="remat_${model}_${which}"
        if ! "$loom" plan "$m" "${flags[@]}" --budget "$budget" --json > "$dir.plan.json" 2> "$dir.plan.err"; then
            fail "${name}_plan" "$(tail -3 "$dir.plan.err")"
            continue
        fi
        dev=$("$py" "$out/field.py" "$dir.plan.json" device_bytes)
        nre=$("$py" "$out/field.py" "$dir.plan.json" recomputed_nodes)
        # a transformer's blocks are stages of one shape: solved once, the others copy
        if [ $which = least ] && [[ " gpt2_tiny llama_tiny vit_tiny " == *" $model "* ]]; then
            copied=$("$py" "$out/field.py" "$dir.plan.json" stages_copied)
            if [ "$copied" -gt 0 ]; then pass "${name}_identical_stages_solved_once ($copied copied)"
            else fail "${name}_identical_stages_solved_once" "stages_copied is $copied"; fi
        fi
        # the reruns by op add up to the reruns, and their predicted time to the plan's overhead
        if [ $which = least ] && msg=$("$py" - "$dir.plan.json" <<'PY'
import sys, json
d = json.load(open(sys.argv[1]))
ops = d["recomputed_by_op"]
runs, s = sum(o["runs"] for o in ops), sum(o["predicted_s"] for o in ops)
extra = d["predicted_step_s"] - d["store_all_step_s"]
ok = runs == d["recomputed_nodes"] and abs(s - extra) <= 1e-6 * d["store_all_step_s"] + 1e-12
print(f"{len(ops)} ops, {runs} runs, {s * 1e3:.4g} ms of {extra * 1e3:.4g} ms overhead")
sys.exit(0 if ok else 1)
PY
        ); then pass "${name}_reruns_by_op ($msg)"
        elif [ $which = least ]; then fail "${name}_reruns_by_op" "$msg"; fi
        # where the placed plan peaks: no more than the arena, its largest buffers within it, largest first
        if msg=$("$py" - "$dir.plan.json" <<'PY'
import sys, json
d = json.load(open(sys.argv[1]))
p = d["peak"]
sizes = [b["bytes"] for b in p["largest"]]
ok = p["node"] and p["phase"] in ("forward", "backward", "update", "recompute", "offload", "low-bit") \
    and 0 < p["live_bytes"] <= d["arena_bytes"] and 0 < len(sizes) <= 8 and sizes == sorted(sizes, reverse=True) \
    and sum(sizes) + p["workspace_bytes"] <= p["live_bytes"] and (p["others"] == 0 or len(sizes) == 8)
print(f"{p['live_bytes']} of {d['arena_bytes']} bytes live at {p['node']} ({p['phase']}), {len(sizes)} + {p['others']} buffers")
sys.exit(0 if ok else 1)
PY
        ); then pass "${name}_peak_report ($msg)"
        else fail "${name}_peak_report" "$msg"; fi
        if [ "$dev" -le "$budget" ] && { [ "$budget" -ge "$top" ] || [ "$nre" -gt 0 ]; }; then
            pass "${name}_plan_fits ($dev <= $budget bytes, $nre recomputations)"
        else
            fail "${name}_plan_fits" "device bytes $dev, budget $budget, store-all $top, recomputed nodes $nre"
        fi
        if ! "$loom" compile "$m" "${flags[@]}" --budget "$budget" -o "$dir" > "$dir.compile.log" 2>&1; then
            fail "${name}_compile" "$(tail -3 "$dir.compile.log")"
            continue
        fi
        if ! run_prog "$model" "$dir"; then
            fail "${name}_run" "$(tail -3 "$dir.build.log" "$dir.run.log" 2>/dev/null)"
            continue
        fi
        if cmp -s "$base/grads.safetensors" "$dir/grads.safetensors" &&
            [ "$(losses "$base/log.jsonl")" = "$(losses "$dir/log.jsonl")" ]; then
            pass "${name}_bit_exact"
        else
            fail "${name}_bit_exact" "losses or gradients differ from the unlimited program's" \
                "$(losses "$base/log.jsonl" | tr '\n' ' ') vs $(losses "$dir/log.jsonl" | tr '\n' ' ')"
        fi
        check_peak "$name" "$dir" "$budget"
    done
done

# ---- offload: copies to host memory and back (--offload only: no recomputation),
# at a budget halfway from offload's least to store-all: the same bits as the
# unlimited program, the program's peak within the budget ----
for model in gpt2_tiny llama_tiny resnet_small unet_small vit_tiny fno_small; do
    flags=(--mode train --target cpu --loss "${loss_of[$model]}" --loss-target target_y --offload only)
    m=models/$model/model.onnx base=$out/$model.all dir=$out/$model.offload name="remat_${model}_offload"
    mapfile -t args < <(data "$model")
    [ -f "$base/grads.safetensors" ] || continue # its store-all program failed above
    least_top "$name" "$dir" || continue
    budget=$(((least + top) / 2))
    if ! "$loom" plan "$m" "${flags[@]}" --budget "$budget" --json > "$dir.plan.json" 2> "$dir.plan.err" ||
        ! msg=$("$py" - "$dir.plan.json" "$budget" <<'PY'
import sys, json
d = json.load(open(sys.argv[1]))
ok = d["offloaded"] and d["recomputed_nodes"] == 0 and d["device_bytes"] <= int(sys.argv[2]) and d["host_bytes"] > 0
print(f"{len(d['offloaded'])} values, {d['host_bytes']} bytes to the host, device {d['device_bytes']}")
sys.exit(0 if ok else 1)
PY
        ); then
        fail "${name}_plan" "least $least, store-all $top, budget $budget: ${msg:-$(tail -3 "$dir.plan.err")}"
        continue
    fi
    if "$loom" compile "$m" "${flags[@]}" --budget "$budget" -o "$dir" > "$dir.compile.log" 2>&1 &&
        grep -q 'loom.ToHost' "$dir/model.c" && run_prog "$model" "$dir"; then
        if cmp -s "$base/grads.safetensors" "$dir/grads.safetensors" &&
            [ "$(losses "$base/log.jsonl")" = "$(losses "$dir/log.jsonl")" ]; then
            pass "${name}_bit_exact ($msg)"
        else
            fail "${name}_bit_exact" "losses or gradients differ from the unlimited program's"
        fi
        check_peak "$name" "$dir" "$budget"
    else
        fail "${name}_run" "$(tail -3 "$dir.compile.log" "$dir.build.log" "$dir.run.log" 2>/dev/null)"
    fi
done
# ---- low-bit storage (--lowbit bf16, recomputation and bfloat16 copies, no
# offload) at the first of 32 budgets from the least feasible toward
# store-all whose plan stores some activations as bfloat16 (recomputing is
# cheaper at most, so few do: unet_small 3 of 32 on the cpu profile); model.c says so; the program's
# first loss is the unlimited program's (forward is untouched), every
# gradient within 2e-2 of the unlimited program's (DESIGN.md's stated bound:
# bfloat16 rounds each stored element by at most 2^-9 of it, which a
# gradient's sums and ReLU masks amplify), and its peak within the budget ----
for model in resnet_small unet_small vit_tiny gpt2_tiny; do
    flags=(--mode train --target cpu --loss "${loss_of[$model]}" --loss-target target_y --offload off --lowbit bf16)
    m=models/$model/model.onnx base=$out/$model.all dir=$out/$model.lowbit name="remat_${model}_lowbit"
    mapfile -t args < <(data "$model")
    [ -f "$base/grads.safetensors" ] || continue # its store-all program failed above
    least_top "$name" "$dir" || continue
    msg="" budget=0 r=""
    for i in $(seq 0 31); do
        budget=$((least + (top - least) * i / 32))
        "$loom" plan "$m" "${flags[@]}" --budget "$budget" --json > "$dir.plan.json" 2> "$dir.plan.err" || break
        if msg=$("$py" - "$dir.plan.json" "$budget" <<'PY'
import sys, json
d = json.load(open(sys.argv[1]))
ok = d["lowbit"] == "bf16" and d["lowbit_values"] and d["lowbit_bytes"] > 0 and d["lowbit_s"] > 0 \
    and not d["offloaded"] and d["device_bytes"] <= int(sys.argv[2])
print(f"{len(d['lowbit_values'])} values, {d['lowbit_bytes']} bytes as bfloat16, device {d['device_bytes']}")
sys.exit(0 if ok else 1)
PY
        ); then break; fi
        msg=""
    done
    if [ -z "$msg" ]; then
        fail "${name}_plan" "no plan from $least to $top bytes stores a value as bfloat16 $(tail -3 "$dir.plan.err")"
        continue
    fi
    pass "${name}_plan ($msg)"
    if "$loom" compile "$m" "${flags[@]}" --budget "$budget" -o "$dir" > "$dir.compile.log" 2>&1 &&
        grep -q 'low-bit storage' "$dir/model.c" && run_prog "$model" "$dir"; then
        if [ "$(losses "$base/log.jsonl" | head -1)" = "$(losses "$dir/log.jsonl" | head -1)" ] &&
            r=$("$py" tests/parity/compare.py grads "$dir/grads.safetensors" "$base/grads.safetensors" 2e-2 2>&1); then
            pass "${name}_within_bound ($r)"
        else
            fail "${name}_within_bound" "${r:-first losses differ: $(losses "$base/log.jsonl" | head -1) vs $(losses "$dir/log.jsonl" | head -1)}"
        fi
        check_peak "$name" "$dir" "$budget"
        # a CNN's convolution outputs: narrowed inside the forward loop that
        # reads them, read as bfloat16 by backward's kernels (no widening Cast)
        if [ "$model" = resnet_small ]; then
            if grep -q 'stored by this loop' "$dir/model.c" && grep -q '_bf16x(' "$dir/model.c" &&
                ! grep -q 'widened back to float32' "$dir/model.c"; then
                pass "${name}_fused (narrowed in a forward loop, widened at use)"
            else
                fail "${name}_fused" "model.c: $(grep -c 'stored by this loop' "$dir/model.c") side stores, $(grep -c '_bf16x(' "$dir/model.c") bf16x calls, $(grep -c 'widened back' "$dir/model.c") widening Casts"
            fi
        fi
    else
        fail "${name}_run" "$(tail -3 "$dir.compile.log" "$dir.build.log" "$dir.run.log" 2>/dev/null)"
    fi
done
expect remat_lowbit_bad_flag 2 "--lowbit needs off or bf16" "$loom" plan models/gpt2_tiny/model.onnx --lowbit fp8
expect remat_lowbit_without_budget 2 "give a --budget too" "$loom" compile models/gpt2_tiny/model.onnx --mode train \
    --target cpu --loss ce --loss-target target_y --lowbit bf16 -o "$out/x"
# with a GPU profile offload is on by default: never slower than recomputation alone
m=models/gpt2_tiny/model.onnx
gflags=(--mode train --loss ce --loss-target target_y --device h100-sxm --json)
if "$loom" plan "$m" "${gflags[@]}" > "$out/gpu.json" 2> "$out/gpu.err" &&
    budget=$("$py" -c "import json; d = json.load(open('$out/gpu.json')); print((d['min_feasible_bytes'] + d['budget_bytes']) // 2)") &&
    "$loom" plan "$m" "${gflags[@]}" --budget "$budget" > "$out/gpu.on.json" 2>> "$out/gpu.err" &&
    "$loom" plan "$m" "${gflags[@]}" --budget "$budget" --offload off > "$out/gpu.off.json" 2>> "$out/gpu.err" &&
    msg=$("$py" - "$out/gpu.on.json" "$out/gpu.off.json" <<'PY'
import sys, json
on, off = (json.load(open(f)) for f in sys.argv[1:3])
assert on["offload"] == "on" and off["offload"] == "off" and not off["offloaded"], (on["offload"], off["offload"])
assert on["offloaded"], "nothing offloaded at half the activation memory"
assert on["predicted_step_s"] <= off["predicted_step_s"], (on["predicted_step_s"], off["predicted_step_s"])
assert on["copy_stall_s"] >= 0 and on["arena_bytes"] <= on["budget_bytes"]
print(f"{len(on['offloaded'])} values offloaded, {on['predicted_step_s'] * 1e3:.4f} ms against {off['predicted_step_s'] * 1e3:.4f} recomputing")
PY
    ); then
    pass "remat_offload_gpu_profile ($msg)"
else
    fail "remat_offload_gpu_profile" "$(tail -3 "$out/gpu.err")" "${msg:-}"
fi
expect remat_offload_bad_flag 2 "--offload needs auto, on, off or only" "$loom" plan "$m" --offload sometimes
expect remat_offload_without_budget 2 "give a --budget too" "$loom" compile "$m" --mode train --target cpu \
    --loss ce --loss-target target_y --offload on -o "$out/x"

# ---- the frontier: predicted time never grows with the budget; the plot ----
m=models/gpt2_tiny/model.onnx
flags=(--loss ce --loss-target target_y)
if "$loom" plan "$m" "${flags[@]}" --sweep --json --svg "$out/sweep.svg" > "$out/sweep.json" 2> "$out/sweep.err" &&
    msg=$("$py" - "$out/sweep.json" <<'PY'
import sys, json
pts = json.load(open(sys.argv[1]))
keys = {"budget_bytes", "arena_bytes", "predicted_step_s"}
assert len(pts) >= 8, f"{len(pts)} points"
for a, b in zip(pts, pts[1:]):
    assert keys <= a.keys(), a
    assert a["budget_bytes"] < b["budget_bytes"], (a, b)
    assert b["predicted_step_s"] <= a["predicted_step_s"], f"slower with more budget: {a} then {b}"
assert pts[0]["predicted_step_s"] > pts[-1]["predicted_step_s"], "no trade-off at all"
print(f"{len(pts)} points, {pts[0]['predicted_step_s']*1e3:.3f} -> {pts[-1]['predicted_step_s']*1e3:.3f} ms")
PY
    ) && grep -q '<polyline' "$out/sweep.svg"; then
    pass "remat_sweep_monotone ($msg)"
else
    fail "remat_sweep_monotone" "$(tail -3 "$out/sweep.err")" "${msg:-}"
fi

# ---- independent plans: more budget never a slower step (cli/budget.c places
# the candidates within the room in order of time), with and without
# bfloat16 storage; resnet_small for the cuda target too, where plans come
# from two graphs (--fold-add-relu auto) and offload's retries ----
if msg=$("$py" - "$loom" models/llama_tiny/model.onnx models/resnet_small/model.onnx <<'PY'
import json, subprocess, sys
loom = sys.argv[1]
cases = [(sys.argv[2], dev, lowbit, "cpu") for dev, lowbit in
         [("cpu", "off"), ("h100-sxm", "off"), ("cpu", "bf16"), ("h100-sxm", "bf16")]]
cases += [(sys.argv[3], "h100-sxm", lowbit, "cuda") for lowbit in ("off", "bf16")]
for model, dev, lowbit, target in cases:
    # h100-sxm: recomputation and offload
    base = [loom, "plan", model, "--mode", "train", "--loss", "ce", "--loss-target", "target_y", "--json",
            "--device", dev, "--lowbit", lowbit, "--target", target]
    p = json.loads(subprocess.run(base, capture_output=True, text=True, check=True).stdout)
    lo, hi = p["min_feasible_bytes"], p["budget_bytes"]
    prev = None
    for i in range(9):
        b = lo + (hi - lo) * i // 8
        q = json.loads(subprocess.run(base + ["--budget", str(b)], capture_output=True, text=True, check=True).stdout)
        assert q["budget_bytes"] == b and q["arena_bytes"] + q["weights_bytes"] <= b, q
        if prev:
            assert q["predicted_step_s"] <= prev[1], \
                f"{model} {dev} {target}, lowbit {lowbit}, budget {b}: {q['predicted_step_s']} s, slower than {prev}"
        prev = (b, q["predicted_step_s"])
print(f"9 budgets from the least to store-all: llama_tiny on cpu and h100-sxm, resnet_small for cuda, "
      f"--lowbit off and bf16")
PY
    ); then
    pass "remat_budgets_monotone ($msg)"
else
    fail "remat_budgets_monotone" "${msg:-}"
fi

# ---- the exact program with rotor's plan as its incumbent (--solver ilp) ----
# halfway to store-all on resnet_small, lp_solve proves in seconds that no
# plan beats rotor's by over 1% of its step; the plan printed is rotor's
rs=models/resnet_small/model.onnx
rflags=(--mode train --target cpu --loss ce --loss-target target_y)
rl=$("$py" "$out/field.py" "$out/resnet_small.plan.json" min_feasible_bytes 2>/dev/null || echo 0)
rt=$("$py" "$out/field.py" "$out/resnet_small.plan.json" budget_bytes 2>/dev/null || echo 0)
if "$loom" plan "$rs" "${rflags[@]}" --budget $(((rl + rt) / 2)) --json > "$out/rotor.mid.json" 2> "$out/ilp.err" &&
    "$loom" plan "$rs" "${rflags[@]}" --budget $(((rl + rt) / 2)) --solver ilp --ilp-seconds 120 --json \
        > "$out/ilp.mid.json" 2>> "$out/ilp.err" &&
    msg=$("$py" - "$out/rotor.mid.json" "$out/ilp.mid.json" <<'PY'
import json, sys
r, i = (json.load(open(f)) for f in sys.argv[1:3])
st = i["ilp_status"]
assert st.startswith("optimal within 1%") and "proven" in st, st
assert i["predicted_step_s"] == r["predicted_step_s"] and i["recomputed"] == r["recomputed"], (i, r)
print(st[:90])
PY
    ); then
    pass "remat_ilp_proves_rotor ($msg)"
else
    fail remat_ilp_proves_rotor "$(tail -3 "$out/ilp.err") ${msg:-}"
fi

# ---- refusals ----
least=$("$py" "$out/field.py" "$out/gpt2_tiny.plan.json" min_feasible_bytes 2>/dev/null || echo 0)
expect remat_budget_below_least 1 "below the least feasible one for this model: .*($least bytes" \
    "$loom" compile "$m" --mode train --target cpu "${flags[@]}" --budget $((least - 1)) -o "$out/x"
expect remat_plan_below_least 1 "give --budget $least or more" "$loom" plan "$m" "${flags[@]}" --budget 1MB
expect remat_budget_not_a_size 2 "--budget needs a size in bytes" "$loom" plan "$m" --budget 12XB
expect remat_budget_negative 2 "--budget needs a size in bytes" "$loom" plan "$m" --budget -5
expect remat_budget_infer 2 "needs --mode train" "$loom" compile "$m" --mode infer --target cpu --budget 1GiB -o "$out/x"
expect remat_plan_output 2 "plan writes no folder" "$loom" plan "$m" -o "$out/x"
expect remat_svg_without_plan 2 "--svg is loom plan's" "$loom" compile "$m" --mode train --target cpu --svg a.svg -o "$out/x"
expect remat_bad_device 1 "device" "$loom" plan "$m" "${flags[@]}" --device no-such-gpu

# ---- a program refuses to start when the machine lacks its bytes ----
# (a deep MLP whose arena is about 500 MB, under a 300 MB address-space limit)
big=$out/big
if "$py" bench/deep_mlp.py "$big.onnx" --blocks 2 --width 256 --batch 32768 > "$big.gen.log" 2>&1 &&
    "$loom" compile "$big.onnx" --mode train --target cpu --loss ce --loss-target y -o "$big" > "$big.compile.log" 2>&1 &&
    make -s -C "$big" LOOM_PREBUILT="$root/build/rel" > "$big.build.log" 2>&1 &&
    "$py" -c "import numpy as np; np.save('$big/x.npy', np.zeros((32768, 256), np.float32)); np.save('$big/y.npy', np.zeros(32768, np.int64))"; then
    expect remat_program_lacks_memory 1 "train: the program needs [0-9]* bytes of memory (arena" \
        bash -c "ulimit -v 300000; exec '$big/train' --data x='$big/x.npy' --data y='$big/y.npy' --steps 1"
else
    fail remat_program_lacks_memory "could not build the program: $(tail -3 "$big".*.log)"
fi
expect remat_device_without_budget 2 "give a --budget too" "$loom" compile "$m" --mode train --target cpu "${flags[@]}" --device h100-sxm -o "$out/x"

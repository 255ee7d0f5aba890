#!/usr/bin/env bash
# The train tier: every zoo model compiled by `loom compile --mode train
# --target cpu` with its loss (cross-entropy for the classifiers and language
# models, mean squared error for unet and fno, against target_y), built
# against the prebuilt -O2 kernels and runtime, trained 20 steps on its
# committed batch: the loss must fall and the log hold one complete record per
# step. Then: --dump-grads holds the loss and one gradient per trained
# parameter; a run of 10 steps equals 5 steps, --save, --resume, 5 more, bit
# for bit (losses and checkpoints; on mlp, and on gpt2_tiny with --shuffle);
# Dropout in training mode (masks from --seed and the step, resumable);
# SGD with Nesterov momentum, clipping, cosine schedule and warm-up; the
# steps --print-every prints; the program's errors (wrong shape or dtype,
# missing --data, a checkpoint of another model, a non-finite loss, a bad
# flag) and loom's refusals of bad training flags; one program built with
# AddressSanitizer and UBSan.
# Numerical agreement with PyTorch is the parity tier's (tests/parity).
# Env: LOOM (the loom binary), LOOM_ROOT (repo root).
set -u
root=${LOOM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root" || exit 1
loom=${LOOM:-build/asan/loom}
py=$root/.venv/bin/python
out=build/train
rm -rf "$out" && mkdir -p "$out"

. "$root/tests/lib.sh"

# build DIR [make args...]: make quietly, the log beside
build() {
    local dir=$1
    shift
    make -s -C "$dir" "$@" > "$dir.build.log" 2>&1
}

# log_ok.py LOG N: N records with every key, steps 1..N, finite; prints first -> last loss;
# fails unless the last loss is below 0.9 of the first
cat > "$out/log_ok.py" <<'PY'
import sys, json, math
recs = [json.loads(l) for l in open(sys.argv[1])]
n = int(sys.argv[2])
keys = {"step", "loss", "lr", "step_ms", "samples_per_s", "peak_device_bytes"}
if len(recs) != n: sys.exit(f"{len(recs)} records, want {n}")
for i, r in enumerate(recs):
    if not keys <= r.keys(): sys.exit(f"record {i + 1} lacks {sorted(keys - r.keys())}")
    if r["step"] != i + 1 or not math.isfinite(r["loss"]) or r["peak_device_bytes"] <= 0:
        sys.exit(f"record {i + 1} is wrong: {r}")
a, b = recs[0]["loss"], recs[-1]["loss"]
print(f"loss {a:.4g} -> {b:.4g}, {sum(r['step_ms'] for r in recs) / n:.2f} ms/step")
sys.exit(0 if b < 0.9 * a else 1)
PY
# st_names.py FILE: the tensor names of a safetensors file, sorted
cat > "$out/st_names.py" <<'PY'
import sys, json, struct
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
print("\n".join(sorted(k for k in json.loads(b[8:8 + n]) if k != "__metadata__")))
PY

declare -A loss_of=([mlp]=ce [gpt2_tiny]=ce [llama_tiny]=ce [resnet_small]=ce [vit_tiny]=ce [unet_small]=mse [fno_small]=mse)
for model in mlp gpt2_tiny llama_tiny resnet_small unet_small vit_tiny fno_small; do
    dir=$out/$model
    if ! "$loom" compile "models/$model/model.onnx" --mode train --target cpu -o "$dir" --loss "${loss_of[$model]}" \
        --loss-target target_y > "$dir.compile.log" 2>&1; then
        fail "train_${model}_compile" "$(tail -3 "$dir.compile.log")"
        continue
    fi
    pass "train_${model}_compile"
    if ! build "$dir" LOOM_PREBUILT="$root/build/rel"; then
        fail "train_${model}_build" "$(tail -5 "$dir.build.log")"
        continue
    fi
    pass "train_${model}_build"
    mapfile -t args < <(data "$model")
    if ! "$dir/train" "${args[@]}" --steps 20 --log "$dir/log.jsonl" > "$dir.run.log" 2>&1; then
        fail "train_${model}_run" "$(tail -3 "$dir.run.log")"
        continue
    fi
    if msg=$("$py" "$out/log_ok.py" "$dir/log.jsonl" 20 2>&1); then
        pass "train_${model}_loss_falls ($msg)"
    else
        fail "train_${model}_loss_falls" "$msg"
    fi
done

# ---- --dump-grads: the loss and one gradient per trained parameter ----
mlp=$out/mlp
mapfile -t mlp_args < <(data mlp)
if [ -x "$mlp/train" ] && "$mlp/train" "${mlp_args[@]}" --steps 1 --dump-grads "$out/grads.safetensors" > /dev/null 2>&1; then
    got=$("$py" "$out/st_names.py" "$out/grads.safetensors" | tr '\n' ' ')
    want="fc1.bias fc1.weight fc2.bias fc2.weight fc3.bias fc3.weight loss "
    if [ "$got" = "$want" ]; then pass train_dump_grads; else fail train_dump_grads "tensors: $got" "want: $want"; fi
else
    fail train_dump_grads "train --dump-grads failed"
fi

# ---- resume: 10 steps straight = 5 steps, --save, --resume, 5 steps; bit for bit ----
resume_case() {
    local name=$1 dir=$2
    shift 2
    local d=$out/resume_$name
    mkdir -p "$d"
    if ! "$dir/train" "$@" --steps 10 --log "$d/a.jsonl" --save "$d/a.safetensors" > "$d/a.log" 2>&1 ||
        ! "$dir/train" "$@" --steps 5 --log "$d/b1.jsonl" --save "$d/b.safetensors" --save-every 2 > "$d/b1.log" 2>&1 ||
        ! "$dir/train" "$@" --steps 5 --resume "$d/b.safetensors" --log "$d/b2.jsonl" --save "$d/b2.safetensors" > "$d/b2.log" 2>&1; then
        fail "train_resume_$name" "$(tail -3 "$d"/*.log)"
        return
    fi
    local a b
    a=$(losses "$d/a.jsonl")
    b=$(losses "$d/b1.jsonl" "$d/b2.jsonl")
    if [ "$a" != "$b" ]; then
        fail "train_resume_$name" "losses differ:" "$(diff <(echo "$a") <(echo "$b") | head -6)"
    elif ! cmp -s "$d/a.safetensors" "$d/b2.safetensors"; then
        fail "train_resume_$name" "the checkpoints after step 10 differ"
    else
        pass "train_resume_$name (10 losses and the step-10 checkpoint identical)"
    fi
}
[ -x "$mlp/train" ] && resume_case mlp "$mlp" "${mlp_args[@]}"
if [ -x "$out/gpt2_tiny/train" ]; then
    mapfile -t gpt_args < <(data gpt2_tiny)
    resume_case gpt2_tiny_shuffle "$out/gpt2_tiny" "${gpt_args[@]}" --shuffle --seed 7
fi

# ---- Dropout in training mode: masks drawn from --seed and the step ----
# A small MLP with Dropout(0.3) made here: the seed decides the masks (same
# seed, same losses; another seed, other losses), a resumed run draws the same
# masks, and a ratio of 0.3 zeroes about 30% of the hidden units.
dd=$out/dropout
mkdir -p "$dd"
if "$py" - "$dd" > "$dd/make.log" 2>&1 <<'PY'
import sys, numpy as np, onnx
from onnx import helper, TensorProto, numpy_helper as nh
d = sys.argv[1]; r = np.random.default_rng(0)
inits = [nh.from_array((r.standard_normal((16, 64)) * 0.3).astype(np.float32), "w1"),
         nh.from_array(np.zeros(64, np.float32), "b1"),
         nh.from_array((r.standard_normal((64, 4)) * 0.3).astype(np.float32), "w2"),
         nh.from_array(np.array(0.3, np.float32), "ratio")]
nodes = [helper.make_node("MatMul", ["x", "w1"], ["h0"]), helper.make_node("Add", ["h0", "b1"], ["h1"]),
         helper.make_node("Relu", ["h1"], ["h2"]), helper.make_node("Dropout", ["h2", "ratio"], ["h3"]),
         helper.make_node("MatMul", ["h3", "w2"], ["logits"])]
g = helper.make_graph(nodes, "dropout_mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 16])],
                      [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [8, 4])], inits)
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
onnx.checker.check_model(m); onnx.save(m, f"{d}/model.onnx")
np.save(f"{d}/x.npy", r.standard_normal((64, 16)).astype(np.float32))
np.save(f"{d}/y.npy", r.integers(0, 4, 64).astype(np.int64))
PY
then
    dargs=(--data "x=$dd/x.npy" --data "y=$dd/y.npy")
    if "$loom" compile "$dd/model.onnx" --mode train --target cpu -o "$dd/p" --loss ce --loss-target y \
        > "$dd/compile.log" 2>&1 && build "$dd/p" LOOM_PREBUILT="$root/build/rel"; then
        "$dd/p/train" "${dargs[@]}" --steps 6 --seed 1 --log "$dd/s1a.jsonl" > /dev/null 2>&1
        "$dd/p/train" "${dargs[@]}" --steps 6 --seed 1 --log "$dd/s1b.jsonl" > /dev/null 2>&1
        "$dd/p/train" "${dargs[@]}" --steps 6 --seed 2 --log "$dd/s2.jsonl" > /dev/null 2>&1
        a=$(losses "$dd/s1a.jsonl" 2>&1); b=$(losses "$dd/s1b.jsonl" 2>&1)
        c=$(losses "$dd/s2.jsonl" 2>&1)
        if [ -n "$a" ] && [ "$a" = "$b" ] && [ "$a" != "$c" ] && [ "$(echo "$a" | wc -l)" = 6 ]; then
            pass "train_dropout_seed (same seed: same 6 losses; seed 2: others)"
        else
            fail train_dropout_seed "seed 1: $(echo $a)" "seed 1 again: $(echo $b)" "seed 2: $(echo $c)"
        fi
        resume_case dropout "$dd/p" "${dargs[@]}" --seed 3   # the kernel's rate: test_kcpu_dropout
    else
        fail train_dropout_compile "$(tail -3 "$dd/compile.log" "$dd/p.build.log" 2>/dev/null)"
    fi
else
    fail train_dropout_model "$(tail -3 "$dd/make.log")"
fi

# ---- SGD, Nesterov momentum, clipping, cosine schedule with warm-up ----
sgd=$out/mlp_sgd
if "$loom" compile models/mlp/model.onnx --mode train --target cpu -o "$sgd" --loss ce --loss-target target_y \
    --optimizer sgd --lr 0.05 --momentum 0.9 --nesterov --weight-decay 1e-4 --clip-norm 1 --schedule cosine \
    --warmup 2 > "$sgd.compile.log" 2>&1 && build "$sgd" LOOM_PREBUILT="$root/build/rel" &&
    "$sgd/train" "${mlp_args[@]}" --steps 20 --log "$sgd/log.jsonl" > "$sgd.run.log" 2>&1; then
    if msg=$("$py" "$out/log_ok.py" "$sgd/log.jsonl" 20 2>&1) &&
        lrs=$("$py" -c 'import json,sys; r=[json.loads(l)["lr"] for l in open(sys.argv[1])]
ok = abs(r[0] - 0.025) < 1e-9 and abs(r[1] - 0.05) < 1e-9 and r[-1] == 0 and all(a >= b for a, b in zip(r[1:], r[2:]))
print(r[:3], r[-1]); sys.exit(0 if ok else 1)' "$sgd/log.jsonl"); then
        pass "train_sgd_nesterov_clip_cosine ($msg; lr $lrs)"
    else
        fail train_sgd_nesterov_clip_cosine "$msg ${lrs:-}"
    fi
else
    fail train_sgd_nesterov_clip_cosine "$(tail -3 "$sgd.compile.log" "$sgd.build.log" "$sgd.run.log" 2>/dev/null)"
fi

# ---- the program's errors: exit 1, a message naming what is wrong ----
if [ -x "$mlp/train" ]; then
    "$py" - "$out" <<'PY'
import sys, numpy as np
d = sys.argv[1]
np.save(f"{d}/x_shape.npy", np.zeros((4, 785), np.float32))
np.save(f"{d}/x_dtype.npy", np.zeros((4, 784), np.float64))
np.save(f"{d}/y_count.npy", np.zeros((3,), np.int64))
np.save(f"{d}/y_range.npy", np.full((4,), 99, np.int64))
np.save(f"{d}/x_huge.npy", np.full((4, 784), 3e38, np.float32))
PY
    y=--data=target_y=models/mlp/target_y.npy
    expect train_wrong_shape 1 "expected float32\[784\] per sample" "$mlp/train" --data "x=$out/x_shape.npy" "$y"
    expect train_wrong_dtype 1 "got float64\[4,784\]" "$mlp/train" --data "x=$out/x_dtype.npy" "$y"
    expect train_missing_data 1 "no --data for input 'target_y'" "$mlp/train" --data x=models/mlp/x.npy
    expect train_sample_count 1 "holds 3 samples" "$mlp/train" --data x=models/mlp/x.npy --data "target_y=$out/y_count.npy"
    expect train_target_range 1 "out of range" "$mlp/train" --data x=models/mlp/x.npy --data "target_y=$out/y_range.npy" --steps 1
    expect train_nonfinite 1 "first non-finite tensor is" "$mlp/train" "${mlp_args[@]}" --steps 5 --lr 1e30
    # finite data whose first product overflows: the step's updates (run
    # inside backward) write nothing, so the re-run names that product, not
    # a parameter made non-finite by the failed step
    expect train_nonfinite_no_update 1 "'/fc1/Gemm_output_0' float32\[4,.*computed by node" "$mlp/train" \
        --data "x=$out/x_huge.npy" "$y" --steps 1
    expect train_bad_flag 2 "unknown argument" "$mlp/train" --bogus
    expect train_bad_lr 2 "--lr needs" "$mlp/train" "${mlp_args[@]}" --lr -1
    expect train_bad_print_every 2 "--print-every needs a whole number from 1" "$mlp/train" "${mlp_args[@]}" --print-every 0
    # --print-every 3 over 7 steps: the lines of steps 3, 6 and the last, 7
    got=$("$mlp/train" "${mlp_args[@]}" --steps 7 --print-every 3 2>&1 | awk '/^step / {print $2}' | tr '\n' ' ')
    if [ "$got" = "3/7 6/7 7/7 " ]; then pass train_print_every; else fail train_print_every "printed steps: $got"; fi
    if [ -f "$out/resume_mlp/a.safetensors" ] && [ -x "$out/gpt2_tiny/train" ]; then
        expect train_resume_other_model 1 "another model" "$out/gpt2_tiny/train" "${gpt_args[@]}" --resume "$out/resume_mlp/a.safetensors"
    fi
    expect train_resume_not_checkpoint 1 "not a checkpoint" "$mlp/train" "${mlp_args[@]}" --resume "$mlp/weights.safetensors"
    if "$mlp/train" --help > "$out/help.out" 2>&1 && grep -q 'x  *float32\[784\]' "$out/help.out" &&
        grep -q 'target_y  *int64\[\]' "$out/help.out"; then
        pass train_help
    else
        fail train_help "$(head -c 300 "$out/help.out")"
    fi
fi

# ---- loom compile's refusals of training flags ----
m=models/mlp/model.onnx
expect compile_train_bad_lr 2 "--lr needs a number" "$loom" compile $m --mode train --target cpu -o "$out/t" --lr -1
expect compile_train_bad_beta 2 "--beta2 needs a number in" "$loom" compile $m --mode train --target cpu -o "$out/t" --beta2 1
expect compile_train_bad_optimizer 2 "unknown optimizer" "$loom" compile $m --mode train --target cpu -o "$out/t" --optimizer lion
expect compile_train_bad_loss 2 "unknown loss" "$loom" compile $m --mode train --target cpu -o "$out/t" --loss hinge
expect compile_train_nesterov 2 "--nesterov needs a momentum" "$loom" compile $m --mode train --target cpu -o "$out/t" --optimizer sgd --nesterov
expect compile_train_flag_infer 2 "needs --mode train" "$loom" compile $m --mode infer --target cpu -o "$out/t" --lr 0.1
expect compile_train_no_loss 1 "no scalar float output" "$loom" compile $m --mode train --target cpu -o "$out/t"
expect compile_train_bad_freeze 1 "not a valid extended regular expression" "$loom" compile $m --mode train --target cpu -o "$out/t" --loss ce --freeze '('
expect compile_train_all_frozen 1 "nothing to train" "$loom" compile $m --mode train --target cpu -o "$out/t" --loss ce --freeze .

# ---- one program under AddressSanitizer and UBSan: resnet (conv, pooling and
# batch-norm gradients) with SGD momentum and clipping ----
san=$out/resnet_asan
if "$loom" compile models/resnet_small/model.onnx --mode train --target cpu -o "$san" --loss ce --loss-target target_y \
    --optimizer sgd --momentum 0.9 --clip-norm 5 > "$san.compile.log" 2>&1 &&
    build "$san" LOOM_PREBUILT="$root/build/asan" CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined"; then
    mapfile -t rargs < <(data resnet_small)
    if "$san/train" "${rargs[@]}" --steps 3 --save "$san/ck.safetensors" --dump-grads "$san/g.safetensors" > "$san.run.log" 2>&1 &&
        "$san/train" "${rargs[@]}" --steps 1 --resume "$san/ck.safetensors" >> "$san.run.log" 2>&1; then
        pass train_asan_resnet
    else
        fail train_asan_resnet "$(grep -m3 -E 'ERROR|runtime error|train:' "$san.run.log")"
    fi
else
    fail train_asan_resnet "$(tail -3 "$san.compile.log" "$san.build.log" 2>/dev/null)"
fi

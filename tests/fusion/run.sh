#!/usr/bin/env bash
# The fusion tier: attention fusion (optimizer/fuse_attention.c) on the zoo's
# transformers. `compile --dump-after fuse` must show one loom.Attention per
# layer (causal for gpt2_tiny's Where mask and llama_tiny's additive mask,
# no MatMul -> Softmax chain left), the training program must run the fused
# kernels forward and backward, and the fused program must train like the
# unfused one (--no-fuse-attention): first-step gradients (--dump-grads)
# within 1e-4 of each tensor's largest, 10 losses within 1e-5 relative. Not
# bit for bit: the fused op scales inside the product and sums in another
# order (docs/cli.md). GELU written out must be one Gelu (gpt2_tiny's tanh
# form, vit_tiny's erf form). Then the head: gpt2_tiny's and llama_tiny's logits
# product and cross-entropy as one loom.LinearCrossEntropy, against
# --no-fuse-head the same way. Last, an inference BatchNormalization in a
# fused loop with a Relu (and an Add): bit for bit the kernel's. And GELU's
# gradient in a bf16 step's backward as one loop with the casts before it.
# Env: LOOM (the loom binary), LOOM_ROOT (repo root).
set -u
root=${LOOM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root" || exit 1
loom=${LOOM:-build/asan/loom}
py=$root/.venv/bin/python
out=build/fusion
rm -rf "$out" && mkdir -p "$out"

. "$root/tests/lib.sh"

# close.py A.safetensors B.safetensors LOG_A LOG_B: gradients and losses agree
cat > "$out/close.py" <<'PY'
import sys, json, struct
import numpy as np
def st(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    return {k: np.frombuffer(b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], np.float32)
            for k, v in h.items() if k != "__metadata__"}
a, b = st(sys.argv[1]), st(sys.argv[2])
if a.keys() != b.keys(): sys.exit(f"tensors differ: {sorted(a.keys() ^ b.keys())}")
worst = max(float(np.abs(a[k].astype(np.float64) - b[k]).max() / (np.abs(b[k]).max() + 1e-12)) for k in a)
la = [json.loads(l)["loss"] for l in open(sys.argv[3])]
lb = [json.loads(l)["loss"] for l in open(sys.argv[4])]
dl = max(abs(x - y) / abs(y) for x, y in zip(la, lb)) if len(la) == len(lb) == 10 else float("inf")
print(f"gradients {worst:.2g}, losses {dl:.2g} (relative)")
sys.exit(0 if worst < 1e-4 and dl < 1e-5 else 1)
PY

# train_zoo MODEL DIR FLAG...: MODEL's training program (--loss ce) compiled
# into DIR with the flags, built, and run 10 steps (DIR.jsonl,
# DIR.grads.safetensors; logs DIR.*.log)
train_zoo() {
    local model=$1 dir=$2 args
    shift 2
    mapfile -t args < <(data "$model")
    "$loom" compile "models/$model/model.onnx" --mode train --target cpu -o "$dir" --loss ce \
        --loss-target target_y "$@" > "$dir.compile.log" 2>&1 &&
        make -s -C "$dir" LOOM_PREBUILT="$root/build/rel" > "$dir.build.log" 2>&1 &&
        "$dir/train" "${args[@]}" --steps 10 --log "$dir.jsonl" --dump-grads "$dir.grads.safetensors" \
            > "$dir.run.log" 2>&1
}

# matches NAME A B: the runs A and B (DIR.jsonl, DIR.grads.safetensors) train alike (close.py)
matches() {
    local msg
    if msg=$("$py" "$out/close.py" "$2.grads.safetensors" "$3.grads.safetensors" "$2.jsonl" "$3.jsonl" 2>&1); then
        pass "$1 ($msg)"
    else
        fail "$1" "$msg"
    fi
}

declare -A layers=([gpt2_tiny]=2 [llama_tiny]=2 [vit_tiny]=2)
declare -A causal=([gpt2_tiny]=2 [llama_tiny]=2 [vit_tiny]=0)
# GELU written out (optimizer/fuse_gelu.c): gpt2_tiny's tanh form, vit_tiny's erf form
declare -A gelu=([gpt2_tiny]=2 [llama_tiny]=0 [vit_tiny]=2)
declare -A gelu_tanh=([gpt2_tiny]=2 [llama_tiny]=0 [vit_tiny]=0)
for model in gpt2_tiny llama_tiny vit_tiny; do
    m=models/$model/model.onnx
    ir=$out/$model.fuse.txt
    if ! "$loom" compile "$m" --mode infer --target cpu -o "$out/$model.infer" --dump-after fuse > /dev/null 2> "$ir"; then
        fail "fusion_${model}_ir" "$(tail -3 "$ir")"
        continue
    fi
    n=$(grep -c '= loom.Attention(' "$ir")
    nc=$(grep '= loom.Attention(' "$ir" | grep -c 'causal=1')
    left=$(grep -c '= Softmax(' "$ir")
    if [ "$n" = "${layers[$model]}" ] && [ "$nc" = "${causal[$model]}" ] && [ "$left" = 0 ]; then
        pass "fusion_${model}_ir ($n loom.Attention, $nc causal)"
    else
        fail "fusion_${model}_ir" "$n loom.Attention ($nc causal), $left Softmax left; want ${layers[$model]} (${causal[$model]} causal), 0"
    fi
    ng=$(grep -c '= Gelu(' "$ir")
    nt=$(grep '= Gelu(' "$ir" | grep -c 'approximate="tanh"')
    rest=$(grep -cE '= (Tanh|Erf)\(' "$ir")
    if [ "$ng" = "${gelu[$model]}" ] && [ "$nt" = "${gelu_tanh[$model]}" ] && [ "$rest" = 0 ]; then
        pass "fusion_${model}_gelu ($ng Gelu, $nt tanh form)"
    else
        fail "fusion_${model}_gelu" "$ng Gelu ($nt tanh), $rest Tanh/Erf left; want ${gelu[$model]} (${gelu_tanh[$model]} tanh), 0"
    fi
    for kind in fused unfused; do
        flag=()
        [ $kind = unfused ] && flag=(--no-fuse-attention)
        dir=$out/$model.$kind
        if ! train_zoo "$model" "$dir" "${flag[@]}"; then
            fail "fusion_${model}_${kind}_train" "$(tail -3 "$dir.compile.log" "$dir.build.log" "$dir.run.log")"
            continue 2
        fi
    done
    calls=$(grep -c 'k_attention_f32(\|k_attention_grad_f32(' "$out/$model.fused/model.c")
    if [ "$calls" = $((2 * layers[$model])) ] && ! grep -q 'k_attention' "$out/$model.unfused/model.c"; then
        pass "fusion_${model}_kernels ($calls calls)"
    else
        fail "fusion_${model}_kernels" "$calls k_attention calls in the fused model.c, want $((2 * layers[$model]))"
    fi
    matches "fusion_${model}_matches_unfused" "$out/$model.fused" "$out/$model.unfused"
done

# masks.py DIR: a model with two attentions over one shared KT (so the first
# products become transposes of it), T 5 != S 7, D 4 != Dv 6: a boolean
# mask [2,1,1,7] (per sample: padding) with fill -1e9 after a Div, and an
# additive mask [3,5,7] (per head) after a Mul; a batch of x and a target
cat > "$out/masks.py" <<'PY'
import sys, numpy as np, onnx
from onnx import helper as h, numpy_helper as nh, TensorProto as tp
r = np.random.default_rng(5)
c = lambda name, a: nh.from_array(np.asarray(a), name)
inits = [c("wq", r.standard_normal((8, 12), np.float32)), c("wk", r.standard_normal((8, 12), np.float32)),
         c("wv", r.standard_normal((8, 18), np.float32)), c("qs", np.array([2], np.int64)),
         c("qe", np.array([7], np.int64)), c("ax", np.array([1], np.int64)),
         c("sq", np.array([2, 5, 3, 4], np.int64)), c("sk", np.array([2, 7, 3, 4], np.int64)),
         c("sv", np.array([2, 7, 3, 6], np.int64)),
         c("keep", np.array([[1, 1, 1, 0, 1, 1, 0], [1, 0, 1, 1, 1, 1, 1]], bool).reshape(2, 1, 1, 7))]
# float constants as Constant nodes, as PyTorch writes them (a float initializer is a parameter)
k = lambda name, a: h.make_node("Constant", [], [name], value=nh.from_array(np.asarray(a, np.float32), name))
n = [k("two", 2.0), k("half", 0.5), k("fill", -1e9), k("add", r.random((3, 5, 7)) * -2),
     h.make_node("Slice", ["x", "qs", "qe", "ax"], ["xq"]),
     h.make_node("MatMul", ["xq", "wq"], ["q0"]), h.make_node("Reshape", ["q0", "sq"], ["q1"]),
     h.make_node("Transpose", ["q1"], ["q"], perm=[0, 2, 1, 3]),
     h.make_node("MatMul", ["x", "wk"], ["k0"]), h.make_node("Reshape", ["k0", "sk"], ["k1"]),
     h.make_node("Transpose", ["k1"], ["kt"], perm=[0, 2, 3, 1]),
     h.make_node("MatMul", ["x", "wv"], ["v0"]), h.make_node("Reshape", ["v0", "sv"], ["v1"]),
     h.make_node("Transpose", ["v1"], ["v"], perm=[0, 2, 1, 3]),
     h.make_node("MatMul", ["q", "kt"], ["s1"]), h.make_node("Div", ["s1", "two"], ["s1d"]),
     h.make_node("Where", ["keep", "s1d", "fill"], ["s1m"]), h.make_node("Softmax", ["s1m"], ["p1"], axis=-1),
     h.make_node("MatMul", ["p1", "v"], ["o1"]),
     h.make_node("MatMul", ["q", "kt"], ["s2"]), h.make_node("Mul", ["half", "s2"], ["s2s"]),
     h.make_node("Add", ["s2s", "add"], ["s2m"]), h.make_node("Softmax", ["s2m"], ["p2"], axis=-1),
     h.make_node("MatMul", ["p2", "v"], ["o2"]), h.make_node("Concat", ["o1", "o2"], ["y"], axis=-1)]
g = h.make_graph(n, "masks", [h.make_tensor_value_info("x", tp.FLOAT, [2, 7, 8])],
                 [h.make_tensor_value_info("y", tp.FLOAT, [2, 3, 5, 12])], inits)
onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), sys.argv[1] + "/model.onnx")
np.save(sys.argv[1] + "/x.npy", r.standard_normal((2, 7, 8), np.float32))
np.save(sys.argv[1] + "/target.npy", r.standard_normal((2, 3, 5, 12), np.float32))
PY
# same.py A.npy B.npy: within 1e-5 of the largest
cat > "$out/same.py" <<'PY'
import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
e = float(np.abs(a.astype(np.float64) - b).max() / np.abs(b).max())
print(f"outputs within {e:.2g} of the largest")
sys.exit(0 if a.shape == b.shape and e < 1e-5 else 1)
PY
md=$out/masks
mkdir -p "$md"
if "$py" "$out/masks.py" "$md" > "$md.gen.log" 2>&1; then
    "$loom" compile "$md/model.onnx" --mode infer --target cpu -o "$md/infer" --dump-after fuse > /dev/null 2> "$md/fuse.txt"
    n=$(grep -c '= loom.Attention(' "$md/fuse.txt")
    nfill=$(grep '= loom.Attention(' "$md/fuse.txt" | grep -c 'fill=-1e+09')
    ntr=$(grep -c '/KTranspose$' "$md/fuse.txt")
    if [ "$n" = 2 ] && [ "$nfill" = 1 ] && [ "$ntr" = 2 ] && ! grep -q 'causal=1' "$md/fuse.txt"; then
        pass "fusion_masks_ir (2 loom.Attention with their masks, K transposed from the shared KT)"
    else
        fail "fusion_masks_ir" "$n loom.Attention ($nfill with fill -1e9), $ntr K transposes; want 2, 1, 2" \
            "$(grep 'loom.Attention' "$md/fuse.txt" | head -2)"
    fi
    ok=1
    for kind in fused unfused; do
        flag=()
        [ $kind = unfused ] && flag=(--no-fuse-attention)
        d=$md/$kind
        if ! "$loom" compile "$md/model.onnx" --mode infer --target cpu -o "$d.infer" "${flag[@]}" > "$d.log" 2>&1 ||
            ! make -s -C "$d.infer" LOOM_PREBUILT="$root/build/rel" >> "$d.log" 2>&1 ||
            ! "$d.infer/infer" --input "x=$md/x.npy" --output "y=$d.y.npy" >> "$d.log" 2>&1 ||
            ! "$loom" compile "$md/model.onnx" --mode train --target cpu -o "$d.train" --loss mse "${flag[@]}" \
                >> "$d.log" 2>&1 ||
            ! make -s -C "$d.train" LOOM_PREBUILT="$root/build/rel" >> "$d.log" 2>&1 ||
            ! "$d.train/train" --data "x=$md/x.npy" --data "target=$md/target.npy" --steps 10 --lr 0.01 \
                --log "$d.jsonl" --dump-grads "$d.grads.safetensors" >> "$d.log" 2>&1; then
            fail "fusion_masks_$kind" "$(tail -3 "$d.log")"
            ok=0
        fi
    done
    if [ $ok = 1 ]; then
        if msg=$("$py" "$out/same.py" "$md/fused.y.npy" "$md/unfused.y.npy" 2>&1); then
            pass "fusion_masks_infer_matches_unfused ($msg)"
        else
            fail "fusion_masks_infer_matches_unfused" "$msg"
        fi
        matches "fusion_masks_train_matches_unfused" "$md/fused" "$md/unfused"
    fi
else
    fail "fusion_masks_model" "$(tail -3 "$md.gen.log")"
fi

# the flag is compile's and plan's: the IR after fuse keeps the eager chain
if "$loom" plan models/gpt2_tiny/model.onnx --loss ce --loss-target target_y --no-fuse-attention --dump-after fuse \
    > /dev/null 2> "$out/plan_nofuse.txt" && ! grep -q 'loom.Attention' "$out/plan_nofuse.txt" &&
    grep -q '= Softmax(' "$out/plan_nofuse.txt"; then
    pass "fusion_plan_no_fuse_flag"
else
    fail "fusion_plan_no_fuse_flag" "$(tail -2 "$out/plan_nofuse.txt")"
fi

# the head: with --loss ce, a product x W that only the loss reads becomes one
# loom.LinearCrossEntropy (ir/loss.c); the program trains like --no-fuse-head
# (gradients within 1e-4 of each tensor's largest, 10 losses within 1e-5)
for model in gpt2_tiny llama_tiny; do
    dir=$out/$model.nohead
    if ! train_zoo "$model" "$dir" --no-fuse-head || ! [ -f "$out/$model.fused.jsonl" ]; then
        fail "fusion_${model}_head" "$(tail -3 "$dir.compile.log" "$dir.build.log" "$dir.run.log" 2>/dev/null)"
        continue
    fi
    fused=$(grep -c 'k_linear_ce_f32(' "$out/$model.fused/model.c")
    apart=$(grep -c 'k_linear_ce_f32(' "$dir/model.c")
    if [ "$fused" = 1 ] && [ "$apart" = 0 ]; then
        pass "fusion_${model}_head_kernel (one k_linear_ce_f32; none with --no-fuse-head)"
    else
        fail "fusion_${model}_head_kernel" "$fused k_linear_ce_f32 calls fused, $apart with --no-fuse-head; want 1 and 0"
    fi
    matches "fusion_${model}_head_matches_unfused" "$out/$model.fused" "$dir"
done

# BatchNormalization in a fused loop (codegen/cg_elemwise.c): an inference
# BatchNormalization opens its consumer's elementwise loop (a CNN's BN+ReLU
# in one pass). bn.py writes a model whose BN -> Relu and BN -> Add -> Relu
# fuse, and the same BNs again as graph outputs (not fused: k_batchnorm_f32);
# the fused outputs must be the kernel's followed by the same Add and Relu,
# bit for bit. (The cuda tier runs resnet_small's training program, whose
# BN+ReLU loops these are, on the emulator beside the cpu program.)
cat > "$out/bn.py" <<'PY'
import sys, numpy as np, onnx
from onnx import helper as h, numpy_helper as nh, TensorProto as tp
r = np.random.default_rng(7)
C = 6
inits = []
for b in ("a", "b"):
    inits += [nh.from_array(r.standard_normal(C).astype(np.float32), f"{b}_scale"),
              nh.from_array(r.standard_normal(C).astype(np.float32), f"{b}_bias"),
              nh.from_array(r.standard_normal(C).astype(np.float32), f"{b}_mean"),
              nh.from_array((r.random(C) + 0.1).astype(np.float32), f"{b}_var")]
bn = lambda b, x, y: h.make_node("BatchNormalization", [x, f"{b}_scale", f"{b}_bias", f"{b}_mean", f"{b}_var"],
                                 [y], epsilon=1e-3)
n = [bn("a", "x", "t1"), h.make_node("Relu", ["t1"], ["y1"]),
     bn("b", "x", "t2"), h.make_node("Add", ["t2", "x"], ["t3"]), h.make_node("Relu", ["t3"], ["y2"]),
     bn("a", "x", "ra"), bn("b", "x", "rb")]
shape = [3, C, 5, 7]
vi = lambda name: h.make_tensor_value_info(name, tp.FLOAT, shape)
g = h.make_graph(n, "bn", [vi("x")], [vi("y1"), vi("y2"), vi("ra"), vi("rb")], inits)
onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), sys.argv[1] + "/model.onnx")
np.save(sys.argv[1] + "/x.npy", (r.standard_normal(shape) * 3).astype(np.float32))
PY
cat > "$out/bn_check.py" <<'PY'
import sys, numpy as np
d = sys.argv[1]
x, y1, y2, ra, rb = (np.load(f"{d}/{k}.npy") for k in ("x", "y1", "y2", "ra", "rb"))
relu = lambda t: np.where(t > 0, t, np.float32(0))
bits = lambda a, b: a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))
ok1, ok2 = bits(y1, relu(ra)), bits(y2, relu(rb + x))
print(f"BN+Relu {'same bits' if ok1 else 'differs'}, BN+Add+Relu {'same bits' if ok2 else 'differs'}")
sys.exit(0 if ok1 and ok2 else 1)
PY
bd=$out/bn
mkdir -p "$bd"
if "$py" "$out/bn.py" "$bd" > "$bd.log" 2>&1 &&
    "$loom" compile "$bd/model.onnx" --mode infer --target cpu -o "$bd/infer" >> "$bd.log" 2>&1 &&
    make -s -C "$bd/infer" LOOM_PREBUILT="$root/build/rel" >> "$bd.log" 2>&1 &&
    "$bd/infer/infer" --input "x=$bd/x.npy" --output "y1=$bd/y1.npy" --output "y2=$bd/y2.npy" \
        --output "ra=$bd/ra.npy" --output "rb=$bd/rb.npy" >> "$bd.log" 2>&1; then
    nf=$(grep -c 'PROF_STEP([0-9]*, "[^"]*", "BatchNormalization+' "$bd/infer/model.c")
    if [ "$nf" != 2 ]; then
        fail "fusion_batchnorm_loops" "$nf fused BatchNormalization steps in model.c, want 2"
    elif msg=$("$py" "$out/bn_check.py" "$bd" 2>&1); then
        pass "fusion_batchnorm_loops ($msg)"
    else
        fail "fusion_batchnorm_loops" "$msg"
    fi
else
    fail "fusion_batchnorm_loops" "$(tail -3 "$bd.log")"
fi

# The backward of BatchNormalization + ReLU (ir_fold_bn_relu_grad, ir/grad_bn_relu.c):
# resnet_small's training program reads the convolutions' outputs where it read
# the ReLUs inside its blocks (k_batchnorm_relu_grad_f32, k_conv_grad_weight_bn_relu_f32),
# and must train bit for bit like --no-fold-bn-relu (first-step gradients and
# 10 losses), in a smaller arena (plan.json).
fold=$out/resnet_small.fold
nofold=$out/resnet_small.nofold
if train_zoo resnet_small "$fold" && train_zoo resnet_small "$nofold" --no-fold-bn-relu; then
    nk=$(grep -c 'k_batchnorm_relu_grad_f32(' "$fold/model.c")
    nc=$(grep -c 'k_conv_grad_weight_bn_relu_f32(' "$fold/model.c")
    n0=$(grep -c '_bn_relu_\|_relu_grad_f32(' "$nofold/model.c")
    a1=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["arena_bytes"])' "$fold/plan.json")
    a0=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["arena_bytes"])' "$nofold/plan.json")
    if [ "$nk" -lt 1 ] || [ "$nc" -lt 1 ] || [ "$n0" != 0 ]; then
        fail "fusion_bn_relu_grad_kernels" "$nk k_batchnorm_relu_grad_f32 and $nc k_conv_grad_weight_bn_relu_f32 calls folded, $n0 with --no-fold-bn-relu"
    elif ! cmp -s "$fold.grads.safetensors" "$nofold.grads.safetensors" ||
        [ "$(losses "$fold.jsonl")" != "$(losses "$nofold.jsonl")" ] || [ "$(losses "$fold.jsonl" | wc -l)" != 10 ]; then
        fail "fusion_bn_relu_grad_bits" "gradients or losses differ from --no-fold-bn-relu's"
    elif [ "$a1" -ge "$a0" ]; then
        fail "fusion_bn_relu_grad_arena" "arena $a1 bytes folded, $a0 with --no-fold-bn-relu"
    else
        pass "fusion_bn_relu_grad ($nk BatchNormGrad and $nc ConvGradWeight read the normalization's input; same bits; arena $a0 -> $a1 bytes)"
    fi
else
    fail "fusion_bn_relu_grad" "$(tail -3 "$fold.compile.log" "$fold.build.log" "$fold.run.log" "$nofold.run.log" 2>/dev/null)"
fi

# A residual block's output ReLU (ir_fold_add_relu_grad, --fold-add-relu on):
# its gradient reads the Add made again from the last normalization's input
# and the skip (or the shortcut's normalization made again), in one loop with
# the ReLU's gradient; resnet_small must train bit for bit like the graph as
# built (--fold-add-relu off), and model.c must run that loop.
radd=$out/resnet_small.foldadd
raddoff=$out/resnet_small.foldadd_off
if [ -f "$fold.grads.safetensors" ] && train_zoo resnet_small "$radd" --fold-add-relu on &&
    train_zoo resnet_small "$raddoff" --fold-add-relu off; then
    nl=$(grep -cE "^    //        node 'bwd/[^']*' BatchNormalization:" "$radd/model.c")
    if [ "$nl" -lt 1 ] || grep -qE "node 'bwd/[^']*' BatchNormalization:" "$raddoff/model.c"; then
        fail "fusion_add_relu_grad_loop" "$nl normalizations made again in a backward loop with --fold-add-relu on"
    elif ! cmp -s "$radd.grads.safetensors" "$raddoff.grads.safetensors" ||
        ! cmp -s "$raddoff.grads.safetensors" "$fold.grads.safetensors" ||
        [ "$(losses "$radd.jsonl")" != "$(losses "$raddoff.jsonl")" ] || [ "$(losses "$radd.jsonl" | wc -l)" != 10 ]; then
        fail "fusion_add_relu_grad_bits" "gradients or losses differ between --fold-add-relu on, off and auto"
    else
        pass "fusion_add_relu_grad ($nl normalizations made again inside ReLU gradient loops; same bits)"
    fi
else
    fail "fusion_add_relu_grad" "$(tail -3 "$radd.compile.log" "$radd.build.log" "$radd.run.log" "$raddoff.run.log" 2>/dev/null)"
fi

# The same with a ResNet's stem: Conv -> BatchNormalization -> Relu -> MaxPool
# (stem.py), whose MaxPoolGrad finds its maxima in the Relu output made again
# (k_maxpool_grad_bn_relu_f32): bit for bit --no-fold-bn-relu's training.
cat > "$out/stem.py" <<'PY'
import sys, numpy as np, onnx
from onnx import helper as h, numpy_helper as nh, TensorProto as tp
r = np.random.default_rng(11)
f = lambda name, *shape: nh.from_array((r.standard_normal(shape) * 0.3).astype(np.float32), name)
inits = [f("w1", 8, 3, 3, 3), f("w2", 4, 8, 3, 3), f("fc", 4 * 4 * 4, 5)]
for b, c in (("a", 8), ("b", 4)):
    inits += [f(f"{b}_scale", c), f(f"{b}_bias", c), f(f"{b}_mean", c),
              nh.from_array((r.random(c) + 0.5).astype(np.float32), f"{b}_var")]
bn = lambda b, x, y: h.make_node("BatchNormalization", [x, f"{b}_scale", f"{b}_bias", f"{b}_mean", f"{b}_var"], [y])
n = [h.make_node("Conv", ["x", "w1"], ["z1"], pads=[1, 1, 1, 1]), bn("a", "z1", "t1"), h.make_node("Relu", ["t1"], ["y1"]),
     h.make_node("MaxPool", ["y1"], ["p1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
     h.make_node("Conv", ["p1", "w2"], ["z2"], pads=[1, 1, 1, 1], strides=[2, 2]), bn("b", "z2", "t2"),
     h.make_node("Relu", ["t2"], ["y2"]), h.make_node("Flatten", ["y2"], ["v"]), h.make_node("MatMul", ["v", "fc"], ["logits"])]
g = h.make_graph(n, "stem", [h.make_tensor_value_info("x", tp.FLOAT, [6, 3, 16, 16])],
                 [h.make_tensor_value_info("logits", tp.FLOAT, [6, 5])], inits)
onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), sys.argv[1] + "/model.onnx")
np.save(sys.argv[1] + "/x.npy", r.standard_normal((6, 3, 16, 16)).astype(np.float32))
np.save(sys.argv[1] + "/target_y.npy", r.integers(0, 5, 6).astype(np.int64))
PY
sd=$out/stem
mkdir -p "$sd"
stem_train() { # DIR FLAG...: stem.py's model trained 10 steps into DIR
    local dir=$1
    shift
    "$loom" compile "$sd/model.onnx" --mode train --target cpu -o "$dir" --loss ce --loss-target target_y "$@" \
        > "$dir.compile.log" 2>&1 && make -s -C "$dir" LOOM_PREBUILT="$root/build/rel" > "$dir.build.log" 2>&1 &&
        "$dir/train" --data "x=$sd/x.npy" --data "target_y=$sd/target_y.npy" --steps 10 --log "$dir.jsonl" \
            --dump-grads "$dir.grads.safetensors" > "$dir.run.log" 2>&1
}
if "$py" "$out/stem.py" "$sd" > "$sd.log" 2>&1 && stem_train "$sd/fold" && stem_train "$sd/nofold" --no-fold-bn-relu; then
    np=$(grep -c 'k_maxpool_grad_bn_relu_f32(' "$sd/fold/model.c")
    if [ "$np" != 1 ] || grep -q 'k_maxpool_grad_bn_relu_f32(' "$sd/nofold/model.c"; then
        fail "fusion_bn_relu_grad_maxpool" "$np k_maxpool_grad_bn_relu_f32 calls folded; want 1, and none with --no-fold-bn-relu"
    elif cmp -s "$sd/fold.grads.safetensors" "$sd/nofold.grads.safetensors" &&
        [ "$(losses "$sd/fold.jsonl")" = "$(losses "$sd/nofold.jsonl")" ] && [ "$(losses "$sd/fold.jsonl" | wc -l)" = 10 ]; then
        pass "fusion_bn_relu_grad_maxpool (the stem's MaxPoolGrad reads the conv output; same bits)"
    else
        fail "fusion_bn_relu_grad_maxpool" "gradients or losses differ from --no-fold-bn-relu's"
    fi
else
    fail "fusion_bn_relu_grad_maxpool" "$(tail -3 "$sd.log" "$sd"/*.log 2>/dev/null)"
fi

# GELU's gradient in a bf16 program's backward: the Cast of the product's
# gradient, the GELU input made again from the bf16 product and the bias
# (Cast, Add) and loom.ActivationGrad are one loop (cg_ew_act_grad), one per
# layer, with no ActivationGrad kernel call left; the program trains. (Its
# numbers are the precision tier's, against PyTorch.)
gd=$out/gelu_grad
if "$loom" compile models/gpt2_tiny/model.onnx --mode train --target cpu --precision bf16 -o "$gd" --loss ce \
        --loss-target target_y > "$gd.compile.log" 2>&1 && make -s -C "$gd" LOOM_PREBUILT="$root/build/rel" > "$gd.build.log" 2>&1; then
    mapfile -t gdata < <(data gpt2_tiny)
    nf=$(grep -c '"Cast+Cast+Add+loom.ActivationGrad")' "$gd/model.c")
    if [ "$nf" != 2 ] || grep -q 'k_activation_grad_f32(' "$gd/model.c"; then
        fail "fusion_gelu_grad" "$nf fused GELU gradient loops in gpt2_tiny's bf16 step; want 2 and no kernel call"
    elif "$gd/train" "${gdata[@]}" --steps 3 --log "$gd.jsonl" > "$gd.run.log" 2>&1 && [ "$(losses "$gd.jsonl" | wc -l)" = 3 ]; then
        pass "fusion_gelu_grad (2 loops of Cast+Cast+Add+ActivationGrad; trains)"
    else
        fail "fusion_gelu_grad" "$(tail -3 "$gd.run.log")"
    fi
else
    fail "fusion_gelu_grad" "$(tail -3 "$gd.compile.log" "$gd.build.log" 2>/dev/null)"
fi

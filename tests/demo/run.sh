#!/usr/bin/env bash
# The demo tier: `make demo`'s pipeline (scripts/demo.sh) shortened to 30
# training steps and 16 sampled characters, with the loom under test. Checks:
# it runs; the training data are next-character windows within the vocabulary;
# the loss starts near ln 96 (a uniform guess) and falls; the inference
# program reads the trained checkpoint (its loss on four windows is below
# that of the initial weights); the sampler draws the requested number of
# characters per prompt, all within the 96-character vocabulary, prints
# exactly those, and draws the same ones again from the same seed.
# Env: LOOM (the loom binary), LOOM_ROOT (repo root).
set -u
root=${LOOM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root" || exit 1
loom=${LOOM:-build/asan/loom}
py=$root/.venv/bin/python
out=build/demo-test
steps=30
chars=16
rm -rf "$out" && mkdir -p "$out"

. "$root/tests/lib.sh"

if ! LOOM=$loom DEMO_OUT=$out DEMO_STEPS=$steps DEMO_CHARS=$chars scripts/demo.sh > "$out.log" 2>&1; then
    fail demo_runs "$(tail -5 "$out.log")"
    exit 0
fi
pass "demo_runs ($(tail -1 "$out.log"))"

# data: int64 [N,32] windows, target the next character, within the vocabulary
if msg=$("$py" - "$out/data" <<'PY' 2>&1
import sys, numpy as np
x, y = np.load(f"{sys.argv[1]}/input_ids.npy"), np.load(f"{sys.argv[1]}/target_y.npy")
assert x.dtype == y.dtype == np.int64 and x.shape == y.shape and x.ndim == 2 and x.shape[1] == 32, (x.dtype, x.shape, y.shape)
assert x.shape[0] > 1000, f"only {x.shape[0]} windows"
assert (x[:, 1:] == y[:, :-1]).all(), "target_y is not input_ids shifted by one"
assert x.min() >= 0 and max(x.max(), y.max()) < 96, "a token outside the vocabulary"
assert (np.bincount(x.ravel(), minlength=96) > 0).sum() > 60, "fewer than 60 distinct characters"
print(f"{x.shape[0]} windows")
PY
); then pass "demo_data ($msg)"; else fail demo_data "$msg"; fi

# the loss: near ln 96 at step 1, the mean of the last 5 steps well below it
if msg=$("$py" - "$out/train.jsonl" $steps <<'PY' 2>&1
import sys, json, math
l = [json.loads(r)["loss"] for r in open(sys.argv[1])]
assert len(l) == int(sys.argv[2]), f"{len(l)} records"
last = sum(l[-5:]) / 5
print(f"loss {l[0]:.3f} -> {last:.3f} (mean of the last 5)")
assert abs(l[0] - math.log(96)) < 0.2, "the first loss is not near ln 96"
assert last < 0.85 * l[0], "the loss did not fall"
PY
); then pass "demo_loss_falls ($msg)"; else fail demo_loss_falls "$msg"; fi
if grep -qE "step +$steps/$steps +loss" "$out.log"; then pass demo_progress_shown; else fail demo_progress_shown "no line for step $steps in the demo's output"; fi

# the inference program with the checkpoint fits the data better than with the initial weights
# (on 4 windows spread over the text)
ce() {
    "$out/infer/infer" --input "input_ids=$out/x4.npy" --output "logits=$out/logits_$1.npy" "${@:2}" > /dev/null &&
        "$py" -c 'import sys, numpy as np
z = np.load(sys.argv[1]).astype(np.float64); y = np.load(sys.argv[2])
z -= z.max(-1, keepdims=True); lp = z - np.log(np.exp(z).sum(-1, keepdims=True))
print(f"{-np.take_along_axis(lp, y[..., None], -1).mean():.3f}")' "$out/logits_$1.npy" "$out/y4.npy"
}
"$py" -c 'import sys, numpy as np
i = np.linspace(0, len(np.load(sys.argv[1] + "/input_ids.npy")) - 1, 4).astype(int)
np.save(sys.argv[2], np.load(sys.argv[1] + "/input_ids.npy")[i]); np.save(sys.argv[3], np.load(sys.argv[1] + "/target_y.npy")[i])' \
    "$out/data" "$out/x4.npy" "$out/y4.npy"
if a=$(ce init) && b=$(ce trained --weights "$out/ckpt.safetensors") &&
    "$py" -c "import sys; sys.exit(0 if $b < $a - 0.3 else 1)"; then
    pass "demo_infer_uses_checkpoint (loss $a initial, $b trained)"
else
    fail demo_infer_uses_checkpoint "loss ${a:-?} with the initial weights, ${b:-?} with the checkpoint"
fi

# samples: [4,chars] tokens within the vocabulary, printed as they are, reproducible
check_samples='import sys, numpy as np
sys.path.insert(0, "models")
from chars import decode
d, n = np.load(sys.argv[1]), int(sys.argv[3])
assert d.dtype == np.int64 and d.shape == (4, n), (d.dtype, d.shape)
assert d.min() >= 0 and d.max() < 96, "a token outside the vocabulary"
prompts = ["This License", "You may", "the Program", "Licensor"]
want = "".join("  " + f"[{p}]{decode(r)}".replace("\n", "\n  ") + "\n" for p, r in zip(prompts, d))
got = open(sys.argv[2]).read()
assert got == want, f"printed {got!r}, drew {want!r}"
assert all(c == "\n" or 32 <= ord(c) < 127 for c in got), "a printed character outside the vocabulary"
print(f"4 x {n} characters")'
if msg=$("$py" -c "$check_samples" "$out/samples.npy" "$out/samples.txt" $chars 2>&1); then
    pass "demo_samples ($msg)"
else
    fail demo_samples "$msg"
fi
if "$py" scripts/demo.py sample "$out/infer/infer" --weights "$out/ckpt.safetensors" --chars 5 --out "$out/s5.npy" > "$out/s5.txt" 2>&1 &&
    msg=$("$py" -c "$check_samples" "$out/s5.npy" "$out/s5.txt" 5 2>&1) &&
    "$py" -c 'import sys, numpy as np; sys.exit(0 if (np.load(sys.argv[1]) == np.load(sys.argv[2])[:, :5]).all() else 1)' \
        "$out/s5.npy" "$out/samples.npy"; then
    pass "demo_samples_reproducible (seed 0: the first 5 characters again)"
else
    fail demo_samples_reproducible "${msg:-}" "$(tail -3 "$out/s5.txt")"
fi

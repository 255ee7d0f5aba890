"""table.py GPU TIMES TORCH [PROFILE [PROFILE_BF16]]: the table of tests/gpu/run.sh, in markdown.

TIMES: lines "MODEL loom|cpu MS" (median training step of loom's cuda and cpu
programs); TORCH: lines "MODEL VARIANT MS" from bench/gpu_torch.py; PROFILE:
GPT-2 124M's `--profile` file (per-step times of every kernel call), summed by
op; PROFILE_BF16 the same of its --precision bf16 program. GPT-2 124M's model FLOPs per step: 6 x 123.5M matrix parameters (12
blocks of 12 x 768^2, and the 50257 x 768 head) x 8192 tokens, plus attention
(12 x layers x seq x width per token: QK^T and AV, forward and backward)."""
import json
import os
import statistics
import sys

gpu, times_file, torch_file = sys.argv[1:4]
prof_file = sys.argv[4] if len(sys.argv) > 4 else ""
prof_bf16 = sys.argv[5] if len(sys.argv) > 5 else ""
# dense bf16 tensor-core peaks (datasheets), for the model FLOPs utilisation
BF16_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def read(path):
    rows = {}
    if os.path.exists(path):
        for line in open(path):
            p = line.split()
            if len(p) == 3:
                try:
                    rows[(p[0], p[1])] = float(p[2])
                except ValueError:
                    pass
    return rows


t = {**read(times_file), **read(torch_file)}
models = list(dict.fromkeys(k[0] for k in t))
print(f"# Training step on {gpu}\n")
print("`tests/gpu/run.sh`: median step in ms (20 steps after 3 warm-up), fp32 (TF32 off) but where bf16 is said;")
print("cpu = loom's cpu program on the build machine, for scale.\n")
print("| model | loom cuda | PyTorch eager | torch.compile | loom / eager | loom / compile | loom cpu |")
print("|---|---:|---:|---:|---:|---:|---:|")


def f(x, fmt="{:.3f}"):
    return fmt.format(x) if x is not None else ""


for m in models:
    if m.startswith("gpt2_124m_"):
        continue
    lo, ea, co, cp = (t.get((m, v)) for v in ("loom", "eager", "compile", "cpu"))
    r1 = lo / ea if lo and ea else None
    r2 = lo / co if lo and co else None
    print(f"| {m} | {f(lo)} | {f(ea)} | {f(co)} | {f(r1, '{:.2f}')} | {f(r2, '{:.2f}')} | {f(cp)} |")

lo = t.get(("gpt2_124m", "loom"))
if lo:
    flops = 6 * (12 * 12 * 768 * 768 + 50257 * 768) * 8192 + 12 * 12 * 1024 * 768 * 8192
    print(f"\nGPT-2 124M (batch 8 x 1024): loom {8192 / lo * 1e3:,.0f} tokens/s, "
          f"{flops / lo / 1e9:.1f} model TFLOP/s ({flops / 1e12:.2f} TFLOP a step)", end="")
    print(".")
    half = t.get(("gpt2_124m_half", "loom"))
    remat = t.get(("gpt2_124m_half_remat", "loom"))
    if half:
        print(f"\nGPT-2 124M with --budget half the store-all activation memory: {half:.3f} ms a step, "
              f"{100 * (half / lo - 1):+.1f}% against store-all (recomputation and offload, the plan "
              f"`loom plan --device h100-sxm` makes)" + (f"; with --offload off (recomputation alone) "
              f"{remat:.3f} ms, {100 * (remat / lo - 1):+.1f}%." if remat else "."))

lb = t.get(("gpt2_124m_bf16", "loom"))
eb, cb = t.get(("gpt2_124m", "eager_bf16")), t.get(("gpt2_124m", "compile_bf16"))
if lb or eb:
    flops = 6 * (12 * 12 * 768 * 768 + 50257 * 768) * 8192 + 12 * 12 * 1024 * 768 * 8192
    peak = next((v for k, v in BF16_PEAK.items() if k in gpu), None)
    print("\nGPT-2 124M in bf16 (loom --precision bf16; PyTorch autocast bf16), ms a step:\n")
    print("| | ms | tokens/s | model TFLOP/s | MFU (bf16 dense peak) |")
    print("|---|---:|---:|---:|---:|")
    for name, ms in (("loom", lb), ("PyTorch eager", eb), ("torch.compile", cb)):
        if ms:
            mfu = f"{100 * flops / (ms / 1e3) / peak:.1f}%" if peak else ""
            print(f"| {name} | {ms:.3f} | {8192 / ms * 1e3:,.0f} | {flops / ms / 1e9:.1f} | {mfu} |")
    if lb and eb:
        print(f"\nloom / eager bf16: {lb / eb:.2f}" + (f"; loom / torch.compile bf16: {lb / cb:.2f}" if cb else ""))
    bh, br = t.get(("gpt2_124m_bf16_half", "loom")), t.get(("gpt2_124m_bf16_half_remat", "loom"))
    if lb and bh:
        print(f"\nGPT-2 124M bf16 with --budget half its store-all activation memory: {bh:.3f} ms a step, "
              f"{100 * (bh / lb - 1):+.1f}% against bf16 store-all (recomputation and offload)" +
              (f"; with --offload off {br:.3f} ms, {100 * (br / lb - 1):+.1f}%." if br else "."))


def profile(path, title):
    p = json.load(open(path))
    by_op = {}
    for s in p["steps"]:
        by_op[s["op"] or "?"] = by_op.get(s["op"] or "?", 0.0) + statistics.median(s["seconds"])
    total = sum(by_op.values())
    print(f"\n{title}, where loom's step goes (`make PROFILE=1`, a sync after every call; "
          f"{total * 1e3:.1f} ms a step in all):\n")
    print("| op | ms a step | share |")
    print("|---|---:|---:|")
    for op, s in sorted(by_op.items(), key=lambda kv: -kv[1])[:15]:
        print(f"| {op} | {s * 1e3:.2f} | {100 * s / total:.1f}% |")


if prof_file and os.path.exists(prof_file):
    profile(prof_file, "GPT-2 124M")
if prof_bf16 and os.path.exists(prof_bf16):
    profile(prof_bf16, "GPT-2 124M, --precision bf16")

"""The remat solver's predicted overheads under memory budgets, with the baselines.

usage: python bench/remat_plan.py [--device h100-sxm] [--target cuda] [--out bench/results/remat.md] [MODEL.onnx ...]

For each model (default: GPT-2 124M at batch 8 x 1024 and a ResNet-50-sized
CNN at batch 32 x 224, written by models/gpt2_124m.py and models/resnet50.py
into build/models/, plus the zoo), `loom plan --json` gives the store-all
arena; then the rotor solver is asked for budgets that leave 1/2, 1/3 and 1/5
of that arena (weights and optimizer state on top), with recomputation
alone (`--offload off`), with offload as the profile has it (`--offload
auto`: on for the GPU profiles) and with bfloat16 storage of activations
besides (`--lowbit bf16`), and the baselines (checkpoint per block,
sqrt(n) segments) say what memory they need and at what predicted cost. Figures are predictions of loom's cost model for the
device profile (the analytic roofline) and the memory planner's arena bytes.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys

from benchlib import LOOM, LOSS, ROOT
FRACTIONS = [(1 / 2, "1/2"), (1 / 3, "1/3"), (1 / 5, "1/5")]
ZOO = ["gpt2_tiny", "llama_tiny", "vit_tiny", "resnet_small", "unet_small", "fno_small"]  # mlp: nothing to recompute


def plan(model, extra):
    cmd = [LOOM, "plan", model, "--loss", extra["loss"], "--loss-target", "target_y", "--device", extra["device"],
           "--target", extra["target"], "--json"] + extra.get("args", [])
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return {"error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"}
    return json.loads(p.stdout)


def mib(b):
    return f"{b / 2**20:,.0f} MiB" if b < 10 * 2**30 else f"{b / 2**30:.2f} GiB"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*")
    ap.add_argument("--device", default="h100-sxm")
    ap.add_argument("--target", default=None, help="the program planned for (default: cuda for a GPU profile)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "remat.md"))
    a = ap.parse_args()
    models = a.models or [os.path.join(ROOT, "build", "models", "gpt2_124m", "model.onnx"),
                          os.path.join(ROOT, "build", "models", "resnet50", "model.onnx")] + \
        [os.path.join(ROOT, "models", m, "model.onnx") for m in ZOO]
    target = a.target or ("cpu" if a.device == "cpu" else "cuda")
    rows, notes = [], []
    for m in models:
        if not os.path.exists(m):
            notes.append(f"- {os.path.relpath(m, ROOT)}: not found (write it with the models/ script named above)")
            continue
        name = os.path.basename(os.path.dirname(m))
        extra = {"loss": LOSS.get(name, "ce"), "device": a.device, "target": target}
        base = plan(m, extra)
        if "error" in base:
            notes.append(f"- {name}: {base['error']}")
            continue
        w, arena, t0 = base["weights_bytes"], base["store_all_arena_bytes"], base["store_all_step_s"]
        least = base["min_feasible_bytes"]
        lb = plan(m, dict(extra, args=["--lowbit", "bf16"]))
        least_lb = lb.get("min_feasible_bytes", least)
        row = {"model": name, "arena": arena, "weights": w, "least": least, "least_lb": least_lb, "step": t0,
               "cells": [], "base": [],
               "saved": base.get("store_all_saved_bytes", 0)}
        for f, label in FRACTIONS:
            budget = int(w + f * arena)
            r = plan(m, dict(extra, args=["--budget", str(budget), "--offload", "off"]))
            o = plan(m, dict(extra, args=["--budget", str(budget)]))
            q = plan(m, dict(extra, args=["--budget", str(budget), "--lowbit", "bf16"]))
            row["cells"].append((label, r, o, q))
        for solver in ["blocks", "sqrt"]:
            row["base"].append((solver, plan(m, dict(extra, args=["--solver", solver]))))
        rows.append(row)
        print(f"{name}: done", file=sys.stderr)

    out = []
    out.append(f"# Remat, offload and low-bit storage: predicted step-time overhead under memory budgets ({a.device})\n")
    out.append(f"- date: {datetime.datetime.now():%Y-%m-%d %H:%M}")
    out.append(f"- command: `python bench/remat_plan.py --device {a.device} --target {target}` (bin/loom; the big models "
               "written first by `python models/gpt2_124m.py` and `python models/resnet50.py`, which need "
               "PyTorch: `scripts/setup.sh models`)")
    out.append(f"- plans for the {target} target's program (its fusion and workspaces place the arena)")
    out.append("- a budget leaves 1/2, 1/3 or 1/5 of the store-all arena for activations, gradients and "
               "workspaces (weights and optimizer state on top); the overhead is the predicted step time "
               "against store-all's; `-` where the budget is below the least feasible one")
    out.append("- predictions: loom's analytic roofline for the profile; memory: the planner's arena for "
               "the chosen schedule; solve: CPU seconds building the solver's tables and fitting, "
               "the most over the three budgets")
    out.append("- saved for backward: the part of the store-all arena that is activations backward reads "
               "(`store_all_saved_bytes`); the rest is gradients and workspaces")
    out.append("- each budget cell: recomputation alone (`--offload off`) / with offload (`--offload auto`, "
               "the profile's default), in brackets what offload copies to host memory and back / with "
               "offload and bfloat16 storage (`--lowbit bf16`: changes the gradients by bfloat16's rounding "
               "of the values it stores), in brackets the float32 bytes it stores as bfloat16; least "
               "feasible: with offload / with offload and bfloat16 storage\n")
    out.append("| model | store-all arena | saved for backward | weights+state | least feasible (arena share) | "
               "1/2 | 1/3 | 1/5 | solve s | blocks: arena share, overhead | sqrt(n): arena share, overhead |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")

    def pct(c):
        return "-" if "error" in c else f"{c['overhead_pct']:+.1f}%"

    for r in rows:
        cells, solve = [], 0.0
        def size(b):
            return f" ({mib(b)})" if b >= 2**20 else f" ({b / 1024:,.0f} KiB)" if b else ""

        for label, c, o, q in r["cells"]:
            if "error" in c and "error" in o and "error" in q:
                cells.append("-")
                continue
            hb = o.get("host_bytes", 0) if "error" not in o else 0
            lbb = q.get("lowbit_bytes", 0) if "error" not in q else 0
            cells.append(f"{pct(c)} / {pct(o)}{size(hb)} / {pct(q)}{size(lbb)[:-1] + ' as bf16)' if lbb else ''}")
            solve = max([solve] + [x["solve_s"] for x in (c, o, q) if "error" not in x])
        bases = []
        for solver, c in r["base"]:
            if "error" in c:
                bases.append("-")
                continue
            bases.append(f"{c['arena_bytes'] / r['arena']:.2f}, {c['overhead_pct']:+.1f}%")
        share = (r["least"] - r["weights"]) / r["arena"]
        share_lb = (r["least_lb"] - r["weights"]) / r["arena"]
        out.append(f"| {r['model']} | {mib(r['arena'])} | {mib(r['saved'])} | {mib(r['weights'])} | "
                   f"{mib(r['least'])} ({share:.2f}) / {mib(r['least_lb'])} ({share_lb:.2f}) | "
                   + " | ".join(cells) + f" | {solve:.2f} | " + " | ".join(bases) + " |")
    if notes:
        out.append("\nNot measured:\n" + "\n".join(notes))
    text = "\n".join(out) + "\n"
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()

"""The simulator's predicted training step against the measured one, on this machine's cpu.

usage: python bench/sim_cpu.py [--steps 25] [--rounds 3] [--out bench/results/sim_cpu.md] [MODEL ...]

For each zoo model: `loom profile --mode train` measures every node of the
compiled training program here (costs.json); `loom plan --costs` predicts the
step of the store-all schedule and of the schedule for a budget halfway
between the least feasible one and store-all (with recomputation); both
programs are compiled (`loom compile [--budget B --costs F]`), built and
trained for --steps steps, and the median step_ms of the log after 5 warm-up
steps is a run's time. Each of --rounds rounds profiles every model again and
runs its two programs right after (the machine's speed drifts within
minutes; a prediction and the step it predicts share it); the error is the
median over rounds of each round's predicted over measured. The issue's bar:
predicted within 15% of measured.
"""
import argparse
import datetime
import json
import os
import statistics
import sys

from benchlib import LOOM, LOSS, ROOT, ZOO, data_args, sh
WORK = os.path.join(ROOT, "build", "bench", "sim")




def build(model, flags, budget, costs):
    """Compiles and builds the training program (store-all, or for the budget); its folder."""
    out = os.path.join(WORK, f"{model}.{'all' if budget is None else 'budget'}")
    extra = [] if budget is None else ["--budget", str(budget), "--costs", costs]
    sh([LOOM, "compile", os.path.join(ROOT, "models", model, "model.onnx"), "--mode", "train", "--target", "cpu",
        "-o", out] + flags + extra)
    sh(["make", "-s", "-C", out])
    return out


def measure(model, out, steps):
    """The median step_ms of one training run after 5 warm-up steps, in seconds."""
    log = os.path.join(out, "log.jsonl")
    sh([os.path.join(out, "train"), "--steps", str(steps), "--log", log] + data_args(model))
    ms = [json.loads(line)["step_ms"] for line in open(log)][5:]
    return statistics.median(ms) / 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=ZOO)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "sim_cpu.md"))
    a = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    plans = {}

    def predict(m, flags, budget):
        """`loom profile` now, then `loom plan --costs` of store-all and of the budget (None: find it)."""
        onnx = os.path.join(ROOT, "models", m, "model.onnx")
        costs = os.path.join(WORK, f"{m}.costs.json")
        sh([LOOM, "profile", onnx, "--mode", "train", "--target", "cpu", "-o", costs, "--repeat", "20"] + flags)
        allp = json.loads(sh([LOOM, "plan", onnx, "--costs", costs, "--json"] + flags))
        if budget is None:
            budget = (allp["min_feasible_bytes"] + allp["budget_bytes"]) // 2
        half = json.loads(sh([LOOM, "plan", onnx, "--costs", costs, "--json", "--budget", str(budget)] + flags))
        return allp, half, budget, costs

    for m in a.models:
        flags = ["--loss", LOSS[m], "--loss-target", "target_y"]
        allp, half, budget, costs = predict(m, flags, None)
        plans[m] = (allp, half, budget, build(m, flags, None, costs), build(m, flags, budget, costs), flags)
        print(f"{m}: profiled and built", file=sys.stderr)
    # rounds: each model profiled again and its two programs run right after, the models
    # in turn, so that a prediction and the step it predicts share the machine's state
    # (its speed drifts by a third within minutes) and a slow minute reaches one round
    runs = {m: ([], []) for m in a.models}
    preds = {m: ([], []) for m in a.models}
    for r in range(a.rounds):
        for m in a.models:
            budget, flags = plans[m][2], plans[m][5]
            pa, pb = predict(m, flags, budget)[:2]
            preds[m][0].append(pa["predicted_step_s"])
            preds[m][1].append(pb["predicted_step_s"])
            runs[m][0].append(measure(m, plans[m][3], a.steps))
            runs[m][1].append(measure(m, plans[m][4], a.steps))
        print(f"round {r + 1}: done", file=sys.stderr)
    out = ["# The simulator against measured training steps (cpu)\n",
           f"- date: {datetime.datetime.now():%Y-%m-%d %H:%M}; machine: this one, `nproc` = {os.cpu_count()}, "
           "the programs' default 2 threads",
           f"- command: `python bench/sim_cpu.py --steps {a.steps} --rounds {a.rounds}` (bin/loom built with `make`)",
           "- predicted: `loom plan --costs` over the per-node times `loom profile --mode train` measured "
           "(a recomputation costs its forward node); measured: the median `step_ms` of a `train` run "
           f"after 5 warm-up steps of {a.steps}; each of {a.rounds} rounds profiles every model again and "
           "runs its two programs right after; a figure is the median over rounds (the range: the rounds' "
           "lowest and highest measured), the error the median over rounds of each round's predicted over "
           "measured; budget: halfway between the least feasible and store-all (the budget program is "
           "built from a first profile's costs; a round's prediction is the plan its own costs "
           "choose at that budget)\n",
           "| model | store-all predicted ms | measured ms (range) | error | budget bytes | recomputations | "
           "predicted ms | measured ms (range) | error |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m in a.models:
        allp, half, budget = plans[m][:3]
        ta, tb = statistics.median(runs[m][0]), statistics.median(runs[m][1])
        pa, pb = statistics.median(preds[m][0]), statistics.median(preds[m][1])
        ea = statistics.median(p / t - 1 for p, t in zip(preds[m][0], runs[m][0]))
        eb = statistics.median(p / t - 1 for p, t in zip(preds[m][1], runs[m][1]))
        rng = lambda xs: f"{min(xs) * 1e3:.2f}-{max(xs) * 1e3:.2f}"
        out.append(f"| {m} | {pa * 1e3:.3f} | {ta * 1e3:.3f} ({rng(runs[m][0])}) | {100 * ea:+.1f}% | "
                   f"{budget} | {half['recomputed_nodes']} | {pb * 1e3:.3f} | {tb * 1e3:.3f} ({rng(runs[m][1])}) | "
                   f"{100 * eb:+.1f}% |")
    text = "\n".join(out) + "\n"
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()

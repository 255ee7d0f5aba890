"""Training step time at the same or lower peak memory: loom's generated
`train` program, rematerializing to fit a --budget, against PyTorch with
torch.utils.checkpoint applied per block, on the same model, weights, batch,
loss and optimizer, measured side by side in one run on this machine's CPU.

Models and their blocks (the unit PyTorch checkpoints):
  gpt2_tiny     lm.transformer.h[i]   (GPT2Block, 2)
  llama_tiny    lm.model.layers[i]    (LlamaDecoderLayer, 2)
  resnet_small  blocks[i]             (BasicBlock, 3; stem and head not checkpointed)
  vit_tiny      blocks[i]             (pre-norm encoder Block, 2)
The PyTorch modules come from models/train_ref.py (each model's export.py
build(), seed 0; train_ref.check_weights asserts every ONNX initializer equals
its PyTorch tensor), in eval mode as the parity tier trains them; the batch is
the committed models/NAME/<input>.npy and target_y.npy; loss cross-entropy
(train_ref.loss_fn), AdamW with train_ref.ADAMW (PyTorch's defaults, loom's
compile defaults). Every run starts from the committed weights, so step 1's
loss must agree between all four configurations (checked, rtol 1e-4).

Per model:
  1. PyTorch peak memory of one training step (after warm-up, so the AdamW
     state exists), with and without checkpointing: torch.profiler with
     profile_memory=True records every CPU allocator allocation and free during
     the step (zero_grad, forward, loss, backward, optimizer.step); their
     running sum's maximum is the peak of the bytes allocated in the step. Held
     across the step and allocated before it: the parameters, the buffers
     (BatchNorm statistics, attention masks), the AdamW state and the batch,
     counted from the tensors themselves. So
       torch total    = params + buffers + AdamW state + batch + step peak
       torch transient = batch + step peak   (activations, gradients, autograd's
                         saved tensors, temporaries: what loom's arena holds)
     loom: peak_device_bytes from `train --log` (arena + weights blob: params,
     constants, AdamW state) and the arena alone (plan.json arena_bytes).
  2. loom's budget B = min(torch-checkpoint total, loom weights + torch-checkpoint
     transient): the largest budget at which loom's device bytes and its arena
     are both at most PyTorch-checkpoint's. `loom compile --budget B` gives the
     fastest schedule the solver finds within B. Below loom's least feasible
     budget the row says so and loom runs at its least feasible budget instead.
     Reference rows: loom store-all (no --budget) and PyTorch without checkpoint.
  3. ROUNDS rounds, each running loom at B, loom store-all, PyTorch with
     checkpoint, PyTorch without, one after the other, so that drift and other
     load on the machine hit all four. A run is WARMUP + STEPS training steps;
     its figure is the median step time of the last STEPS; a configuration's
     figure is the median over rounds.
       loom:    DIR/train --steps WARMUP+STEPS --log, step_ms (the whole step as
                the program times it: batch copy, forward, loss, backward,
                update), in its own process with OMP_NUM_THREADS=THREADS
       PyTorch: time.perf_counter around zero_grad(set_to_none=True), forward,
                loss, backward, optimizer.step, loss.item(), in this process,
                torch.set_num_threads(THREADS)
  The ratio is loom's time over PyTorch-with-checkpoint's (below 1: loom faster).

PyTorch is needed (torch, transformers, onnx, numpy). `scripts/setup.sh models`
installs the pinned versions into .venv; then from the repository root:
  make
  .venv/bin/python bench/remat_vs_torch.py [--models gpt2_tiny,resnet_small]
      [--rounds 3] [--steps 30] [--warmup 5] [--threads 2[,1]]
      [--out bench/results/remat_vs_torch.md]
Any Python with torch will do: the script uses the interpreter it is run with
and bin/loom of this checkout. --threads 2,1 measures every configuration at
each thread count (rows per count).
"""
import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import statistics
import sys
import time

import numpy as np

from benchlib import ROOT, cpu_model, die, sh  # noqa: E402
sys.path.insert(0, os.path.join(ROOT, "models"))
try:
    import onnx
    import torch
    import train_ref
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._utils import traverse_dfs
    from torch.utils.checkpoint import checkpoint
except ImportError as e:
    sys.exit(f"bench: FAILED: {e}; this needs torch and transformers: run "
             "`scripts/setup.sh models` and use .venv/bin/python")

# The modules each model is checkpointed by: a transformer's layers, a ResNet's residual blocks.
BLOCKS = {
    "gpt2_tiny": lambda m: m.lm.transformer.h,
    "llama_tiny": lambda m: m.lm.model.layers,
    "resnet_small": lambda m: m.blocks,
    "vit_tiny": lambda m: m.blocks,
}
LOSS_RTOL = 1e-4




class Batch:
    """The committed batch: numpy files for loom, tensors for PyTorch."""

    def __init__(self, name):
        d = os.path.join(ROOT, "models", name)
        self.onnx = os.path.join(d, "model.onnx")
        m = onnx.load(self.onnx)
        self.inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
        self.files = {i.name: os.path.join(d, f"{i.name}.npy") for i in m.graph.input}
        self.files["target_y"] = os.path.join(d, "target_y.npy")
        self.inputs = [torch.from_numpy(np.load(self.files[i.name])) for i in m.graph.input]
        self.target = torch.from_numpy(np.load(self.files["target_y"]))
        with open(os.path.join(d, "params.json")) as f:
            self.mapping = json.load(f)

    def nbytes(self):
        return sum(t.numel() * t.element_size() for t in self.inputs + [self.target])


def torch_setup(name, batch, ckpt):
    """A fresh model with the committed weights and its AdamW; with ckpt, every
    block's forward runs under checkpoint(use_reentrant=False)."""
    model = train_ref.load_builder(name)()
    train_ref.check_weights(name, model, batch.inits, batch.mapping)
    model.eval()
    if ckpt:
        for block in BLOCKS[name](model):
            def wrapped(*args, _fwd=block.forward, **kwargs):
                return checkpoint(_fwd, *args, use_reentrant=False, **kwargs)
            block.forward = wrapped
    opt = torch.optim.AdamW(model.parameters(), lr=train_ref.ADAMW["lr"],
                            betas=train_ref.ADAMW["betas"], eps=train_ref.ADAMW["eps"],
                            weight_decay=train_ref.ADAMW["weight_decay"])
    loss_kind = train_ref.LOSS[name]

    def step():
        opt.zero_grad(set_to_none=True)
        loss = train_ref.loss_fn(loss_kind, model(*batch.inputs), batch.target)
        loss.backward()
        opt.step()
        return loss.item()
    return model, opt, step


def torch_run(name, batch, ckpt, a):
    """(median step seconds over the last a.steps, step 1's loss)."""
    _, _, step = torch_setup(name, batch, ckpt)
    first = step()
    for _ in range(a.warmup - 1):
        step()
    times = []
    for _ in range(a.steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return statistics.median(times), first


def torch_memory(name, batch, ckpt, a):
    """PyTorch's bytes for one training step after warm-up (module docstring)."""
    model, opt, step = torch_setup(name, batch, ckpt)
    for _ in range(a.warmup):
        step()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = [(e.start_time_ns, e.extra_fields.alloc_size)
              for e in traverse_dfs(prof.profiler.kineto_results.experimental_event_tree())
              if e.tag == _EventType.Allocation and e.extra_fields.device.type == "cpu"]
    events.sort()
    step_peak = int(max(np.cumsum([s for _, s in events]).max(), 0))
    tensors = list(model.parameters()) + list(model.buffers())
    tensors += [t for s in opt.state.values() for t in s.values() if torch.is_tensor(t)]
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    persistent = sum(storages.values())
    transient = batch.nbytes() + step_peak
    return {"persistent": persistent, "transient": transient, "total": persistent + transient}


def loom_plan(batch, budget=None):
    cmd = ["bin/loom", "plan", batch.onnx, "--loss", "ce", "--loss-target", "target_y", "--json"]
    if budget is not None:
        cmd += ["--budget", str(budget)]
    return json.loads(sh(cmd))


LIB = os.path.join(ROOT, "build", "bench", "remat_vs_torch", "lib")


def loom_build(name, batch, budget):
    """Compiles and builds one training program with the generated Makefile's
    default flags. The kernels and runtime copies are the same in every program:
    the first build's objects become LIB's archives, which the others link."""
    d = os.path.join(ROOT, "build", "bench", "remat_vs_torch", f"{name}_{budget or 'all'}")
    os.makedirs(os.path.dirname(d), exist_ok=True)
    cmd = ["bin/loom", "compile", batch.onnx, "--mode", "train", "--target", "cpu",
           "--loss", "ce", "--loss-target", "target_y", "-o", d]
    if budget is not None:
        cmd += ["--budget", str(budget)]
    summary = sh(cmd)
    make = ["make", "-s", "-C", d, f"-j{os.cpu_count() or 1}", "train"]
    if os.path.isdir(LIB):
        sh(make + [f"LOOM_PREBUILT={LIB}"])
    else:
        sh(make)
        os.makedirs(LIB)
        for lib, sub in (("libloomk_cpu.a", "kernels"), ("libloomrt.a", "runtime")):
            objs = sorted(os.path.join(d, sub, f) for f in os.listdir(os.path.join(d, sub))
                          if f.endswith(".o"))
            sh(["ar", "rcs", os.path.join(LIB, lib)] + objs)
    with open(os.path.join(d, "plan.json")) as f:
        arena = json.load(f)["arena_bytes"]
    budget_line = next((line for line in summary.splitlines() if line.startswith("budget")), "")
    return {"dir": d, "arena": arena, "summary": budget_line}


def loom_run(prog, batch, threads, a):
    """(median step seconds over the last a.steps, step 1's loss, peak_device_bytes)."""
    log = os.path.join(prog["dir"], "log.jsonl")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    cmd = [os.path.join(prog["dir"], "train"), "--steps", str(a.warmup + a.steps),
           "--print-every", str(a.warmup + a.steps), "--log", log]
    for k, f in batch.files.items():
        cmd += ["--data", f"{k}={f}"]
    sh(cmd, env=env)
    with open(log) as f:
        rows = [json.loads(line) for line in f]
    ms = statistics.median(r["step_ms"] for r in rows[a.warmup:])
    return ms / 1e3, rows[0]["loss"], rows[0]["peak_device_bytes"]


def bench_model(name, a):
    batch = Batch(name)
    print(f"{name}: PyTorch memory", flush=True)
    mem = {ck: torch_memory(name, batch, ck, a) for ck in (True, False)}
    with torch.backends.mkldnn.flags(enabled=False):
        no_onednn = torch_memory(name, batch, True, a)["transient"]
    store = loom_plan(batch)
    weights, least = store["weights_bytes"], store["min_feasible_bytes"]
    want = min(mem[True]["total"], weights + mem[True]["transient"])
    budget, fits = want, want >= least
    if not fits:
        budget = least
    progs = {"budget": loom_build(name, batch, budget),
             "all": loom_build(name, batch, None)}
    rows = []
    for threads in a.threads:
        torch.set_num_threads(threads)
        times = {k: [] for k in ("budget", "all", "ck", "plain")}
        first, peak = {}, {}
        for r in range(a.rounds):
            for k in ("budget", "all"):
                t, first[k], peak[k] = loom_run(progs[k], batch, threads, a)
                times[k].append(t)
            for k, ck in (("ck", True), ("plain", False)):
                t, first[k] = torch_run(name, batch, ck, a)
                times[k].append(t)
            print(f"{name} {threads}t round {r + 1}: " + "  ".join(
                f"{k} {v[-1] * 1e3:.3f} ms" for k, v in times.items()), flush=True)
        ref = first["plain"]
        for k, v in first.items():
            if abs(v - ref) > LOSS_RTOL * abs(ref):
                die(f"{name}: step 1 loss of {k} is {v}, PyTorch's is {ref}")
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append({"name": name, "threads": threads, "med": med, "times": times,
                     "loss": ref, "mem": mem, "peak": peak, "progs": progs,
                     "budget": budget, "want": want, "fits": fits, "least": least,
                     "weights": weights, "no_onednn": no_onednn})
    return rows


def mib(b):
    return f"{b / 2**20:.2f}"



def omp_env():
    """The variables that change how idle workers wait, as set for this run (loom's pool reads
    OMP_WAIT_POLICY; PyTorch's libgomp both)."""
    env = [f"{k}={os.environ[k]}" for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if k in os.environ]
    return ", ".join(env) if env else ("none set (loom's pool spins 300 us before it sleeps; "
                                       "PyTorch's libgomp keeps its default)")


def write_results(rows, a, cmdline, load):
    lines = [
        "# Training step at the same or lower peak memory: loom remat vs PyTorch checkpoint (cpu)",
        "",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {cpu_model()}, `nproc` = {os.cpu_count()}; load average "
        f"{load[0]} before the run, {load[1]} after",
        f"- PyTorch {torch.__version__}, Python {platform.python_version()}; "
        f"loom `{sh(['bin/loom', '--version']).strip()}` at commit "
        f"{sh(['git', 'rev-parse', '--short', 'HEAD']).strip()}",
        f"- command: `{cmdline}`",
        f"- OpenMP environment of both sides: {omp_env()}",
        f"- {a.rounds} alternating rounds of {a.warmup} warm-up + {a.steps} timed steps per "
        "configuration; figure = median over rounds of each round's median step",
        "",
        "Times in ms per training step; memory in MiB. loom B: `compile --budget` at the "
        "largest budget whose device bytes and arena are both at most PyTorch-checkpoint's "
        "(total / transient). ratio = loom B / torch ckpt (below 1: loom faster).",
        "",
        "| model | threads | loom B ms | torch ckpt ms | ratio | loom store-all ms | "
        "torch plain ms | loom B total / arena | torch ckpt total / transient | "
        "loom store-all total / arena | torch plain total / transient | loom B schedule |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m, mem, pk, pg = r["med"], r["mem"], r["peak"], r["progs"]
        note = " ".join(pg["budget"]["summary"].replace("|", "/").split()) or "store-all fits"
        if not r["fits"]:
            note = f"**does not fit** PyTorch's peak (least feasible {mib(r['least'])} MiB); " + note
        lines.append(
            f"| {r['name']} | {r['threads']} | {m['budget'] * 1e3:.3f} | {m['ck'] * 1e3:.3f} | "
            f"**{m['budget'] / m['ck']:.3f}** | {m['all'] * 1e3:.3f} | {m['plain'] * 1e3:.3f} | "
            f"{mib(pk['budget'])} / {mib(pg['budget']['arena'])} | "
            f"{mib(mem[True]['total'])} / {mib(mem[True]['transient'])} | "
            f"{mib(pk['all'])} / {mib(pg['all']['arena'])} | "
            f"{mib(mem[False]['total'])} / {mib(mem[False]['transient'])} | {note} |")
    lines += ["", "What is counted:", "",
              "- loom total: `peak_device_bytes` of `train --log` = arena (the batch, activations, "
              "gradients, kernel workspaces such as the convolutions' padded copies and column "
              "blocks, recomputed "
              "values) + weights blob (parameters, constants, AdamW's m and v); loom arena: "
              "plan.json's `arena_bytes`.",
              "- torch transient: the batch + the peak, over one training step (zero_grad to "
              "optimizer.step), of the bytes allocated in the step through PyTorch's CPU allocator "
              "(torch.profiler, profile_memory=True; allocations minus frees in time order): "
              "activations and autograd's saved tensors, checkpoint's recomputed ones, gradients, "
              "temporaries. torch total: that + the parameters, buffers and AdamW state "
              "(exp_avg, exp_avg_sq, step), counted from the tensors. Not counted on the PyTorch "
              "side: what libraries allocate outside c10's allocator (MKL's and oneDNN's own "
              "buffers), Python objects and autograd's graph nodes, so torch's figures are a lower "
              "bound. PyTorch's CPU convolutions run on oneDNN (direct kernels, no im2col tensor); "
              "the bytes below also give the checkpointed transient with oneDNN switched off "
              "(torch.backends.mkldnn.flags(enabled=False): PyTorch's own im2col convolution, "
              "whose column buffers the allocator does see). loom's convolutions take a workspace "
              "per thread slot (a padded copy of the image, or blocks of columns: kwindow.h), "
              "which rematerialization cannot shrink.",
              "- The persistent parts agree to within 5% (bytes below; loom's weights blob also "
              "holds the constants it folded, e.g. llama's rotary tables), so the budget is set "
              "so that both loom's total and its arena are at most PyTorch-checkpoint's.",
              "- Times: both sides run the same steps from the same weights on the same batch "
              "(step 1's loss agrees, rtol 1e-4); loom's step_ms is timed inside the program, "
              "PyTorch's around the Python calls of one step. These models are tiny (a step is "
              "milliseconds): PyTorch's time is mostly per-op overhead (dispatch, autograd, "
              "Python, checkpoint's bookkeeping), not arithmetic, so the ratios say little about "
              "larger models.", ""]
    lines += ["", "Per round (ms): loom B, loom store-all, torch ckpt, torch plain", ""]
    for r in rows:
        t = r["times"]
        per = "; ".join(" ".join(f"{t[k][i] * 1e3:.2f}" for k in ("budget", "all", "ck", "plain"))
                        for i in range(len(t["ck"])))
        lines.append(f"- {r['name']}, {r['threads']} thread(s): {per}")
    lines += ["", "Bytes (exact): ", ""]
    seen = set()
    for r in rows:
        if r["name"] in seen:
            continue
        seen.add(r["name"])
        mem = r["mem"]
        lines.append(
            f"- {r['name']}: torch params+buffers+AdamW state {mem[True]['persistent']}, "
            f"loom weights blob {r['weights']}; torch ckpt transient {mem[True]['transient']}, "
            f"plain {mem[False]['transient']}; loom budget asked {r['want']}, given {r['budget']}, "
            f"device {r['peak']['budget']}, arena {r['progs']['budget']['arena']}; store-all "
            f"device {r['peak']['all']}, arena {r['progs']['all']['arena']}; torch ckpt transient "
            f"with oneDNN off {r['no_onednn']}; step 1 loss {r['loss']:.6f}")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w") as f:
            f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="gpt2_tiny,llama_tiny,resnet_small,vit_tiny")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30, help="timed steps per run")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps before them")
    ap.add_argument("--threads", default="2", help="thread counts, comma-separated")
    ap.add_argument("--out", help="write the results (markdown) here too")
    a = ap.parse_args()
    a.threads = [int(t) for t in a.threads.split(",")]
    names = a.models.split(",")
    for n in names:
        if n not in BLOCKS:
            die(f"no model {n!r} with blocks to checkpoint (one of {' '.join(BLOCKS)})")
    if a.warmup < 1 or a.steps < 1:
        die("--warmup and --steps must be at least 1")
    if not os.access(os.path.join(ROOT, "bin", "loom"), os.X_OK):
        die("no bin/loom: run `make` first")
    cmdline = shlex.join([os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(ROOT)
                          else sys.executable] + sys.argv)
    load0 = " ".join(f"{x:.2f}" for x in os.getloadavg())
    shutil.rmtree(LIB, ignore_errors=True)  # built afresh from this checkout's kernels
    rows = [r for n in names for r in bench_model(n, a)]
    load1 = " ".join(f"{x:.2f}" for x in os.getloadavg())
    write_results(rows, a, cmdline, (load0, load1))


if __name__ == "__main__":
    main()

"""Inference latency of every zoo model: loom's generated `infer` against
onnxruntime on this machine's CPU, with the same number of threads, measured
side by side in one run.

For each model: `bin/loom compile --mode infer --target cpu`, `make` with the
generated Makefile's default flags (or --cflags), one run of each to check
that loom's outputs equal onnxruntime's (rtol 1e-3, atol 1e-5, as the zoo
tier; the script fails loudly if not), then ROUNDS alternating rounds
(onnxruntime, loom, onnxruntime, loom, ...) of REPEAT runs each. A round's
figure is the median per-run latency; a model's times are the medians over
rounds of those medians, and its loom/ORT ratio the median over rounds of
each loom round's figure over the onnxruntime round's just before it.

  loom:         `infer --repeat REPEAT` in its own process, which times each
                model_run alone (after one warm-up run) on the monotonic clock
                and prints `loom-bench runs=N min_ms=... median_ms=...`;
                environment OMP_NUM_THREADS=THREADS and
                OPENBLAS_NUM_THREADS=THREADS, nothing else.
  onnxruntime:  one InferenceSession per model, intra_op_num_threads=THREADS,
                inter_op_num_threads=1, sequential execution, all graph
                optimizations; inputs and outputs bound once (io_binding), each
                run_with_iobinding timed with time.perf_counter. That includes
                the Python call (the "ORT floor" line of the results measures it
                on a one-node model).

Run with .venv/bin/python from the repository root (`make bench` does all):
  .venv/bin/python bench/infer_vs_ort.py [--models a,b] [--rounds 7] [--threads 2]
      [--cflags '-O3 -march=native'] [--out bench/results/infer_cpu.md]
"""
import argparse
import datetime
import os
import platform
import re
import shlex
import statistics
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from benchlib import ROOT, ZOO, cpu_model, die, sh
RTOL, ATOL = 1e-3, 1e-5




def model_inputs(name):
    """{input name: array} from models/NAME/*.npy, without the expected_/target_ files."""
    d = os.path.join(ROOT, "models", name)
    feeds = {}
    for f in sorted(os.listdir(d)):
        stem, ext = os.path.splitext(f)
        if ext == ".npy" and not stem.startswith(("expected_", "target_")):
            feeds[stem] = os.path.join(d, f)
    return feeds


def ort_session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


class OrtRunner:
    """A session with its inputs and outputs bound once, so a timed run is one call."""

    def __init__(self, path, feeds, threads):
        self.sess = ort_session(path, threads)
        self.binding = self.sess.io_binding()
        for k, v in feeds.items():
            self.binding.bind_cpu_input(k, v)
        self.names = [o.name for o in self.sess.get_outputs()]
        for n in self.names:
            self.binding.bind_output(n, "cpu")

    def outputs(self):
        self.sess.run_with_iobinding(self.binding)
        return dict(zip(self.names, self.binding.copy_outputs_to_cpu()))

    def time_round(self, n):
        """Median ms of n runs, after one warm-up run."""
        run, b = self.sess.run_with_iobinding, self.binding
        run(b)
        ms = []
        for _ in range(n):
            t0 = time.perf_counter()
            run(b)
            ms.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(ms)


def ort_floor(threads, rounds, n):
    """Median ms of one Identity node on 4 floats: the cost of a call, not of a model."""
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "floor",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    path = os.path.join(ROOT, "build", "bench", "floor.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    r = OrtRunner(path, {"x": np.zeros(4, np.float32)}, threads)
    return statistics.median(r.time_round(n) for _ in range(rounds))


def loom_env(threads):
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] = str(threads)
    return env


def loom_round(infer, args, n, env):
    out = sh([infer, *args, "--repeat", str(n)], env)
    m = re.search(r"loom-bench runs=\d+ min_ms=([\d.]+) median_ms=([\d.]+)", out)
    if not m:
        die(f"no loom-bench line from {infer}: {out!r}")
    return float(m.group(2))


def bench_model(name, a):
    onnx_path = os.path.join(ROOT, "models", name, "model.onnx")
    d = os.path.join(ROOT, "build", "bench", name)
    sh([a.loom, "compile", onnx_path, "--mode", "infer", "--target", "cpu", "-o", d])
    make = ["make", "-s", "-C", d, f"-j{os.cpu_count() or 1}", "infer"]
    if a.cflags is not None:
        sh(["make", "-s", "-C", d, "clean"])
        make.append(f"CFLAGS={a.cflags}")
    sh(make)
    infer = os.path.join(d, "infer")
    env = loom_env(a.threads)

    files = model_inputs(name)
    feeds = {k: np.load(v) for k, v in files.items()}
    ort_run = OrtRunner(onnx_path, feeds, a.threads)
    args = [x for k, v in files.items() for x in ("--input", f"{k}={v}")]
    expect = ort_run.outputs()
    out_args = [x for k in expect for x in ("--output", f"{k}={d}/out_{k}.npy")]
    sh([infer, *args, *out_args], env)
    max_abs = max_rel = 0.0
    for k, want in expect.items():
        got = np.load(f"{d}/out_{k}.npy")
        if got.shape != want.shape or got.dtype != want.dtype:
            die(f"{name}: output {k} is {got.dtype}{got.shape}, onnxruntime's {want.dtype}{want.shape}")
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        max_abs = max(max_abs, float(diff.max(initial=0)))
        max_rel = max(max_rel, float((diff / np.maximum(np.abs(want), 1e-30)).max(initial=0)))
        if not np.allclose(got, want, rtol=RTOL, atol=ATOL):
            die(f"{name}: output {k} differs from onnxruntime's beyond rtol {RTOL} atol {ATOL}: "
                f"max abs diff {diff.max():.3g}")

    # runs per round: about a.seconds of onnxruntime's time, within [20, 5000]
    t = ort_run.time_round(5)
    n = a.repeat or int(min(5000, max(20, a.seconds * 1e3 / max(t, 1e-3))))
    ort_ms, loom_ms = [], []
    for _ in range(a.rounds):
        ort_ms.append(ort_run.time_round(n))
        loom_ms.append(loom_round(infer, args, n, env))
    lm, om = statistics.median(loom_ms), statistics.median(ort_ms)
    # the ratio of each round to the onnxruntime round just before it: the machine's speed
    # drifts (the same program reads 0.73 or 1.0 ms minutes apart), a pair of rounds shares it
    pairs = [l / o for l, o in zip(loom_ms, ort_ms)]
    ratio = statistics.median(pairs)
    row = dict(model=name, loom=lm, ort=om, ratio=ratio, ratio_spread=(min(pairs), max(pairs)), abs=max_abs,
               rel=max_rel, runs=n, loom_spread=(min(loom_ms), max(loom_ms)), ort_spread=(min(ort_ms), max(ort_ms)))
    print(f"{name:14s} loom {lm:9.4f} ms  ort {om:9.4f} ms  ratio {ratio:6.2f}  "
          f"max abs diff {max_abs:.2g}  ({a.rounds} rounds x {n} runs)", flush=True)
    return row



def write_results(rows, floor, a, cmdline):
    env_notes = ", ".join(f"{k}={os.environ[k]}" for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                                           "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
                          if k in os.environ) or "none of OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE, " \
                                                 "OMP_WAIT_POLICY, GOMP_SPINCOUNT set"
    cflags = a.cflags if a.cflags is not None else \
        "the generated Makefile's default (-O3 -march=native -fno-trapping-math -fno-math-errno)"
    lines = [
        "# Inference latency on the cpu: loom against onnxruntime",
        "",
        f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}",
        f"- machine: {cpu_model()}, `nproc` = {os.cpu_count()}",
        f"- threads: {a.threads} (onnxruntime intra_op {a.threads}, inter_op 1; "
        f"loom OMP_NUM_THREADS=OPENBLAS_NUM_THREADS={a.threads})",
        f"- onnxruntime {ort.__version__}, numpy {np.__version__}, Python {platform.python_version()}",
        f"- loom's CFLAGS: {cflags}",
        f"- environment: {env_notes}",
        f"- {a.rounds} alternating rounds per model; a time is the median over rounds of a "
        "round's median per-run latency; loom/ORT is the median over rounds of a loom round's time "
        "over the onnxruntime round just before it (range: the lowest and highest of those)",
        f"- ORT floor (one Identity node through run_with_iobinding): {floor:.4f} ms",
        f"- command: `{cmdline}`",
        "",
        "| model | loom ms | ORT ms | loom/ORT | (range) | max abs diff | max rel diff | runs/round |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lo, hi = r["ratio_spread"]
        lines.append(f"| {r['model']} | {r['loom']:.4f} | {r['ort']:.4f} | {r['ratio']:.2f} | {lo:.2f}-{hi:.2f} | "
                     f"{r['abs']:.2g} | {r['rel']:.2g} | {r['runs']} |")
    text = "\n".join(lines) + "\n"
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w") as f:
            f.write(text)
    print(text)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(ZOO), help="comma-separated zoo models")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--repeat", type=int, default=0, help="runs per round (default: ~--seconds)")
    p.add_argument("--seconds", type=float, default=0.3, help="target time of one round")
    p.add_argument("--cflags", default=None, help="CFLAGS for the generated Makefile")
    p.add_argument("--loom", default=os.path.join(ROOT, "bin", "loom"))
    p.add_argument("--out", default=None, help="write the results table here (markdown)")
    a = p.parse_args()
    os.makedirs(os.path.join(ROOT, "build", "bench"), exist_ok=True)
    cmdline = shlex.join([".venv/bin/python", "bench/infer_vs_ort.py", *sys.argv[1:]])
    floor = ort_floor(a.threads, 3, 2000)
    rows = [bench_model(m, a) for m in a.models.split(",")]
    write_results(rows, floor, a, cmdline)


if __name__ == "__main__":
    main()

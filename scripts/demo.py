"""The data and the sampler of `make demo` (scripts/demo.sh), with numpy only.

  demo.py data OUT_DIR [--seq 32] [--stride 8] [--licences GPL-3,...]
      Character-level training data from the licence texts every Debian machine
      has under /usr/share/common-licenses: OUT_DIR/input_ids.npy and
      OUT_DIR/target_y.npy, int64 [N,seq], windows every `stride` characters,
      the target the next character of each position. Tokens are those of
      models/chars.py (96: printable ASCII and newline); a tab becomes four
      spaces and any other character outside the vocabulary (the form feeds
      of GPL-2, say) is dropped.

  demo.py sample INFER --weights CKPT [--chars N] [--temperature T] [--seed S]
                 [--prompt TEXT]... [--out FILE.npy]
      Autoregressive sampling with a compiled inference program INFER of a
      character model (input int64 [B,T], output logits float32 [B,T,96]):
      B samples at once, one per batch row, each from its prompt (left-padded
      with spaces to T characters). Each step runs INFER on the last T
      characters of every row, takes the logits at the last position, divides
      them by the temperature and draws the next character. Prints each
      sample (prompt, then the N characters drawn); --out keeps the drawn
      tokens as int64 [B,N].
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models"))
from chars import VOCAB, decode, encode  # noqa: E402

LICENCES = "/usr/share/common-licenses"
DEFAULT_LICENCES = "GPL-3,Apache-2.0,MPL-2.0,LGPL-2.1,GPL-2"
DEFAULT_PROMPTS = ["This License", "You may", "the Program", "Licensor"]


def in_vocab(text):
    """text with tabs as four spaces, without what models/chars.py cannot encode"""
    text = text.replace("\t", "    ")
    return "".join(c for c in text if c == "\n" or 32 <= ord(c) < 127)


def cmd_data(a):
    names = a.licences.split(",")
    text = ""
    for n in names:
        with open(os.path.join(LICENCES, n), encoding="utf-8", errors="replace") as f:
            text += in_vocab(f.read())
    ids = encode(text)
    starts = np.arange(0, len(ids) - a.seq, a.stride)
    window = starts[:, None] + np.arange(a.seq)[None, :]
    os.makedirs(a.out_dir, exist_ok=True)
    np.save(os.path.join(a.out_dir, "input_ids.npy"), ids[window])
    np.save(os.path.join(a.out_dir, "target_y.npy"), ids[window + 1])
    print(f"{len(ids)} characters of {', '.join(names)} ({LICENCES}): "
          f"{len(starts)} windows of {a.seq}, every {a.stride}")


def program_shape(infer):
    """(B, T) of the program's one int64 input, from its --help"""
    out = subprocess.run([infer, "--help"], capture_output=True, text=True, check=True).stdout
    m = re.search(r"^inputs:\n\s+(\S+)\s+int64\[(\d+),(\d+)\]\n", out, re.M)
    if not m:
        sys.exit(f"demo.py: {infer} does not take one int64 [B,T] input:\n{out}")
    return m.group(1), int(m.group(2)), int(m.group(3))


def cmd_sample(a):
    name, batch, seq = program_shape(a.infer)
    prompts = (a.prompt or DEFAULT_PROMPTS)[:batch]
    prompts += [prompts[-1]] * (batch - len(prompts))
    rows = [list(encode(in_vocab(p).rjust(seq))) for p in prompts]
    rng = np.random.default_rng(a.seed)
    drawn = np.zeros((batch, a.chars), np.int64)
    # One run is a fraction of a millisecond of work: one thread, and a spin
    # count already set so that the program does not start itself again
    # (docs/cli.md, Threads); the process start then dominates a step.
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("GOMP_SPINCOUNT", "1000")
    with tempfile.TemporaryDirectory() as tmp:
        x_path, y_path = os.path.join(tmp, "x.npy"), os.path.join(tmp, "logits.npy")
        for i in range(a.chars):
            np.save(x_path, np.array([r[-seq:] for r in rows], np.int64))
            cmd = [a.infer, "--input", f"{name}={x_path}", "--output", f"logits={y_path}", "--weights", a.weights]
            run = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if run.returncode != 0:
                sys.exit(f"demo.py: {' '.join(cmd)} exited with {run.returncode}:\n{run.stderr.strip()}")
            logits = np.load(y_path)[:, -1, :].astype(np.float64)
            if logits.shape != (batch, VOCAB) or not np.isfinite(logits).all():
                sys.exit(f"demo.py: logits at the last position are {logits.shape}, finite: {np.isfinite(logits).all()}")
            p = np.exp((logits - logits.max(axis=1, keepdims=True)) / a.temperature)
            p /= p.sum(axis=1, keepdims=True)
            for b in range(batch):
                drawn[b, i] = rng.choice(VOCAB, p=p[b])
                rows[b].append(drawn[b, i])
    if a.out:
        np.save(a.out, drawn)
    for p, d in zip(prompts, drawn):
        print("  " + f"[{p}]{decode(d)}".replace("\n", "\n  "))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("data")
    d.add_argument("out_dir")
    d.add_argument("--seq", type=int, default=32)
    d.add_argument("--stride", type=int, default=8)
    d.add_argument("--licences", default=DEFAULT_LICENCES)
    s = sub.add_parser("sample")
    s.add_argument("infer")
    s.add_argument("--weights", required=True)
    s.add_argument("--chars", type=int, default=200)
    s.add_argument("--temperature", type=float, default=0.8)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--prompt", action="append")
    s.add_argument("--out")
    a = ap.parse_args()
    if a.cmd == "data":
        cmd_data(a)
    else:
        if a.chars < 1 or a.temperature <= 0:
            ap.error("--chars needs N >= 1 and --temperature T > 0")
        cmd_sample(a)


if __name__ == "__main__":
    main()

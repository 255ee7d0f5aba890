"""The parity tier's comparisons (numpy only). Relative error of a tensor:
||a - b||_2 / ||b||_2 in float64 (||a||_2 when b is all zeros).

  compare.py grads GOT.safetensors REF.safetensors [TOL]
      same tensor names and shapes; `loss` and every gradient within TOL
      (default 1e-4); prints the worst gradient and the loss error
  compare.py losses GOT.jsonl REF_LOSSES.json [TOL]
      the log's objects with "step" and "loss", in order, one per reference
      loss, steps increasing; |a - b| / |b| < TOL per step; prints the worst
  compare.py refs NEW_DIR MODELS_DIR MODEL... [TOL]
      re-derived references (NEW_DIR/MODEL/ref_*) equal the committed ones
      (MODELS_DIR/MODEL/ref_*) within TOL (default 1e-6), settings identical
Exit 0 when within tolerance, 1 otherwise, with what differs on stderr.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models"))
import safetensors_np  # noqa: E402


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    nb = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / nb) if nb > 0 else float(np.linalg.norm(a))


def grad_errors(got_path, ref_path):
    """{name: error} over the reference tensors; SystemExit on a name, shape
    or dtype mismatch (that is a failure, not a large error)."""
    got, _ = safetensors_np.read(got_path)
    ref, _ = safetensors_np.read(ref_path)
    missing, extra = sorted(set(ref) - set(got)), sorted(set(got) - set(ref))
    if missing or extra:
        sys.exit(f"tensor names differ: missing {missing[:8]}{'...' if len(missing) > 8 else ''}"
                 f" ({len(missing)}), unexpected {extra[:8]}{'...' if len(extra) > 8 else ''}"
                 f" ({len(extra)})")
    bad = [f"{k} {got[k].dtype}{list(got[k].shape)} != {ref[k].dtype}{list(ref[k].shape)}"
           for k in ref if got[k].shape != ref[k].shape or got[k].dtype != ref[k].dtype]
    if bad:
        sys.exit("shapes/dtypes differ: " + "; ".join(bad[:8]))
    return {k: rel(got[k], ref[k]) for k in ref}


def cmd_grads(got_path, ref_path, tol=1e-4):
    errs = grad_errors(got_path, ref_path)
    names = [k for k in errs if k != "loss"]
    worst = max(names, key=errs.get)
    print(f"worst {worst} {errs[worst]:.2e}, loss {errs['loss']:.2e}, {len(names)} gradients")
    over = sorted((k for k in errs if not errs[k] < tol), key=errs.get, reverse=True)
    if over:
        sys.exit(f"{len(over)} of {len(errs)} tensors at or over {tol:g}: " +
                 ", ".join(f"{k} {errs[k]:.3g}" for k in over))


def read_log(path):
    """The (step, loss) objects of a --log file, in order."""
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{n}: not JSON ({e})")
            if isinstance(obj, dict) and "step" in obj and "loss" in obj:
                rows.append((obj["step"], float(obj["loss"])))
    return rows


def cmd_losses(got_path, ref_path, tol=1e-4):
    want = json.load(open(ref_path))["losses"]
    rows = read_log(got_path)
    if len(rows) != len(want):
        sys.exit(f"{len(rows)} step/loss lines in {got_path}, want {len(want)}")
    steps = [s for s, _ in rows]
    if any(b <= a for a, b in zip(steps, steps[1:])):
        sys.exit(f"steps not increasing: {steps}")
    errs = [abs(a - b) / abs(b) for (_, a), b in zip(rows, want)]
    i = int(np.argmax(errs))
    print(f"worst step {steps[i]} {errs[i]:.2e}, loss {rows[0][1]:.6g} -> {rows[-1][1]:.6g}")
    if not max(errs) < tol:
        sys.exit("per step (got, PyTorch, error): " + ", ".join(
            f"{s}: {a:.7g} {b:.7g} {e:.2e}" for (s, a), b, e in zip(rows, want, errs)))


def cmd_refs(new_dir, models_dir, *names_tol):
    names, tol = list(names_tol), 1e-6
    try:
        tol = float(names[-1])
        names.pop()
    except (ValueError, IndexError):
        pass
    worst, problems = (None, 0.0), []
    for m in names:
        new, old = os.path.join(new_dir, m), os.path.join(models_dir, m)
        errs = grad_errors(os.path.join(new, "ref_grads.safetensors"),
                           os.path.join(old, "ref_grads.safetensors"))
        a, b = json.load(open(os.path.join(new, "ref_losses.json"))), \
            json.load(open(os.path.join(old, "ref_losses.json")))
        la, lb = a.pop("losses"), b.pop("losses")
        if a != b or len(la) != len(lb):
            problems.append(f"{m}: settings differ: {a} vs {b}")
            continue
        for i, (x, y) in enumerate(zip(la, lb)):
            errs[f"losses[{i}]"] = abs(x - y) / abs(y)
        k = max(errs, key=errs.get)
        if errs[k] >= worst[1]:
            worst = (f"{m} {k}", errs[k])
        problems += [f"{m} {k} {e:.3g}" for k, e in errs.items() if not e < tol]
    print(f"worst {worst[0]} {worst[1]:.2e} over {len(names)} models")
    if problems:
        sys.exit(f"differ from the committed references by {tol:g} or more: " + "; ".join(problems))


def main():
    cmds = {"grads": cmd_grads, "losses": cmd_losses, "refs": cmd_refs}
    if len(sys.argv) < 4 or sys.argv[1] not in cmds:
        sys.exit(__doc__)
    args = sys.argv[2:]
    if sys.argv[1] != "refs" and len(args) == 3:
        args[2] = float(args[2])
    cmds[sys.argv[1]](*args)


if __name__ == "__main__":
    main()

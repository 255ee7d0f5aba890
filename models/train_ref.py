"""PyTorch's training reference values for every zoo model, against which the
parity tier (tests/parity/run.sh) checks loom's generated training programs.

For each model it rebuilds the PyTorch module with its export script's build()
(seed 0, the committed weights), checks that every initializer of the committed
model.onnx equals the PyTorch tensor params.json maps it to (after the
transform), and on the committed batch (<input>.npy, target_y.npy) writes
  ref_grads.safetensors  float32: `loss` (scalar, the first step's loss) and,
                         for every trainable initializer (kind parameter), the
                         gradient of that loss, under the initializer's name
                         and in its layout (params.json's transpose/reshape
                         applied); buffers (BatchNorm running statistics) get none
  ref_losses.json        the losses of STEPS AdamW steps on that same batch:
                         losses[i] is the loss before the i-th update, so
                         losses[0] is the loss above; with the settings used
Loss: cross-entropy (mean) of the logits against the class labels, over B*T
tokens for the language models; mean squared error for the regression models.
The model is in eval mode: no dropout, and BatchNorm uses its running
statistics (frozen), as the ONNX graph's inference-form BatchNormalization does.
Computed in float32 on the CPU with one thread and deterministic algorithms.

  python models/train_ref.py [NAME ...]          write next to each model
  python models/train_ref.py --out DIR [NAME ...]  write DIR/NAME/ instead
  python models/train_ref.py --float64 [NAME ...]  also run in float64 and print
      how far the float32 values are from the float64 ones (nothing more written)
Needs torch, transformers, onnx and numpy (the pinned .venv of
`scripts/setup.sh models`).
"""
import argparse
import importlib.util
import json
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_np  # noqa: E402

MODELS = ["mlp", "gpt2_tiny", "llama_tiny", "resnet_small", "unet_small", "vit_tiny", "fno_small"]
# The loss loom appends (`loom compile --loss`): ce for classifiers and language models.
LOSS = {"mlp": "ce", "gpt2_tiny": "ce", "llama_tiny": "ce", "resnet_small": "ce",
        "unet_small": "mse", "vit_tiny": "ce", "fno_small": "mse"}
STEPS = 10
# torch.optim.AdamW's defaults, spelled out.
ADAMW = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}


def fail(msg):
    print(f"train_ref FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def load_builder(name):
    """The build() of models/NAME/export.py, imported without exporting."""
    path = os.path.join(HERE, name, "export.py")
    spec = importlib.util.spec_from_file_location(f"zoo_export_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.build


def to_onnx_layout(a, transform, shape):
    """A PyTorch-layout array in the layout of its ONNX initializer."""
    if transform == "transpose":
        a = a.T
    elif transform == "reshape":
        a = a.reshape(shape)
    elif transform != "none":
        fail(f"unknown transform {transform!r}")
    if tuple(a.shape) != tuple(shape):
        fail(f"shape {list(a.shape)} after transform {transform} != initializer {list(shape)}")
    return a


def check_weights(name, model, inits, mapping):
    """Every initializer equals its PyTorch tensor bit for bit; every PyTorch
    parameter is exactly one initializer (else the references would be for
    other weights than those committed)."""
    state = dict(model.named_parameters())
    state.update(dict(model.named_buffers()))
    if set(mapping) != set(inits):
        fail(f"{name}: params.json names {sorted(set(mapping) ^ set(inits))} "
             "that model.onnx does not (or the reverse)")
    for iname, a in inits.items():
        m = mapping[iname]
        if m["torch"] not in state:
            fail(f"{name}: initializer {iname} maps to {m['torch']}, not in the rebuilt model")
        t = state[m["torch"]].detach().numpy()
        if not np.array_equal(to_onnx_layout(t, m["transform"], a.shape), a):
            fail(f"{name}: initializer {iname} differs from the rebuilt {m['torch']}")
    trained = sorted(m["torch"] for m in mapping.values() if m["kind"] == "parameter")
    if trained != sorted(k for k, _ in model.named_parameters()):
        fail(f"{name}: the parameters of params.json are not those of the rebuilt model")


def loss_fn(kind, out, target):
    if kind == "ce":
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), target.reshape(-1))
    return F.mse_loss(out, target)


def train(name, dtype):
    """Rebuilds the model in `dtype`, runs STEPS AdamW steps on the committed
    batch. Returns (first-step gradients {initializer: array in ONNX layout},
    losses, initializer mapping)."""
    d = os.path.join(HERE, name)
    m = onnx.load(os.path.join(d, "model.onnx"))
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    with open(os.path.join(d, "params.json")) as f:
        mapping = json.load(f)
    torch.manual_seed(0)
    model = load_builder(name)()
    check_weights(name, model, inits, mapping)
    model = model.to(dtype)
    model.eval()

    def batch(file):
        a = torch.from_numpy(np.load(os.path.join(d, file)))
        return a.to(dtype) if a.is_floating_point() else a

    inputs = [batch(f"{i.name}.npy") for i in m.graph.input]
    target = batch("target_y.npy")
    params = dict(model.named_parameters())
    opt = torch.optim.AdamW(params.values(), lr=ADAMW["lr"], betas=ADAMW["betas"],
                            eps=ADAMW["eps"], weight_decay=ADAMW["weight_decay"], foreach=False)
    losses, grads = [], None
    for step in range(STEPS):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(LOSS[name], model(*inputs), target)
        loss.backward()
        losses.append(loss.item())
        if step == 0:
            grads = {"loss": loss.detach().numpy().copy()}
            for iname, mp in mapping.items():
                if mp["kind"] != "parameter":
                    continue
                g = params[mp["torch"]].grad
                if g is None:
                    fail(f"{name}: parameter {mp['torch']} got no gradient")
                grads[iname] = to_onnx_layout(g.numpy().copy(), mp["transform"],
                                              inits[iname].shape)
        opt.step()
    return grads, losses, mapping


def rel(a, b):
    """||a - b|| / ||b|| in float64 (the parity tier's measure)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    nb = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / nb) if nb > 0 else float(np.linalg.norm(a))


def write_refs(name, out_dir):
    grads, losses, _ = train(name, torch.float32)
    os.makedirs(out_dir, exist_ok=True)
    gpath = os.path.join(out_dir, "ref_grads.safetensors")
    safetensors_np.write(gpath, {k: np.asarray(v, np.float32) for k, v in grads.items()},
                         {"model": name, "source": "models/train_ref.py",
                          "torch": torch.__version__.split("+")[0]})
    lpath = os.path.join(out_dir, "ref_losses.json")
    ref = {
        "model": name,
        "loss": {"ce": "cross_entropy", "mse": "mse"}[LOSS[name]],
        "dtype": "float32",
        "optimizer": {"name": "adamw", "lr": ADAMW["lr"], "beta1": ADAMW["betas"][0],
                      "beta2": ADAMW["betas"][1], "eps": ADAMW["eps"],
                      "weight_decay": ADAMW["weight_decay"]},
        "steps": STEPS,
        "losses": losses,
    }
    with open(lpath, "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    n = sum(v.size for k, v in grads.items() if k != "loss")
    print(f"{name}: loss {losses[0]:.6g} -> {losses[-1]:.6g} after {STEPS - 1} updates; "
          f"{len(grads) - 1} gradients ({n} values); wrote "
          f"{os.path.relpath(gpath)}, {os.path.relpath(lpath)}")


def noise(name):
    """How far float32 is from float64: per tensor ||g32 - g64|| / ||g64||."""
    g32, l32, _ = train(name, torch.float32)
    g64, l64, _ = train(name, torch.float64)
    errs = {k: rel(g32[k], g64[k]) for k in g32}
    names = [k for k in errs if k != "loss"]
    worst = max(names, key=errs.get)
    # elementwise, scaled by the tensor's largest magnitude
    elem = max(float(np.max(np.abs(g32[k] - g64[k])) / np.max(np.abs(g64[k]))) for k in names)
    lerr = max(abs(a - b) / abs(b) for a, b in zip(l32, l64))
    print(f"{name}: float32 vs float64: loss {errs['loss']:.2e}; gradients ||a-b||/||b|| worst "
          f"{worst} {errs[worst]:.2e}, median {np.median([errs[k] for k in names]):.2e}; "
          f"max |a-b|/max|b| {elem:.2e}; worst of {STEPS} losses {lerr:.2e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="*", default=MODELS, metavar="NAME")
    ap.add_argument("--out", help="write DIR/NAME/ref_* instead of models/NAME/ref_*")
    ap.add_argument("--float64", action="store_true",
                    help="print the float32 references' distance from float64 ones; write nothing")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    for name in args.names:
        if name not in MODELS:
            fail(f"no model {name!r} (one of {' '.join(MODELS)})")
        if args.float64:
            noise(name)
        else:
            write_refs(name, os.path.join(args.out, name) if args.out else os.path.join(HERE, name))


if __name__ == "__main__":
    main()

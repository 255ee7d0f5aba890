"""PyTorch's training step on the GPU, the baseline of tests/gpu/run.sh.

  python bench/gpu_torch.py [--steps 20] [--warmup 3] [--compile all|none|M,M...]
                            [--gpt2-124m] [--out FILE] [MODEL ...]

For each zoo model named (models/NAME/export.py's build(), seed 0, the
committed batch, eval mode as loom's programs: no dropout, frozen BatchNorm
statistics) and, with --gpt2-124m, GPT-2 124M (GPT2Config() defaults,
batch 8 x 1024, random tokens): one training step is forward, the loss
loom appends (cross-entropy for classifiers and language models, mean
squared error for unet_small and fno_small), backward and an AdamW update
(torch.optim.AdamW with loom's defaults: lr 1e-3, betas (0.9, 0.999), eps
1e-8, weight decay 0.01), all in float32 with TF32 off (what loom's cuda
target computes: CUBLAS_COMPUTE_32F). Times --steps steps after --warmup
with CUDA events and prints the median, for PyTorch eager and for
torch.compile (the model's forward and loss compiled; the first compiled
steps, which compile, are warm-up; --compile names the models it runs for,
default all). GPT-2 124M also in bf16 autocast (eager, and compiled when
compiled), against loom's --precision bf16. --out writes lines "MODEL
VARIANT MS".
"""
import argparse
import importlib.util
import os
import statistics
import sys

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOSS = {"unet_small": "mse", "fno_small": "mse"}


def load_zoo(name):
    path = os.path.join(ROOT, "models", name, "export.py")
    sys.path.insert(0, os.path.join(ROOT, "models"))
    spec = importlib.util.spec_from_file_location(f"zoo_export_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # torch.compile's guards import the model's module by name
    spec.loader.exec_module(mod)
    torch.manual_seed(0)
    model = mod.build()
    import onnx
    graph = onnx.load(os.path.join(ROOT, "models", name, "model.onnx"), load_external_data=False).graph
    inits = {t.name for t in graph.initializer}
    inputs = [torch.from_numpy(np.load(os.path.join(ROOT, "models", name, f"{i.name}.npy")))
              for i in graph.input if i.name not in inits]
    target = torch.from_numpy(np.load(os.path.join(ROOT, "models", name, "target_y.npy")))
    return model, inputs, target, LOSS.get(name, "ce")


def load_gpt2_124m():
    from transformers import GPT2Config, GPT2LMHeadModel

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.lm = GPT2LMHeadModel(GPT2Config())

        def forward(self, ids):
            return self.lm(input_ids=ids, use_cache=False, return_dict=False)[0]

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 50257, (8, 1024), generator=g)
    target = torch.randint(0, 50257, (8, 1024), generator=g)
    return Logits(), [ids], target, "ce"


def loss_of(kind, out, target):
    if kind == "ce":
        return F.cross_entropy(out.reshape(-1, out.shape[-1]).float(), target.reshape(-1))
    return F.mse_loss(out.float(), target)


def time_steps(model, inputs, target, kind, steps, warmup, compiled=False, bf16=False):
    model = model.cuda().eval()
    inputs = [x.cuda() for x in inputs]
    target = target.cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)

    def fwd_loss(*xs):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            return loss_of(kind, model(*xs), target)

    f = torch.compile(fwd_loss) if compiled else fwd_loss
    times = []
    for i in range(warmup + steps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        opt.zero_grad(set_to_none=True)
        loss = f(*inputs)
        loss.backward()
        opt.step()
        end.record()
        torch.cuda.synchronize()
        if i >= warmup:
            times.append(start.elapsed_time(end))
    if not np.isfinite(loss.item()):
        raise SystemExit(f"the loss is {loss.item()}")
    return statistics.median(times), loss.item()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--compile", default="all", help="all, none, or the models to time compiled (comma-separated)")
    ap.add_argument("--gpt2-124m", action="store_true")
    ap.add_argument("--out")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_torch.py: PyTorch sees no GPU")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}")
    names = list(a.models) + (["gpt2_124m"] if a.gpt2_124m else [])
    rows = []
    for name in names:
        compiled = a.compile == "all" or name in a.compile.split(",")
        variants = [("eager", False, False)] + ([("compile", True, False)] if compiled else [])
        if name == "gpt2_124m":
            variants.append(("eager_bf16", False, True))
            if compiled:
                variants.append(("compile_bf16", True, True))
        for variant, compiled, bf16 in variants:
            try:
                model, inputs, target, kind = load_gpt2_124m() if name == "gpt2_124m" else load_zoo(name)
                ms, loss = time_steps(model, inputs, target, kind, a.steps,
                                      a.warmup + (2 if compiled else 0), compiled, bf16)
            except Exception as e:  # one failing variant must not hide the others
                print(f"{name} {variant}: failed: {type(e).__name__}: {str(e)[:300]}")
                continue
            print(f"{name:12s} {variant:10s} {ms:9.3f} ms/step (last loss {loss:.4f})")
            rows.append(f"{name} {variant} {ms:.3f}")
            del model
            torch.cuda.empty_cache()
    if a.out:
        with open(a.out, "w") as f:
            f.write("".join(r + "\n" for r in rows))


if __name__ == "__main__":
    main()

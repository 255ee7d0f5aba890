"""Writes a full-size GPT-2 124M graph with random weights, for planning benchmarks.

usage: python models/gpt2_124m.py [OUT.onnx] [--batch 8] [--seq 1024] [--check]

GPT2Config() defaults (12 layers, width 768, 12 heads, vocabulary 50257,
1024 positions, tied input/output embeddings), torch.manual_seed(0), exported
like the zoo (TorchScript exporter, opset 17, constant folding, static shapes,
input input_ids int64 [batch,seq], output logits float32 [batch,seq,50257]).
Default output build/models/gpt2_124m/model.onnx (about 650 MB: the exporter
writes the tied output embedding as a second, transposed initializer; the
file is not committed). Tensors move to ONNX external data only if the model
would pass protobuf's 2 GB limit, which it does not at 124M.
--check also runs onnxruntime on one random batch and compares with PyTorch
(slow at the default size; try --batch 1 --seq 128).
"""
import argparse
import os
import sys
import time

import numpy as np
import onnx
import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zoo_common import TOLERANCE, export_graph, fail, run_ort, run_torch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Logits(nn.Module):
    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids):
        return self.lm(input_ids=input_ids, use_cache=False, return_dict=False)[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?",
                    default=os.path.join(ROOT, "build", "models", "gpt2_124m", "model.onnx"))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--check", action="store_true", help="compare onnxruntime with PyTorch")
    a = ap.parse_args()
    config = GPT2Config(use_cache=False, attn_implementation="eager")
    if not 1 <= a.seq <= config.n_positions or a.batch < 1:
        ap.error(f"need batch >= 1 and 1 <= seq <= {config.n_positions}")

    t0 = time.time()
    torch.set_num_threads(os.cpu_count() or 1)  # zoo_common picks 1 for bit-stable references
    torch.manual_seed(0)
    model = Logits(GPT2LMHeadModel(config)).eval()
    n = sum(p.numel() for p in model.parameters())
    rng = np.random.default_rng(0)
    ids = rng.integers(0, config.vocab_size, size=(a.batch, a.seq)).astype(np.int64)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tmp = a.out + ".tmp"
    try:
        m, mapping, ops = export_graph(model, {"input_ids": ids}, ["logits"], tmp, tied_ok=True)
        if m.ByteSize() >= 2**31 - 2**20:
            onnx.save(m, tmp, save_as_external_data=True, all_tensors_to_one_file=True,
                      location=os.path.basename(a.out) + ".data")
        if a.check:
            want = run_torch(model, {"input_ids": ids})[0]
            got = run_ort(tmp, {"input_ids": ids})[0]
            d = float(np.max(np.abs(want.astype(np.float64) - got)))
            print(f"onnxruntime vs PyTorch: max abs diff {d:.3g}")
            if not d < TOLERANCE * 10:
                fail(f"onnxruntime differs from PyTorch by {d}")
        os.replace(tmp, a.out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    size = os.path.getsize(a.out)
    print(f"wrote {a.out}: {size / 1e6:.1f} MB, {n:,} parameters "
          f"({sum(int(np.prod(t.dims)) for t in m.graph.initializer):,} in initializers), "
          f"{len(m.graph.node)} nodes, input input_ids int64 [{a.batch},{a.seq}], "
          f"output logits float32 [{a.batch},{a.seq},{config.vocab_size}], "
          f"{time.time() - t0:.0f} s")
    print(f"ops: {' '.join(ops)}")


if __name__ == "__main__":
    main()

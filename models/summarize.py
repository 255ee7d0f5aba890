"""Prints the zoo's table (for models/README.md) from the committed files.

usage: python models/summarize.py [NAME ...]
Only needs numpy and onnx (not torch).
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
ALL = ["mlp", "gpt2_tiny", "llama_tiny", "resnet_small", "unet_small", "vit_tiny", "fno_small"]
DTYPES = {onnx.TensorProto.FLOAT: "f32", onnx.TensorProto.INT64: "i64"}


def io(values):
    out = []
    for v in values:
        t = v.type.tensor_type
        dims = "x".join(str(d.dim_value) for d in t.shape.dim)
        out.append(f"`{v.name}` {DTYPES.get(t.elem_type, t.elem_type)}[{dims}]")
    return ", ".join(out)


def main(names):
    print("| model | inputs | outputs | targets | params | model.onnx | nodes | ops |")
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        d = os.path.join(HERE, name)
        path = os.path.join(d, "model.onnx")
        m = onnx.load(path)
        onnx.checker.check_model(m)
        with open(os.path.join(d, "params.json")) as f:
            mapping = json.load(f)
        params = sum(int(np.prod(t.dims)) for t in m.graph.initializer
                     if mapping[t.name]["kind"] == "parameter")
        targets = []
        for fn in sorted(os.listdir(d)):
            if fn.startswith("target_") and fn.endswith(".npy"):
                a = np.load(os.path.join(d, fn))
                dims = "x".join(map(str, a.shape))
                targets.append(f"`{fn[:-4]}` {'f32' if a.dtype == np.float32 else 'i64'}[{dims}]")
        ops = sorted({n.op_type for n in m.graph.node})
        size = os.path.getsize(path)
        print(f"| {name} | {io(m.graph.input)} | {io(m.graph.output)} | {', '.join(targets)} "
              f"| {params:,} | {size / 1e6:.2f} MB | {len(m.graph.node)} | {' '.join(ops)} |")


if __name__ == "__main__":
    main(sys.argv[1:] or ALL)

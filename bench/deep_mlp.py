"""Writes a deep residual MLP as ONNX, for timing the remat solver on large graphs.

usage: python bench/deep_mlp.py OUT.onnx [--blocks 1000] [--width 64] [--batch 32]

Each block is x + W2 relu(W1 LayerNorm(x) + b1) + b2 (6 forward nodes, plus
its backward and update nodes once loom builds the training graph), ending in
a linear classifier over 10 classes (train with --loss ce --loss-target y).
Weights are random (seed 0); only the graph's size matters here.
"""
import argparse

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--blocks", type=int, default=1000)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    w = a.width
    nodes, inits = [], []

    def init(name, shape, scale):
        inits.append(numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name))
        return name

    x = "x"
    for i in range(a.blocks):
        p = f"b{i}"
        g, b = init(p + ".ln.w", [w], 0.1), init(p + ".ln.b", [w], 0.1)
        w1, b1 = init(p + ".w1", [w, 2 * w], w ** -0.5), init(p + ".b1", [2 * w], 0.01)
        w2, b2 = init(p + ".w2", [2 * w, w], (2 * w) ** -0.5), init(p + ".b2", [w], 0.01)
        nodes += [
            helper.make_node("LayerNormalization", [x, g, b], [p + ".n"], axis=-1, name=p + "/ln"),
            helper.make_node("Gemm", [p + ".n", w1, b1], [p + ".h"], name=p + "/fc1"),
            helper.make_node("Relu", [p + ".h"], [p + ".r"], name=p + "/relu"),
            helper.make_node("Gemm", [p + ".r", w2, b2], [p + ".o"], name=p + "/fc2"),
            helper.make_node("Add", [x, p + ".o"], [p + ".y"], name=p + "/add"),
        ]
        x = p + ".y"
    wc, bc = init("head.w", [w, 10], w ** -0.5), init("head.b", [10], 0.0)
    nodes.append(helper.make_node("Gemm", [x, wc, bc], ["logits"], name="head"))
    graph = helper.make_graph(
        nodes, "deep_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [a.batch, w])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [a.batch, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, a.out)


if __name__ == "__main__":
    main()

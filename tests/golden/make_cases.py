#!/usr/bin/env python3
"""Writes the small ONNX models the golden tests inspect into tests/golden/cases/.

Run with the project's virtual environment (numpy, onnx 1.17):
    .venv/bin/python tests/golden/make_cases.py
The models are committed; rerun only to change them, then regenerate the
expected outputs with `UPDATE=1 tests/golden/run.sh` and review the diff.
Weights come from a fixed seed, so the files are reproducible byte for byte.

  mlp.onnx       Gemm-Relu-Gemm with a symbolic batch dim ("batch", bound by --dim)
  convnet.onnx   Conv, BatchNormalization, Relu, MaxPool, GlobalAveragePool, and the
                 Shape-Gather-Concat-Reshape plumbing that folding turns into constants
  attn.onnx      one attention block (LayerNormalization, MatMul, Softmax, residual
                 Add) whose value names (inputs and outputs included) hold quotes,
                 backslashes, control characters, UTF-8 and bytes that are not UTF-8
                 (a stray 0xff, a bad continuation, an encoded surrogate), to test
                 escaping in the IR and JSON outputs
  unsupported.onnx  an op loom does not support (LSTM)
  garbage.onnx   bytes that are not a protobuf at all
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases")
rng = np.random.default_rng(0)


def weight(name, *shape):
    return numpy_helper.from_array((rng.standard_normal(shape) * 0.1).astype(np.float32), name)


def save(model, name, patch=None):
    model.producer_name = "loom-golden"
    model.ir_version = 8
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    if patch:
        # same-length byte substitutions: a protobuf string may hold bytes that
        # are not UTF-8, which the onnx Python API cannot express
        for old, new in patch:
            assert len(old) == len(new) and old in data
            data = data.replace(old, new)
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


def mlp():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    nodes = [
        helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["h"], name="fc1", transB=1),
        helper.make_node("Relu", ["h"], ["a"], name="relu"),
        helper.make_node("Gemm", ["a", "fc2.weight", "fc2.bias"], ["y"], name="fc2", transB=1),
    ]
    inits = [weight("fc1.weight", 16, 8), weight("fc1.bias", 16), weight("fc2.weight", 4, 16),
             weight("fc2.bias", 4)]
    g = helper.make_graph(nodes, "mlp", [x], [y], inits)
    save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), "mlp.onnx")


def convnet():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 16, 16])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [2, 10])
    c = 8
    nodes = [
        helper.make_node("Conv", ["x", "conv1.w", "conv1.b"], ["c1"], name="conv1",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "bn.scale", "bn.bias", "bn.mean", "bn.var"],
                         ["b1"], name="bn", epsilon=1e-5),
        helper.make_node("Relu", ["b1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Conv", ["p1", "conv2.w"], ["c2"], name="conv2", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], group=2),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"], name="gap"),
        # flatten the way exporters do: Reshape to [N, -1] with N read from the shape
        helper.make_node("Shape", ["gap"], ["shp"], name="shape"),
        helper.make_node("Gather", ["shp", "zero"], ["n"], name="batch", axis=0),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"], name="unsq"),
        helper.make_node("Concat", ["n1", "minus1"], ["newshape"], name="cat", axis=0),
        helper.make_node("Reshape", ["gap", "newshape"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], name="fc", transB=1),
    ]
    inits = [
        weight("conv1.w", c, 3, 3, 3), weight("conv1.b", c),
        numpy_helper.from_array(np.ones(c, np.float32), "bn.scale"),
        numpy_helper.from_array(np.zeros(c, np.float32), "bn.bias"),
        numpy_helper.from_array(np.zeros(c, np.float32), "bn.mean"),
        numpy_helper.from_array(np.ones(c, np.float32), "bn.var"),
        weight("conv2.w", 16, c // 2, 3, 3),
        weight("fc.w", 10, 16), weight("fc.b", 10),
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(np.array([0], np.int64), "axes0"),
        numpy_helper.from_array(np.array([-1], np.int64), "minus1"),
    ]
    g = helper.make_graph(nodes, "convnet", [x], [y], inits)
    save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), "convnet.onnx")


def attn():
    b, t, d = 2, 4, 8
    q = 'q "quoted"'
    k = "k\\back\\slash"
    v = "v\nnewline"
    s = "scores \u00e9\u4e2d"
    bad = "BADBYTES"  # patched below into bytes that are not UTF-8
    xin = 'in "x" \\ \u00e9'
    yout = "out\tBADBYTEZ\x01"
    x = helper.make_tensor_value_info(xin, TensorProto.FLOAT, [b, t, d])
    y = helper.make_tensor_value_info(yout, TensorProto.FLOAT, [b, t, d])
    nodes = [
        helper.make_node("LayerNormalization", [xin, "ln.w", "ln.b"], ["xn"], name="ln",
                         axis=-1, epsilon=1e-5),
        helper.make_node("MatMul", ["xn", "wq"], [q], name="q_proj"),
        helper.make_node("MatMul", ["xn", "wk"], [k], name="k_proj"),
        helper.make_node("MatMul", ["xn", "wv"], [v], name="v_proj"),
        helper.make_node("Transpose", [k], ["kt"], name="kT", perm=[0, 2, 1]),
        helper.make_node("MatMul", [q, "kt"], ["qk"], name="qk"),
        helper.make_node("Div", ["qk", "scale"], [s], name="scale"),
        helper.make_node("Softmax", [s], ["p"], name="softmax", axis=-1),
        helper.make_node("MatMul", ["p", v], [bad], name="pv"),
        helper.make_node("Add", [xin, bad], [yout], name="residual"),
    ]
    inits = [
        numpy_helper.from_array(np.ones(d, np.float32), "ln.w"),
        numpy_helper.from_array(np.zeros(d, np.float32), "ln.b"),
        weight("wq", d, d), weight("wk", d, d), weight("wv", d, d),
        numpy_helper.from_array(np.array(np.sqrt(d), np.float32), "scale"),
    ]
    g = helper.make_graph(nodes, 'attn "block"', [x], [y], inits)
    save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), "attn.onnx",
         patch=[(b"BADBYTES", b"BAD\xff\xfeTES"), (b"BADBYTEZ", b"\xc3\x28\xed\xa0\x80xyz")])


def unsupported():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 2, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [5, 1, 2, 3])
    nodes = [helper.make_node("LSTM", ["x", "w", "r"], ["y"], name="lstm", hidden_size=3)]
    inits = [weight("w", 1, 12, 4), weight("r", 1, 12, 3)]
    g = helper.make_graph(nodes, "rnn", [x], [y], inits)
    save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), "unsupported.onnx")


def garbage():
    with open(os.path.join(HERE, "garbage.onnx"), "wb") as f:
        f.write(b"this is not an ONNX model\n\xff\xff\xff\xff")


if __name__ == "__main__":
    os.makedirs(HERE, exist_ok=True)
    mlp()
    convnet()
    attn()
    unsupported()
    garbage()

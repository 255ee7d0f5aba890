"""Writes the bad-input cases of tests/badinput/run.sh into a folder: broken,
malformed and unsupported ONNX files, and a table cases.txt of
    name|model path|extra loom arguments|substring the error must contain
Each case must make `loom inspect` exit 1 with a one-line message."""
import os
import random
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rows = []


def case(name, expect, model=None, raw=None, args="", path=None):
    p = path or os.path.join(out, name + ".onnx")
    if model is not None:
        with open(p, "wb") as f:
            f.write(model.SerializeToString() if hasattr(model, "SerializeToString") else model)
    elif raw is not None:
        with open(p, "wb") as f:
            f.write(raw)
    rows.append(f"{name}|{p}|{args}|{expect}")


def model(nodes, inputs, outputs, inits=(), opset=17, vinfo=()):
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits), value_info=list(vinfo))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
good = model([helper.make_node("Relu", ["x"], ["y"], name="r")], [X], [Y])
good_bytes = good.SerializeToString()

# files that are not models
case("missing_file", "cannot open the model", path=os.path.join(out, "does_not_exist.onnx"))
case("directory", "is a directory", path=out)
case("empty", "empty", raw=b"")
case("text_file", "not a valid ONNX model", raw=b"This is a README, not an ONNX model.\n" * 20)
rng = random.Random(1)
for i in range(4):
    case(f"random_{i}", "not", raw=bytes(rng.randrange(256) for _ in range(64 + 97 * i)))
case("truncated", "not a valid ONNX model", raw=good_bytes[: len(good_bytes) // 2])
case("no_graph", "no graph", model=helper.make_model.__globals__["ModelProto"](ir_version=8))

# nesting bomb: subgraph attributes nested far deeper than any model, written
# as raw protobuf (the Python protobuf library refuses to build it)
def ld(field, payload):  # a length-delimited field
    n, v = len(payload), b""
    while True:
        b = n & 0x7F
        n >>= 7
        v += bytes([b | (0x80 if n else 0)])
        if not n:
            break
    return bytes([field << 3 | 2]) + v + payload


g = b""
for k in range(2000):  # Graph.node(1) -> Node.attribute(5) -> Attribute.g(6) -> Graph
    g = ld(1, ld(5, ld(6, g)))
opset = ld(8, bytes([2 << 3]) + bytes([17]))  # OperatorSetIdProto{version: 17}
case("nesting_bomb", "nested more than", raw=bytes([1 << 3, 8]) + opset + ld(7, g))

# opsets and domains
case("opset_too_new", "opset 21 is not supported", model=model(good.graph.node, [X], [Y], opset=21))
case("opset_too_old", "opset 6 is not supported", model=model(good.graph.node, [X], [Y], opset=6))
case("unsupported_op", "unsupported op 'LSTM'",
     model=model([helper.make_node("LSTM", ["x", "x", "x"], ["y"], name="lstm")], [X], [Y]))
case("unsupported_domain", "domain 'com.microsoft'",
     model=model([helper.make_node("FusedGemm", ["x"], ["y"], domain="com.microsoft")], [X], [Y]))

# graph structure
case("dangling_input", "which no node, graph input, initializer",
     model=model([helper.make_node("Relu", ["nope"], ["y"], name="r")], [X], [Y]))
case("duplicate_output", "already defined",
     model=model([helper.make_node("Relu", ["x"], ["y"], name="a"),
                  helper.make_node("Relu", ["x"], ["y"], name="b")], [X], [Y]))
case("output_shadows_input", "already defined",
     model=model([helper.make_node("Relu", ["x"], ["x"], name="a")], [X], [X]))
case("cycle", "cycle",
     model=model([helper.make_node("Add", ["x", "b"], ["a"], name="n1"),
                  helper.make_node("Relu", ["a"], ["b"], name="n2"),
                  helper.make_node("Relu", ["a"], ["y"], name="n3")], [X], [Y]))
case("undefined_output", "graph output 'z' is produced by no node",
     model=model(good.graph.node, [X], [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 3])]))
w = numpy_helper.from_array(np.ones((3,), np.float32), "w")
case("duplicate_initializer", "defined twice", model=model(good.graph.node, [X], [Y], inits=[w, w]))
case("too_many_inputs", "takes 1 to 1 inputs, got 2",
     model=model([helper.make_node("Relu", ["x", "x"], ["y"], name="r")], [X], [Y]))

# attributes
case("wrong_attribute_type", "attribute 'axis' is a float; it must be a int",
     model=model([helper.make_node("Softmax", ["x"], ["y"], name="s", axis=1.5)], [X], [Y]))
case("unknown_attribute", "unknown attribute 'colour'",
     model=model([helper.make_node("Relu", ["x"], ["y"], name="r", colour=3)], [X], [Y]))

# shapes and types
X43 = helper.make_tensor_value_info("z", TensorProto.FLOAT, [4, 3])
case("no_broadcast", "broadcast",
     model=model([helper.make_node("Add", ["x", "z"], ["y"], name="add")], [X, X43], [Y]))
case("declared_shape_wrong", "y",
     model=model(good.graph.node, [X], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 2])]))
case("reshape_count", "Reshape",
     model=model([helper.make_node("Reshape", ["x", "s"], ["y"], name="rs")], [X], [Y],
                 inits=[numpy_helper.from_array(np.array([4, 4], np.int64), "s")]))
case("sequence_input", "sequence",
     model=model(good.graph.node, [helper.make_tensor_sequence_value_info("x", TensorProto.FLOAT, [2, 3])], [Y]))
case("string_initializer", "string tensors are not supported",
     model=model(good.graph.node, [X], [Y], inits=[helper.make_tensor("s", TensorProto.STRING, [1], [b"a"])]))
bad_raw = numpy_helper.from_array(np.ones((3,), np.float32), "w")
bad_raw.raw_data = bad_raw.raw_data[:5]
case("raw_data_size", "raw_data has 5 bytes", model=model(good.graph.node, [X], [Y], inits=[bad_raw]))
neg = TensorProto(name="n", data_type=TensorProto.FLOAT, dims=[-1])
case("negative_dim", "invalid dims", model=model(good.graph.node, [X], [Y], inits=[neg]))
# empty, but its other dims multiply past 2^63: the folder's strides once overflowed (a fuzz find)
empty_huge = TensorProto(name="e", data_type=TensorProto.FLOAT, dims=[0, 1 << 32, 1 << 32])
case("empty_huge_dims", "invalid dims",
     model=model([helper.make_node("Mean", ["e", "e"], ["m"], name="mean"),
                  helper.make_node("Identity", ["x"], ["y"], name="id")], [X], [Y], inits=[empty_huge]))
XH = helper.make_tensor_value_info("x", TensorProto.FLOAT, [0, 1 << 40, 1 << 40])
case("declared_huge_dims", "more than 2^50 elements", model=model(good.graph.node, [XH], [Y]))

# symbolic dims
XS = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])
YS = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])
sym = model(good.graph.node, [XS], [YS])
case("unbound_dim", "bind it with --dim batch=N", model=sym)
case("unknown_dim_flag", "--dim seq matches no symbolic", model=sym, args="--dim batch=2 --dim seq=4")

# external data
ext = numpy_helper.from_array(np.ones((2, 3), np.float32), "w")
ext.data_location = TensorProto.EXTERNAL
for k, v in (("location", "missing.bin"),):
    e = ext.external_data.add(); e.key = k; e.value = v
addw = [helper.make_node("Add", ["x", "w"], ["y"], name="add")]
case("external_missing", "cannot open external data file", model=model(addw, [X], [Y], inits=[ext]))
ext.external_data[0].value = "/etc/passwd"
case("external_absolute", "must be a relative path", model=model(addw, [X], [Y], inits=[ext]))
ext.external_data[0].value = "../secret.bin"
case("external_dotdot", "must be a relative path", model=model(addw, [X], [Y], inits=[ext]))
with open(os.path.join(out, "short.bin"), "wb") as f:
    f.write(b"\0" * 10)
ext.external_data[0].value = "short.bin"
case("external_short", "holds 10 bytes", model=model(addw, [X], [Y], inits=[ext]))

with open(os.path.join(out, "cases.txt"), "w") as f:
    f.write("\n".join(rows) + "\n")

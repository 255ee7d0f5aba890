"""Shared export helper for the loom model zoo (models/*/export.py).

Each export script builds its model with torch.manual_seed(0), makes one batch
with a fixed numpy seed and calls export_model(), which
  - runs PyTorch in eval mode on the batch (the reference outputs),
  - exports with the TorchScript exporter (dynamo=False), opset 17, constant
    folding, static shapes,
  - checks the ONNX: onnx.checker, only ops loom supports, only the default
    domain, static graph inputs and outputs,
  - runs onnxruntime on the batch and fails if it differs from PyTorch by
    1e-4 or more,
  - writes model.onnx, <input>.npy, expected_<output>.npy and target_<name>.npy
    next to the calling script.
Nothing here depends on where Python is installed.
"""
import hashlib
import json
import os
import sys
import warnings

import numpy as np
import onnx
import torch
from torch import nn

# One thread, so the reference outputs are the same bits however the script is
# run (multi-threaded reductions can differ in the last bit).
torch.set_num_threads(1)

OPSET = 17
TOLERANCE = 1e-4

# The ops loom supports (ai.onnx domain). Anything else in a zoo graph is a bug.
LOOM_OPS = set("""
MatMul Gemm Conv ConvTranspose BatchNormalization LayerNormalization InstanceNormalization
Add Sub Mul Div Pow Sqrt Reciprocal Neg Abs Exp Log Sin Cos Tanh Erf Relu LeakyRelu Sigmoid
Softplus Elu Clip Min Max Softmax LogSoftmax ReduceMean ReduceSum ReduceMax ReduceMin
ReduceProd ReduceL2 Gather GatherElements ScatterND Reshape Transpose Squeeze Unsqueeze
Flatten Concat Split Slice Expand Tile Pad Where Equal Less Greater Not And Or Cast Identity
Dropout Trilu Range ConstantOfShape Shape Size MaxPool AveragePool GlobalAveragePool Resize
Einsum CumSum DFT Constant
""".split())


def fail(msg):
    print(f"export FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def op_types(model):
    """Sorted op types of the main graph (the zoo has no subgraphs)."""
    return sorted({n.op_type for n in model.graph.node})


def check_onnx(model):
    """Structural checks; returns the sorted op types."""
    onnx.checker.check_model(model, full_check=True)
    for n in model.graph.node:
        if n.domain not in ("", "ai.onnx"):
            fail(f"node {n.name} uses domain {n.domain!r}")
        if n.op_type not in LOOM_OPS:
            fail(f"node {n.name} uses op {n.op_type}, which loom does not support")
        for a in n.attribute:
            if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                fail(f"node {n.name} has a subgraph")
    for io in list(model.graph.input) + list(model.graph.output):
        dims = io.type.tensor_type.shape.dim
        if not dims and io.type.tensor_type.shape is None:
            fail(f"{io.name} has no shape")
        for d in dims:
            if not d.HasField("dim_value"):
                fail(f"{io.name} has a symbolic dim {d.dim_param!r}; shapes must be static")
    inits = {i.name for i in model.graph.initializer}
    for i in model.graph.input:
        if i.name in inits:
            fail(f"initializer {i.name} is also a graph input")
    return op_types(model)


def fix_initializers(m, model, tied_ok=False):
    """Make every float initializer a trainable PyTorch tensor, and say which.

    The TorchScript exporter (eval mode) deduplicates initializers by value:
    two zero biases become one initializer and an Identity node, which would
    tie them when the graph is trained. Constant folding also leaves folded
    constants (rotary tables, masks, transposed weights) as initializers.
    After this pass:
      - every Identity whose input is an initializer is replaced by a copy of
        that initializer under the Identity's output name (no tying);
      - an initializer named as a PyTorch parameter or buffer stays;
      - an initializer equal to the transpose of exactly one PyTorch parameter
        (constant folding of x @ W.T), or to a reshape of one (a norm scale
        unsqueezed to [C,1,1]) stays under its exporter name;
      - any other initializer becomes a Constant node (frozen, no gradient).
    Every PyTorch parameter must end up in exactly one initializer.
    Returns {initializer: {"torch": name, "kind": "parameter" or "buffer",
    "transform": "none", "transpose" (2-D W.T) or "reshape" (same values in
    row-major order, e.g. a GroupNorm scale [C] folded to [C,1,1])}}.
    """
    from onnx import numpy_helper
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    keep_nodes = []
    for n in g.node:
        if n.op_type == "Identity" and n.input[0] in inits:
            t = onnx.TensorProto()
            t.CopyFrom(inits[n.input[0]])
            t.name = n.output[0]
            g.initializer.append(t)
            inits[t.name] = t
        else:
            keep_nodes.append(n)
    del g.node[:]
    g.node.extend(keep_nodes)

    params = {k: v.detach().float().numpy() for k, v in model.named_parameters()}
    buffers = {k: v.detach().numpy() for k, v in model.named_buffers()}
    mapping, constants, seen = {}, [], {}
    for t in list(g.initializer):
        a = numpy_helper.to_array(t)
        if t.name in params:
            mapping[t.name] = {"torch": t.name, "transform": "none", "kind": "parameter"}
        elif t.name in buffers:
            mapping[t.name] = {"torch": t.name, "transform": "none", "kind": "buffer"}
        else:
            hits = [(k, "transpose") for k, p in params.items()
                    if a.dtype == np.float32 and a.ndim == 2 and p.ndim == 2
                    and p.T.shape == a.shape
                    and np.array_equal(p.T, a)]
            hits += [(k, "reshape") for k, p in params.items()
                     if a.dtype == np.float32 and a.shape != p.shape and a.size == p.size
                     and np.array_equal(p.ravel(), a.ravel())]
            if len(hits) > 1:
                fail(f"initializer {t.name} {list(a.shape)} matches several parameters "
                     f"{hits}; give them distinct values (e.g. randomize_affine())")
            if hits:
                mapping[t.name] = {"torch": hits[0][0], "transform": hits[0][1],
                                   "kind": "parameter"}
            else:
                constants.append(t)
                continue
        if mapping[t.name]["kind"] == "parameter":
            seen.setdefault(mapping[t.name]["torch"], []).append(t.name)
    for t in constants:
        g.initializer.remove(t)
    consts = []
    for t in constants:
        c = onnx.TensorProto()
        c.CopyFrom(t)
        consts.append(onnx.helper.make_node("Constant", [], [t.name], name=f"const:{t.name}",
                                            value=c))
    # Constants first keeps the node list topologically sorted.
    nodes = consts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    for k in params:
        if len(seen.get(k, [])) != 1 and not (tied_ok and seen.get(k)):
            fail(f"PyTorch parameter {k} appears in initializers {seen.get(k, [])}; "
                 "expected exactly one")
    return mapping


def randomize_affine(model, seed=1):
    """Give normalization layers non-trivial statistics and affine parameters.

    Fresh BatchNorm/GroupNorm/LayerNorm layers are the identity map with
    weight 1 and bias 0 everywhere, so the reference output would not depend
    on them and, after constant folding, several folded copies would be
    indistinguishable. Draws them from their own generator (seed) so the rest
    of the model's initialisation is unchanged.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
                if getattr(m, "weight", None) is not None:
                    m.weight.copy_(1.0 + 0.1 * torch.randn(m.weight.shape, generator=g))
                if getattr(m, "bias", None) is not None:
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
                if getattr(m, "running_mean", None) is not None:
                    n = m.running_mean.shape
                    m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                    m.running_var.copy_(1.0 + 0.2 * torch.rand(n, generator=g))


def run_torch(model, inputs):
    model.eval()
    with torch.no_grad():
        out = model(*[torch.from_numpy(v) for v in inputs.values()])
    if isinstance(out, torch.Tensor):
        out = (out,)
    return [o.detach().float().numpy() for o in out]


def run_ort(path, inputs):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return sess.run(None, dict(inputs))


def save_npy(path, arr):
    np.save(path, np.ascontiguousarray(arr))
    print(f"  wrote {os.path.relpath(path)}  {arr.dtype} {list(arr.shape)}")


def export_graph(model, inputs, output_names, path, keep_batchnorm=False, tied_ok=False):
    """Export the eval-mode `model` on `inputs` to the ONNX file `path` and
    check it (no onnxruntime run). Returns (ModelProto, initializer mapping,
    sorted op types). See export_model for keep_batchnorm; tied_ok allows a
    PyTorch parameter to appear in several initializers (tied weights)."""
    torch.use_deterministic_algorithms(True)
    # Shape checks inside model code turn into constants under static shapes.
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    model.eval()
    args = tuple(torch.from_numpy(v) for v in inputs.values())
    training_mode = torch.onnx.TrainingMode.EVAL
    if keep_batchnorm:
        training_mode = torch.onnx.TrainingMode.PRESERVE
        # The exporter warns that constant folding may change parameters in
        # training mode; the model is in eval mode and only constants fold.
        warnings.filterwarnings("ignore", message="It is recommended that constant folding")
    # Tracing with requires_grad parameters would keep every activation for
    # autograd (18 GB for GPT-2 124M at 8x1024); the graph is the same without.
    grads = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in grads:
        p.requires_grad_(False)
    try:
        torch.onnx.export(
            model, args, path,
            export_params=True,
            opset_version=OPSET,
            do_constant_folding=True,
            input_names=list(inputs.keys()),
            output_names=list(output_names),
            training=training_mode,
            dynamo=False,
        )
    finally:
        for p, r in grads:
            p.requires_grad_(r)
    m = onnx.load(path)
    # The exporter records the torch version as producer_version; keep it, but
    # drop doc strings so the bytes do not depend on source paths.
    m.doc_string = ""
    for n in m.graph.node:
        n.doc_string = ""
    mapping = fix_initializers(m, model, tied_ok)
    onnx.save(m, path)
    ops = check_onnx(m)
    graph_inputs = [i.name for i in m.graph.input]
    if graph_inputs != list(inputs.keys()):
        fail(f"ONNX inputs {graph_inputs} != {list(inputs.keys())}")
    return m, mapping, ops


def export_model(script_file, model, inputs, output_names, targets,
                 keep_batchnorm=False):
    """Export `model` next to `script_file` (model.onnx, <input>.npy,
    expected_<output>.npy, target_<name>.npy, params.json).

    inputs:  dict ONNX input name -> numpy array (in the order of model.forward)
    output_names: list of ONNX output names
    targets: dict name -> numpy array, written as target_<name>.npy
    keep_batchnorm: export with TrainingMode.PRESERVE on the eval-mode model
        instead of TrainingMode.EVAL. The graph is the same inference graph
        (BatchNormalization uses running statistics, Dropout is gone), but the
        exporter skips its eval-only peephole that folds BatchNormalization
        into the preceding Conv, so BN stays a node (with its own scale/bias
        initializers) that a training compiler can train.
    """
    out_dir = os.path.dirname(os.path.abspath(script_file))
    name = os.path.basename(out_dir)
    onnx_path = os.path.join(out_dir, "model.onnx")
    tmp_path = onnx_path + ".tmp"
    expected = run_torch(model, inputs)
    if len(expected) != len(output_names):
        fail(f"model returns {len(expected)} outputs, {len(output_names)} names given")
    try:
        m, mapping, ops = export_graph(model, inputs, output_names, tmp_path, keep_batchnorm)
        got = run_ort(tmp_path, inputs)
        worst = 0.0
        for oname, e, g in zip(output_names, expected, got):
            if e.shape != g.shape:
                fail(f"{oname}: onnxruntime shape {g.shape} != PyTorch {e.shape}")
            d = float(np.max(np.abs(e.astype(np.float64) - g.astype(np.float64))))
            print(f"  onnxruntime vs PyTorch, {oname}: max abs diff {d:.3g}")
            worst = max(worst, d)
        if not worst < TOLERANCE:
            fail(f"onnxruntime differs from PyTorch by {worst} (tolerance {TOLERANCE})")
        os.replace(tmp_path, onnx_path)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)

    print(f"{name}: wrote {os.path.relpath(onnx_path)}")
    for k, v in inputs.items():
        save_npy(os.path.join(out_dir, f"{k}.npy"), v)
    for oname, e in zip(output_names, expected):
        save_npy(os.path.join(out_dir, f"expected_{oname}.npy"), e.astype(np.float32))
    for k, v in targets.items():
        save_npy(os.path.join(out_dir, f"target_{k}.npy"), v)
    params_path = os.path.join(out_dir, "params.json")
    with open(params_path, "w") as f:
        json.dump(mapping, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"  wrote {os.path.relpath(params_path)}  ({len(mapping)} initializers, "
          f"{sum(v['transform'] != 'none' for v in mapping.values())} transposed/reshaped)")

    params = sum(p.numel() for p in model.parameters())
    size = os.path.getsize(onnx_path)
    digest = hashlib.sha256(open(onnx_path, "rb").read()).hexdigest()[:16]
    print(f"  params {params}, model.onnx {size} bytes (sha256 {digest}), "
          f"{len(m.graph.node)} nodes")
    print(f"  ops: {' '.join(ops)}")
    return m

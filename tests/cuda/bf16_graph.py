"""bf16_graph.py DIR: writes DIR/model.onnx and DIR/x.npy, a small graph of
the nodes `--precision bf16` gives a product (tests/cuda/run.sh compiles it
for both targets and compares the programs): float32 x cast to bfloat16,
MatMul by a weight (one product), Transpose and a batched MatMul, Reshape,
Gemm with transB and alpha, Gemm with transA (a weight gradient's form), a
Sum of bfloat16 values, Casts back fused with an Add; and a float16 Mul
between Casts (the cuda fused loops' float16 loads and stores)."""
import sys, os
import numpy as np
from onnx import TensorProto as T, helper, numpy_helper, save

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(7)
BF, F, H = T.BFLOAT16, T.FLOAT, T.FLOAT16
inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
         for n, s in (('w1', (8, 16)), ('w2', (6, 16)), ('bias', (16,)))]
inits.append(numpy_helper.from_array(np.array([6, 16], np.int64), 'shape'))
n = helper.make_node
nodes = [
    n('Cast', ['x'], ['xb'], to=BF, name='cast_x'),
    n('Cast', ['w1'], ['w1b'], to=BF, name='cast_w1'),
    n('Cast', ['w2'], ['w2b'], to=BF, name='cast_w2'),
    n('MatMul', ['xb', 'w1b'], ['h'], name='mm_weight'),               # [2,3,8] x [8,16]
    n('Transpose', ['h'], ['ht'], perm=[0, 2, 1], name='tr'),          # [2,16,3]
    n('MatMul', ['ht', 'h'], ['g'], name='mm_batched'),                # [2,16,16]
    n('Reshape', ['h', 'shape'], ['r'], name='rs'),                    # [6,16]
    n('Gemm', ['r', 'w2b'], ['q'], transB=1, alpha=0.5, name='gemm_tb'),  # [6,6]
    n('Gemm', ['r', 'r'], ['q2'], transA=1, name='gemm_ta'),           # [16,16]
    n('Sum', ['g', 'q2'], ['s'], name='sum_bf16'),                     # [2,16,16]
    n('Cast', ['s'], ['s32'], to=F, name='cast_s'),
    n('Add', ['s32', 'bias'], ['y'], name='add_bias'),
    n('Cast', ['q'], ['q32'], to=F, name='cast_q'),
    n('Add', ['q32', 'q32'], ['z'], name='add_q'),
    n('Cast', ['x'], ['xh'], to=H, name='cast_xh'),
    n('Mul', ['xh', 'xh'], ['xh2'], name='mul_f16'),
    n('Cast', ['xh2'], ['u'], to=F, name='cast_u'),
]
graph = helper.make_graph(
    nodes, 'bf16_products', [helper.make_tensor_value_info('x', F, [2, 3, 8])],
    [helper.make_tensor_value_info('y', F, [2, 16, 16]), helper.make_tensor_value_info('z', F, [6, 6]),
     helper.make_tensor_value_info('u', F, [2, 3, 8])], inits)
save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)]), os.path.join(out, 'model.onnx'))
np.save(os.path.join(out, 'x.npy'), rng.standard_normal((2, 3, 8)).astype(np.float32))

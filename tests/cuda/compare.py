"""compare.py KIND CUDA CPU [TOL [REF]]: a cuda program's results against the
cpu program's (tests/cuda, tests/gpu). KIND out: two .npy outputs, normalized
error under TOL (default 1e-5); grads: two --dump-grads files, every tensor
under TOL (default 1e-5); curve: two --log files, every step's loss within
TOL relative (default 1e-4). bf16 programs: 1e-2. grads with REF (the float32
cpu program's gradients, for two bf16 programs): a tensor over TOL passes
where the cuda program is no further from REF than 1.5 times the cpu
program is (two programs that round differently, each about as far from
float32: a tensor whose gradient cancels, a LayerNorm weight's, can differ
by more than either differs from float32). Exit 0 when they agree; prints
the figures."""
import sys, json, numpy as np
sys.path.insert(0, 'models')
import safetensors_np
kind, a, b = sys.argv[1:4]
tol = float(sys.argv[4]) if len(sys.argv) > 4 else None
def nerr(x, y):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    d = np.linalg.norm(y)
    return np.linalg.norm(x - y) / (d if d > 0 else 1)
if kind == 'out':
    e = nerr(np.load(a), np.load(b)); print(f'normalized error {e:.3g}'); sys.exit(int(e >= (tol or 1e-5)))
if kind == 'grads':
    ta, tb = safetensors_np.read(a)[0], safetensors_np.read(b)[0]
    if set(ta) != set(tb): print('tensors differ:', sorted(set(ta) ^ set(tb))); sys.exit(1)
    worst = max(((nerr(ta[k], tb[k]), k) for k in tb))
    bad = [k for k in tb if nerr(ta[k], tb[k]) >= (tol or 1e-5)]
    msg = f'worst normalized error {worst[0]:.3g} ({worst[1]}), {len(tb)} tensors'
    if bad and len(sys.argv) > 5:
        tr = safetensors_np.read(sys.argv[5])[0]
        far = [(nerr(ta[k], tr[k]), nerr(tb[k], tr[k]), k) for k in bad]
        bad = [f for f in far if f[0] > 1.5 * f[1]]
        msg += '; against float32: ' + ', '.join(f'{k} cuda {x:.3g} cpu {y:.3g}' for x, y, k in far)
    print(msg); sys.exit(int(len(bad) > 0))
la = [json.loads(l)['loss'] for l in open(a)]; lb = [json.loads(l)['loss'] for l in open(b)]
e = max(abs(x - y) / max(abs(y), 1e-6) for x, y in zip(la, lb))
print('cuda', ' '.join(f'{x:.6f}' for x in la), '| cpu', ' '.join(f'{x:.6f}' for x in lb), f'| worst {e:.3g}')
sys.exit(int(len(la) != len(lb) or e >= (tol or 1e-4)))

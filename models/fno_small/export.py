"""Small 2-D Fourier Neural Operator on [4,1,32,32]: width 16, 8x8 modes, 2 layers.

lifting (1x1 Conv 1->16) -> 2 x [spectral conv + 1x1 Conv, GELU] ->
projection (1x1 Conv 16->32, GELU, 1x1 Conv 32->1). Input x float32
[4,1,32,32]; output y float32 [4,1,32,32]; target_y.npy is the float32
regression target: the input evolved by the periodic heat equation for a
fixed time (computed with numpy's FFT).

The spectral convolution exports to ONNX DFT nodes (opset 17). torch 2.5.1's
TorchScript exporter has no symbolic for aten::_fft_r2c/_fft_c2r and ONNX has
no complex tensors, so during export the two transforms are autograd
Functions with a `symbolic` that writes DFT nodes, on real tensors whose last
axis holds (real, imaginary):
  rfft2:  Unsqueeze(-1) -> DFT(axis=3, onesided=1) -> DFT(axis=2)
  irfft2: DFT(axis=2, inverse=1) -> Mul by [1,2,...,2,1] on the W/2+1 kept
          bins -> Pad to W bins -> DFT(axis=3, inverse=1) -> real part
          (the one-sided inverse written as a full complex inverse: for a
          Hermitian spectrum, Re(ifft(c * X)) equals irfft(X)).
The mode mixing in between is real arithmetic (Einsum, Sub, Add) on the real
and imaginary parts. Outside export the model calls torch.fft directly, so
PyTorch autograd works on it as usual.
"""
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from zoo_common import export_model  # noqa: E402

BATCH, SIZE, WIDTH, MODES = 4, 32, 16, 8


def _const(g, values, dtype=torch.int64):
    return g.op("Constant", value_t=torch.tensor(values, dtype=dtype))


def _typed(v, like, sizes):
    """Give an ONNX value made in a symbolic its static float shape (the
    exporter cannot infer DFT's output shape, and symbolic dims would follow)."""
    v.setType(like.type().with_dtype(torch.float32).with_sizes(list(sizes)))
    return v


_FUNCTIONS = {}


def _rfft2_function(shape):
    """autograd Function for x [B,C,H,W] -> rfft2 as [B,C,H,W/2+1,2], as DFT
    nodes in ONNX; made per static input shape so the symbolic knows it."""
    key = ("rfft2",) + tuple(shape)
    if key not in _FUNCTIONS:
        b, c, h, w = shape
        half = w // 2 + 1

        class RFFT2(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return torch.view_as_real(torch.fft.rfft2(x))

            @staticmethod
            def symbolic(g, x):
                x = _typed(g.op("Unsqueeze", x, _const(g, [4])), x, (b, c, h, w, 1))
                x = _typed(g.op("DFT", x, axis_i=3, onesided_i=1, inverse_i=0), x,
                           (b, c, h, half, 2))
                return _typed(g.op("DFT", x, axis_i=2, onesided_i=0, inverse_i=0), x,
                              (b, c, h, half, 2))

        _FUNCTIONS[key] = RFFT2
    return _FUNCTIONS[key]


def _irfft2_function(shape):
    """autograd Function for z [B,C,H,W/2+1,2] -> irfft2 to real [B,C,H,W] with
    W even (irfft2's default size), as DFT nodes in ONNX."""
    key = ("irfft2",) + tuple(shape)
    if key not in _FUNCTIONS:
        b, c, h, half, _ = shape
        w = 2 * (half - 1)

        class IRFFT2(torch.autograd.Function):
            @staticmethod
            def forward(ctx, z):
                return torch.fft.irfft2(torch.view_as_complex(z.contiguous()))

            @staticmethod
            def symbolic(g, z):
                z = _typed(g.op("DFT", z, axis_i=2, onesided_i=0, inverse_i=1), z,
                           (b, c, h, half, 2))
                # DC and Nyquist bins have no mirror image; the others count twice.
                k = torch.tensor([1.0] + [2.0] * (half - 2) + [1.0]).reshape(1, 1, 1, half, 1)
                z = _typed(g.op("Mul", z, g.op("Constant", value_t=k)), z, (b, c, h, half, 2))
                z = _typed(g.op("Pad", z, _const(g, [0, 0, 0, 0, 0, 0, 0, 0, w - half, 0])), z,
                           (b, c, h, w, 2))
                z = _typed(g.op("DFT", z, axis_i=3, onesided_i=0, inverse_i=1), z,
                           (b, c, h, w, 2))
                z = _typed(g.op("Slice", z, _const(g, [0]), _const(g, [1]), _const(g, [4])), z,
                           (b, c, h, w, 1))
                return _typed(g.op("Squeeze", z, _const(g, [4])), z, (b, c, h, w))

        _FUNCTIONS[key] = IRFFT2
    return _FUNCTIONS[key]


def rfft2(x):
    if torch.onnx.is_in_onnx_export():
        return _rfft2_function(x.shape).apply(x)
    return torch.view_as_real(torch.fft.rfft2(x))


def irfft2(z):
    if torch.onnx.is_in_onnx_export():
        return _irfft2_function(z.shape).apply(z)
    return torch.fft.irfft2(torch.view_as_complex(z.contiguous()))


class SpectralConv2d(nn.Module):
    """Multiplies the lowest `modes` frequencies (both signs along H, the first
    `modes` along W) by learned complex weights, stored as real and imaginary
    parameters [Cin, Cout, modes, modes]; all other frequencies become zero."""

    def __init__(self, cin, cout, modes):
        super().__init__()
        self.modes, self.cout = modes, cout
        scale = 1.0 / (cin * cout)
        shape = (cin, cout, modes, modes)
        self.w1_re = nn.Parameter(scale * torch.rand(shape))
        self.w1_im = nn.Parameter(scale * torch.rand(shape))
        self.w2_re = nn.Parameter(scale * torch.rand(shape))
        self.w2_im = nn.Parameter(scale * torch.rand(shape))

    @staticmethod
    def cmul(a, b, w_re, w_im):
        """(a + ib) * (w_re + i w_im), summed over input channels."""
        re = torch.einsum("bixy,ioxy->boxy", a, w_re) - torch.einsum("bixy,ioxy->boxy", b, w_im)
        im = torch.einsum("bixy,ioxy->boxy", a, w_im) + torch.einsum("bixy,ioxy->boxy", b, w_re)
        return torch.stack([re, im], dim=-1)

    def forward(self, x):
        b, _, h, w = x.shape
        m = self.modes
        xf = rfft2(x)                                   # [B, Cin, H, W/2+1, 2]
        top, bot = xf[:, :, :m, :m], xf[:, :, h - m:, :m]
        top = self.cmul(top[..., 0], top[..., 1], self.w1_re, self.w1_im)
        bot = self.cmul(bot[..., 0], bot[..., 1], self.w2_re, self.w2_im)
        # Zero the other modes. (torch.cat with zeros, not F.pad: the exporter
        # writes F.pad's pads as a Slice with step -1 that it cannot fold.)
        mid = torch.zeros(b, self.cout, h - 2 * m, m, 2, dtype=x.dtype, device=x.device)
        out = torch.cat([top, mid, bot], dim=2)         # [B, Cout, H, m, 2]
        rest = torch.zeros(b, self.cout, h, w // 2 + 1 - m, 2, dtype=x.dtype, device=x.device)
        out = torch.cat([out, rest], dim=3)             # [B, Cout, H, W/2+1, 2]
        return irfft2(out)


class FNOSmall(nn.Module):
    def __init__(self, cin=1, cout=1, width=WIDTH, modes=MODES, layers=2, hidden=32):
        super().__init__()
        self.lift = nn.Conv2d(cin, width, 1)
        self.spectral = nn.ModuleList([SpectralConv2d(width, width, modes) for _ in range(layers)])
        self.pointwise = nn.ModuleList([nn.Conv2d(width, width, 1) for _ in range(layers)])
        self.act = nn.GELU()
        self.proj1 = nn.Conv2d(width, hidden, 1)
        self.proj2 = nn.Conv2d(hidden, cout, 1)

    def forward(self, x):
        x = self.lift(x)
        for spectral, pointwise in zip(self.spectral, self.pointwise):
            x = self.act(spectral(x) + pointwise(x))
        return self.proj2(self.act(self.proj1(x)))


def heat(u0, t=0.002):
    """u0 evolved by u_t = laplacian(u) on the periodic unit square for time t."""
    n = u0.shape[-1]
    k = np.fft.fftfreq(n, d=1.0 / n)
    k2 = (2 * np.pi) ** 2 * (k[:, None] ** 2 + k[None, :] ** 2)
    return np.real(np.fft.ifft2(np.fft.fft2(u0) * np.exp(-k2 * t)))


def check_spectral_alone(rng):
    """The spectral branch is ~1% of the model's output at FNO's usual weight
    scale, so check the DFT formulation on its own with O(1) weights too."""
    import tempfile

    import onnxruntime as ort
    torch.manual_seed(1)
    layer = SpectralConv2d(3, 2, MODES)
    with torch.no_grad():
        for p in layer.parameters():
            p.mul_(6.0)
    x = rng.standard_normal((2, 3, SIZE, SIZE)).astype(np.float32)
    with torch.no_grad():
        want = layer(torch.from_numpy(x)).numpy()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "spectral.onnx")
        torch.onnx.export(layer, (torch.from_numpy(x),), path, opset_version=17,
                          do_constant_folding=True, input_names=["x"], output_names=["y"],
                          dynamo=False)
        got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    diff = float(np.max(np.abs(got - want)))
    rel = diff / float(np.max(np.abs(want)))
    print(f"  spectral conv alone: onnxruntime vs PyTorch max abs diff {diff:.3g} "
          f"(max |y| {np.max(np.abs(want)):.3g}, relative {rel:.3g})")
    if not rel < 1e-5:
        print("export FAILED: the DFT formulation of the spectral conv is wrong", file=sys.stderr)
        sys.exit(1)


def build():
    """The model with the committed weights (train_ref.py rebuilds it too)."""
    torch.manual_seed(0)
    return FNOSmall()


def main():
    check_spectral_alone(np.random.default_rng(1))
    model = build()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, 1, SIZE, SIZE)).astype(np.float32)
    y = heat(x.astype(np.float64)).astype(np.float32)
    m = export_model(__file__, model, {"x": x}, ["y"], {"y": y})
    dft = sum(n.op_type == "DFT" for n in m.graph.node)
    if dft != 4 * len(model.spectral):
        print(f"export FAILED: expected {4 * len(model.spectral)} DFT nodes, found {dft}",
              file=sys.stderr)
        sys.exit(1)
    print(f"  {dft} DFT nodes")


if __name__ == "__main__":
    main()

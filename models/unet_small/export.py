"""Small U-Net on [4,1,32,32]: two down levels, a bottleneck, two up levels.

Each level: (Conv3x3 - GroupNorm - ReLU) x 2; down by MaxPool 2x2; up by
ConvTranspose 2x2 stride 2; skip connections concatenated on channels; a 1x1
Conv head. Widths 16/32/64. GroupNorm exports (opset 17) as Reshape -
InstanceNormalization - Reshape - Mul - Add. Input x float32 [4,1,32,32];
output y float32 [4,1,32,32]; target_y.npy is a float32 regression target of
the output's shape (a smoothed copy of the input).
"""
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from zoo_common import export_model, randomize_affine  # noqa: E402

BATCH = 4


def double_conv(cin, cout, groups=4):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(groups, cout), nn.ReLU(),
        nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(groups, cout), nn.ReLU())


class UNetSmall(nn.Module):
    def __init__(self, cin=1, cout=1, w=(16, 32, 64)):
        super().__init__()
        self.enc1 = double_conv(cin, w[0])
        self.enc2 = double_conv(w[0], w[1])
        self.pool = nn.MaxPool2d(2)
        self.mid = double_conv(w[1], w[2])
        self.up2 = nn.ConvTranspose2d(w[2], w[1], 2, stride=2)
        self.dec2 = double_conv(2 * w[1], w[1])
        self.up1 = nn.ConvTranspose2d(w[1], w[0], 2, stride=2)
        self.dec1 = double_conv(2 * w[0], w[0])
        self.head = nn.Conv2d(w[0], cout, 1)

    def forward(self, x):
        e1 = self.enc1(x)                    # 32x32
        e2 = self.enc2(self.pool(e1))        # 16x16
        m = self.mid(self.pool(e2))          # 8x8
        d2 = self.dec2(torch.cat([self.up2(m), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.head(d1)


def build():
    """The model with the committed weights (train_ref.py rebuilds it too)."""
    torch.manual_seed(0)
    model = UNetSmall()
    randomize_affine(model)
    return model


def main():
    model = build()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, 1, 32, 32)).astype(np.float32)
    # Target: a 3x3 box blur of the input (circular), a simple denoising task.
    y = sum(np.roll(np.roll(x, i, 2), j, 3) for i in (-1, 0, 1) for j in (-1, 0, 1)) / 9.0
    export_model(__file__, model, {"x": x}, ["y"], {"y": y.astype(np.float32)})


if __name__ == "__main__":
    main()

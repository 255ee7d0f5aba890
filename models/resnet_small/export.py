"""Small ResNet for 32x32 images: BasicBlock, widths 16/32/64, one block per stage.

BatchNormalization stays in the graph (not folded into Conv). Input x float32
[4,3,32,32]; output logits float32 [4,10]; target_y.npy int64 [4] class labels.
"""
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from zoo_common import export_model, randomize_affine  # noqa: E402

BATCH, CLASSES = 4, 10


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + self.shortcut(x))


class ResNetSmall(nn.Module):
    def __init__(self, widths=(16, 32, 64), classes=CLASSES):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU())
        blocks, cin = [], widths[0]
        for i, w in enumerate(widths):
            blocks.append(BasicBlock(cin, w, 1 if i == 0 else 2))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        y = self.pool(self.blocks(self.stem(x)))
        return self.fc(torch.flatten(y, 1))


def build():
    """The model with the committed weights (train_ref.py rebuilds it too)."""
    torch.manual_seed(0)
    model = ResNetSmall()
    randomize_affine(model)
    return model


def main():
    model = build()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, CLASSES, size=(BATCH,)).astype(np.int64)
    export_model(__file__, model, {"x": x}, ["logits"], {"y": y}, keep_batchnorm=True)


if __name__ == "__main__":
    main()

"""Writes a ResNet-50-sized CNN with random weights, for planning benchmarks.

usage: python models/resnet50.py [OUT.onnx] [--batch 32] [--size 224]

The torchvision ResNet-50 layout written out here (no torchvision needed):
a 7x7 stride-2 stem, max pooling, bottleneck stages of 3, 4, 6, 3 blocks
(widths 64, 128, 256, 512, expansion 4, the stride on the 3x3 conv), global
average pooling and a 1000-way classifier; 25.6M parameters.
torch.manual_seed(0); exported like the zoo (TorchScript exporter, opset 17,
static shapes, BatchNormalization kept with its running statistics), input x
float32 [batch,3,size,size], output logits float32 [batch,1000]. Default
output build/models/resnet50/model.onnx (about 100 MB, not committed).
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zoo_common import export_graph  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Bottleneck(nn.Module):
    def __init__(self, cin, width, stride):
        super().__init__()
        cout = 4 * width
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return torch.relu(y + (self.down(x) if self.down is not None else x))


class ResNet50(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        blocks, cin = [], 64
        for width, n, stride in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]:
            for i in range(n):
                blocks.append(Bottleneck(cin, width, stride if i == 0 else 1))
                cin = 4 * width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, 1000)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default=os.path.join(ROOT, "build", "models", "resnet50", "model.onnx"))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=224)
    a = ap.parse_args()
    t0 = time.time()
    torch.manual_seed(0)
    model = ResNet50().eval()
    n = sum(p.numel() for p in model.parameters())
    x = np.random.default_rng(0).standard_normal((a.batch, 3, a.size, a.size)).astype(np.float32)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tmp = a.out + ".tmp"
    try:
        _, _, ops = export_graph(model, {"x": x}, ["logits"], tmp, keep_batchnorm=True)
        os.replace(tmp, a.out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print(f"wrote {a.out}: {os.path.getsize(a.out) / 1e6:.1f} MB, {n:,} parameters, input x float32 "
          f"[{a.batch},3,{a.size},{a.size}], output logits float32 [{a.batch},1000], {time.time() - t0:.0f} s")
    print(f"ops: {' '.join(ops)}")


if __name__ == "__main__":
    main()

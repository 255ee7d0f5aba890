"""MLP classifier 784 -> 128 -> 64 -> 10 with GELU, batch 4 (float32 x [4,784])."""
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from zoo_common import export_model  # noqa: E402

BATCH = 4


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.fc2 = nn.Linear(128, 64)
        self.fc3 = nn.Linear(64, 10)
        self.act = nn.GELU()

    def forward(self, x):
        return self.fc3(self.act(self.fc2(self.act(self.fc1(x)))))


def build():
    """The model with the committed weights (train_ref.py rebuilds it too)."""
    torch.manual_seed(0)
    return MLP()


def main():
    model = build()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, 784)).astype(np.float32)
    y = rng.integers(0, 10, size=(BATCH,)).astype(np.int64)
    export_model(__file__, model, {"x": x}, ["logits"], {"y": y})


if __name__ == "__main__":
    main()

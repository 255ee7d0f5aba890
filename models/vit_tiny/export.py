"""Tiny Vision Transformer on 32x32 images, patch 8 (16 patches + a class token).

Patch embedding by Conv2d(stride=patch), learned class token and position
embedding, 2 pre-norm encoder blocks (LayerNorm, 4-head self-attention written
with MatMul/Softmax, GELU MLP), final LayerNorm, linear head on the class
token. Width 64, MLP 128. Input x float32 [4,3,32,32]; output logits float32
[4,10]; target_y.npy int64 [4] class labels.
"""
import math
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from zoo_common import export_model, randomize_affine  # noqa: E402

BATCH, CLASSES = 4, 10


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = torch.softmax(q @ k.transpose(-2, -1) * (1.0 / math.sqrt(self.head_dim)), dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class ViTTiny(nn.Module):
    def __init__(self, image=32, patch=8, cin=3, dim=64, depth=2, heads=4, hidden=128,
                 classes=CLASSES):
        super().__init__()
        n = (image // patch) ** 2
        self.patch = nn.Conv2d(cin, dim, patch, stride=patch)
        self.cls = nn.Parameter(0.02 * torch.randn(1, 1, dim))
        self.pos = nn.Parameter(0.02 * torch.randn(1, n + 1, dim))
        self.blocks = nn.Sequential(*[Block(dim, heads, hidden) for _ in range(depth)])
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)          # [B, 16, dim]
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        x = self.ln(self.blocks(x))
        return self.head(x[:, 0])


def build():
    """The model with the committed weights (train_ref.py rebuilds it too)."""
    torch.manual_seed(0)
    model = ViTTiny()
    randomize_affine(model)
    return model


def main():
    model = build()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, CLASSES, size=(BATCH,)).astype(np.int64)
    export_model(__file__, model, {"x": x}, ["logits"], {"y": y})


if __name__ == "__main__":
    main()

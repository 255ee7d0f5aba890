"""Character-level GPT-2 (transformers GPT2LMHeadModel), 2 layers, 2 heads, width 64.

Input input_ids int64 [4,32]; output logits float32 [4,32,96].
target_y.npy holds the next-token labels int64 [4,32].
"""
import os
import sys

import numpy as np
import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from chars import VOCAB, make_batch  # noqa: E402
from zoo_common import export_model  # noqa: E402

BATCH, SEQ = 4, 32


class Logits(nn.Module):
    """Returns only the logits (no attention mask, no past key values)."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids):
        return self.lm(input_ids=input_ids, use_cache=False, return_dict=False)[0]


def build():
    """The model with the committed weights (train_ref.py rebuilds it too)."""
    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=64, vocab_size=VOCAB, n_positions=64, tie_word_embeddings=False,
                        use_cache=False, attn_implementation="eager")
    return Logits(GPT2LMHeadModel(config))


def main():
    model = build()
    rng = np.random.default_rng(0)
    input_ids, labels = make_batch(rng, BATCH, SEQ)
    export_model(__file__, model, {"input_ids": input_ids}, ["logits"], {"y": labels})


if __name__ == "__main__":
    main()

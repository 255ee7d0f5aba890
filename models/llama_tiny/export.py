"""Character-level Llama (transformers LlamaForCausalLM): RMSNorm, rotary, SwiGLU.

2 layers, width 64, 4 query heads, 2 key/value heads (grouped-query attention),
MLP 172. Input input_ids int64 [4,32]; output logits float32 [4,32,96].
target_y.npy holds the next-token labels int64 [4,32].
position_ids are passed as a constant (0..T-1), so the rotary tables fold
into constants and the graph has static shapes only.
"""
import os
import sys

import numpy as np
import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from chars import VOCAB, make_batch  # noqa: E402
from zoo_common import export_model  # noqa: E402

BATCH, SEQ = 4, 32


class Logits(nn.Module):
    """Returns only the logits: no attention mask, no cache, fixed positions."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids):
        b, t = input_ids.shape
        position_ids = torch.arange(t, dtype=torch.int64, device=input_ids.device).unsqueeze(0).expand(b, t)
        return self.lm(input_ids=input_ids, position_ids=position_ids, use_cache=False,
                       return_dict=False)[0]


def build():
    """The model with the committed weights (train_ref.py rebuilds it too)."""
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=64, intermediate_size=172, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, vocab_size=VOCAB,
                         max_position_embeddings=64, rms_norm_eps=1e-5, use_cache=False,
                         tie_word_embeddings=False, attn_implementation="eager")
    return Logits(LlamaForCausalLM(config))


def main():
    model = build()
    rng = np.random.default_rng(0)
    input_ids, labels = make_batch(rng, BATCH, SEQ)
    export_model(__file__, model, {"input_ids": input_ids}, ["logits"], {"y": labels})


if __name__ == "__main__":
    main()

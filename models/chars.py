"""Character-level tokens for the zoo's language models (vocabulary of 96).

Token i < 95 is chr(32 + i) (printable ASCII), token 95 is a newline.
make_batch() cuts `batch` windows of seq+1 characters from a fixed text at
offsets drawn from a numpy Generator; input_ids are the first seq characters,
the target labels the next-token shift (the last seq characters).
"""
import numpy as np

VOCAB = 96

TEXT = """\
loom is an ahead-of-time schedule compiler for training and running neural networks.
It reads an ONNX model, a description of the machine and training settings, and writes
a standalone C program that trains or runs that model within a memory budget, as fast
as the machine allows. Between the two, its optimizer decides for every tensor whether
it is kept, recomputed, offloaded to host memory or stored in fewer bits, and, across
GPUs, how the model is split into pipeline stages and how many microbatches flow.
The quick brown fox jumps over the lazy dog; 0123456789 (){}[]<>=+-*/%&|^~!?@#$_'"`\\
"""


def encode(text):
    ids = []
    for ch in text:
        if ch == "\n":
            ids.append(95)
        elif 32 <= ord(ch) < 127:
            ids.append(ord(ch) - 32)
        else:
            raise ValueError(f"character {ch!r} is outside the vocabulary")
    return np.array(ids, dtype=np.int64)


def decode(ids):
    return "".join("\n" if i == 95 else chr(32 + int(i)) for i in ids)


def make_batch(rng, batch, seq):
    data = encode(TEXT)
    starts = rng.integers(0, len(data) - seq - 1, size=batch)
    windows = np.stack([data[s:s + seq + 1] for s in starts])
    return windows[:, :-1].copy(), windows[:, 1:].copy()

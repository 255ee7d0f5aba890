"""Makes the .npy files that tests/unit/test_rt_npy.c reads, so that the runtime's
reader is checked against files numpy itself wrote (and its writer against numpy's
bytes). Run from anywhere with numpy 1.26: .venv/bin/python tests/unit/data/make_npy.py
The files are small and committed; rerun only to change them."""
import os

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))


def path(name):
    return os.path.join(here, name)


def save(name, a):
    np.save(path(name), a)


# readable arrays: one per dtype family, with the shapes that need care
save("np_f32_2x3.npy", np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5)
save("np_f64_scalar.npy", np.float64(3.25))
save("np_i64_0x4.npy", np.zeros((0, 4), dtype=np.int64))
save("np_f16_3.npy", np.array([1.0, -2.0, 0.5], dtype=np.float16))
save("np_b1_2x2.npy", np.array([[True, False], [False, True]]))
save("np_i8_4.npy", np.array([-128, -1, 0, 127], dtype=np.int8))
save("np_u32_2x1x2.npy", np.array([0, 1, 2**32 - 1, 7], dtype=np.uint32).reshape(2, 1, 2))
save("np_i64_rank8.npy", np.arange(2, dtype=np.int64).reshape(1, 1, 1, 1, 1, 1, 1, 2))

# the newer header formats, written explicitly
with open(path("np_u8_v2.npy"), "wb") as f:
    np.lib.format.write_array(f, np.arange(10, dtype=np.uint8), version=(2, 0))
with open(path("np_i16_v3.npy"), "wb") as f:
    np.lib.format.write_array(f, np.array([[-300, 2], [3, 30000]], dtype=np.int16), version=(3, 0))

# files the reader must refuse with a clear message
save("np_fortran.npy", np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
save("np_bigendian.npy", np.arange(4, dtype=">f4"))
save("np_unicode.npy", np.array(["ab", "cd"]))
save("np_complex.npy", np.array([1 + 2j], dtype=np.complex64))
with open(path("np_f32_2x3.npy"), "rb") as f:
    whole = f.read()
with open(path("np_truncated.npy"), "wb") as f:
    f.write(whole[:-3])

#!/usr/bin/env python3
"""make_seeds.py - write the seed corpus of the fuzz harnesses (no numpy needed).

    python3 tests/fuzz/make_seeds.py [tests/fuzz/corpus]

corpus/npy: small valid .npy files (every supported dtype, format versions 1, 2
and 3, Fortran order, a scalar, an empty array) and a few broken ones.
corpus/problem: records in fuzz_problem.c's layout describing valid problems
(dense and packed, with and without the optional inputs, host and device
paths) and a few invalid ones. The fuzzers start from these and keep what
they find in a directory of their own.
"""
import os
import struct
import sys

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")


def npy(descr, shape, data, fortran=False, major=1):
    shape_txt = "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
    d = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, "True" if fortran else "False", shape_txt)
    pre = 10 if major == 1 else 12
    hlen = len(d) + 1
    pad = (64 - (pre + hlen) % 64) % 64
    hlen += pad
    head = b"\x93NUMPY" + bytes([major, 0])
    head += struct.pack("<H", hlen) if major == 1 else struct.pack("<I", hlen)
    return head + d.encode() + b" " * pad + b"\n" + data


def count(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def floats(n, fmt="<f"):
    return b"".join(struct.pack(fmt, (i * 0.37) % 2.0 - 1.0) for i in range(n))


npy_seeds = {
    "f4_2x3": npy("<f4", (2, 3), floats(6)),
    "f4_1x2x3x4": npy("<f4", (1, 2, 3, 4), floats(24)),
    "f2_4": npy("<f2", (4,), floats(4, "<e")),
    "i4_5": npy("<i4", (5,), struct.pack("<5i", 0, 1, -1, 7, 2**31 - 1)),
    "f8_2x2": npy("<f8", (2, 2), floats(4, "<d")),
    "i8_3": npy("<i8", (3,), struct.pack("<3q", 0, -1, 2**40)),
    "f4_scalar": npy("<f4", (), floats(1)),
    "f4_empty": npy("<f4", (0, 3), b""),
    "f4_fortran_2x3": npy("<f4", (2, 3), floats(6), fortran=True),
    "f4_fortran_2x3x4": npy("<f4", (2, 3, 4), floats(24), fortran=True),
    "f4_v2": npy("<f4", (3,), floats(3), major=2),
    "f4_v3": npy("<f4", (2, 2), floats(4), major=3),
    "f4_nobyteorder": npy("f4", (2,), floats(2)),
    "f4_8dims": npy("<f4", (1, 1, 1, 1, 1, 1, 2, 2), floats(4)),
    "bad_truncated": npy("<f4", (2, 3), floats(5)),
    "bad_bigendian": npy(">f4", (2,), floats(2)),
    "bad_negative": npy("<f4", (-1, 2), b""),
    "bad_magic": b"\x93NUMPZ\x01\x00\x04\x00{}\n",
}

# fuzz_problem.c's record
F_HOST, F_VARLEN, F_LSE, F_BIAS, F_ALIBI = 1, 2, 32, 64, 128
F2_KL, F2_CAUSAL, F2_WINDOW = 1, 2, 4


def record(flags=0, flags2=0, scale=0.0, softcap=0.0, wl=0, wr=0, align=0, variant=0, tensors=None,
           alibi_off=0, kl_off=0, total_q=0, total_k=0, cuq_off=0, cuk_off=0,
           kl=(0,) * 8, alibi=(0.0,) * 8, cu_q=(0,) * 9, cu_k=(0,) * 9):
    b = struct.pack("<BBffiibb", flags, flags2, scale, softcap, wl, wr, align, variant)
    for t in tensors:
        dtype, shape, strides, off = t
        b += struct.pack("<b4q4qQ", dtype, *shape, *strides, off)
    b += struct.pack("<QQqqQQ", alibi_off, kl_off, total_q, total_k, cuq_off, cuk_off)
    b += struct.pack("<8i", *kl) + struct.pack("<8f", *alibi) + struct.pack("<9i", *cu_q) + struct.pack("<9i", *cu_k)
    assert len(b) == 642, len(b)
    return b


def T(shape, dtype=0, strides=(0, 0, 0, 0), off=0):
    return (dtype, shape, strides, off)


B, HQ, HKV, NQ, NK, D, DV = 2, 4, 2, 5, 7, 8, 6
dense = [T((B, HQ, NQ, D)), T((B, HKV, NK, D)), T((B, HKV, NK, DV)), T((B, HQ, NQ, DV)), T((B, HQ, NQ, 1)),
         T((B, 1, NQ, NK))]
packed = [T((B, HQ, NQ, D)), T((B, HKV, NK, D)), T((B, HKV, NK, DV)), T((B, HQ, NQ, DV)), T((B, HQ, NQ, 1)),
          T((0, 0, 0, 0))]
strided = [T((B, HQ, NQ, D), 0, (NQ * HQ * D, D, HQ * D, 1), 12), T((B, HKV, NK, D), 0, (0, NK * D, D, 1)),
           T((B, HKV, NK, DV), 0, (HKV * NK * DV, NK * DV, DV, 1), 8),
           T((B, HQ, NQ, DV), 0, (HQ * NQ * DV, DV, HQ * DV, 1), 64), T((B, HQ, NQ, 1), 0, (HQ * NQ, NQ, 1, 0), 4),
           T((1, HQ, 1, NK), 0, (0, NK, 0, 1))]
half = [T((1, 2, 3, 16), 1), T((1, 1, 9, 16), 1), T((1, 1, 9, 16), 1), T((1, 2, 3, 16), 0), T((1, 2, 3, 1)),
        T((0, 0, 0, 0))]
problem_seeds = {
    "dense_plain": record(tensors=dense),
    "dense_all": record(F_LSE | F_BIAS | F_ALIBI, F2_KL | F2_CAUSAL | F2_WINDOW, 0.3, 2.5, 3, 1, 1, 0, dense,
                        kl=(NK, 3) + (0,) * 6, alibi=(0.1, 0.2, 0.3, 0.4) + (0.0,) * 4),
    "dense_all_host": record(F_HOST | F_LSE | F_BIAS | F_ALIBI, F2_KL | F2_CAUSAL, 0.0, 0.0, 0, 0, 1, 0, dense,
                             kl=(NK, 0) + (0,) * 6, alibi=(0.1, 0.2, 0.3, 0.4) + (0.0,) * 4),
    "strided": record(F_LSE | F_BIAS, 0, 0.0, 0.0, 0, 0, 0, 3, strided),
    "varlen": record(F_VARLEN | F_LSE, F2_CAUSAL, tensors=packed, total_q=8, total_k=11,
                     cu_q=(0, 3, 8) + (0,) * 6, cu_k=(0, 7, 11) + (0,) * 6),
    "varlen_host": record(F_HOST | F_VARLEN | F_LSE, F2_WINDOW, 0.5, 0.0, 2, -1, 1, 0, packed, total_q=8,
                          total_k=11, cu_q=(0, 3, 8) + (0,) * 6, cu_k=(0, 7, 11) + (0,) * 6),
    "f16_host": record(F_HOST | F_LSE, tensors=half),
    "host_alias": record(F_HOST | (1 << 2), tensors=dense),
    "bad_heads": record(tensors=[T((B, 3, NQ, D))] + dense[1:]),
    "bad_overlap": record(tensors=dense[:3] + [T((B, HQ, NQ, DV), 0, (HQ * NQ * DV, NQ * DV, 1, 1))] + dense[4:]),
    "bad_overflow": record(tensors=[T((2**31 - 1,) * 4)] + dense[1:]),
}

for sub, seeds in (("npy", npy_seeds), ("problem", problem_seeds)):
    d = os.path.join(out, sub)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
print("seeds: %d npy, %d problem in %s" % (len(npy_seeds), len(problem_seeds), out))

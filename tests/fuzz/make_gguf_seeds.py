#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_gguf (tests/fuzz/corpus/gguf/) with the `gguf` package:
small valid files (every metadata value type, nested arrays, each supported tensor type,
v2 header, custom alignment) and a few must-reject ones. Deterministic; rerun to refresh."""
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "gguf")
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(7)


def write(name, types, align=None, version=3, meta=True):
    p = os.path.join(out, name)
    w = gguf.GGUFWriter(p, arch="llama")
    if align:
        w.add_custom_alignment(align)
    if meta:
        w.add_uint8("a", 1); w.add_int8("b", -1); w.add_uint16("c", 2); w.add_int16("d", -2)
        w.add_uint32("e", 3); w.add_int32("f", -3); w.add_float32("g", 0.5); w.add_bool("h", True)
        w.add_string("i", "s"); w.add_uint64("j", 4); w.add_int64("k", -4); w.add_float64("l", 0.25)
        w.add_array("m", [1, 2]); w.add_array("n", ["x", "yz"]); w.add_array("o", [[1], [2, 3]])
    for k, qt in enumerate(types):
        be, bb = gguf.GGML_QUANT_SIZES[qt]
        raw = rng.integers(0, 256, size=(1, bb * (1 if be > 1 else 32)), dtype=np.uint8)
        w.add_tensor("t%d" % k, raw, raw_shape=raw.shape, raw_dtype=qt)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    if version == 2:
        b = bytearray(open(p, "rb").read()); b[4] = 2; open(p, "wb").write(bytes(b))
    return p


write("valid_meta_only", [])
write("valid_basic", [Q.F32, Q.F16, Q.BF16, Q.Q8_0])
write("valid_legacy_quants", [Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1], align=64)
write("valid_kquants", [Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K], meta=False)
write("valid_v2", [Q.Q8_0], version=2)
b = open(write("reject_truncated_src", [Q.Q4_K]), "rb").read()
os.remove(os.path.join(out, "reject_truncated_src"))
open(os.path.join(out, "reject_truncated"), "wb").write(b[:-40])  # into the tensor data
open(os.path.join(out, "reject_magic"), "wb").write(b"GGUX" + b[4:])
print("wrote", len(os.listdir(out)), "seeds to", out)

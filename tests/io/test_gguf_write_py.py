#!/usr/bin/env python3
"""cpt's GGUF quantizers (cpt_ggml_quant, via `test_gguf_write quant`) against the `gguf`
package's gguf.quants.quantize (llama.cpp's reference quantizers in numpy): F16, BF16 and
Q8_0 bit for bit on random values over 12 decades, rounding ties (x.5 multiples of the Q8_0
step), fp16 subnormals and overflow, all-zero blocks and signed zeros.
Tolerance: none (bit-exact bytes).
"""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from skiputil import skip  # noqa: E402

try:
    import numpy as np
    from gguf import GGMLQuantizationType as Q
    from gguf.quants import quantize
except ImportError as e:
    skip(f"oracle missing: {e}")

build = os.path.dirname(os.environ.get("CPT_BIN", "build/cpt"))
helper = os.path.join(build, "tests", "test_gguf_write")
if not os.path.exists(helper):
    helper = os.path.join(build, "test_gguf_write")
if not os.path.exists(helper):
    skip(f"helper {helper} not built")

rng = np.random.default_rng(7)
blocks = []
for dec in range(-8, 5):  # 1e-8 .. 1e4: fp16 subnormal scales through large ones
    blocks.append(rng.standard_normal(32 * 8).astype(np.float32) * np.float32(10.0**dec))
ties = np.zeros(32 * 4, np.float32)
for b in range(4):  # amax = 127 -> d = 1: every value k + 0.5 is an exact rounding tie
    v = np.arange(32, dtype=np.float32) - 16.5 + b
    v[0] = 127.0
    ties[32 * b:32 * b + 32] = v
blocks.append(ties)
special = np.zeros(64, np.float32)
special[32:] = [-0.0, 0.0, 65504.0, 65520.0, 1e5, -1e5, 6e-8, 3e-8, 1e-40, -1e-40] + [0.1 * i for i in range(22)]
blocks.append(special)
x = np.concatenate(blocks)

tmp = tempfile.mkdtemp(dir=os.environ.get("CPT_TMP"))
fin = os.path.join(tmp, "x.f32")
x.tofile(fin)
fails = 0
for name, qt in (("f16", Q.F16), ("bf16", Q.BF16), ("q8_0", Q.Q8_0)):
    fout = os.path.join(tmp, name + ".bin")
    r = subprocess.run([helper, "quant", name, fin, fout], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"FAIL: {name}: helper failed: {r.stderr}")
        fails += 1
        continue
    ours = np.fromfile(fout, np.uint8)
    ref = np.asarray(quantize(x.reshape(-1, 32), qt)).view(np.uint8).reshape(-1)
    if ours.shape != ref.shape or not np.array_equal(ours, ref):
        nd = int((ours != ref).sum()) if ours.shape == ref.shape else -1
        print(f"FAIL: {name}: {nd} of {ref.size} bytes differ from gguf.quants.quantize")
        fails += 1
    else:
        print(f"{name}: {x.size} values, {ref.size} bytes identical to gguf.quants.quantize")
sys.exit(1 if fails else 0)

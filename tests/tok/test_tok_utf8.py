#!/usr/bin/env python3
"""cpt_tok_utf8_sanitize vs Python's bytes.decode("utf-8", errors="replace").

Random byte strings biased towards near-valid UTF-8 (lead bytes, continuation bytes,
surrogates, overlongs, > U+10FFFF, truncations) plus every 1- and 2-byte string
starting with a non-ASCII byte. Output bytes and the replacement count must match;
Python's count is (U+FFFD in output) - (U+FFFD already in the input).
"""
import os
import random
import struct
import subprocess
import sys

BIN = os.path.join(os.path.dirname(os.environ["CPT_BIN"]), "tests", "test_tok_batch")
TMP = os.environ.get("CPT_TMP", "/tmp")
rng = random.Random(7)
PIECES = [b"a", b" ", b"\x80", b"\xbf", b"\xc0", b"\xc1", b"\xc2", b"\xdf", b"\xe0", b"\xe0\xa0",
          b"\xed", b"\xed\xa0", b"\xed\x9f\xbf", b"\xef\xbf\xbd", b"\xf0", b"\xf0\x90", b"\xf0\x9f\x98",
          b"\xf0\x9f\x98\x80", b"\xf4\x8f\xbf\xbf", b"\xf4\x90", b"\xf5", b"\xff", b"\xe2\x82\xac", b"\x00"]
cases = [bytes([a]) for a in range(128, 256)]
cases += [bytes([a, b]) for a in range(0xC0, 0x100) for b in (0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0)]
for _ in range(3000):
    cases.append(b"".join(rng.choice(PIECES) for _ in range(rng.randint(0, 12))))
for _ in range(300):
    cases.append(bytes(rng.randrange(256) for _ in range(rng.randint(0, 64))))

inp, outp = os.path.join(TMP, "tok_utf8_in.bin"), os.path.join(TMP, "tok_utf8_out.bin")
with open(inp, "wb") as f:
    for c in cases:
        f.write(struct.pack("<I", len(c)) + c)
r = subprocess.run([BIN, "--sanitize", inp, outp])
if r.returncode:
    print("FAIL: helper exited %d" % r.returncode)
    sys.exit(1)
data = open(outp, "rb").read()
pos = bad = 0
for c in cases:
    (n,) = struct.unpack_from("<I", data, pos)
    got = data[pos + 4:pos + 4 + n]
    (rep,) = struct.unpack_from("<I", data, pos + 4 + n)
    pos += 8 + n
    want_s = c.decode("utf-8", errors="replace")
    want = want_s.encode("utf-8")
    want_rep = want_s.count("\ufffd") - c.count(b"\xef\xbf\xbd")
    if got != want or rep != want_rep:
        bad += 1
        if bad <= 5:
            print("MISMATCH %r: cpt %r (%d), python %r (%d)" % (c, got, rep, want, want_rep))
print("utf8: %d byte strings compared, %d mismatched" % (len(cases), bad))
sys.exit(1 if bad or pos != len(data) else 0)

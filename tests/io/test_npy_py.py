#!/usr/bin/env python3
"""Cross-check cpt's .npy writer/reader with NumPy: np.load reads what C wrote (values,
shape, dtype, and numpy's own header check), and C reads what np.save wrote (C order,
0-d, empty, version 2.0 via np.lib.format.write_array). Uses build/tests/test_npy."""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from skiputil import skip  # noqa: E402  (77 locally, a failure under CI=true)

try:
    import numpy as np
except ImportError as e:
    skip(str(e))

FAILS = CHECKS = 0


def check(cond, what):
    global FAILS, CHECKS
    CHECKS += 1
    if not cond:
        FAILS += 1
        print(f"FAIL: {what}", file=sys.stderr)


def helper():
    cands = []
    if os.environ.get("CPT_BIN"):
        cands.append(os.path.join(os.path.dirname(os.environ["CPT_BIN"]), "tests", "test_npy"))
    if os.environ.get("CPT_SRC"):
        cands.append(os.path.join(os.environ["CPT_SRC"], "build", "tests", "test_npy"))
    for c in cands:
        if os.access(c, os.X_OK):
            return c
    print(f"FAIL: test_npy helper not found in {cands}", file=sys.stderr)
    sys.exit(1)


def c_read(bin_, path):
    r = subprocess.run([bin_, "read", path], capture_output=True, text=True)
    if r.returncode:
        return None
    lines = r.stdout.splitlines()
    nd, shape, numel = lines[0].split(" ")
    shape = () if shape == "-" else tuple(int(x) for x in shape.split(","))
    vals = np.array([float.fromhex(x) for x in lines[1:]], dtype=np.float64).astype(np.float32)
    return int(nd), shape, int(numel), vals


def main():
    b = helper()
    with tempfile.TemporaryDirectory(dir=os.environ.get("CPT_TMP")) as tmp:
        p = os.path.join(tmp, "c.npy")
        r = subprocess.run([b, "write", p], capture_output=True, text=True)
        check(r.returncode == 0, f"C write failed: {r.stderr}")
        a = np.load(p)
        want = ((np.arange(30) - 10) / 8).astype(np.float32).reshape(3, 5, 2)
        check(a.dtype == np.dtype("<f4") and a.shape == (3, 5, 2), f"np.load: {a.dtype} {a.shape}")
        check(np.array_equal(a, want), "np.load values differ")
        with open(p, "rb") as fh:
            check(np.lib.format.read_magic(fh) == (1, 0), "not version 1.0")

        rng = np.random.default_rng(0)
        cases = {
            "m": rng.standard_normal((4, 7)).astype(np.float32),
            "t": np.asfortranarray(rng.standard_normal((3, 5)).astype(np.float32)).T,  # saved C-order
            "s": np.float32(2.5).reshape(()),
            "e": np.zeros((0, 3), np.float32),
            "sp": np.array([np.inf, -np.inf, 1e-45, -0.0, 3.4e38], np.float32),
        }
        for name, arr in cases.items():
            q = os.path.join(tmp, name + ".npy")
            arr = np.array(arr, order="C")  # (ascontiguousarray would make 0-d arrays 1-d)
            np.save(q, arr)
            got = c_read(b, q)
            check(got is not None, f"{name}: C rejected np.save output")
            if got:
                nd, shape, numel, vals = got
                check(nd == arr.ndim and shape == arr.shape and numel == arr.size, f"{name}: shape {shape}")
                check(np.array_equal(vals.view(np.uint32), arr.reshape(-1).view(np.uint32)),
                      f"{name}: values differ")
        q = os.path.join(tmp, "v2.npy")
        with open(q, "wb") as fh:
            np.lib.format.write_array(fh, cases["m"], version=(2, 0))
        got = c_read(b, q)
        check(got is not None and np.array_equal(got[3].reshape(4, 7), cases["m"]), "version 2.0 file")
        q = os.path.join(tmp, "f8.npy")
        np.save(q, np.zeros(3))
        check(c_read(b, q) is None, "C accepted a float64 .npy")
        q = os.path.join(tmp, "fo.npy")
        np.save(q, np.asfortranarray(np.zeros((2, 3), np.float32)))
        check(c_read(b, q) is None, "C accepted a Fortran-order .npy")
    print(f"test_npy_py: {CHECKS} checks, {FAILS} failed", file=sys.stderr)
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())

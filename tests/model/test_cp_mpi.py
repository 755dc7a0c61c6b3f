#!/usr/bin/env python3
"""Context parallelism under Open MPI: tests/model/test_cp.c (ring attention against the float64
definition, a model step's loss and every gradient on the ring against one process) at
np = 2, 3 and 4, which runs context groups of 2, 3, 4, and at np = 4 two groups of 2 side by
side (data x context parallel)."""
import os, subprocess, sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from skiputil import skip  # noqa: E402
import mpiutil  # noqa: E402

BIN = os.environ.get("CPT_BIN")
if not BIN or not os.path.exists(BIN):
    skip("CPT_BIN not built")
test = os.path.join(os.path.dirname(BIN), "tests", "test_cp")
if not os.path.exists(test):
    skip(test + " not built")
mpiutil.mpirun()
fails = 0
for n, groups in ((2, 1), (3, 1), (4, 2)):
    r = subprocess.run(mpiutil.cmd(n, [test]), env=mpiutil.env(), capture_output=True, text=True, timeout=900)
    out = r.stdout + r.stderr
    ok = r.returncode == 0 and out.count("(mpi): ") == n and "0 failed over all ranks" in out and \
        f"{groups} ring group sizes" in out
    print(("ok   " if ok else "FAIL ") + f"np={n}: exit {r.returncode}: {out.strip()[-1500:]}", flush=True)
    fails += not ok
sys.exit(1 if fails else 0)

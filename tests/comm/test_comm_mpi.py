#!/usr/bin/env python3
"""The communication layer under Open MPI: tests/comm/test_comm.c (rank-order sums that are
bit-identical on every rank, reduce-scatter, all-gather, broadcast, sendrecv ring) at
np = 1, 2, 3, 4; and a rank that calls abort() ends the whole job non-zero within 30 s with a
message naming the rank, while the other ranks wait in a barrier."""
import os, subprocess, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from skiputil import skip  # noqa: E402
import mpiutil  # noqa: E402

BIN = os.environ.get("CPT_BIN")
if not BIN or not os.path.exists(BIN):
    skip("CPT_BIN not built")
test = os.path.join(os.path.dirname(BIN), "tests", "test_comm")
if not os.path.exists(test):
    skip(test + " not built")
mpiutil.mpirun()
fails = 0
def check(cond, what):
    global fails
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    fails += not cond

for n in (1, 2, 3, 4):
    r = subprocess.run(mpiutil.cmd(n, [test]), env=mpiutil.env(), capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    check(r.returncode == 0 and out.count("(mpi): ") == n and "0 failed over all ranks" in out,
          f"np={n}: exit {r.returncode}: {out.strip()[-600:]}")

t0 = time.time()
r = subprocess.run(mpiutil.cmd(3, [test, "--abort-rank", "1"]), env=mpiutil.env(), capture_output=True, text=True, timeout=120)
dt = time.time() - t0
check(r.returncode != 0 and dt < 30 and "rank 1 of 3 stops the job" in r.stderr,
      f"abort on rank 1 ends the job: exit {r.returncode} after {dt:.1f} s: {r.stderr.strip()[-300:]}")
sys.exit(1 if fails else 0)

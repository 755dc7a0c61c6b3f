"""skiputil.py: the one rule for skipping a Python test (the C twin is TEST_SKIP in testutil.h).

A test that cannot run (no ../shared data, an oracle package missing, no cpt binary) exits
77, which CTest reports as skipped, printing why.  With CI=true in the environment a skip
is a failure instead (exit 1): CI claims to run every test, so a missing prerequisite
there is a broken CI machine, not a pass.  A test that skipped only *part* of its work
calls skip_part() and finishes with finish(): it then reports skipped (or, in CI,
failed), never passed.

Not a test itself (CTest only picks up tests/<module>/test_*.py); import it with
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
"""
import os
import sys

SKIP = 77
_parts = []  # reasons for the parts skipped so far


def in_ci():
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def skip(why):
    """Exit 77 (skipped) locally; exit 1 under CI=true. Never returns."""
    if in_ci():
        print("FAIL (CI=true, so a skip is a failure): %s" % why, flush=True)
        sys.exit(1)
    print("SKIP: %s" % why, flush=True)
    sys.exit(SKIP)


def skip_part(why):
    """Record that one part of the test could not run; the test keeps going."""
    _parts.append(why)
    print("SKIP (part): %s" % why, flush=True)


def finish(failed):
    """Exit 1 if anything failed, else skip if any part was skipped, else 0."""
    if failed:
        sys.exit(1)
    if _parts:
        skip("%d part(s) skipped: %s" % (len(_parts), "; ".join(_parts)))
    sys.exit(0)

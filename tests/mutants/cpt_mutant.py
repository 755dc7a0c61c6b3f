#!/usr/bin/env python3
"""cpt_mutant.py: the real cpt with one deliberate defect, to test the tests.

test_mutants.py runs a test with CPT_BIN pointing here, CPT_REAL_BIN at the real binary
and CPT_MUTANT naming one defect of MUTANTS; the test that owns that behaviour must then
fail.  Each defect is the bug an earlier version of that test could not see.  The wrapper
runs the real command and changes only what the defect names, so everything else the
test checks still passes and the failure it reports is the one under test.
"""
import json
import os
import re
import subprocess
import sys

MUTANTS = {
    "no_suggestion": "recipe errors keep the bad key but drop the 'nearest valid key is ...' suggestion",
    "missing_score": "`cpt score` is gone from the dispatcher (exit 2, unknown command)",
    "chat_mask_no_eot": "cpt data chat leaves the end-of-turn token after each answer out of the loss mask",
    "chat_mask_header": "cpt data chat also trains on the token before each answer (the role header's end)",
}


def main():
    real = os.environ["CPT_REAL_BIN"]
    mut = os.environ.get("CPT_MUTANT", "")
    if mut not in MUTANTS:
        sys.stderr.write("cpt_mutant.py: CPT_MUTANT=%r is not one of %s\n" % (mut, ", ".join(MUTANTS)))
        return 2
    args = sys.argv[1:]
    if mut == "missing_score" and args[:1] == ["score"]:
        sys.stderr.write("cpt: unknown command 'score'\n")
        return 2
    p = subprocess.run([real] + args, capture_output=True, text=True)
    out, err = p.stdout, p.stderr
    if mut == "no_suggestion":
        err = re.sub(r"[;,]?\s*(HINT: )?(the )?nearest valid key is \S+", "", err)
    if mut.startswith("chat_mask") and args[:2] == ["data", "chat"]:
        lines = []
        for line in out.splitlines():
            try:
                o = json.loads(line)
            except ValueError:
                lines.append(line)
                continue
            m = o.get("mask")
            if isinstance(m, list):
                for k in range(len(m)):
                    if mut == "chat_mask_no_eot" and m[k] == 1 and (k + 1 == len(m) or m[k + 1] == 0):
                        m[k] = 0
                    if mut == "chat_mask_header" and m[k] == 0 and k + 1 < len(m) and m[k + 1] == 1:
                        m[k] = 1
            lines.append(json.dumps(o))
        out = "\n".join(lines) + ("\n" if lines else "")
    sys.stdout.write(out)
    sys.stderr.write(err)
    return p.returncode


if __name__ == "__main__":
    sys.exit(main())

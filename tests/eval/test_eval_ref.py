#!/usr/bin/env python3
"""test_eval_ref.py: `cpt eval` on the real stories260K model equals an independent reference
(tests/eval/evalref.py: lm-eval's task definitions and HFLM's log-likelihood, scored with
transformers in fp32) on the first 25 items of every built-in task: per item the same choice
picked (acc and acc_norm), every choice's log-likelihood within 1e-4 + 1e-6 |ll|, the same LAMBADA greedy
verdicts and perplexity, the same acc / acc_norm / standard errors; and with 2-shot prompts
(cpt's few-shot indices, the reference's own prompt assembly) on three tasks.
cpt-test: needs-oracle
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evalref  # noqa: E402
from evalref import ou  # noqa: E402

LIMIT = 25


def main():
    ou.cpt_bin()
    model = os.path.join(ou.shared(), "data", "models", "stories260K-hf")
    data = os.path.join(ou.shared(), "data", "eval")
    for p in (model, data):
        if not os.path.isdir(p):
            ou.skip("%s not found (set CPT_SHARED)" % p)
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        ou.skip("oracle missing: %s" % e)
    ou.require_commands("eval")
    ck = ou.Checker("test_eval_ref")
    evalref.check_model(ck, model, data, list(evalref.TASKS), LIMIT, ou.tmpdir("eval_ref"), "stories260K",
                        fewshot_tasks=("arc_easy", "winogrande", "hellaswag"))
    ck.finish()


if __name__ == "__main__":
    main()

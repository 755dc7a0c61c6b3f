#!/usr/bin/env python3
"""test_eval_ref.py: `cpt eval` on the real stories260K model equals an independent reference
(tests/eval/evalref.py: lm-eval's task definitions and HFLM's log-likelihood, scored with
transformers in fp32) on the first 25 items of every built-in task: per item the same choice
picked (acc and acc_norm), every choice's log-likelihood within 1e-4 + 1e-6 |ll|, the same LAMBADA greedy
verdicts and perplexity, the same acc / acc_norm / standard errors; and with 2-shot prompts
(cpt's few-shot indices, the reference's own prompt assembly) on three tasks. The fictional_LEVEL:FILE form (a file of the dataset's form, here documents
5-7 of it) scores that file's probes: the reference on the same documents, the label
"fictional_gen:NAME", and a missing file / an empty path refused naming them.
cpt-test: needs-oracle
"""
import json
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
    file_form(ck, model, data)
    ck.finish()


def file_form(ck, model, data):
    tmp = ou.tmpdir("eval_ref_fk")
    with open(os.path.join(data, "..", "knowledge-injection", "fictional-knowledge", "fictional_knowledge.json")) as f:
        docs = json.load(f)[5:8]
    # the reference reads DATA/../knowledge-injection/...: a data tree holding only the subset
    fake = os.path.join(tmp, "tree", "eval")
    sub = os.path.join(tmp, "tree", "knowledge-injection", "fictional-knowledge")
    os.makedirs(fake, exist_ok=True)
    os.makedirs(sub, exist_ok=True)
    path = os.path.join(sub, "fictional_knowledge.json")
    with open(path, "w") as f:
        json.dump(docs, f)
    out, items = os.path.join(tmp, "fk.json"), os.path.join(tmp, "fk.items.jsonl")
    p = ou.run_cpt(["eval", "--model", model, "--tasks", "fictional_gen:" + path, "--batch", 3, "--out", out, "--items", items])
    if not ck.check(p.returncode == 0, "cpt eval fictional_gen:FILE: exit %d: %s" % (p.returncode, p.stderr[-600:])):
        return
    with open(out) as f:
        tasks = json.load(f)["tasks"]
    ck.check(list(tasks) == ["fictional_gen:fictional_knowledge"], "fictional_gen:FILE labelled %s" % list(tasks))
    its = list(evalref.read_jsonl(items))
    ck.check(len(its) == 15 and all(it["task"] == "fictional_gen:fictional_knowledge" for it in its), "15 probes of 3 documents: %d" % len(its))
    if tasks.get("fictional_gen:fictional_knowledge"):
        evalref.compare(ck, evalref.Scorer(model), "fictional_gen", fake, its, tasks["fictional_gen:fictional_knowledge"], "stories260K-file")
    for bad, what in (("fictional_mem:" + os.path.join(tmp, "none.json"), "none.json"), ("fictional_mem:", "no file")):
        p = ou.run_cpt(["eval", "--model", model, "--tasks", bad])
        ck.check(p.returncode != 0 and what in p.stderr, "%s refused naming %s: %d %s" % (bad, what, p.returncode, p.stderr[-300:]))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""test_eval_cli.py: `cpt eval` as a user meets it: --help lists the options the README row
names; an unknown task is exit 2 with the list of built-in tasks; a malformed generic JSONL
line is an error naming file:line with a HINT, before any model is loaded (a bad --model then
does not matter); a missing data directory is named; a generic file in letter mode scores
with the letters as continuations; --out JSON has every field the README promises.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.environ.get("CPT_SRC", os.path.join(os.path.dirname(__file__), "..", "..")),
                                "tests", "oracle"))
import oracle_util as ou  # noqa: E402


def main():
    ou.cpt_bin()
    ou.require_commands("eval")
    tmp = ou.tmpdir("eval_cli")
    ck = ou.Checker("test_eval_cli")
    p = ou.run_cpt(["eval", "--help"])
    ck.check(p.returncode == 0, "--help exit %d" % p.returncode)
    for opt in ("--model", "--tasks", "--limit", "--fewshot", "--batch", "--out", "--items", "--data-dir", "--letters"):
        ck.check(opt in p.stdout, "--help lacks %s" % opt)

    p = ou.run_cpt(["eval", "--model", "/nonexistent", "--tasks", "no_such_task"])
    ck.check(p.returncode == 2 and "hellaswag" in p.stderr and "HINT" in p.stderr,
             "unknown task: exit %d, %r" % (p.returncode, p.stderr[-300:]))
    bad = os.path.join(tmp, "bad.jsonl")
    with open(bad, "w") as f:
        f.write('{"query": "a", "choices": ["b", "c"], "gold": 0}\n{"query": "a", "choices": ["b", "c"], "gold": 5}\n')
    p = ou.run_cpt(["eval", "--model", "/nonexistent", "--tasks", bad])
    ck.check(p.returncode != 0 and (bad + ":2:") in p.stderr and "HINT" in p.stderr,
             "malformed line: exit %d, %r" % (p.returncode, p.stderr[-300:]))
    p = ou.run_cpt(["eval", "--model", "/nonexistent", "--tasks", "arc_easy", "--data-dir", os.path.join(tmp, "none")])
    ck.check(p.returncode != 0 and os.path.join(tmp, "none") in p.stderr and "--data-dir" in p.stderr,
             "missing data dir: exit %d, %r" % (p.returncode, p.stderr[-300:]))

    model = os.path.join(ou.shared(), "data", "models", "stories260K-hf")
    if not os.path.isdir(model):
        ou.skip_part("%s not found: the scoring half" % model)
        ck.finish()
    good = os.path.join(tmp, "good.jsonl")
    with open(good, "w") as f:
        for q, g in (("Which is two?", 1), ("Which is one?", 0), ("Which is three?", 2)):
            f.write(json.dumps({"query": q, "choices": ["one", "two", "three"], "gold": g}) + "\n")
    out, items = os.path.join(tmp, "out.json"), os.path.join(tmp, "items.jsonl")
    p = ou.run_cpt(["eval", "--model", model, "--tasks", good, "--letters", "--out", out, "--items", items])
    if ck.check(p.returncode == 0, "letters: exit %d %r" % (p.returncode, p.stderr[-300:])):
        r = json.load(open(out))["tasks"]["good"]
        for k in ("acc", "acc_stderr", "acc_norm", "acc_norm_stderr", "n", "items_per_s"):
            ck.check(k in r, "--out lacks %s" % k)
        ck.check(r["n"] == 3, "n %s" % r["n"])
        its = [json.loads(l) for l in open(items)]
        # letter continuations are one character each, so acc_norm picks what acc picks
        ck.check(all(it["pred"] == it["pred_norm"] for it in its) and len(its) == 3, "letters: %s" % its)
        ck.check("| good | 3 |" in p.stdout, "table row missing: %r" % p.stdout)
    ck.finish()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""test_compare.py: `cpt compare BASE TUNED` on stories260K (base) and a randomly initialised
model of the same shape (tuned, `cpt init`), 20 items of arc_easy, winogrande, lambada_openai.
Oracle: the per-item verdicts of `cpt eval --items` for each model (themselves checked against
transformers by test_eval_ref.py), with the scores (acc_norm where the task has one), the
paired delta, its standard error (statistics.stdev of the differences / sqrt(n)) and the
verdict (delta < -budget) recomputed here; compare.svg parses as XML with one bar per task;
comparing a model with itself gives delta 0, stderr 0, verdict kept. A qa:FILE task (exact match of
greedy answers; gold answers planted from the base model's own replies on half the items) gives the
per-item exact matches of cpt eval --items for both models, and their paired delta.
"""
import json
import math
import os
import statistics
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.environ.get("CPT_SRC", os.path.join(os.path.dirname(__file__), "..", "..")),
                                "tests", "oracle"))
import oracle_util as ou  # noqa: E402

TASKS = ["arc_easy", "winogrande", "lambada_openai"]
NORM = {"arc_easy": True, "winogrande": False, "lambada_openai": False}
LIMIT, BUDGET = 20, 0.05


def items(ck, model, data, tmp, tag):
    path = os.path.join(tmp, tag + ".items.jsonl")
    p = ou.run_cpt(["eval", "--model", model, "--tasks", ",".join(TASKS), "--limit", LIMIT, "--data-dir", data,
                    "--items", path])
    ck.check(p.returncode == 0, "%s: cpt eval exit %d: %s" % (tag, p.returncode, p.stderr[-400:]))
    hits = {t: [] for t in TASKS}
    for line in open(path):
        it = json.loads(line)
        if it["task"] == "lambada_openai":
            hits[it["task"]].append(float(it["greedy"][0]))
        else:
            hits[it["task"]].append(float((it["pred_norm"] if NORM[it["task"]] else it["pred"]) == it["gold"]))
    return hits


def main():
    ou.cpt_bin()
    base = os.path.join(ou.shared(), "data", "models", "stories260K-hf")
    data = os.path.join(ou.shared(), "data", "eval")
    for p in (base, data):
        if not os.path.isdir(p):
            ou.skip("%s not found (set CPT_SHARED)" % p)
    ou.require_commands("eval", "compare", "init")
    tmp = ou.tmpdir("eval_compare")
    ck = ou.Checker("test_compare")
    tuned = os.path.join(tmp, "random")
    p = ou.run_cpt(["init", "--config", os.path.join(base, "config.json"), "--out", tuned, "--seed", "3",
                    "--tokenizer", base])
    ck.check(p.returncode == 0, "cpt init exit %d: %s" % (p.returncode, p.stderr[-400:]))
    hb, ht = items(ck, base, data, tmp, "base"), items(ck, tuned, data, tmp, "tuned")
    out = os.path.join(tmp, "cmp")
    p = ou.run_cpt(["compare", base, tuned, "--tasks", ",".join(TASKS), "--limit", LIMIT, "--budget", BUDGET,
                    "--data-dir", data, "--out-dir", out])
    if not ck.check(p.returncode == 0, "cpt compare exit %d: %s" % (p.returncode, p.stderr[-400:])):
        ck.finish()
    ou.log(p.stdout.rstrip())
    js = json.load(open(os.path.join(out, "compare.json")))
    any_forgot = False
    for t in TASKS:
        r = js["tasks"].get(t)
        if not ck.check(r is not None, "task %s missing from compare.json" % t):
            continue
        a, b = hb[t], ht[t]
        d = [y - x for x, y in zip(a, b)]
        delta, se = statistics.mean(d), statistics.stdev(d) / math.sqrt(len(d))
        ck.check(r["n"] == len(a) == LIMIT, "%s: n %s" % (t, r["n"]))
        ck.check(abs(r["base"] - statistics.mean(a)) < 1e-12 and abs(r["tuned"] - statistics.mean(b)) < 1e-12,
                 "%s: base %s tuned %s, from the items %s %s" % (t, r["base"], r["tuned"], statistics.mean(a), statistics.mean(b)))
        ck.check(abs(r["delta"] - delta) < 1e-12 and abs(r["delta_stderr"] - se) < 1e-12,
                 "%s: delta %s +- %s, want %s +- %s" % (t, r["delta"], r["delta_stderr"], delta, se))
        forgot = delta < -BUDGET
        any_forgot |= forgot
        ck.check(r["verdict"] == ("forgot" if forgot else "kept"), "%s: verdict %s (delta %s)" % (t, r["verdict"], delta))
        ck.check(r["metric"] == ("acc_norm" if NORM[t] else "acc"), "%s: metric %s" % (t, r["metric"]))
        ck.check(("| %s |" % t) in p.stdout, "%s: no Markdown row" % t)
    ck.check(js["verdict"] == ("forgot" if any_forgot else "kept"), "overall verdict %s" % js["verdict"])
    svg = ET.parse(os.path.join(out, "compare.svg")).getroot()
    rects = [e for e in svg.iter() if e.tag.endswith("rect")]
    ck.check(len(rects) == 1 + len(TASKS), "compare.svg: %d rects, want background + %d bars" % (len(rects), len(TASKS)))
    ck.check(os.path.exists(os.path.join(out, "compare.md")), "compare.md missing")

    # QA (exact match of greedy answers): gold answers made from the base model's own replies on
    # half the items (a first cpt eval run), so the base scores there and the random model does not
    qa_draft, qa = os.path.join(tmp, "qa_draft.jsonl"), os.path.join(tmp, "qa.jsonl")
    prompts = ["Once upon a time there was a little", "Lily went to the park and saw a", "Tom had a big red",
               "The sun was shining and the birds", "One day, a cat named", "Mom said it was time to",
               "The dog ran to the", "She was very happy because"]
    with open(qa_draft, "w") as f:
        for q in prompts:
            f.write(json.dumps({"question": q, "answers": ["zzz"]}) + "\n")

    def qa_items(model, path, tag):
        it = os.path.join(tmp, tag + ".qa.items.jsonl")
        p = ou.run_cpt(["eval", "--model", model, "--tasks", "qa:" + path, "--max-new", 6, "--items", it])
        ck.check(p.returncode == 0, "%s: cpt eval qa exit %d: %s" % (tag, p.returncode, p.stderr[-400:]))
        return [json.loads(l) for l in open(it)] if p.returncode == 0 else []
    draft = qa_items(base, qa_draft, "draft")
    with open(qa, "w") as f:
        for i, q in enumerate(prompts):
            gold = draft[i]["response"].strip() if i % 2 == 0 and i < len(draft) and draft[i]["response"].strip() else "zzz"
            f.write(json.dumps({"question": q, "answers": [gold]}) + "\n")
    qb = [x["exact_match"] for x in qa_items(base, qa, "qa-base")]
    qt = [x["exact_match"] for x in qa_items(tuned, qa, "qa-tuned")]
    ck.check(len(qb) == len(qt) == len(prompts) and sum(qb) >= 2, "base exact matches %s (want >= 2 of the planted ones)" % qb)
    p = ou.run_cpt(["compare", base, tuned, "--tasks", "qa:" + qa, "--max-new", 6, "--budget", BUDGET, "--out-dir", out + "-qa"])
    if ck.check(p.returncode == 0, "compare qa exit %d: %s" % (p.returncode, p.stderr[-400:])) and qb and qt:
        r = json.load(open(os.path.join(out + "-qa", "compare.json")))["tasks"]["qa.jsonl"]
        d = [y - x for x, y in zip(qb, qt)]
        ck.check(r["metric"] == "exact_match" and r["n"] == len(prompts), "qa row %s" % r)
        ck.check(abs(r["base"] - statistics.mean(qb)) < 1e-12 and abs(r["tuned"] - statistics.mean(qt)) < 1e-12
                 and abs(r["delta"] - statistics.mean(d)) < 1e-12
                 and abs(r["delta_stderr"] - statistics.stdev(d) / math.sqrt(len(d))) < 1e-12,
                 "qa: compare %s, from cpt eval's items base %s tuned %s" % (r, qb, qt))
        ck.check(r["verdict"] == ("forgot" if statistics.mean(d) < -BUDGET else "kept"), "qa verdict %s" % r["verdict"])

    p = ou.run_cpt(["compare", base, base, "--tasks", "winogrande", "--limit", 10, "--data-dir", data,
                    "--out-dir", out + "-self"])
    if ck.check(p.returncode == 0, "self compare exit %d: %s" % (p.returncode, p.stderr[-300:])):
        r = json.load(open(os.path.join(out + "-self", "compare.json")))
        w = r["tasks"]["winogrande"]
        ck.check(w["delta"] == 0 and w["delta_stderr"] == 0 and r["verdict"] == "kept", "self compare: %s" % w)
    p = ou.run_cpt(["compare", base, "--tasks", "winogrande"])
    ck.check(p.returncode == 2 and "HINT" in p.stderr, "one model: exit %d, %r" % (p.returncode, p.stderr[-200:]))
    ck.finish()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""test_qa_ref.py: `cpt eval` QA tasks (greedy generation, exact match and token F1) on the real
SmolLM2-135M-Instruct (scripts/get-smollm2.sh) against an independent reference written from
lm-eval's generate_until and the SQuAD v1.1 evaluation script, not from cpt's code:

  prompt  = "".join(ctx_j.rstrip() + " " + answers_j[0] + "\\n\\n" for the shots) + ctx.rstrip()
            (the shot indices are cpt's, from --items; checked distinct, in range, not the item)
  reply   = transformers' greedy generate (fp32) on tokenizer(prompt, add_special_tokens=False),
            at most MAX_NEW tokens, stopping at eos, decoded with skip_special_tokens and cut
            before the first "until" string (triviaqa: "\\n", ".", ","; the others "\\n")
  scores  = max over the gold answers of exact_match / f1 after normalize_answer.

  1. triviaqa (8 items, 2-shot), jeopardy (4, 0-shot), pubmedqa (2, 0-shot, ~400-token abstracts)
     and a user file qa:FILE.jsonl ({"question", "answers"}): every reply equal, every per-item
     score equal (1e-12), the task means and sample-std/sqrt(n) errors equal (1e-9);
  2. a malformed user file is refused naming file:line before the model loads.
cpt-test: needs-oracle
cpt-test: slow
"""
import collections
import json
import math
import os
import re
import string
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("CPT_SRC", os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "oracle"))
import oracle_util as ou  # noqa: E402

MAX_NEW = 24
RUNS = [("triviaqa", 8, 2), ("jeopardy", 4, 0), ("pubmedqa", 2, 0)]
UNTIL = {"triviaqa": ["\n", ".", ","]}
FILES = {"triviaqa": "triviaqa_sm_sub.jsonl", "jeopardy": "jeopardy_all.jsonl", "pubmedqa": "pubmed_qa_labeled.jsonl"}
USER = [{"question": "What is the capital of France?", "answers": ["Paris"]},
        {"question": "What colour is the sky on a clear day?", "answers": ["blue", "Blue sky"]},
        {"question": "How many legs does a spider have?", "answers": ["eight", "8"]}]


# ---- the SQuAD v1.1 evaluation script's definitions ----
def normalize_answer(s):
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def f1_score(pred, gold):
    p, g = normalize_answer(pred).split(), normalize_answer(gold).split()
    same = sum((collections.Counter(p) & collections.Counter(g)).values())
    if same == 0:
        return 0.0
    pr, rc = same / len(p), same / len(g)
    return 2 * pr * rc / (pr + rc)


def exact_match(pred, gold):
    return float(normalize_answer(pred) == normalize_answer(gold))


def items_of(path, task):
    """(context, answers) per line, as the task defines them (cpt/qa.h's field order)."""
    out = []
    for line in open(path, encoding="utf-8"):
        if not line.strip():
            continue
        d = json.loads(line)
        if "question" in d:
            ctx = "Question: %s\nAnswer:" % d["question"]
        else:
            ctx = d["context"] + ("\nAnswer:" if task == "jeopardy" else "")
        ans = []
        for f in ("answer", "continuation", "answers", "aliases"):
            v = d.get(f)
            for a in ([v] if isinstance(v, str) else (v or [])):
                if a and a not in ans:
                    ans.append(a)
        out.append((ctx.rstrip(), ans))
    return out


def mean_se(x):
    m = sum(x) / len(x)
    sd = math.sqrt(sum((v - m) ** 2 for v in x) / (len(x) - 1)) if len(x) > 1 else 0.0
    return m, sd / math.sqrt(len(x))


def main():
    cpt = ou.cpt_bin()
    data = os.path.join(ou.shared(), "data", "eval")
    if not os.path.isdir(data):
        ou.skip("%s not found (set CPT_SHARED)" % data)
    try:
        import torch
        from transformers import AutoTokenizer
    except ImportError as e:
        ou.skip("oracle missing: %s" % e)
    r = subprocess.run([os.path.join(SRC, "scripts", "get-smollm2.sh")], capture_output=True, text=True,
                       env=dict(os.environ, CPT_BIN=cpt))
    if r.returncode != 0 or not r.stdout.strip():
        ou.skip("SmolLM2 could not be fetched/converted (scripts/get-smollm2.sh): " + r.stderr.strip()[-400:])
    model_dir = r.stdout.strip().splitlines()[-1]
    tmp = ou.tmpdir("qa_ref")
    ck = ou.Checker("test_qa_ref")
    user = os.path.join(tmp, "user.jsonl")
    with open(user, "w") as f:
        for u in USER:
            f.write(json.dumps(u) + "\n")
    tok = AutoTokenizer.from_pretrained(model_dir)
    hf = ou.hf_load(model_dir)
    eos = sorted({hf.config.eos_token_id, tok.eos_token_id} - {None})
    for task, limit, shots in RUNS + [("qa:" + user, 3, 1)]:
        out, itp = os.path.join(tmp, "r.json"), os.path.join(tmp, "items.jsonl")
        p = subprocess.run([cpt, "eval", "--model", model_dir, "--tasks", task, "--limit", str(limit), "--fewshot", str(shots),
                            "--max-new", str(MAX_NEW), "--out", out, "--items", itp], capture_output=True, text=True, timeout=1800)
        name = "user" if task.startswith("qa:") else task
        if not ck.check(p.returncode == 0, "%s: cpt eval runs: %s" % (name, p.stderr[-600:])):
            continue
        res = list(json.load(open(out))["tasks"].values())[0]
        its = [json.loads(l) for l in open(itp)]
        ref_items = items_of(user if task.startswith("qa:") else os.path.join(data, "llm-foundry", FILES[task]), task)
        until = UNTIL.get(task, ["\n"])
        ems, f1s = [], []
        ck.check(len(its) == limit, "%s: %d items written" % (name, len(its)))
        for i, it in enumerate(its):
            sh = it["shots"]
            ck.check(len(sh) == shots and len(set(sh)) == shots and i not in sh and all(0 <= s < len(ref_items) for s in sh),
                     "%s %d: %d distinct few-shot indices other than the item: %s" % (name, i, shots, sh))
            ctx, golds = ref_items[i]
            ck.check(it["answers"] == golds, "%s %d: gold answers %s" % (name, i, golds[:4]))
            prompt = "".join(ref_items[s][0] + " " + ref_items[s][1][0] + "\n\n" for s in sh) + ctx
            ids = tok(prompt, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                g = hf.generate(torch.tensor([ids]), max_new_tokens=MAX_NEW, do_sample=False, eos_token_id=eos,
                                attention_mask=torch.ones(1, len(ids), dtype=torch.long), pad_token_id=eos[0])
            reply = tok.decode(g[0, len(ids):], skip_special_tokens=True)
            for u in until:
                reply = reply.split(u)[0]
            ck.check(reply == it["response"], "%s %d: transformers' reply %r, cpt's %r" % (name, i, reply, it["response"]))
            em = max(exact_match(reply, a) for a in golds)
            f1 = max(f1_score(reply, a) for a in golds)
            ck.check(abs(em - it["exact_match"]) < 1e-12 and abs(f1 - it["f1"]) < 1e-12,
                     "%s %d: em %s f1 %s, cpt %s %s" % (name, i, em, f1, it["exact_match"], it["f1"]))
            ems.append(em), f1s.append(f1)
        if len(ems) == limit:
            (m1, s1), (m2, s2) = mean_se(ems), mean_se(f1s)
            ck.check(abs(res["exact_match"] - m1) < 1e-9 and abs(res["exact_match_stderr"] - s1) < 1e-9 and
                     abs(res["f1"] - m2) < 1e-9 and abs(res["f1_stderr"] - s2) < 1e-9 and res["n"] == limit and
                     res["acc"] == res["exact_match"],
                     "%s: em %.4f+-%.4f f1 %.4f+-%.4f, reference %.4f+-%.4f %.4f+-%.4f" %
                     (name, res["exact_match"], res["exact_match_stderr"], res["f1"], res["f1_stderr"], m1, s1, m2, s2))
        ou.log("%s: em %.3f f1 %.3f over %d items" % (name, res["exact_match"], res["f1"], res["n"]))
    bad = os.path.join(tmp, "bad.jsonl")
    open(bad, "w").write('{"question": "x", "answers": ["y"]}\n{"question": "z"}\n')
    p = subprocess.run([cpt, "eval", "--model", os.path.join(tmp, "no-such-model"), "--tasks", "qa:" + bad],
                       capture_output=True, text=True, timeout=60)
    ck.check(p.returncode != 0 and bad + ":2:" in p.stderr and "no gold answer" in p.stderr and "HINT" in p.stderr,
             "a bad QA file is refused naming file:line before the model loads: " + p.stderr.strip()[-300:])
    ck.finish()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""test_eval_long.py: `cpt eval-long` on the real SmolLM2-135M-Instruct (scripts/get-smollm2.sh),
against an independent reference: transformers (fp32, eager) and the HF tokenizer, with the
prompts rebuilt here from methods.md §8.1 (not from cpt's code).

  1. passkey at lengths 512 and 1024, depths 0 / 0.5 / 1: a model whose answer is known. SmolLM2
     (8K context) copies a 5-digit key from 1K tokens back, so every prompt must be answered;
     the prompt this file builds (Landmark Attention's text, the most filler repetitions that
     leave 10 answer tokens) has exactly cpt's prompt_tokens, and transformers' greedy answer
     (10 tokens) decodes to cpt's answer.
  2. needle at 512 tokens in a wikitext haystack, depths 0 and 1: answered, and the answer names
     Dolores Park.
  3. loss by position: one 512-token window of Tiny Shakespeare, buckets [0,64), [64,128),
     [128,256), [256,512): each bucket's mean NLL within 2e-4 of transformers' per-token cross-
     entropy on the same window (fp32 both; sums in another order), the token count equal.
  4. the SVG heat map has one cell per (test, depth, length) with its correct/trials counts.
  5. bad input: a length too short for the prompt and a missing --haystack are refused with a HINT.
cpt-test: needs-oracle
cpt-test: slow
"""
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("CPT_SRC", os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "oracle"))
import oracle_util as ou  # noqa: E402

TASK = ("There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. "
        "I will quiz you about the important information there.")
GARBAGE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
QUESTION = "What is the pass key? The pass key is"


def passkey_prompt(n_prefix, n_suffix, key):
    needle = f"The pass key is {key}. Remember it. {key} is the pass key."
    return "\n".join([TASK, " ".join([GARBAGE] * n_prefix), needle, " ".join([GARBAGE] * n_suffix), QUESTION])


def fit_passkey(tok, length, max_new, depth, key):
    """the most repetitions n with len(tokens) + max_new <= length, split at round(depth * n)"""
    def ids(n):
        p = int(depth * n + 0.5)  # round half up (Python's round() would go to even)
        return tok(passkey_prompt(p, n - p, key))["input_ids"]
    n = 0
    while len(ids(n + 1)) + max_new <= length:
        n += 1
    return n, ids(n)


def main():
    cpt = ou.cpt_bin()
    ou.require_commands("eval-long")
    try:
        import numpy as np
        import torch
        from transformers import AutoTokenizer
    except ImportError as e:
        ou.skip("oracle missing: %s" % e)
    r = subprocess.run([os.path.join(SRC, "scripts", "get-smollm2.sh")], capture_output=True, text=True,
                       env=dict(os.environ, CPT_BIN=cpt))
    if r.returncode != 0 or not r.stdout.strip():
        ou.skip("SmolLM2 could not be fetched/converted (scripts/get-smollm2.sh): " + r.stderr.strip()[-400:])
    model_dir = r.stdout.strip().splitlines()[-1]
    general = os.path.join(ou.shared(), "data", "corpora", "general")
    hay, shakes = os.path.join(general, "wikitext2_raw_test.txt"), os.path.join(general, "tinyshakespeare.txt")
    if not (os.path.isfile(hay) and os.path.isfile(shakes)):
        ou.skip("%s not found (set CPT_SHARED)" % general)
    tmp = ou.tmpdir("eval_long")
    ck = ou.Checker("test_eval_long")
    out = os.path.join(tmp, "r.json")
    p = subprocess.run([cpt, "eval-long", "--model", model_dir, "--lengths", "512,1024", "--depths", "0,0.5,1", "--trials", "1",
                        "--tests", "passkey,ppl", "--ppl-text", shakes, "--ppl-windows", "1", "--bucket", "64", "--out", out],
                       capture_output=True, text=True, timeout=1800)
    if not ck.check(p.returncode == 0, "eval-long runs: " + p.stderr[-600:]):
        ck.finish()
    res = json.loads(p.stdout)
    ck.check(json.load(open(out)) == res, "--out holds the JSON printed on stdout")
    tok = AutoTokenizer.from_pretrained(model_dir)
    hf = ou.hf_load(model_dir)
    # 1. passkey
    items = res["passkey"]["items"]
    ck.check(len(items) == 6, "6 passkey prompts (2 lengths x 3 depths x 1 trial): %d" % len(items))
    for it in items:
        tag = "passkey length %d depth %g" % (it["length"], it["depth"])
        ck.check(it["correct"] and str(it["key"]) in it["answer"], "%s: SmolLM2 answers %r for key %d" % (tag, it["answer"], it["key"]))
        n, ids = fit_passkey(tok, it["length"], res["passkey"]["max_new_tokens"], it["depth"], it["key"])
        ck.check(len(ids) == it["prompt_tokens"], "%s: the reference prompt (%d repetitions) has %d tokens, cpt's %d"
                 % (tag, n, len(ids), it["prompt_tokens"]))
        with torch.no_grad():
            g = hf.generate(torch.tensor([ids]), max_new_tokens=res["passkey"]["max_new_tokens"], do_sample=False,
                            attention_mask=torch.ones(1, len(ids), dtype=torch.long), pad_token_id=tok.eos_token_id)
        ans = tok.decode(g[0, len(ids):], skip_special_tokens=True)
        ck.check(ans == it["answer"], "%s: transformers' greedy answer %r, cpt's %r" % (tag, ans, it["answer"]))
    ck.check(res["passkey"]["accuracy_overall"] == 1.0, "passkey accuracy 1.0: %s" % res["passkey"]["accuracy_overall"])
    # 3. loss by position against transformers' per-token cross-entropy on the same window
    ids = tok(open(shakes, encoding="utf-8").read())["input_ids"]
    for pl in res["ppl"]:
        L = pl["length"]
        x = torch.tensor([ids[:L + 1]])
        with torch.no_grad():
            logits = hf(x[:, :L]).logits[0].double()
        nll = torch.nn.functional.cross_entropy(logits, x[0, 1:L + 1], reduction="none").numpy()
        ck.check(pl["windows"] == 1 and pl["tokens"] == L, "ppl length %d: 1 window of %d tokens (%s)" % (L, L, pl["tokens"]))
        edges = [0, 64, 128, 256, 512, 1024][: 2 + [64, 128, 256, 512, 1024].index(L)]
        got = [(b["lo"], b["hi"]) for b in pl["buckets"]]
        ck.check(got == list(zip(edges[:-1], edges[1:])), "ppl length %d: buckets %s" % (L, got))
        for b in pl["buckets"]:
            ref = float(np.mean(nll[b["lo"]:b["hi"]]))
            ck.check(abs(b["loss"] - ref) <= 2e-4 and b["tokens"] == b["hi"] - b["lo"],
                     "ppl length %d bucket [%d,%d): cpt %.6f, transformers %.6f" % (L, b["lo"], b["hi"], b["loss"], ref))
        ck.check(abs(pl["loss"] - float(nll.mean())) <= 2e-4, "ppl length %d: mean loss %.6f vs %.6f" % (L, pl["loss"], nll.mean()))
    # 4. the heat map
    svg = open(os.path.join(tmp, "r.svg"), encoding="utf-8").read()
    cells = re.findall(r'<rect data-length="(\d+)" data-depth="([0-9.e-]+)" data-correct="(\d+)" data-trials="(\d+)"', svg)
    ck.check(len(cells) == 6 and all(c[2] == c[3] == "1" for c in cells), "heat map: 6 cells, each 1/1: %s" % cells)
    ck.check('data-chart="loss-by-position"' in svg and svg.count("<path data-series=") == 2, "SVG has the loss-by-position chart, 2 lines")
    # 2. needle
    p = subprocess.run([cpt, "eval-long", "--model", model_dir, "--lengths", "512", "--depths", "0,1", "--trials", "1", "--tests", "needle",
                        "--haystack", hay, "--quiet"], capture_output=True, text=True, timeout=900)
    if ck.check(p.returncode == 0, "needle run: " + p.stderr[-400:]):
        nd = json.loads(p.stdout)["needle"]
        for it in nd["items"]:
            ck.check(it["correct"] and "Dolores Park" in it["answer"] and it["prompt_tokens"] + nd["max_new_tokens"] <= 512,
                     "needle depth %g: %d tokens, answer %r" % (it["depth"], it["prompt_tokens"], it["answer"]))
    # 5. bad input
    p = subprocess.run([cpt, "eval-long", "--model", model_dir, "--lengths", "40"], capture_output=True, text=True, timeout=300)
    ck.check(p.returncode != 0 and "HINT" in p.stderr and "--lengths" in p.stderr, "length 40 refused: " + p.stderr.strip()[-300:])
    p = subprocess.run([cpt, "eval-long", "--model", model_dir, "--lengths", "512", "--tests", "needle"], capture_output=True, text=True)
    ck.check(p.returncode == 2 and "--haystack" in p.stderr, "needle without a haystack refused: " + p.stderr.strip()[-300:])
    ck.finish()


if __name__ == "__main__":
    main()

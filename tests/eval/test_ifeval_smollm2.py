#!/usr/bin/env python3
"""test_ifeval_smollm2.py: `cpt eval --tasks ifeval` on the real SmolLM2-135M-Instruct
(scripts/get-smollm2.sh) against an independent reference for the generation: the HF
tokenizer's apply_chat_template(add_generation_prompt=True) and transformers' greedy
generate (fp32), decoded with skip_special_tokens.

  1. the first 6 built-in prompts (--limit 6 --max-new 40): cpt's reply to each (--items) is
     exactly transformers' reply (greedy, stopping at <|im_end|>, at most 40 new tokens);
  2. the metrics (--out, 10 significant digits) agree with the items within 1e-9: acc = mean of "every check followed", inst_acc = mean
     over checks, stderr = sample std / sqrt(n); n = 6, n_instructions = their check count;
  3. a user file (ifeval:FILE.jsonl) of one prompt with an unknown rule is refused naming the
     line and the rule, before the model loads.
The rules themselves are tested on hand-labelled replies in tests/eval/test_ifeval.c.
cpt-test: needs-oracle
cpt-test: slow
"""
import json
import math
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("CPT_SRC", os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "oracle"))
import oracle_util as ou  # noqa: E402

N, MAX_NEW = 6, 40


def main():
    cpt = ou.cpt_bin()
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
    tmp = ou.tmpdir("ifeval")
    ck = ou.Checker("test_ifeval_smollm2")
    out, items = os.path.join(tmp, "r.json"), os.path.join(tmp, "items.jsonl")
    p = subprocess.run([cpt, "eval", "--model", model_dir, "--tasks", "ifeval", "--limit", str(N), "--max-new", str(MAX_NEW),
                        "--out", out, "--items", items], capture_output=True, text=True, timeout=3000)
    if not ck.check(p.returncode == 0, "cpt eval --tasks ifeval runs: " + p.stderr[-600:]):
        ck.finish()
    res = json.load(open(out))["tasks"]["ifeval"]
    its = [json.loads(l) for l in open(items)]
    prompts = [json.loads(l) for l in open(os.path.join(SRC, "src", "eval", "ifeval_cpt.jsonl"))][:N]
    ck.check(len(its) == N and [i["id"] for i in its] == [q["id"] for q in prompts], "items: the first %d prompts in order" % N)
    tok = AutoTokenizer.from_pretrained(model_dir)
    hf = ou.hf_load(model_dir)
    for it, q in zip(its, prompts):
        text = tok.apply_chat_template([{"role": "user", "content": q["prompt"]}], tokenize=False, add_generation_prompt=True)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            g = hf.generate(torch.tensor([ids]), max_new_tokens=MAX_NEW, do_sample=False, eos_token_id=tok.eos_token_id,
                            attention_mask=torch.ones(1, len(ids), dtype=torch.long), pad_token_id=tok.eos_token_id)
        ref = tok.decode(g[0, len(ids):], skip_special_tokens=True)
        ck.check(ref == it["response"], "%s: transformers' reply %r, cpt's %r" % (q["id"], ref[:120], it["response"][:120]))
        ck.check(it["checks"] == [c["type"] for c in q["checks"]] and len(it["follows"]) == len(q["checks"]),
                 "%s: one verdict per rule %s" % (q["id"], it["checks"]))
    pl = [float(all(i["follows"])) for i in its]
    il = [float(f) for i in its for f in i["follows"]]

    def mean_se(x):
        m = sum(x) / len(x)
        sd = math.sqrt(sum((v - m) ** 2 for v in x) / (len(x) - 1)) if len(x) > 1 else 0.0
        return m, sd / math.sqrt(len(x))

    (pa, ps), (ia, isd) = mean_se(pl), mean_se(il)
    ck.check(abs(res["acc"] - pa) < 1e-9 and abs(res["acc_stderr"] - ps) < 1e-9 and res["n"] == N,
             "prompt-level acc %s +- %s from the items: %s +- %s" % (res["acc"], res["acc_stderr"], pa, ps))
    ck.check(abs(res["inst_level_strict_acc"] - ia) < 1e-9 and abs(res["inst_level_strict_acc_stderr"] - isd) < 1e-9
             and res["n_instructions"] == len(il), "instruction-level acc %s from the items: %s" % (res["inst_level_strict_acc"], ia))
    bad = os.path.join(tmp, "bad.jsonl")
    open(bad, "w").write('{"id": "x", "prompt": "Say hi.", "checks": [{"type": "lowercase"}]}\n'
                         '{"id": "y", "prompt": "Say hi.", "checks": [{"type": "rhymes"}]}\n')
    p = subprocess.run([cpt, "eval", "--model", os.path.join(tmp, "no-such-model"), "--tasks", "ifeval:" + bad],
                       capture_output=True, text=True, timeout=60)
    ck.check(p.returncode != 0 and bad + ":2:" in p.stderr and 'unknown rule "rhymes"' in p.stderr and "HINT" in p.stderr,
             "a bad rule is refused naming file:line before the model loads: " + p.stderr.strip()[-300:])
    ck.finish()


if __name__ == "__main__":
    main()

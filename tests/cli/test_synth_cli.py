#!/usr/bin/env python3
"""test_synth_cli.py: `cpt synth qa` end to end on the real SmolLM2-135M-Instruct
(scripts/get-smollm2.sh) and two PubMedQA abstracts.

  1. the run succeeds; its summary's counts add up (parsed = kept + every drop reason);
     each output line is {"messages": [user, assistant], "type", "doc", "support"} with
     support >= --min-support, a doc index in range, and no question twice;
  2. the same seed gives the same file (sampling repeats), a different seed may differ;
  3. `cpt data prepare --chat` reads the file: as many conversations in as lines written, none malformed;
  4. bad input is refused and leaves no output (nor OUT.tmp): a malformed line (names
     file:line), an unknown --types entry, a templates file without {document};
     a missing chat template (--chat-template of an empty file is no template) is named.
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


def main():
    cpt = ou.cpt_bin()
    med = os.path.join(ou.shared(), "data", "corpora", "medical", "pubmedqa_ori_pqal.json")
    if not os.path.isfile(med):
        ou.skip("%s not found (set CPT_SHARED)" % med)
    r = subprocess.run([os.path.join(SRC, "scripts", "get-smollm2.sh")], capture_output=True, text=True,
                       env=dict(os.environ, CPT_BIN=cpt))
    if r.returncode != 0 or not r.stdout.strip():
        ou.skip("SmolLM2 could not be fetched/converted (scripts/get-smollm2.sh): " + r.stderr.strip()[-400:])
    model = r.stdout.strip().splitlines()[-1]
    tmp = ou.tmpdir("synth_cli")
    ck = ou.Checker("test_synth_cli")
    docs = os.path.join(tmp, "docs.jsonl")
    items = list(json.load(open(med)).values())[:2]
    with open(docs, "w") as f:
        for it in items:
            f.write(json.dumps({"text": it["QUESTION"] + "\n" + " ".join(it["CONTEXTS"])}) + "\n")
    base = [cpt, "synth", "qa", "--model", model, "--input", docs, "--types", "factual,reasoning", "--per-doc", "2",
            "--max-new", "64", "--max-doc-tokens", "200", "--min-support", "0.5"]

    def run(out, *extra, timeout=1200):
        return subprocess.run(base + ["--out", out] + list(extra), capture_output=True, text=True, timeout=timeout)

    out1, out2 = os.path.join(tmp, "qa1.jsonl"), os.path.join(tmp, "qa2.jsonl")
    p = run(out1, "--seed", "5")
    if not ck.check(p.returncode == 0, "synth qa runs: " + p.stderr[-600:]):
        ck.finish()
    m = re.search(r"pairs parsed (\d+), kept (\d+); dropped: not grounded (\d+), duplicate question (\d+), "
                  r"empty or echoed (\d+), over --per-doc (\d+)", p.stdout)
    ck.check(m is not None, "summary line: " + p.stdout)
    lines = [json.loads(l) for l in open(out1)]
    if m:
        v = list(map(int, m.groups()))
        ck.check(v[0] == sum(v[1:]), "parsed %d = kept + drops %s" % (v[0], v[1:]))
        ck.check(v[1] == len(lines), "kept %d = %d lines written" % (v[1], len(lines)))
    ck.check("2 documents, 4 replies" in p.stdout, "2 documents x 2 types = 4 replies: " + p.stdout.splitlines()[0])
    qs = set()
    for d in lines:
        msg = d.get("messages", [])
        ok = (len(msg) == 2 and msg[0]["role"] == "user" and msg[1]["role"] == "assistant" and msg[0]["content"].strip()
              and msg[1]["content"].strip() and d["type"] in ("factual", "reasoning") and d["doc"] in (0, 1)
              and d["support"] >= 0.5)
        ck.check(ok, "a well-formed pair: %s" % json.dumps(d)[:300])
        ck.check(msg and msg[0]["content"] not in qs, "question not repeated: %s" % (msg[0]["content"] if msg else ""))
        qs.add(msg[0]["content"] if msg else "")
    ck.check(not os.path.exists(out1 + ".tmp"), "no .tmp left after success")
    p2 = run(out2, "--seed", "5")
    ck.check(p2.returncode == 0 and open(out2).read() == open(out1).read(), "the same seed writes the same file")
    if lines:
        shards = os.path.join(tmp, "shards")
        p = subprocess.run([cpt, "data", "prepare", "--chat", "--tokenizer", model, "--input", out1, "--out", shards,
                            "--val-docs", "0", "--quiet"], capture_output=True, text=True, timeout=300)
        st = json.load(open(os.path.join(shards, "stats.json"))) if p.returncode == 0 else {}
        ck.check(p.returncode == 0 and st.get("docs_in") == len(lines) and st.get("malformed") == 0 and 1 <= st.get("kept", 0) <= len(lines),
                 "data prepare --chat reads all %d pairs (none malformed; near-duplicate removal may drop some): %s %s" %
                 (len(lines), {k: st.get(k) for k in ("docs_in", "malformed", "kept")}, p.stderr[-300:]))
    # bad input leaves nothing behind
    bad = os.path.join(tmp, "bad.jsonl")
    open(bad, "w").write('{"text": "one document"}\n{"txt": "no text field"}\n')
    outb = os.path.join(tmp, "qab.jsonl")
    p = subprocess.run(base[:5] + ["--input", bad, "--out", outb, "--max-new", "4"], capture_output=True, text=True, timeout=600)
    ck.check(p.returncode != 0 and bad + ":2:" in p.stderr and "HINT" in p.stderr, "a line without text is named: " + p.stderr[-300:])
    ck.check(not os.path.exists(outb) and not os.path.exists(outb + ".tmp"), "no output after a failed run")
    p = run(outb, "--types", "factual,opinion", timeout=120)
    ck.check(p.returncode != 0 and '"opinion"' in p.stderr and not os.path.exists(outb), "--types opinion refused: " + p.stderr[-200:])
    tp = os.path.join(tmp, "tmpl.json")
    open(tp, "w").write('{"factual": "Ask {n} questions."}')
    p = run(outb, "--templates", tp, timeout=120)
    ck.check(p.returncode != 0 and "{document}" in p.stderr and tp in p.stderr, "a template without {document}: " + p.stderr[-200:])
    ck.finish()


if __name__ == "__main__":
    main()

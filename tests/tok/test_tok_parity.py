#!/usr/bin/env python3
"""Exact-id parity of cpt's tokenizer with Hugging Face `tokenizers` (the oracle).

For every *tokenizer.json under $CPT_SHARED/data/tokenizers, encode documents sampled
from every corpus in $CPT_SHARED/data/corpora plus a hand-made adversarial list, with
and without special tokens, and decode the ids with and without skipping specials.
The C side is test_tok_batch (batch mode, 2 OpenMP threads). Any mismatch fails.
Also runs synthetic variants of GPT-2's file that switch on the options the shipped
files leave off (lstrip/rstrip/single_word added tokens, Split behaviours, Metaspace).
"""
import csv
import io
import json
import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from skiputil import skip  # noqa: E402  (77 locally, a failure under CI=true)

shared = os.environ.get("CPT_SHARED")
if not shared or not os.path.isdir(os.path.join(shared, "data", "tokenizers")):
    skip("CPT_SHARED data not found")
try:
    from tokenizers import Tokenizer
except ImportError:
    skip("tokenizers not installed")

BIN = os.path.join(os.path.dirname(os.environ["CPT_BIN"]), "tests", "test_tok_batch")
TMP = os.environ.get("CPT_TMP", "/tmp")
PER_FILE = int(os.environ.get("CPT_TOK_DOCS_PER_FILE", "30"))
MAX_CHARS = 6000
rng = random.Random(1234)


def corpus_docs():
    root = os.path.join(shared, "data", "corpora")
    docs = []
    for dirpath, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            p = os.path.join(dirpath, f)
            items = []
            if f.endswith(".txt"):
                text = open(p, encoding="utf-8", errors="replace").read()
                items = [d for d in text.split("\n\n") if d.strip()]
            elif f.endswith(".jsonl"):
                for line in open(p, encoding="utf-8"):
                    if line.strip():
                        items.append(json.loads(line).get("text", ""))
            elif f.endswith(".json"):
                data = json.load(open(p, encoding="utf-8"))
                vals = data.values() if isinstance(data, dict) else data
                for rec in vals:
                    for v in (rec.values() if isinstance(rec, dict) else [rec]):
                        if isinstance(v, str):
                            items.append(v)
                        elif isinstance(v, list) and all(isinstance(x, str) for x in v):
                            items.append("\n".join(v))
            elif f.endswith(".csv"):
                rows = list(csv.reader(io.open(p, encoding="utf-8", newline="")))
                for row in rows[1:]:
                    items.extend(x for x in row if x.strip())
            else:
                continue
            items = [x[:MAX_CHARS] for x in items if x]
            if not items:
                continue
            pick = rng.sample(items, min(PER_FILE, len(items)))
            docs.extend(pick)
    return docs


ADVERSARIAL = [
    "", " ", "  ", "\n", "\n\n\n", "\t\t x", "a" * 3000, "A" + "b" * 700 + "C",
    "1234567890123456789", "3.14159 2,718 1e10 0x1F", "   leading and trailing   ",
    "Hello world", "hello World HELLO", " multiple   spaces\there\n\nand\r\nCRLF\r",
    "I'm you're he's we've they'll I'd 'S 'LL 'RE 'VE 'M 'D 'T Don'T IT'S ſ",
    "👨‍👩‍👧‍👦 family, 🏳️‍🌈 flag, 👍🏽 skin tone, 🇫🇷 flag",
    "e\u0301 combining, \u00e9 precomposed, a\u0308\u0304 stack, \u1e9b\u0323",
    "中文分词测试，日本語のテキスト、한국어 텍스트。",
    "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "ไทย ภาษา",
    "control\x00chars\x01\x02\x1b[0m\x7f", "zero\u200bwidth\u200cjoin\u200d\ufeffbom",
    "<|endoftext|>", "a<|endoftext|>b <|endoftext|> c", "<|begin_of_text|>hi<|end_of_text|>",
    "<|im_start|>user\nhi<|im_end|>", "<s>hello</s> <unk> <s> x</s>",
    "<|endoftext|><|endoftext|>", "<|endoftext", "<|reserved_special_token_0|>",
    "    def f(x):\n        return x  # comment\n\n\n", "\u00a0nbsp\u2003em\u3000ideo",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝓂𝒶𝓉𝒽 ＦＵＬＬＷＩＤＴＨ ｶﾀｶﾅ ﬁ ligature",
    "x" + " " * 100 + "y", " " * 50, "\n" * 20 + "end", "!!!???...,,,;;;", "$$$ 100% @#&*",
    "\ud7ff\ue000\uffff\U0010ffff", "İstanbul ΣΊΣΥΦΟΣ straße",
]


def variants():
    """Synthetic tokenizer.json files built from GPT-2's and Mistral's."""
    out = []
    g = json.load(open(os.path.join(shared, "data/tokenizers/gpt2/hf/tokenizer.json")))
    g["truncation"] = None
    def add(name, j):
        p = os.path.join(TMP, "tokvar_" + name + "_tokenizer.json")
        with open(p, "w") as f:
            json.dump(j, f)
        out.append(p)
    j = json.loads(json.dumps(g))
    nxt = max(j["model"]["vocab"].values()) + 1
    for i, (c, ls, rs, sw, sp, nz) in enumerate([
            ("<mask>", True, False, False, True, False), ("[SEP]", False, True, False, True, False),
            ("world", False, False, True, False, False), ("low", False, False, True, False, True),
            ("ab", True, True, False, False, False), ("<|endoftext|>x", False, False, False, True, False)]):
        j["added_tokens"].append({"id": nxt + i, "content": c, "single_word": sw, "lstrip": ls,
                                  "rstrip": rs, "normalized": nz, "special": sp})
    add("gpt2_added", j)
    for beh in ["Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous"]:
        for inv in [False, True]:
            j = json.loads(json.dumps(g))
            j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": "\\s+|[.,!?]"}, "behavior": beh, "invert": inv},
                {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": False}]}
            add("gpt2_split_%s_%d" % (beh, inv), j)
    j = json.loads(json.dumps(g))
    j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"String": "o"}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}]}
    j["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"},
                                                          {"type": "Strip", "strip_left": True, "strip_right": True}]}
    add("gpt2_norm", j)
    m = json.load(open(os.path.join(shared, "data/tokenizers/mistral/tokenizer.json")))
    m["normalizer"] = None
    m["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True}
    m["decoder"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True}
    add("mistral_metaspace", m)
    return out


def main():
    t0 = time.time()
    tok_root = os.path.join(shared, "data", "tokenizers")
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(tok_root) for f in fs
                   if f.endswith("tokenizer.json"))
    files += variants()
    docs = corpus_docs() + ADVERSARIAL
    inp = os.path.join(TMP, "tok_parity_in.json")
    with open(inp, "w") as f:
        json.dump({"texts": docs}, f)
    total = bad = dec_total = dec_bad = 0
    for path in files:
        hf = Tokenizer.from_file(path)
        hf.no_truncation()
        hf.no_padding()
        outp = os.path.join(TMP, "tok_parity_out.json")
        r = subprocess.run([BIN, path, inp, outp], capture_output=True, text=True)
        if r.returncode != 0:
            print("FAIL %s: C side failed: %s" % (path, r.stderr.strip()))
            bad += 1
            continue
        got = json.load(open(outp))
        want_plain = [e.ids for e in hf.encode_batch(docs, add_special_tokens=False)]
        want_spec = [e.ids for e in hf.encode_batch(docs, add_special_tokens=True)]
        nbad = 0
        for i, d in enumerate(docs):
            for kind, want in (("plain", want_plain[i]), ("special", want_spec[i])):
                total += 1
                if got[kind][i] != want:
                    bad += 1
                    nbad += 1
                    if nbad <= 3:
                        k = next((j for j, (a, b) in enumerate(zip(got[kind][i], want)) if a != b),
                                 min(len(want), len(got[kind][i])))
                        print("MISMATCH %s doc %d (%s) at id %d: text %r\n  cpt %s\n  hf  %s" % (
                            os.path.basename(path), i, kind, k, d[max(0, k - 40):k + 40][:120],
                            got[kind][i][max(0, k - 3):k + 5], want[max(0, k - 3):k + 5]))
            for kind, skip in (("dec", False), ("dec_skip", True)):
                dec_total += 1
                # Decode OUR ids with both: decode parity independent of encode parity.
                want = hf.decode(got["special"][i], skip_special_tokens=skip)
                if got[kind][i] != want:
                    dec_bad += 1
                    if dec_bad <= 5:
                        print("DECODE MISMATCH %s doc %d skip=%s:\n  cpt %r\n  hf  %r" % (
                            os.path.basename(path), i, skip, got[kind][i][:200], want[:200]))
        print("%-45s %4d docs, %d id mismatches" % (os.path.relpath(path, TMP) if path.startswith(TMP)
                                                    else os.path.relpath(path, tok_root), len(docs), nbad))
    print("parity: %d tokenizers x %d docs: %d encodings compared, %d mismatched; "
          "%d decodes compared, %d mismatched; %.1f s" % (len(files), len(docs), total, bad,
                                                          dec_total, dec_bad, time.time() - t0))
    return 1 if bad or dec_bad else 0


if __name__ == "__main__":
    sys.exit(main())

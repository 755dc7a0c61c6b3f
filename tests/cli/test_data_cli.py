#!/usr/bin/env python3
"""test_data_cli.py: `cpt data prepare` and `cpt data inspect` end to end.

Round trip: a directory of .txt (blank-line documents) and .jsonl files -> shards; the shard
bytes are parsed here (format in include/cpt/shard.h) and every document must equal HF
`tokenizers` encode(text) + EOS (the independent oracle) for exactly the documents that
should survive (hand-computed: an exact duplicate and a malformed line are dropped), in
input order; `inspect --tokenizer` must print those texts back. Malformed lines are named on
stderr by file:line and --strict makes the first one fatal. Bad options exit 2 naming the
option; a corrupt shard gives an error naming the file and the byte offset.
"""
import json
import os
import shutil
import struct
import sys

sys.path.insert(0, os.path.join(os.environ.get("CPT_SRC", os.path.join(os.path.dirname(__file__), "..", "..")),
                                "tests", "oracle"))
import oracle_util as ou  # noqa: E402


def read_shard(path):
    b = open(path, "rb").read()
    magic, ver, tb, vocab, flags, nd, nt, idx, fsize = struct.unpack_from("<8sIIIIQQQQ", b, 0)
    assert magic == b"CPTSHARD" and fsize == len(b), path
    fmt = "<%d%s" % (nt, "H" if tb == 2 else "I")
    toks = struct.unpack_from(fmt, b, 64)
    off = struct.unpack_from("<%dQ" % (nd + 1), b, idx)
    return [list(toks[off[i]:off[i + 1]]) for i in range(nd)]


def escape(s):
    """The escaping `cpt data inspect` applies to decoded text."""
    res = bytearray()
    for ch in s.encode("utf-8"):
        if ch == 10:
            res += b"\\n"
        elif ch == 9:
            res += b"\\t"
        elif ch in (34, 92):
            res += b"\\" + bytes([ch])
        elif ch < 0x20 or ch == 0x7f:
            res += b"\\x%02x" % ch
        else:
            res.append(ch)
    return res.decode("utf-8")


def main():
    ck = ou.Checker("test_data_cli")
    ou.require_commands("data")
    tokp = os.path.join(ou.shared(), "data", "tokenizers", "gpt2", "hf", "tokenizer.json")
    if not os.path.isfile(tokp):
        ou.skip("no GPT-2 tokenizer at %s" % tokp)
    from tokenizers import Tokenizer
    hf = Tokenizer.from_file(tokp)
    eos = hf.token_to_id("<|endoftext|>")

    d = ou.tmpdir("test_data_cli")
    corpus = os.path.join(d, "corpus")
    shutil.rmtree(corpus, ignore_errors=True)
    os.makedirs(os.path.join(corpus, "sub"))
    with open(os.path.join(corpus, "a.txt"), "w") as f:
        f.write("First paragraph, line one.\nLine two of it.\n\n  \nSecond paragraph: caf\u00e9 \u00fcber.\n\n"
                "First paragraph, line one.\nLine two of it.\n")  # the third is an exact duplicate
    with open(os.path.join(corpus, "sub", "b.jsonl"), "w") as f:
        f.write(json.dumps({"body": "A jsonl document with a custom field."}) + "\n")
        f.write("{broken json\n")
        f.write(json.dumps({"body": "Another one\twith a tab."}) + "\n")
    with open(os.path.join(corpus, "ignored.csv"), "w") as f:
        f.write("not a corpus file\n")
    kept = ["First paragraph, line one.\nLine two of it.", "Second paragraph: caf\u00e9 \u00fcber.",
            "A jsonl document with a custom field.", "Another one\twith a tab."]

    out = os.path.join(d, "out")
    shutil.rmtree(out, ignore_errors=True)
    args = ["data", "prepare", "--tokenizer", tokp, "--input", corpus, "--out", out, "--txt-docs", "blank",
            "--text-field", "body", "--no-filters", "--no-near-dedup", "--val-fraction", "0.5", "--val-docs", "0", "--threads", "2"]
    p = ou.run_cpt(args, timeout=300)  # an explicit --val-docs 0 overrides --val-fraction: no validation split
    ck.check(p.returncode == 0, "prepare exit %d: %s" % (p.returncode, p.stderr[-500:]))
    ck.check("b.jsonl:2: bad_json" in p.stderr, "stderr does not name b.jsonl:2: %r" % p.stderr[-500:])
    ck.check("documents in" in p.stdout and "exact duplicates" in p.stdout, "no summary table: %r" % p.stdout[-500:])
    st = json.load(open(os.path.join(out, "stats.json"))) if p.returncode == 0 else {}
    ck.check(st.get("docs_in") == 6 and st.get("kept") == 4 and st.get("exact_duplicates") == 1
             and st.get("malformed") == 1 and st.get("val_docs") == 0,
             "stats: %s" % {k: st.get(k) for k in ("docs_in", "kept", "malformed", "val_docs")})
    ck.check(st.get("docs_in") == st.get("kept", 0) + st.get("malformed", 0) + st.get("filtered", 0)
             + st.get("exact_duplicates", 0) + st.get("contaminated", 0) + st.get("near_duplicates", 0),
             "accounting identity")
    docs = read_shard(os.path.join(out, "train-00000.shard")) if p.returncode == 0 else []
    ck.check(len(docs) == len(kept), "shard has %d documents, want %d" % (len(docs), len(kept)))
    for i, (got, text) in enumerate(zip(docs, kept)):
        want = hf.encode(text).ids + [eos]
        ck.check(got == want, "doc %d: shard tokens differ from HF encode + EOS" % i)

    p = ou.run_cpt(["data", "inspect", out, "--tokenizer", tokp, "--docs", "10"], timeout=120)
    ck.check(p.returncode == 0, "inspect exit %d: %s" % (p.returncode, p.stderr[-300:]))
    ck.check("docs: 4" in p.stdout and "verify: ok" in p.stdout, "inspect header: %r" % p.stdout[:400])
    for i, text in enumerate(kept):
        line = 'doc %d (%d tokens): "%s"' % (i, len(docs[i]) if i < len(docs) else -1,
                                             escape(text + "<|endoftext|>"))
        ck.check(line in p.stdout, "inspect does not print %r" % line)

    # strict: the first malformed line is fatal and named
    sargs = ["data", "prepare", "--tokenizer", tokp, "--input", corpus, "--out", out + "_strict", "--txt-docs",
             "blank", "--text-field", "body", "--no-filters", "--strict", "--quiet"]
    p = ou.run_cpt(sargs, timeout=300)
    ck.check(p.returncode == 1 and "b.jsonl:2:" in p.stderr and "strict" in p.stderr,
             "--strict: exit %d, stderr %r" % (p.returncode, p.stderr[-300:]))

    # usage errors: exit 2 and the option named
    bad = [(["--val-fraction", "2"], "--val-fraction"), (["--txt-docs", "lines"], "--txt-docs"),
           (["--minhash-bands", "0"], "--minhash-bands"), (["--nfc", "--no-nfc"], "--no-nfc"),
           (["--bogus"], "--bogus")]
    base = ["data", "prepare", "--tokenizer", tokp, "--input", corpus, "--out", out + "_bad"]
    for extra, name in bad:
        p = ou.run_cpt(base + extra, timeout=60)
        ck.check(p.returncode == 2 and name in p.stderr, "%s: exit %d, stderr %r" % (extra, p.returncode, p.stderr[-200:]))
    p = ou.run_cpt(["data", "prepare", "--tokenizer", tokp, "--input", corpus], timeout=60)
    ck.check(p.returncode == 2 and "--out" in p.stderr, "missing --out: exit %d %r" % (p.returncode, p.stderr))
    p = ou.run_cpt(["data", "prepare", "--tokenizer", tokp, "--input", os.path.join(d, "nope*.txt"), "--out", out],
                   timeout=60)
    ck.check(p.returncode == 2 and "nope*.txt" in p.stderr, "no glob match: exit %d %r" % (p.returncode, p.stderr))
    p = ou.run_cpt(["data", "inspect"], timeout=60)
    ck.check(p.returncode == 2, "inspect without PATH: exit %d" % p.returncode)
    p = ou.run_cpt(["data", "frobnicate"], timeout=60)
    ck.check(p.returncode == 2 and "frobnicate" in p.stderr, "unknown subcommand: exit %d" % p.returncode)
    p = ou.run_cpt(["data", "prepare", "--help"], timeout=60)
    for opt in ("--decontaminate", "--val-docs", "--shard-tokens", "--seed", "--threads", "--no-nfc", "--strict",
                "--minhash-rows", "--no-c4", "--no-exact-dedup"):
        ck.check(opt in p.stdout, "prepare --help lacks %s" % opt)

    # corrupt shards: the error names the file and the offset
    src = os.path.join(out, "train-00000.shard")
    if os.path.isfile(src):
        raw = bytearray(open(src, "rb").read())
        cases = {"hdr": (lambda b: b.__setitem__(17, b[17] ^ 0xFF), "offset 60"),  # header CRC catches it
                 "body": (lambda b: b.__setitem__(70, b[70] ^ 0x01), "offset 56"),  # body CRC
                 "cut": (lambda b: b.__delitem__(slice(len(b) - 9, len(b))), "offset")}
        for name, (damage, where) in cases.items():
            b = bytearray(raw)
            damage(b)
            bad_path = os.path.join(d, "bad_%s.shard" % name)
            open(bad_path, "wb").write(bytes(b))
            p = ou.run_cpt(["data", "inspect", bad_path], timeout=60)
            ck.check(p.returncode == 1 and bad_path in p.stderr and where in p.stderr,
                     "corrupt %s: exit %d, stderr %r" % (name, p.returncode, p.stderr[-300:]))
    ck.finish()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Exact-id parity of cpt's SentencePiece (.model) tokenizer with the `sentencepiece`
package (the oracle), and decode parity with sp.decode.

Models: the shipped tokenizer.model files (stories260K tok512, Llama 2, Mistral v1,
Mistral v3 with control and user-defined pieces), the stories260K-hf directory loaded
as a directory (tokenizer.model + tokenizer_config.json), and variants that switch on
what the shipped files leave off: no byte fallback (unknown runs), remove_extra_
whitespaces / add_dummy_prefix / escape_whitespaces flipped, extra user-defined
symbols, UNUSED pieces (resegmentation), and small BPE models trained here with the
nmt_nfkc / nmt_nfkc_cf precompiled charsmaps. Documents: the same corpora sample and
adversarial list as test_tok_parity.py. Encoding runs through test_tok_batch (batch
mode, 2 threads): "plain" must equal sp.encode(text); "special" must equal
[bos] * add_bos + sp.encode(text) + [eos] * add_eos (tokenizer_config.json flags,
LlamaTokenizer defaults add_bos = True, add_eos = False). Must-reject models
(unigram, truncated, duplicate piece) must fail to load with the file named.
"""
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_tok_parity as base  # noqa: E402  (exits 77 itself without CPT_SHARED)

try:
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb
except ImportError:
    base.skip("sentencepiece not installed")

shared = base.shared
TMP = os.path.join(base.TMP, "spm_parity")
BIN = base.BIN
D = os.path.join(shared, "data")
SHIPPED = [
    os.path.join(D, "models/stories260K-hf/tokenizer.model"),
    os.path.join(D, "tokenizers/llama2/tokenizer.model"),
    os.path.join(D, "tokenizers/mistral/tokenizer.model.v1"),
    os.path.join(D, "tokenizers/mistral/mistral_instruct_tokenizer_240323.model.v3"),
]
EXTRA_DOCS = [
    "[INST] hi [/INST]", "[REFERENCE_DOC_3]x[REFERENCE_DOC_12] y", "<0x41><unk><s></s>",
    "\u2581\u2581lead \u2581 mid\u2581\u2581", "   ", "\t tab \t", "a  b   c    d",
    "ab hello world <tag>qqqq \u4e2d\u6587x<tag>", "\u0000\u0001", "\ufb01 \uff21\uff22 \u2460 \u00bd \u212b",
    "caf\u00e9 CAF\u00c9 Stra\u00dfe \u03a3\u03bf\u03c6\u03af\u03b1", "\U0001f600\U0001f600x\U0001f600",
]


def load(path):
    m = pb.ModelProto()
    with open(path, "rb") as f:
        m.ParseFromString(f.read())
    return m


def save(m, name, config=None):
    d = os.path.join(TMP, name)
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, "tokenizer.model")
    with open(p, "wb") as f:
        f.write(m.SerializeToString())
    cfg = os.path.join(d, "tokenizer_config.json")
    if config is not None:
        with open(cfg, "w") as f:
            json.dump(config, f)
    elif os.path.exists(cfg):
        os.remove(cfg)
    return p


def variants(docs):
    out = []
    llama = load(SHIPPED[1])
    m = load(SHIPPED[1])
    del m.pieces[3:259]  # the 256 <0xNN> pieces
    m.trainer_spec.byte_fallback = False
    out.append(save(m, "nobf"))
    for name, (ade, rew, esc) in {"rew": (True, True, True), "nodummy": (False, False, True),
                                  "nodummy_rew": (False, True, True), "noescape": (True, False, False),
                                  "noescape_rew": (True, True, False)}.items():
        m = load(SHIPPED[1])
        m.normalizer_spec.add_dummy_prefix = ade
        m.normalizer_spec.remove_extra_whitespaces = rew
        m.normalizer_spec.escape_whitespaces = esc
        out.append(save(m, name))
    m = load(SHIPPED[1])
    for s in ["<tag>", "hello world", "\u4e2d\u6587x", "\u2581\u2581lead", "qqq"]:
        p = m.pieces.add()
        p.piece, p.score, p.type = s, 0.0, pb.ModelProto.SentencePiece.USER_DEFINED
    out.append(save(m, "user"))
    m = load(SHIPPED[1])
    want = {"\u2581the", "er", "in", "\u2581a", "on", "\u2581t", "at", "en", "\u2581s", "is", "ing"}
    for p in m.pieces:
        if p.piece in want:
            p.type = pb.ModelProto.SentencePiece.UNUSED
    out.append(save(m, "unused"))
    # add_bos / add_eos from tokenizer_config.json
    out.append(save(llama, "cfg_eos", {"add_bos_token": False, "add_eos_token": True}))
    out.append(save(llama, "cfg_both", {"add_bos_token": True, "add_eos_token": True}))
    # small BPE models with a precompiled charsmap, trained on the corpus sample here
    text = os.path.join(TMP, "train.txt")
    with open(text, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(d.replace("\r", " ").replace("\n", " ")[:2000] + "\n")
    for rule, bf in (("nmt_nfkc", True), ("nmt_nfkc_cf", False), ("nfkc", True)):
        prefix = os.path.join(TMP, "trained_" + rule)
        spm.SentencePieceTrainer.train(
            input=text, model_prefix=prefix, model_type="bpe", vocab_size=600, byte_fallback=bf,
            normalization_rule_name=rule, character_coverage=0.995, minloglevel=2,
            user_defined_symbols=["<tag>"], num_threads=1)
        out.append(save(load(prefix + ".model"), "trained_" + rule))
    return out


def must_reject():
    """(model bytes, name): each must fail to load with the file named."""
    m = load(SHIPPED[0])
    m.trainer_spec.model_type = pb.TrainerSpec.UNIGRAM
    uni = m.SerializeToString()
    m = load(SHIPPED[0])
    m.pieces[10].piece = m.pieces[11].piece
    dup = m.SerializeToString()
    m = load(SHIPPED[0])
    m.pieces[0].type = pb.ModelProto.SentencePiece.NORMAL  # no UNKNOWN piece left
    nounk = m.SerializeToString()
    m = load(SHIPPED[0])
    m.normalizer_spec.name = "nmt_nfkc"  # a rule without its charsmap
    nomap = m.SerializeToString()
    good = open(SHIPPED[0], "rb").read()
    return [(uni, "unigram"), (dup, "dup"), (nounk, "nounk"), (nomap, "nomap"),
            (good[:len(good) // 2], "truncated"), (good[:1], "onebyte"), (b"\x0a\xff\xff\xff\xff\x0f", "hugelen")]


def flags(path):
    cfg = os.path.join(os.path.dirname(path), "tokenizer_config.json")
    c = json.load(open(cfg)) if os.path.exists(cfg) else {}
    return c.get("add_bos_token", True), c.get("add_eos_token", False)


def main():
    t0 = time.time()
    shutil.rmtree(TMP, ignore_errors=True)
    os.makedirs(TMP)
    docs = base.corpus_docs() + base.ADVERSARIAL + EXTRA_DOCS
    paths = SHIPPED + [os.path.join(D, "models/stories260K-hf")] + variants(docs)
    inp = os.path.join(TMP, "in.json")
    with open(inp, "w") as f:
        json.dump({"texts": docs}, f)
    total = bad = dec_total = dec_bad = 0
    for path in paths:
        model = path if path.endswith("model") or ".model." in path else os.path.join(path, "tokenizer.model")
        sp = spm.SentencePieceProcessor(model_file=model)
        add_bos, add_eos = flags(model)
        outp = os.path.join(TMP, "out.json")
        r = subprocess.run([BIN, path, inp, outp], capture_output=True, text=True)
        if r.returncode != 0:
            print("FAIL %s: C side failed: %s" % (path, r.stderr.strip()))
            bad += 1
            continue
        got = json.load(open(outp))
        nbad = 0
        for i, d in enumerate(docs):
            plain = sp.encode(d)
            spec = [sp.bos_id()] * add_bos + plain + [sp.eos_id()] * add_eos
            for kind, want in (("plain", plain), ("special", spec)):
                total += 1
                if got[kind][i] != want:
                    bad += 1
                    nbad += 1
                    if nbad <= 3:
                        k = next((j for j, (a, b) in enumerate(zip(got[kind][i], want)) if a != b),
                                 min(len(want), len(got[kind][i])))
                        print("MISMATCH %s doc %d (%s) at id %d: %r\n  cpt %s\n  sp  %s" % (
                            path, i, kind, k, d[:80], got[kind][i][max(0, k - 3):k + 5], want[max(0, k - 3):k + 5]))
            for kind in ("dec", "dec_skip"):  # control pieces decode to "" in sentencepiece
                dec_total += 1
                want = sp.decode(got["special"][i])
                if got[kind][i] != want:
                    dec_bad += 1
                    if dec_bad <= 5:
                        print("DECODE MISMATCH %s doc %d:\n  cpt %r\n  sp  %r" % (
                            path, i, got[kind][i][:200], want[:200]))
        print("%-60s %4d docs, %d id mismatches" % (os.path.relpath(path, os.path.dirname(TMP))
                                                    if path.startswith(TMP) else os.path.relpath(path, D),
                                                    len(docs), nbad))
    rej_bad = 0
    for blob, name in must_reject():
        p = os.path.join(TMP, "reject_" + name + ".model")
        with open(p, "wb") as f:
            f.write(blob)
        r = subprocess.run([BIN, p, inp, os.path.join(TMP, "rej.json")], capture_output=True, text=True)
        ok = r.returncode == 2 and p in r.stderr and "HINT" in r.stderr
        if not ok:
            rej_bad += 1
            print("REJECT FAIL %s: rc %d %s" % (name, r.returncode, r.stderr.strip()[:300]))
        else:
            print("rejected %-10s %s" % (name, r.stderr.strip()[len("load: "):][:150]))
    print("spm parity: %d models x %d docs: %d encodings compared, %d mismatched; %d decodes "
          "compared, %d mismatched; %d must-reject files, %d accepted wrongly; %.1f s" % (
              len(paths), len(docs), total, bad, dec_total, dec_bad, len(must_reject()), rej_bad,
              time.time() - t0))
    return 1 if bad or dec_bad or rej_bad else 0


if __name__ == "__main__":
    sys.exit(main())

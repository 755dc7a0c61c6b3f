#!/usr/bin/env python3
"""tokenizer_config.json flags against transformers (the oracle).

add_bos_token / add_eos_token decide what encode(add_special) wraps around the text
(LlamaTokenizer's rule: [bos] text [eos]), and bos/eos/pad/unk tokens come from the
config. Checked: Mistral's tokenizer.json with its own config and with the flags
flipped, vs AutoTokenizer.from_pretrained(dir) (LlamaTokenizerFast) input_ids; the
special ids of every variant and of the stories260K-hf directory (tokenizer.model +
config, LlamaTokenizer) vs the transformers tokenizer's *_token_id; a config that
asks for an EOS the tokenizer lacks must be refused; sentencepiece ids for the
.model of the same directory with flipped flags. C side: test_tok_batch.
"""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_tok_parity as base  # noqa: E402  (exits 77 itself without CPT_SHARED)

try:
    import sentencepiece as spm
    from transformers import AutoTokenizer
except ImportError:
    base.skip("transformers or sentencepiece not installed")

D = os.path.join(base.shared, "data")
TMP = os.path.join(base.TMP, "tok_config")
# No special-token strings in the text: the slow LlamaTokenizer splits them out, which
# sentencepiece (the .model oracle) does not.
DOCS = ["Hello world", "", "  two  spaces", "caf\u00e9 \u4e2d\u6587 \U0001f600", "line\nbreak\ttab",
        "The quick brown fox jumps over the lazy dog. " * 5]


def run(path):
    inp, outp = os.path.join(TMP, "in.json"), os.path.join(TMP, "out.json")
    with open(inp, "w") as f:
        json.dump({"texts": DOCS}, f)
    r = subprocess.run([base.BIN, path, inp, outp], capture_output=True, text=True)
    return r, (json.load(open(outp)) if r.returncode == 0 else None)


def variant(name, files, cfg_patch):
    d = os.path.join(TMP, name)
    os.makedirs(d, exist_ok=True)
    for src in files:
        shutil.copy(src, os.path.join(d, os.path.basename(src)))
    cfgp = os.path.join(d, "tokenizer_config.json")
    cfg = json.load(open(cfgp))
    for k, v in cfg_patch.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    with open(cfgp, "w") as f:
        json.dump(cfg, f)
    return d


def main():
    shutil.rmtree(TMP, ignore_errors=True)
    os.makedirs(TMP)
    bad = checked = 0
    mis = os.path.join(D, "tokenizers/mistral")
    mfiles = [os.path.join(mis, "tokenizer.json"), os.path.join(mis, "tokenizer_config.json")]
    cases = [("mistral_as_is", {}), ("mistral_eos", {"add_eos_token": True}),
             ("mistral_nobos_eos", {"add_bos_token": False, "add_eos_token": True}),
             ("mistral_nobos", {"add_bos_token": False}),
             ("mistral_noflags", {"add_bos_token": None, "add_eos_token": None}),
             ("mistral_pad_unk", {"pad_token": "</s>", "unk_token": "<unk>"})]
    for name, patch in cases:
        d = variant(name, mfiles, patch)
        hf = AutoTokenizer.from_pretrained(d)
        r, got = run(d)
        if got is None:
            print("FAIL %s: C side: %s" % (name, r.stderr.strip()))
            bad += 1
            continue
        want = hf(DOCS, add_special_tokens=True)["input_ids"]
        for i in range(len(DOCS)):
            checked += 1
            if got["special"][i] != want[i]:
                bad += 1
                print("MISMATCH %s doc %d: cpt %s hf %s" % (name, i, got["special"][i][:6], want[i][:6]))
        for k in ("bos", "eos", "pad", "unk"):
            checked += 1
            w = getattr(hf, k + "_token_id")
            if got[k] != (-1 if w is None else w):
                bad += 1
                print("MISMATCH %s %s: cpt %d hf %s" % (name, k, got[k], w))
        print("%-20s %s + %d docs checked" % (name, json.dumps(patch), len(DOCS)))
    # The stories260K-hf directory: tokenizer.model + tokenizer_config.json.
    st = os.path.join(D, "models/stories260K-hf")
    sfiles = [os.path.join(st, "tokenizer.model"), os.path.join(st, "tokenizer_config.json")]
    hf = AutoTokenizer.from_pretrained(st)
    for name, patch, ab, ae in (("stories_as_is", {}, True, False),
                                ("stories_eos", {"add_bos_token": False, "add_eos_token": True}, False, True)):
        d = variant(name, sfiles, patch)
        r, got = run(d)
        if got is None:
            print("FAIL %s: C side: %s" % (name, r.stderr.strip()))
            bad += 1
            continue
        sp = spm.SentencePieceProcessor(model_file=os.path.join(d, "tokenizer.model"))
        for i, doc in enumerate(DOCS):
            checked += 1
            want = [sp.bos_id()] * ab + sp.encode(doc) + [sp.eos_id()] * ae
            if got["special"][i] != want:
                bad += 1
                print("MISMATCH %s doc %d: cpt %s sp %s" % (name, i, got["special"][i][:6], want[:6]))
        for k in ("bos", "eos", "pad", "unk"):
            checked += 1
            w = getattr(hf, k + "_token_id")
            if got[k] != (-1 if w is None else w):
                bad += 1
                print("MISMATCH %s %s: cpt %d hf %s" % (name, k, got[k], w))
        print("%-20s %s + %d docs checked" % (name, json.dumps(patch), len(DOCS)))
    # Must refuse: EOS asked for, but the config's eos_token is not a token.
    d = variant("bad_eos", mfiles, {"add_eos_token": True, "eos_token": "<no-such-token>"})
    r, _ = run(d)
    checked += 1
    if r.returncode == 0 or "add_eos_token" not in r.stderr or "HINT" not in r.stderr:
        bad += 1
        print("FAIL bad_eos accepted or message unclear: rc %d %s" % (r.returncode, r.stderr.strip()))
    else:
        print("bad_eos refused: %s" % r.stderr.strip()[:160])
    d = variant("bad_flag", mfiles, {"add_bos_token": "yes"})
    r, _ = run(d)
    checked += 1
    if r.returncode == 0 or "add_bos_token" not in r.stderr:
        bad += 1
        print("FAIL bad_flag accepted: rc %d %s" % (r.returncode, r.stderr.strip()))
    print("tokenizer_config: %d checks, %d failed" % (checked, bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""`cpt vocab extend` against independent implementations.

Base models: tiny random Llamas made here with transformers (tied and untied) carrying the
real GPT-2 byte-level BPE tokenizer.json from $CPT_SHARED/data/tokenizers/gpt2/hf.
  1. --train-bpe (medical corpus, 300 merges), untied, --init mean:
     - ids of the extended tokenizer.json in HF `tokenizers` == `cpt tokenize` on documents
       of the medical and arxiv corpora (exact), and transformers' AutoTokenizer agrees;
     - the merges are new tokens ranked after the old ones, and tokens-per-word on held-out
       medical text is lower than with the base tokenizer;
     - old rows bit-identical; each new row of embed_tokens and of lm_head == numpy mean of
       the base rows of the ids HF `tokenizers` (ORIGINAL tokenizer.json) gives the new
       token's decoded text (abs 1e-6);
     - transformers loads the extended model and its float32 logits == `cpt score --logits`
       on a domain text that uses the new ids (abs 2e-4, as the forward parity tests).
  2. --tokens (400 whole tokens), tied and untied, --init hewitt (untied: embed_tokens and
     lm_head each from their own rows' statistics, independent draws): added_tokens ids equal in HF and cpt
     (text containing them); whitened new rows z = L^-1 (x - mu), L = chol(1e-5 Sigma) from
     numpy on the base rows, have mean within 0.05 of 0 and variance within 0.06 of 1
     (12800 values: about 5 standard errors) and dimension correlations under 0.25.
  3. --tokens, tied, --init mean: rows == numpy mean of the original split.
  4. Errors with file, line and HINT: a token already present, an empty line, an
     unreadable corpus.
"""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from skiputil import skip  # noqa: E402

shared = os.environ.get("CPT_SHARED")
TOKDIR = os.path.join(shared or "", "data", "tokenizers", "gpt2", "hf")
if not shared or not os.path.isfile(os.path.join(TOKDIR, "tokenizer.json")):
    skip("CPT_SHARED gpt2 tokenizer not found")
try:
    import numpy as np
    import torch
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
except ImportError as e:
    skip("python deps missing: %s" % e)

CPT = os.environ["CPT_BIN"]
TMP = os.path.join(os.environ.get("CPT_TMP", "/tmp"), "vocab_extend")
MED = os.path.join(shared, "data", "corpora", "medical", "pubmedqa_ori_pqal.json")
ARX = os.path.join(shared, "data", "corpora", "arxiv", "arxiv_cs_ml_abstracts.csv")
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print("FAIL:", what)


def run(*args, input=None, expect=0):  # expect None: any failure status
    p = subprocess.run([CPT] + list(args), input=input, capture_output=True)
    if (p.returncode == 0) if expect is None else (p.returncode != expect):
        print(p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"))
        raise SystemExit("cpt %s: exit %d, expected %d" % (" ".join(args[:2]), p.returncode, expect))
    return p


def make_base(d, tied):
    cfg = LlamaConfig(vocab_size=50257, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=tied, bos_token_id=50256, eos_token_id=50256)
    torch.manual_seed(7 if tied else 3)
    LlamaForCausalLM(cfg).float().save_pretrained(d, safe_serialization=True)
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(os.path.join(TOKDIR, f), d)


def hf_tok(d):
    t = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    t.no_truncation()  # the GPT-2 file truncates at 50; cpt ignores truncation
    return t


def cpt_ids(d, text):
    out = run("tokenize", "--tokenizer", d, "--no-special", input=text.encode()).stdout.split()
    return [int(x) for x in out]


def docs(path, n, size):
    raw = open(path, encoding="utf-8").read()
    step = max(1, (len(raw) - size) // n)
    return [raw[i * step:i * step + size] for i in range(n)]


def tensors(d):
    return load_file(os.path.join(d, "model.safetensors"))


def words(text):
    return len(text.split())


os.makedirs(TMP, exist_ok=True)
base_u, base_t = os.path.join(TMP, "base_untied"), os.path.join(TMP, "base_tied")
make_base(base_u, False)
make_base(base_t, True)
t0 = hf_tok(base_u)
V0 = t0.get_vocab_size()

# ---- 1. learned merges, untied, mean init -------------------------------------------
ext = os.path.join(TMP, "ext_bpe")
raw_med = open(MED, encoding="utf-8").read()
train_part, held_out = raw_med[:2000000], raw_med[2000000:2300000]
train_file = os.path.join(TMP, "med_train.txt")
open(train_file, "w", encoding="utf-8").write(train_part)
run("vocab", "extend", "--model", base_u, "--train-bpe", train_file, "--add", "300", "--out", ext)
t1 = hf_tok(ext)
j = json.load(open(os.path.join(ext, "tokenizer.json")))
check(len(j["model"]["vocab"]) == V0 + 300, "300 new vocab entries")
check(json.load(open(os.path.join(ext, "config.json")))["vocab_size"] == V0 + 300, "config vocab_size")
new_ids = list(range(V0, V0 + 300))
check(sorted(j["model"]["vocab"][p] for p in j["model"]["vocab"] if j["model"]["vocab"][p] >= V0) == new_ids,
      "new ids are V0..V0+299")

n_docs = 0
for path in (MED, ARX):
    for doc in docs(path, 12, 3000) + docs(path, 4, 200):
        a, b = t1.encode(doc).ids, cpt_ids(ext, doc)
        check(a == b, "ids equal HF on %s doc %r..." % (os.path.basename(path), doc[:40]))
        n_docs += 1
at = AutoTokenizer.from_pretrained(ext)
sample = held_out[:4000]
check(at(sample, add_special_tokens=False).input_ids == cpt_ids(ext, sample), "AutoTokenizer ids equal cpt")
tpw0 = len(t0.encode(held_out).ids) / words(held_out)
tpw1 = len(t1.encode(held_out).ids) / words(held_out)
print("tokens/word on held-out medical text: base %.4f extended %.4f" % (tpw0, tpw1))
check(tpw1 < tpw0 * 0.97, "tokens per word lower (%.4f vs %.4f)" % (tpw1, tpw0))

W0, W1 = tensors(base_u), tensors(ext)
for name in W0:
    if name in ("model.embed_tokens.weight", "lm_head.weight"):
        check(W1[name].shape == (V0 + 300, 32), name + " resized")
        check(np.array_equal(W1[name][:V0], W0[name]), name + " old rows unchanged")
        for i in new_ids:
            pieces = t0.encode(t1.decode([i], skip_special_tokens=False)).ids
            want = W0[name][pieces].astype(np.float64).mean(axis=0)
            err = np.abs(W1[name][i] - want).max()
            check(err < 1e-6, "%s row %d mean of %s: err %.2e" % (name, i, pieces, err))
    else:
        check(np.array_equal(W1[name], W0[name]), name + " unchanged")

text = held_out[:1500]
ids = t1.encode(text).ids[:256]
check(any(i >= V0 for i in ids), "the scored text uses new ids")
ids_file, npy = os.path.join(TMP, "ids.txt"), os.path.join(TMP, "logits.npy")
open(ids_file, "w").write(" ".join(map(str, ids)))
run("score", "--model", ext, "--ids", ids_file, "--logits", npy)
m = LlamaForCausalLM.from_pretrained(ext, torch_dtype=torch.float32)
check(m.get_input_embeddings().weight.shape[0] == V0 + 300, "transformers sees the new rows")
with torch.no_grad():
    ref = m(torch.tensor([ids])).logits[0].numpy()
got = np.load(npy).reshape(ref.shape)
err = np.abs(got - ref).max()
print("logits max abs diff vs transformers: %.3e" % err)
check(err < 2e-4, "logits equal transformers (err %.2e)" % err)

# ---- 2. whole tokens, tied, Hewitt ----------------------------------------------------
toks = ["medtok%03dx" % i for i in range(398)] + ["<|domain|>", "Ωmega-blocker"]
tok_file = os.path.join(TMP, "tokens.txt")
open(tok_file, "w", encoding="utf-8").write("\n".join(toks) + "\n")
ext2 = os.path.join(TMP, "ext_hewitt")
run("vocab", "extend", "--model", base_t, "--tokens", tok_file, "--init", "hewitt", "--seed", "11", "--out", ext2)
t2 = hf_tok(ext2)
probe = "A <|domain|> with medtok005x and medtok397x, Ωmega-blocker dose. " + held_out[:500]
check(t2.encode(probe).ids == cpt_ids(ext2, probe), "added tokens: ids equal HF")
check(t2.token_to_id("medtok005x") == V0 + 5, "added token id")
at2 = AutoTokenizer.from_pretrained(ext2)
check(at2(probe, add_special_tokens=False).input_ids == cpt_ids(ext2, probe), "AutoTokenizer ids equal cpt (added)")
B, E = tensors(base_t)["model.embed_tokens.weight"].astype(np.float64), tensors(ext2)["model.embed_tokens.weight"]
check("lm_head.weight" not in tensors(ext2), "tied model keeps no lm_head tensor")
check(np.array_equal(E[:V0], B.astype(np.float32)), "old rows unchanged (tied)")


def hewitt_check(B, E, what):
    """New rows E[V0:] whitened by the old rows' mean and 1e-5 x covariance: standard normal."""
    mu = B.mean(axis=0)
    sigma = (B - mu).T @ (B - mu) / B.shape[0]
    L = np.linalg.cholesky(1e-5 * sigma)
    z = np.linalg.solve(L, (E[V0:].astype(np.float64) - mu).T).T
    print("hewitt whitened (%s): mean %.4f var %.4f" % (what, z.mean(), z.var()))
    check(abs(z.mean()) < 0.05, "hewitt mean, %s (%.4f)" % (what, z.mean()))
    check(abs(z.var() - 1) < 0.06, "hewitt variance, %s (%.4f)" % (what, z.var()))
    c = np.corrcoef(z.T)
    check(np.abs(c - np.eye(c.shape[0])).max() < 0.25, "hewitt dims uncorrelated, " + what)
    return z


hewitt_check(B, E, "tied embed_tokens")
# untied: embed_tokens and lm_head each from their own rows' mean and covariance
ext2u = os.path.join(TMP, "ext_hewitt_untied")
run("vocab", "extend", "--model", base_u, "--tokens", tok_file, "--init", "hewitt", "--seed", "11", "--out", ext2u)
TU, TB = tensors(ext2u), tensors(base_u)
zs = []
for name in ("model.embed_tokens.weight", "lm_head.weight"):
    Bo = TB[name].astype(np.float64)
    check(TU[name].shape[0] >= V0 + len(toks) and np.array_equal(TU[name][:V0], TB[name][:V0]), "untied %s: old rows unchanged" % name)
    zs.append(hewitt_check(Bo[:V0], TU[name][:V0 + len(toks)], "untied " + name))
check(abs(np.corrcoef(zs[0].ravel(), zs[1].ravel())[0, 1]) < 0.1, "untied: lm_head's standard-normal draws are not embed_tokens' (corr %.3f)"
      % np.corrcoef(zs[0].ravel(), zs[1].ravel())[0, 1])

# ---- 3. whole tokens, tied, mean ------------------------------------------------------
ext3 = os.path.join(TMP, "ext_mean_tied")
run("vocab", "extend", "--model", base_t, "--tokens", tok_file, "--out", ext3)
E3 = tensors(ext3)["model.embed_tokens.weight"]
for k, tok in enumerate(toks):
    pieces = t0.encode(tok).ids
    err = np.abs(E3[V0 + k] - B[pieces].mean(axis=0)).max()
    check(err < 1e-6, "tied mean row of %r: err %.2e" % (tok, err))

# ---- 4. errors --------------------------------------------------------------------------
bad = os.path.join(TMP, "bad.txt")
open(bad, "w").write("newword1x\n the\n")
p = run("vocab", "extend", "--model", base_t, "--tokens", bad, "--out", os.path.join(TMP, "x"), expect=None)
e = p.stderr.decode()
check("bad.txt:2" in e and "already in the vocabulary" in e and "HINT" in e, "present token error: " + e)
open(bad, "w").write("newword1x\n\nnewword2x\n")
e = run("vocab", "extend", "--model", base_t, "--tokens", bad, "--out", os.path.join(TMP, "x"), expect=None).stderr.decode()
check("bad.txt:2" in e and "empty token" in e and "HINT" in e, "empty token error: " + e)
e = run("vocab", "extend", "--model", base_t, "--train-bpe", os.path.join(TMP, "nope.txt"), "--add", "3",
        "--out", os.path.join(TMP, "x"), expect=None).stderr.decode()
check("nope.txt" in e and "unreadable" in e and "HINT" in e, "corpus error: " + e)

print("%d documents compared" % n_docs)
if failures:
    print("%d failure(s)" % len(failures))
    sys.exit(1)
print("ok")

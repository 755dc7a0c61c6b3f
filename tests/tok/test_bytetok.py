#!/usr/bin/env python3
"""cpt init --byte-tokenizer writes a tokenizer.json that HF tokenizers and transformers load,
with ids equal to the byte values (+ <|bos|> 256 first) and cpt tokenize giving the same ids."""
import json, os, subprocess, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from skiputil import skip  # noqa: E402  (77 locally, a failure under CI=true)

BIN = os.environ.get("CPT_BIN")
if not BIN or not os.path.exists(BIN):
    skip("CPT_BIN not built")
from tokenizers import Tokenizer
from transformers import AutoTokenizer

tmp = tempfile.mkdtemp(dir=os.environ.get("CPT_TMP"))
cfg = os.path.join(tmp, "config.json")
json.dump({"architectures": ["LlamaForCausalLM"], "vocab_size": 264, "hidden_size": 16, "intermediate_size": 24,
           "num_hidden_layers": 1, "num_attention_heads": 2, "tie_word_embeddings": True,
           "bos_token_id": 256, "eos_token_id": 257}, open(cfg, "w"))
out = os.path.join(tmp, "m")
subprocess.run([BIN, "init", "--config", cfg, "--byte-tokenizer", "--out", out], check=True, capture_output=True)
hf = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
auto = AutoTokenizer.from_pretrained(out)
texts = ["Hello world", "Héllo wörld\n\tok", "emoji 😀👩‍👩‍👧", "  spaces   and\ttabs", "中文 العربية हिन्दी", "<|eos|> inside", ""]
fails = 0
for s in texts:
    ids = hf.encode(s).ids
    # byte values, with the special token string matched whole
    exp = [256]
    rest = s
    while rest:
        if rest.startswith("<|eos|>"):
            exp.append(257); rest = rest[len("<|eos|>"):]
        else:
            exp.extend(rest[0].encode("utf-8")); rest = rest[1:]
    c = subprocess.run([BIN, "tokenize", "--tokenizer", out], input=s.encode(), capture_output=True, check=True).stdout.split()
    c = [int(x) for x in c]
    a = auto(s)["input_ids"]
    ok = ids == exp and c == exp and a == exp
    fails += not ok
    print(("ok  " if ok else "FAIL"), repr(s), ids if not ok else "")
print(f"test_bytetok: {len(texts)} texts, {fails} failed")
sys.exit(1 if fails else 0)

# Outcome (issue 11, closing note): stories260K 512 -> 2048. (a) nothing, (b) YaRN x4 only,
# (c) YaRN x4 + a short CPT stage at 2048 on TinyStories concatenated into long documents.
# Loss by position bucket measured with transformers (independent of cpt's forward).
# Usage: CPT_BIN=build/cpt CPT_SHARED=../shared [STEPS=30] [OUT=/tmp/lc-outcome] python3 bench/long_context_outcome.py
# Not a test: prints the numbers of the outcome note (about 2-4 minutes on 2 cores).
import json, os, shutil, subprocess, sys, time
import torch
from transformers import AutoModelForCausalLM
BIN = os.environ.get("CPT_BIN", "build/cpt"); SH = os.path.join(os.environ.get("CPT_SHARED", "../shared"), "data")
M = f"{SH}/models/stories260K-hf"; W = os.environ.get("OUT", "/tmp/lc-outcome")
os.makedirs(W, exist_ok=True)
txt = open(f"{SH}/corpora/general/tinystories_train_head.txt").read()
val = open(f"{SH}/corpora/general/tinystories_valid_head.txt").read()
def chunks(t, n): return [t[i:i + n] for i in range(0, len(t) - n, n)]
with open(f"{W}/long.jsonl", "w") as f:
    for c in chunks(txt, 9000): f.write(json.dumps({"text": c}) + "\n")
subprocess.run([BIN, "data", "prepare", "--tokenizer", M, "--input", f"{W}/long.jsonl", "--out", f"{W}/long", "--no-filters",
                "--no-dedup", "--val-docs", "4", "--quiet"], check=True)
# held-out long documents, tokenized by cpt tokenize (ids identical to HF's)
docs = []
for c in chunks(val, 9000)[:12]:
    ids = list(map(int, subprocess.run([BIN, "tokenize", "--tokenizer", M], input=c, capture_output=True, text=True, check=True).stdout.split()))
    if len(ids) >= 2049: docs.append(ids[:2049])
print(f"{len(docs)} held-out documents of 2049 tokens")
# (b): the base with YaRN x4 in its config
shutil.rmtree(f"{W}/yarn", ignore_errors=True); shutil.copytree(M, f"{W}/yarn")
cj = json.load(open(f"{M}/config.json"))
cj.update(max_position_embeddings=2048, rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 512})
json.dump(cj, open(f"{W}/yarn/config.json", "w"), indent=2)
# (c): CPT at 2048 with the same RoPE
open(f"{W}/c.yaml", "w").write(f"""
model: {M}
data:
  sources: {{long: {{path: {W}/long}}}}
  mixture: {{long: 1.0}}
training: {{seq_len: 2048, micro_batch: 1, grad_accum: 4, max_steps: {os.environ.get('STEPS', '40')}, block_causal: true}}
rope: {{max_position_embeddings: 2048, scaling: {{type: yarn, factor: 4.0, original_max_position_embeddings: 512}}}}
optim: {{lr: 1.0e-3}}
schedule: {{type: cosine, warmup_steps: 4}}
eval: {{every: 0}}
checkpoint: {{every: 0}}
export: {{at_end: true, dtype: f32}}
threads: 2
""")
t0 = time.time()
r = subprocess.run([BIN, "train", f"{W}/c.yaml", f"out_dir={W}/c"], capture_output=True, text=True)
print("cpt train (c):", r.returncode, f"{time.time() - t0:.0f} s", r.stderr[-300:] if r.returncode else "")
B = [(0, 512), (512, 1024), (1024, 1536), (1536, 2048)]
def buckets(d):
    m = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32).eval()
    tot = torch.zeros(2048)
    with torch.no_grad():
        for ids in docs:
            x = torch.tensor([ids])
            lp = torch.log_softmax(m(x[:, :-1]).logits[0], -1)
            tot += -lp.gather(1, x[0, 1:, None])[:, 0]
    tot /= len(docs)
    return [tot[a:b].mean().item() for a, b in B]
res = {"(a) nothing": buckets(M), "(b) YaRN x4": buckets(f"{W}/yarn"), "(c) YaRN x4 + CPT@2048": buckets(f"{W}/c/export")}
print("loss by position bucket (nats; ppl in brackets):", [f"{a}-{b}" for a, b in B])
for k, v in res.items():
    print(f"{k:24s}", "  ".join(f"{x:.3f} ({torch.tensor(x).exp():.2f})" for x in v), f"  1024-2048 / 0-512 ppl ratio {torch.tensor((v[2] + v[3]) / 2 - v[0]).exp():.3f}")

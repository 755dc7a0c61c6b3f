#!/usr/bin/env python3
"""CPT with an extended vocabulary: `cpt vocab extend` then `cpt train` with a first stage
that trains only the new embedding rows (training.train_only / stages.#.train_only) and
optim.embed_lr.

Base: a tiny random untied Llama (transformers) with the real GPT-2 byte-level BPE
tokenizer; 200 merges learned on the first 1.2 MB of the medical corpus; training data the
rest of it (`cpt data prepare` with the extended tokenizer).
  1. tokens per word on the training text (`cpt tokenize`, base vs extended) drops;
  2. stage 1 (6 steps, train_only: new_embeddings): at its checkpoint every tensor but the
     new rows is bit-identical to the extended model, and the new rows of embed_tokens and
     lm_head moved; stage 2 (6 steps, all) then moves old rows and layers; every weight of
     the final checkpoint and every logged loss is finite;
  3. train_only: embeddings: the layers are bit-identical, embed_tokens moved;
  4. optim.embed_lr: one AdamW step (constant LR, no warmup, no decay, eps 1e-12) moves a
     parameter with a non-zero gradient by lr * |g| / (|g| + eps), i.e. by the LR (AdamW's
     first step, m / sqrt(v) = sign(g)): max |delta| of embed_tokens == embed_lr and of the
     layer matrices == optim.lr (rel 1e-3);
  5. the two-stage run on 2 ranks (mpirun) equals 1 rank with the same global batch, and
     stage 1 keeps the old rows bitwise there too;
  6. a recipe with train_only: new_embeddings on a model without vocab_extend.json fails
     with a HINT; embed_lr with embed_lr_mult fails.
"""
import json
import math
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from skiputil import skip  # noqa: E402

shared = os.environ.get("CPT_SHARED")
TOKDIR = os.path.join(shared or "", "data", "tokenizers", "gpt2", "hf")
MED = os.path.join(shared or "", "data", "corpora", "medical", "pubmedqa_ori_pqal.json")
if not shared or not os.path.isfile(os.path.join(TOKDIR, "tokenizer.json")) or not os.path.isfile(MED):
    skip("CPT_SHARED gpt2 tokenizer / medical corpus not found")
try:
    import numpy as np
    import torch
    from safetensors.numpy import load_file
    from transformers import LlamaConfig, LlamaForCausalLM
except ImportError as e:
    skip("python deps missing: %s" % e)

CPT = os.environ["CPT_BIN"]
TMP = os.path.join(os.environ.get("CPT_TMP", "/tmp"), "vocab_cpt")
shutil.rmtree(TMP, ignore_errors=True)
os.makedirs(TMP)
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print("FAIL:", what)


def run(*args, input=None, ok=True):
    p = subprocess.run([CPT] + list(args), input=input, capture_output=True)
    if (p.returncode == 0) != ok:
        print(p.stdout.decode(errors="replace")[-2000:], p.stderr.decode(errors="replace")[-3000:])
        raise SystemExit("cpt %s: exit %d" % (" ".join(args[:2]), p.returncode))
    return p


base, ext = os.path.join(TMP, "base"), os.path.join(TMP, "ext")
cfg = LlamaConfig(vocab_size=50257, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=False,
                  bos_token_id=50256, eos_token_id=50256)
torch.manual_seed(1)
LlamaForCausalLM(cfg).float().save_pretrained(base, safe_serialization=True)
for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
    shutil.copy(os.path.join(TOKDIR, f), base)
raw = open(MED, encoding="utf-8").read()
bpe_txt, train_txt = os.path.join(TMP, "bpe.txt"), os.path.join(TMP, "train.txt")
open(bpe_txt, "w", encoding="utf-8").write(raw[:1200000])
# the training text: the abstracts' sentences, one document per blank-line block
body = raw[1200000:1700000].replace("\\n", " ")
open(train_txt, "w", encoding="utf-8").write("\n\n".join(body[i:i + 1500] for i in range(0, len(body), 1500)))
run("vocab", "extend", "--model", base, "--train-bpe", bpe_txt, "--add", "200", "--out", ext)
V0, V1 = 50257, 50457
rec = json.load(open(os.path.join(ext, "vocab_extend.json")))
check(rec["first_new_id"] == V0 and rec["n_new"] == 200, "vocab_extend.json %s" % rec)

# 1. tokens per word
sample = body[:100000].encode()
n0 = len(run("tokenize", "--tokenizer", base, "--no-special", input=sample).stdout.split())
n1 = len(run("tokenize", "--tokenizer", ext, "--no-special", input=sample).stdout.split())
nw = len(body[:100000].split())
print("tokens/word: base %.4f extended %.4f" % (n0 / nw, n1 / nw))
check(n1 < 0.95 * n0, "tokens per word drops (%d -> %d tokens)" % (n0, n1))

run("data", "prepare", "--tokenizer", ext, "--input", train_txt, "--out", os.path.join(TMP, "data"), "--no-filters",
    "--no-dedup", "--quiet", "--txt-docs", "blank", "--val-fraction", "0.05")
recipe = os.path.join(TMP, "r.yaml")
open(recipe, "w").write(f"""
model: {ext}
data:
  sources:
    med:
      path: {TMP}/data
  mixture: {{med: 1.0}}
training: {{seq_len: 64, micro_batch: 4, grad_accum: 1, max_steps: 12}}
optim: {{lr: 3.0e-3}}
schedule: {{type: constant, warmup_steps: 0}}
eval: {{every: 0, batches: 1}}
checkpoint: {{every: 6, keep_last: 3}}
stability: {{skip_zscore: 0}}
stages:
  - {{name: new-rows, steps: 6, train_only: new_embeddings}}
  - {{name: full, steps: 6}}
""")


def ck(run_dir, step):
    return load_file(os.path.join(run_dir, "checkpoints", "step-%08d" % step, "model.safetensors"))


E = load_file(os.path.join(ext, "model.safetensors"))
out = os.path.join(TMP, "run")
p = run("train", recipe, "out_dir=" + out)
log = p.stderr.decode(errors="replace") + p.stdout.decode(errors="replace")
s6, s12 = ck(out, 6), ck(out, 12)
for k in E:
    if k in ("model.embed_tokens.weight", "lm_head.weight"):
        check(np.array_equal(s6[k][:V0], E[k][:V0]), k + ": old rows unchanged in stage 1")
        check(not np.array_equal(s6[k][V0:], E[k][V0:]), k + ": new rows trained in stage 1")
        check(not np.array_equal(s12[k][:V0], s6[k][:V0]), k + ": old rows trained in stage 2")
    else:
        check(np.array_equal(s6[k], E[k]), k + " unchanged in stage 1")
        check(not np.array_equal(s12[k], s6[k]), k + " trained in stage 2")
    check(np.isfinite(s12[k]).all(), k + " finite")
metrics = os.path.join(out, "metrics.jsonl")
losses = []
if os.path.isfile(metrics):
    for line in open(metrics):
        d = json.loads(line)
        if "loss" in d and isinstance(d["loss"], (int, float)):
            losses.append(d["loss"])
check(len(losses) >= 12 and all(math.isfinite(x) for x in losses), "finite losses logged: %s" % losses[:14])
print("losses:", ["%.3f" % x for x in losses[:12]])

plain = os.path.join(TMP, "plain.yaml")
open(plain, "w").write(open(recipe).read().split("stages:")[0])

# 3. train_only: embeddings
out3 = os.path.join(TMP, "run_emb")
run("train", plain, "out_dir=" + out3, "training.train_only=embeddings", "training.max_steps=6")
s = ck(out3, 6)
for k in E:
    moved = not np.array_equal(s[k], E[k])
    check(moved == (k in ("model.embed_tokens.weight", "lm_head.weight")), k + " moved only if an embedding")

# 4. optim.embed_lr: AdamW's first step moves by the LR
out4 = os.path.join(TMP, "run_lr")
run("train", plain, "out_dir=" + out4, "training.max_steps=1", "checkpoint.every=1", "optim.lr=1e-3",
    "optim.embed_lr=2e-2", "optim.weight_decay=0", "optim.eps=1e-12", "optim.clip=0")
s = ck(out4, 1)
d_emb = np.abs(s["model.embed_tokens.weight"] - E["model.embed_tokens.weight"]).max()
d_head = np.abs(s["lm_head.weight"] - E["lm_head.weight"]).max()
d_lay = np.abs(s["model.layers.0.mlp.up_proj.weight"] - E["model.layers.0.mlp.up_proj.weight"]).max()
print("first-step max |delta|: embed %.6g lm_head %.6g layer %.6g" % (d_emb, d_head, d_lay))
check(abs(d_emb - 2e-2) < 2e-5 and abs(d_head - 2e-2) < 2e-5, "embeddings move by embed_lr")
check(abs(d_lay - 1e-3) < 1e-6, "layers move by optim.lr")

# 5. data parallel: the two-stage run (new rows only, then everything) on 2 ranks with micro-batch
# 2 equals 1 rank with micro-batch 2 x grad_accum 2 (the same global batch); stage 1 keeps the
# old rows bitwise under DP too (each rank zeroes its gradient rows before the reduction)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import mpiutil  # noqa: E402
out5a, out5b = os.path.join(TMP, "run_dp1"), os.path.join(TMP, "run_dp2")
run("train", recipe, "out_dir=" + out5a, "training.micro_batch=2", "training.grad_accum=2")
p = subprocess.run(mpiutil.cmd(2, [CPT, "train", recipe, "out_dir=" + out5b, "training.micro_batch=2", "training.grad_accum=1"]),
                   capture_output=True, env=mpiutil.env())
check(p.returncode == 0, "2 ranks: " + p.stderr.decode(errors="replace")[-600:])
if p.returncode == 0:
    for step in (6, 12):
        a, b = ck(out5a, step), ck(out5b, step)
        worst = max(float(np.abs(a[k] - b[k]).max() / max(np.abs(a[k]).max(), 1e-30)) for k in a)
        check(worst < 1e-5, "step %d: 2 ranks = 1 rank, worst rel %.2e (tol 1e-5)" % (step, worst))
    b6 = ck(out5b, 6)
    for k in ("model.embed_tokens.weight", "lm_head.weight"):
        check(np.array_equal(b6[k][:V0], E[k][:V0]), k + ": old rows bitwise unchanged in stage 1 on 2 ranks")
    print("data parallel: 2 ranks = 1 rank")

# 6. errors
p = run("train", recipe, "out_dir=" + os.path.join(TMP, "x"), "model=" + base, ok=False)
e = p.stderr.decode()
check("vocab_extend.json" in e and "HINT" in e, "no vocab_extend.json: " + e[-400:])
p = run("train", plain, "out_dir=" + os.path.join(TMP, "y"), "optim.embed_lr=1e-2", "optim.embed_lr_mult=2", ok=False)
check("embed_lr" in p.stderr.decode(), "embed_lr with embed_lr_mult: " + p.stderr.decode()[-300:])

if failures:
    print("%d failure(s)" % len(failures))
    sys.exit(1)
print("ok")

#!/usr/bin/env python3
"""Frozen tensors get no gradient and no AdamW moments (cpt_model_view_range): `cpt train`
keeps them only for the contiguous range of the tensors some stage trains.

Base: a small random untied byte-level Llama (cpt init; 2 layers, GQA); data: seeded word
documents (tests/mpiutil.py). Clipping off, constant LR.
  1. regularization.freeze.embeddings (embed_tokens and lm_head): the log says how many
     parameters get none; the memory plan's gradients term is the layers + final norm
     (4 bytes per parameter, 64-byte aligned tensors, from the model file's shapes) and
     AdamW twice that; the checkpoints hold every weight but moments only for the
     trained tensors; embed_tokens and lm_head stay bitwise the base;
  2. the same run without freezing but with optim.embed_lr_mult = 0 (full gradient and
     moment buffers; the embeddings get a zero LR, so nothing else changes) gives bitwise
     the same layer weights and losses: the smaller buffers change no arithmetic;
  3. exact resume of the frozen run from its step-2 checkpoint, and 2 ranks with ZeRO-1
     and sharded optimizer files equal it within rel 1e-5;
  4. freeze.first_layers = 1 with the embeddings frozen: the range starts at layer 1;
  5. a stage that unfreezes the embeddings: every tensor trains in some stage, so the
     buffers are the whole model's (plan gradients = the model).
"""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import mpiutil  # noqa: E402
from skiputil import skip  # noqa: E402

try:
    import numpy as np
    from safetensors.numpy import load_file
except ImportError as e:
    skip("python deps missing: %s" % e)

h = mpiutil.Harness("frozen_train_")
tmp, check, run = h.tmp, h.check, h.run
base = h.base("base", tied=False, intermediate=48)
data = h.words_shards(base, 13)
recipe = os.path.join(tmp, "r.yaml")
open(recipe, "w").write(f"""
model: {base}
data:
  sources:
    d: {{path: {data}}}
training: {{seq_len: 32, micro_batch: 2, grad_accum: 2, max_steps: 4}}
optim: {{lr: 2.0e-2, clip: 0}}
schedule: {{type: constant, warmup_steps: 0}}
checkpoint: {{every: 2, keep_last: 3}}
""")
B = load_file(os.path.join(base, "model.safetensors"))
EMB = ("model.embed_tokens.weight", "lm_head.weight")


def train(args, np_=1):
    if np_ == 1:
        return run(["train", recipe] + list(args), timeout=600)
    return subprocess.run(mpiutil.cmd(np_, [h.bin, "train", recipe] + list(args)), capture_output=True, text=True,
                          env=mpiutil.env(), timeout=600)


def aligned(names):
    return sum(4 * ((B[k].size + 15) // 16 * 16) for k in names)


def final(out):
    return load_file(os.path.join(out, "checkpoints", "step-00000004", "model.safetensors"))


def losses(out):
    return [json.loads(x)["loss"] for x in open(os.path.join(out, "metrics.jsonl")) if '"train"' in x]


layers = [k for k in B if k not in EMB]
# ---- 1. embeddings frozen ----
outF = os.path.join(tmp, "F")
p = train(["out_dir=" + outF, "regularization.freeze.embeddings=true"])
check(p.returncode == 0, "frozen-embeddings run" + ("" if p.returncode == 0 else ": " + p.stderr[-1500:]))
n_out = sum(B[k].size for k in EMB)
check(("frozen in every stage: %d of" % n_out) in p.stderr, "the log counts the %d parameters without gradient or moments" % n_out)
plan = json.load(open(os.path.join(outF, "memory_plan.json"))) if p.returncode == 0 else {"bytes": {}}
g_want = aligned(layers)
check(plan["bytes"].get("gradients") == g_want, "plan: gradients = layers + norm (%s vs %d)" % (plan["bytes"].get("gradients"), g_want))
check(plan["bytes"].get("adamw") == 2 * g_want, "plan: AdamW = 2 x that")
check(plan["bytes"].get("weights") == aligned(B), "plan: weights = the whole model")
opt = load_file(os.path.join(outF, "checkpoints", "step-00000002", "optim.safetensors")) if p.returncode == 0 else {}
check(sorted(opt) == sorted(["exp_avg." + k for k in layers] + ["exp_avg_sq." + k for k in layers]),
      "the checkpoint's moments are the trained tensors' only (%d tensors)" % len(opt))
F = final(outF) if p.returncode == 0 else {}
check(sorted(F) == sorted(B), "the checkpoint holds every weight")
for k in B:
    if k in F:
        check(np.array_equal(F[k], B[k]) == (k in EMB), "%s %s" % (k, "bitwise the base" if k in EMB else "trained"))

# ---- 2. same arithmetic as full buffers with a zero LR on the embeddings ----
outZ = os.path.join(tmp, "Z")
p = train(["out_dir=" + outZ, "optim.embed_lr_mult=0"])
check(p.returncode == 0 and "frozen in every stage" not in p.stderr, "embed_lr_mult = 0 run (full buffers)" + ("" if p.returncode == 0 else ": " + p.stderr[-800:]))
if p.returncode == 0 and F:
    Z = final(outZ)
    check(all(np.array_equal(Z[k], F[k]) for k in B), "frozen (small buffers) = zero embedding LR (full buffers), every weight bitwise")
    check(losses(outZ) == losses(outF) and len(losses(outF)) == 4, "the same 4 losses bitwise")
    pz = json.load(open(os.path.join(outZ, "memory_plan.json")))
    check(pz["bytes"]["gradients"] == aligned(B), "full-buffer plan: gradients = the model")

# ---- 3. resume; ZeRO-1 on 2 ranks ----
outR = os.path.join(tmp, "R")
p = train(["out_dir=" + outR, "regularization.freeze.embeddings=true", "--resume",
           os.path.join(outF, "checkpoints", "step-00000002")])
check(p.returncode == 0, "resume of the frozen run" + ("" if p.returncode == 0 else ": " + p.stderr[-800:]))
if p.returncode == 0 and F:
    R = final(outR)
    check(all(np.array_equal(R[k], F[k]) for k in B), "resumed = uninterrupted, bitwise")
outD = os.path.join(tmp, "D")
p = train(["out_dir=" + outD, "regularization.freeze.embeddings=true", "training.grad_accum=1", "training.zero=1",
           "checkpoint.sharded_optim=true"], np_=2)
check(p.returncode == 0, "2 ranks, ZeRO-1" + ("" if p.returncode == 0 else ": " + p.stderr[-800:]))
if p.returncode == 0 and F:
    D = final(outD)
    e = max(float(np.abs(D[k] - F[k]).max() / max(np.abs(F[k]).max(), 1e-30)) for k in B)
    check(e < 1e-5, "2 ranks ZeRO-1 = 1 rank: worst rel %.2e (tol 1e-5)" % e)
    c = os.path.join(outD, "checkpoints", "step-00000004")
    check(any(f.startswith("optim-") for f in os.listdir(c)), "sharded optimizer files")
    r = run(["ckpt", "consolidate", c])
    check(r.returncode == 0, "cpt ckpt consolidate of the frozen run's shards" + ("" if r.returncode == 0 else ": " + r.stderr[-300:]))
    if r.returncode == 0:
        check(sorted(load_file(os.path.join(c, "optim.safetensors"))) == sorted(opt), "consolidated moments: the trained tensors'")

# ---- 4. first layer frozen too ----
outL = os.path.join(tmp, "L")
p = train(["out_dir=" + outL, "regularization.freeze.embeddings=true", "regularization.freeze.first_layers=1", "training.max_steps=2"])
check(p.returncode == 0, "freeze.first_layers=1" + ("" if p.returncode == 0 else ": " + p.stderr[-800:]))
if p.returncode == 0:
    want = aligned([k for k in layers if not k.startswith("model.layers.0.")])
    pl = json.load(open(os.path.join(outL, "memory_plan.json")))
    check(pl["bytes"]["gradients"] == want, "plan: gradients = layer 1 + norm (%d vs %d)" % (pl["bytes"]["gradients"], want))

# ---- 5. a stage trains the embeddings: whole buffers ----
rs = os.path.join(tmp, "rs.yaml")
open(rs, "w").write(open(recipe).read().replace("max_steps: 4", "max_steps: 2") +
                    "stages:\n  - {steps: 1, freeze: {embeddings: true}}\n  - {steps: 1}\n")
outS = os.path.join(tmp, "S")
p = run(["train", rs, "out_dir=" + outS], timeout=600)
check(p.returncode == 0 and "frozen in every stage" not in p.stderr, "stages: the embeddings train in stage 2" + ("" if p.returncode == 0 else ": " + p.stderr[-800:]))
if p.returncode == 0:
    ps = json.load(open(os.path.join(outS, "memory_plan.json")))
    check(ps["bytes"]["gradients"] == aligned(B), "plan: gradients = the whole model")

shutil.rmtree(tmp, ignore_errors=True) if h.fails == 0 else None
print("test_train_frozen: %d failure(s)" % h.fails)
sys.exit(1 if h.fails else 0)

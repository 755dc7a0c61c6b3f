#!/usr/bin/env python3
"""LoRA CPT inside `cpt train` (lora.* recipe keys), checked against PEFT + transformers.

Base: a small random untied byte-level Llama (cpt init; 2 layers, GQA); data: seeded word
documents (tests/mpiutil.py). LoRA rank 4, alpha 8, all linears, lm_head in
modules_to_save, L2 toward the adapter's start on.
  1. the run: the log names the adapter and its trainable count (= the adapter file's
     tensor sizes), the memory plan's gradients / AdamW terms are the adapter's buffer (4 /
     8 bytes per parameter, 64-byte aligned tensors) and its weights the model's plus the
     adapter's, against a full-parameter run's plan of the same recipe;
  2. checkpoints are PEFT adapter directories (no model.safetensors, "weights":
     "peft-adapter"); the optimizer state holds exactly the adapter's tensors;
  3. PEFT loads {out_dir}/adapter onto the HF base: its logits equal those of the merged
     export loaded by transformers (rel 1e-5); PEFT's merge_and_unload equals the export's
     weights (abs 1e-6); the export differs from the base in every targeted linear and
     lm_head, and equals it in everything else (the norms: bitwise);
  4. exact resume: from the step-3 checkpoint the run ends with the same adapter and
     moments bit for bit, also with lora.dropout (the masks are keyed by seed, step,
     micro-batch and rank), which changes the result;
  5. data parallel: 2 ranks with micro_batch 2 equal 1 rank with grad_accum 2 (every
     adapter tensor rel 1e-5), also with ZeRO-1 and sharded optimizer checkpoints, which
     `cpt ckpt consolidate` merges into the single-file form;
  6. EWC on the adapter: the Fisher cache holds the adapter's tensors;
  7. a tied model with embed_tokens in modules_to_save: the adapter is written, the merged
     export is skipped with the reason (PEFT keeps the LM head on the original matrix);
  8. refused with a HINT: LoRA with freeze.embeddings, an unknown target, lora.alpha
     without lora.rank; resuming a LoRA checkpoint as a full run or with another alpha.
cpt-test: needs-oracle
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
    import torch
    from safetensors.numpy import load_file
    from transformers import AutoModelForCausalLM
    from peft import PeftModel
except ImportError as e:
    skip("python deps missing: %s" % e)

h = mpiutil.Harness("lora_train_")
tmp, check, run = h.tmp, h.check, h.run


base = h.base("base", tied=False, intermediate=48)
data = h.words_shards(base, 11)
recipe = os.path.join(tmp, "r.yaml")


def write_recipe(path, model, extra=""):
    open(path, "w").write(f"""
model: {model}
data:
  sources:
    d: {{path: {data}}}
  validation: {{d: {data}}}
training: {{seq_len: 32, micro_batch: 2, grad_accum: 2, max_steps: 6}}
optim: {{lr: 2.0e-2, clip: 1.0}}
schedule: {{type: constant, warmup_steps: 0}}
regularization: {{l2_base: 0.01}}
eval: {{every: 3, sequences: 4}}
checkpoint: {{every: 3, keep_last: 3}}
lora:
  rank: 4
  alpha: 8
  targets: all-linear
  modules_to_save: [lm_head]
{extra}
""")


write_recipe(recipe, base)


def train(args, np_=1, **kw):
    if np_ == 1:
        return run(["train", recipe] + list(args), timeout=600)
    return subprocess.run(mpiutil.cmd(np_, [h.bin, "train", recipe] + list(args)), capture_output=True, text=True,
                          env=mpiutil.env(), timeout=600)


def ckpt(run_dir, step):
    return os.path.join(run_dir, "checkpoints", "step-%08d" % step)


def aligned_bytes(tensors):
    return sum(4 * ((v.size + 15) // 16 * 16) for v in tensors.values())


# ---- 1. the run ----
outA = os.path.join(tmp, "A")
p = train(["out_dir=" + outA])
check(p.returncode == 0, "LoRA run" + ("" if p.returncode == 0 else ": " + p.stderr[-1500:]))
log = p.stderr
adapter = os.path.join(outA, "adapter")
ad = load_file(os.path.join(adapter, "adapter_model.safetensors")) if p.returncode == 0 else {}
n_ad = sum(v.size for v in ad.values())
check(n_ad > 0 and ("%d trainable parameters" % n_ad) in log, "the log gives the adapter's %d trainable parameters" % n_ad)
check(("(%d trained: LoRA)" % n_ad) in log, "the memory plan line names the trained count")
check("AdamW m, v of the LoRA adapter" in log, "the optimizer-state line is the adapter's")
names = sorted(ad)
targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
want = sorted(["base_model.model.model.layers.%d.%s.%s.lora_%s.weight" % (l, "self_attn" if t[0] in "qkvo" else "mlp", t, ab)
               for l in range(2) for t in targets for ab in "AB"] + ["base_model.model.lm_head.weight"])
check(names == want, "adapter tensors are PEFT's names for all-linear + lm_head (%d)" % len(names))
base_t = load_file(os.path.join(base, "model.safetensors"))
plan = json.load(open(os.path.join(outA, "memory_plan.json")))
ab, mb = aligned_bytes(ad), aligned_bytes(base_t)
check(plan["bytes"]["gradients"] == ab, "plan: gradients = the adapter's buffer (%s vs %d)" % (plan["bytes"]["gradients"], ab))
check(plan["bytes"]["adamw"] == 2 * ab, "plan: AdamW = 2 x the adapter's buffer")
check(plan["bytes"]["l2_base"] == ab, "plan: the L2 anchor is the adapter's start")
check(plan["bytes"]["weights"] == mb + ab, "plan: weights = model + adapter (%s vs %d)" % (plan["bytes"]["weights"], mb + ab))
check(plan.get("n_trainable") == n_ad, "memory_plan.json n_trainable")
# the same recipe without the lora block: a full-parameter run
rfull = os.path.join(tmp, "full.yaml")
open(rfull, "w").write(open(recipe).read().split("lora:")[0])
pf = run(["train", rfull, "out_dir=" + os.path.join(tmp, "full"), "--plan"])
check(pf.returncode == 0 and ("gradients" in pf.stdout), "full-parameter --plan" + ("" if pf.returncode == 0 else ": " + pf.stderr[-300:]))
gline = [ln for ln in pf.stdout.splitlines() if ln.strip().startswith("gradients")]
full_grads = int(gline[0].split()[-2]) if gline else -1
check(full_grads == mb, "full run's gradients = the model's buffer (%d vs %d)" % (full_grads, mb))
print("memory: gradients LoRA %d B vs full %d B (%.1f%%)" % (ab, mb, 100.0 * ab / mb))

# losses: the adapter starts as the base (B = 0): step-0 eval delta 0; training lowers it
ev = [json.loads(x) for x in open(os.path.join(outA, "metrics.jsonl")) if '"eval"' in x or "delta_pct/d" in x]
d0 = [e["delta_pct/d"] for e in ev if e.get("step") == 0 and "delta_pct/d" in e]
d6 = [e["delta_pct/d"] for e in ev if e.get("step") == 6 and "delta_pct/d" in e]
check(d0 == [0.0], "step-0 eval equals the base (B = 0 start): %s" % d0)
check(d6 and d6[0] < 0, "the adapter lowers the validation loss: %s%%" % d6)

# ---- 2. checkpoints ----
c3 = ckpt(outA, 3)
check(os.path.isfile(os.path.join(c3, "adapter_model.safetensors")) and os.path.isfile(os.path.join(c3, "adapter_config.json"))
      and not os.path.exists(os.path.join(c3, "model.safetensors")), "step-3 checkpoint is a PEFT adapter directory")
ts = json.load(open(os.path.join(c3, "trainer_state.json")))
check(ts.get("weights") == "peft-adapter", "trainer_state weights = peft-adapter")
opt = load_file(os.path.join(c3, "optim.safetensors"))
check(sorted(opt) == sorted(["exp_avg." + n for n in names] + ["exp_avg_sq." + n for n in names]),
      "optim.safetensors holds the adapter's moments only (%d tensors)" % len(opt))
c6 = load_file(os.path.join(ckpt(outA, 6), "adapter_model.safetensors"))
check(all(np.array_equal(c6[k], ad[k]) for k in names), "{out_dir}/adapter = the last checkpoint's adapter")

# ---- 3. PEFT and the merged export ----
torch.manual_seed(0)
ids = torch.randint(0, 256, (2, 24))
hf_base = AutoModelForCausalLM.from_pretrained(base, torch_dtype=torch.float32)
peft_m = PeftModel.from_pretrained(hf_base, adapter).eval()
with torch.no_grad():
    lp = peft_m(input_ids=ids).logits.numpy()
exp_dir = os.path.join(outA, "export")
hf_exp = AutoModelForCausalLM.from_pretrained(exp_dir, torch_dtype=torch.float32).eval()
with torch.no_grad():
    le = hf_exp(input_ids=ids).logits.numpy()
rel = float(np.abs(lp - le).max() / np.abs(lp).max())
check(rel < 1e-5, "PEFT(base + adapter) logits = merged export logits: rel %.2e (tol 1e-5)" % rel)
merged = {k: v.detach().numpy() for k, v in peft_m.merge_and_unload().state_dict().items()}
E = load_file(os.path.join(exp_dir, "model.safetensors"))
worst = max(float(np.abs(merged[k] - E[k]).max()) for k in E)
check(worst < 1e-6, "PEFT merge_and_unload = cpt's merged export: max abs %.2e (tol 1e-6)" % worst)
for k in E:
    trained = any(t in k for t in targets) or k == "lm_head.weight"
    same = np.array_equal(E[k], base_t[k])
    check(same != trained, "%s %s" % (k, "changed" if trained else "bitwise the base"))
print("PEFT: logits rel %.2e, merge max abs %.2e" % (rel, worst))

# cpt export of a LoRA checkpoint: merged into the recipe's base, the same model as the run's export
xo = os.path.join(tmp, "ckpt_export")
r = run(["export", ckpt(outA, 6), "--out", xo, "--dtype", "f32"])
check(r.returncode == 0 and "LoRA checkpoint" in r.stderr, "cpt export of a LoRA checkpoint" + ("" if r.returncode == 0 else ": " + r.stderr[-400:]))
if r.returncode == 0:
    X = load_file(os.path.join(xo, "model.safetensors"))
    check(sorted(X) == sorted(E) and all(np.array_equal(X[k], E[k]) for k in E), "cpt export CKPT = the run's merged export, bitwise")

# ---- 4. exact resume ----
outB = os.path.join(tmp, "B")
p = train(["out_dir=" + outB, "--resume", c3])
check(p.returncode == 0 and "resumed from" in p.stderr, "resume from step 3" + ("" if p.returncode == 0 else ": " + p.stderr[-800:]))
if p.returncode == 0:
    bA, bB = load_file(os.path.join(ckpt(outA, 6), "optim.safetensors")), load_file(os.path.join(ckpt(outB, 6), "optim.safetensors"))
    adB = load_file(os.path.join(outB, "adapter", "adapter_model.safetensors"))
    check(all(np.array_equal(adB[k], ad[k]) for k in names), "resumed adapter = uninterrupted run's, bit for bit")
    check(all(np.array_equal(bA[k], bB[k]) for k in bA), "resumed AdamW moments = uninterrupted run's, bit for bit")

# with dropout the masks come from (seed, step, micro-batch, rank): a resume repeats them
outD, outE = os.path.join(tmp, "D"), os.path.join(tmp, "E")
p = train(["out_dir=" + outD, "lora.dropout=0.2"])
check(p.returncode == 0 and "dropout 0.2" in p.stderr, "LoRA run with dropout" + ("" if p.returncode == 0 else ": " + p.stderr[-500:]))
p2 = train(["out_dir=" + outE, "lora.dropout=0.2", "--resume", ckpt(outD, 3)])
check(p2.returncode == 0, "resume of the dropout run" + ("" if p2.returncode == 0 else ": " + p2.stderr[-500:]))
if p.returncode == 0 and p2.returncode == 0:
    aD = load_file(os.path.join(outD, "adapter", "adapter_model.safetensors"))
    aE = load_file(os.path.join(outE, "adapter", "adapter_model.safetensors"))
    check(all(np.array_equal(aD[k], aE[k]) for k in names), "dropout run: resumed adapter = uninterrupted run's, bit for bit")
    check(any(not np.array_equal(aD[k], ad[k]) for k in names), "dropout changes the training (adapter differs from the p = 0 run)")
    cfgD = json.load(open(os.path.join(outD, "adapter", "adapter_config.json")))
    check(abs(cfgD["lora_dropout"] - 0.2) < 1e-12, "adapter_config.json lora_dropout 0.2")

# ---- 5. data parallel, ZeRO-1 ----
def close(a, b, tol=1e-5):
    return max(float(np.abs(a[k] - b[k]).max() / max(np.abs(b[k]).max(), 1e-30)) for k in b)


for tag, extra in [("dp", []), ("zero", ["training.zero=1", "checkpoint.sharded_optim=true"])]:
    out = os.path.join(tmp, tag)
    p = train(["out_dir=" + out, "training.grad_accum=1"] + extra, np_=2)
    check(p.returncode == 0, "2 ranks (%s)%s" % (tag, "" if p.returncode == 0 else ": " + p.stderr[-800:]))
    if p.returncode:
        continue
    a2 = load_file(os.path.join(out, "adapter", "adapter_model.safetensors"))
    e = close(a2, ad)
    check(e < 1e-5, "2 ranks (%s) = 1 rank with grad_accum 2: worst rel %.2e (tol 1e-5)" % (tag, e))
    if tag == "zero":
        c = ckpt(out, 6)
        check(any(f.startswith("optim-") for f in os.listdir(c)), "ZeRO-1: sharded optimizer files in the LoRA checkpoint")
        r = run(["ckpt", "consolidate", c])
        check(r.returncode == 0 and os.path.isfile(os.path.join(c, "optim.safetensors")), "cpt ckpt consolidate" + ("" if r.returncode == 0 else ": " + r.stderr[-300:]))
        if r.returncode == 0:
            oz = load_file(os.path.join(c, "optim.safetensors"))
            o1 = load_file(os.path.join(ckpt(outA, 6), "optim.safetensors"))
            check(sorted(oz) == sorted(o1) and close(oz, o1) < 1e-4, "consolidated ZeRO moments = the single-rank run's")

# ---- 6. EWC on the adapter ----
out = os.path.join(tmp, "ewc")
p = train(["out_dir=" + out, "training.max_steps=2", "regularization.ewc.lambda=5", "regularization.ewc.source=d",
           "regularization.ewc.samples=4"])
check(p.returncode == 0, "EWC with LoRA" + ("" if p.returncode == 0 else ": " + p.stderr[-500:]))
if p.returncode == 0:
    f = load_file(os.path.join(out, "ewc-fisher.safetensors"))
    check(sorted(f) == sorted(["fisher." + n for n in names] + ["base." + n for n in names]),
          "the Fisher cache is over the adapter's tensors")
    # B starts at 0, so the gradient of every lora_A is 0 there; lora_B's and lm_head's are not
    check(all(not f["fisher." + n].any() for n in names if "lora_A" in n), "Fisher of lora_A is 0 at the start (B = 0)")
    check(all(f["fisher." + n].any() for n in names if "lora_A" not in n), "Fisher of lora_B and lm_head is non-zero")

# ---- 7. tied model, embed_tokens trained ----
tied = h.base("tied", tied=True, intermediate=48)
rt = os.path.join(tmp, "rt.yaml")
write_recipe(rt, tied)
out = os.path.join(tmp, "tied_run")
p = run(["train", rt, "out_dir=" + out, "training.max_steps=2", "lora.modules_to_save=embed_tokens"], timeout=600)
check(p.returncode == 0 and "no merged export" in p.stderr and "ties" in p.stderr, "tied + embed_tokens: merged export skipped with the reason" + ("" if p.returncode == 0 else ": " + p.stderr[-500:]))
check(os.path.isfile(os.path.join(out, "adapter", "adapter_model.safetensors")) and not os.path.exists(os.path.join(out, "export")),
      "tied + embed_tokens: the adapter is the result")
if p.returncode == 0:
    pm = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tied, torch_dtype=torch.float32), os.path.join(out, "adapter"))
    check(pm is not None, "PEFT loads the tied model's adapter")

# ---- 8. refused ----
def refused(args, *words):
    r = run(["train"] + args, timeout=300)
    ok = r.returncode != 0 and all(w in r.stderr for w in words)
    check(ok, "refused (%s): %s" % (" ".join(args[1:]), r.stderr.strip().splitlines()[-1][:300] if r.stderr.strip() else r.returncode))


outR = os.path.join(tmp, "R")
refused([recipe, "out_dir=" + outR, "regularization.freeze.embeddings=true"], "freeze", "HINT")
refused([recipe, "out_dir=" + outR, "lora.targets=q_proj,foo_proj"], "foo_proj", "HINT")
refused([rfull, "out_dir=" + outR, "lora.alpha=8"], "lora.alpha", "lora.rank", "HINT")
refused([rfull, "out_dir=" + outR, "--resume", c3], "LoRA adapter", "HINT")
refused([recipe, "out_dir=" + outR, "lora.alpha=16", "--resume", c3], "lora_alpha", "HINT")

shutil.rmtree(tmp, ignore_errors=True) if h.fails == 0 else None
print("test_train_lora: %d failure(s)" % h.fails)
sys.exit(1 if h.fails else 0)

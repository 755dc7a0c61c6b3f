#!/usr/bin/env python3
"""test_train_rope.py: RoPE changed for a run by the recipe, end to end through the CLI.

cpt-test: needs-oracle

On byte-level models made by `cpt init` (max_position_embeddings 64) and seq_len 128:
  1. without a rope option the run is refused before any work, with a HINT naming rope.*;
  2. rope.theta=1e6 + rope.max_position_embeddings=256 (the ABF base change) and
     rope.scaling.type=yarn + factor 4: the run trains, export/config.json carries the new
     RoPE, and transformers loads the export and gives the logits of `cpt score` on the same
     export (and the RoPE really changed: the logits differ from the base model's with the
     same weights);
  3. rope.allow_long_context=true trains past the context with the model's own RoPE;
  4. a Llama 3.2-shaped config (rope_type llama3, factor 32, theta 5e5, tied) loads, scores
     and trains (2 steps) and its export matches transformers.
Tolerance: logits max|a-b| / max|ref| <= 1e-4 (as tests/model/test_score_parity.py).
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.environ.get("CPT_SRC", os.path.join(os.path.dirname(__file__), "..", "..")),
                                "tests", "oracle"))
import oracle_util as ou  # noqa: E402

LOGITS_TOL = 1e-4
BIN = ou.cpt_bin()
ck = ou.Checker("test_train_rope")
tmp = tempfile.mkdtemp(prefix="train_rope_", dir=os.environ.get("CPT_TMP"))


def run(args):
    return subprocess.run([BIN] + [str(a) for a in args], capture_output=True, text=True, timeout=600)


def make_base(name, extra):
    cfg = dict({"architectures": ["LlamaForCausalLM"], "vocab_size": 264, "hidden_size": 32, "intermediate_size": 64,
                "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "tie_word_embeddings": True,
                "bos_token_id": 256, "eos_token_id": 257, "rms_norm_eps": 1e-5, "max_position_embeddings": 64}, **extra)
    p = os.path.join(tmp, name + ".json")
    json.dump(cfg, open(p, "w"))
    out = os.path.join(tmp, name)
    r = run(["init", "--config", p, "--byte-tokenizer", "--out", out, "--seed", "3", "--std", "0.2"])
    ck.check(r.returncode == 0, "cpt init %s: %s" % (name, r.stderr[-300:]))
    return out


base = make_base("base", {})
with open(os.path.join(tmp, "train.txt"), "w") as f:
    f.write("\n\n".join(("alpha beta gamma delta %d " % i) * 12 for i in range(60)))
r = run(["data", "prepare", "--tokenizer", base, "--input", os.path.join(tmp, "train.txt"), "--out",
         os.path.join(tmp, "data"), "--no-filters", "--no-dedup", "--quiet", "--txt-docs", "blank", "--val-fraction", "0"])
ck.check(r.returncode == 0, "data prepare: " + r.stderr[-300:])
recipe = os.path.join(tmp, "r.yaml")
open(recipe, "w").write("""
data:
  sources:
    web:
      path: %s/data
  mixture: {web: 1.0}
training: {seq_len: 128, micro_batch: 1, grad_accum: 1, max_steps: 2}
checkpoint: {every: 2}
stability: {skip_zscore: 0}
""" % tmp)
ids = list(open(os.path.join(tmp, "train.txt"), "rb").read()[:128])
ids_file = os.path.join(tmp, "ids.txt")
open(ids_file, "w").write(" ".join(map(str, ids)))


def score(model_dir, extra=()):
    npy = os.path.join(tmp, "score.npy")
    if os.path.exists(npy):
        os.remove(npy)
    r = run(["score", "--model", model_dir, "--ids", ids_file, "--logits", npy] + list(extra))
    ck.check(r.returncode == 0, "cpt score %s: %s" % (model_dir, r.stderr[-300:]))
    return np.load(npy) if r.returncode == 0 else None


def hf_logits(model_dir):
    torch = ou.torch_setup()
    m = ou.hf_load(model_dir)
    with torch.no_grad():
        return m(torch.tensor([ids])).logits[0].double().numpy()


# 1. refused without a rope option
out = os.path.join(tmp, "refused")
r = run(["train", recipe, "model=" + base, "out_dir=" + out])
ck.check(r.returncode != 0 and "HINT" in r.stderr and "rope." in r.stderr and "128" in r.stderr,
         "seq_len past the context refused: exit %d %r" % (r.returncode, r.stderr[-300:]))

# 2. ABF and yarn
for tag, over, want in [("abf", ["rope.theta=1000000", "rope.max_position_embeddings=256"],
                         lambda c: c["rope_theta"] == 1e6 and c["max_position_embeddings"] == 256 and c.get("rope_scaling") is None),
                        ("yarn", ["rope.scaling.type=yarn", "rope.scaling.factor=4", "rope.scaling.beta_fast=16"],
                         lambda c: (c.get("rope_scaling") or {}).get("rope_type") == "yarn" and c["rope_scaling"]["factor"] == 4
                         and c["rope_scaling"]["beta_fast"] == 16 and c["max_position_embeddings"] == 64)]:
    out = os.path.join(tmp, tag)
    r = run(["train", recipe, "model=" + base, "out_dir=" + out] + over)
    if not ck.check(r.returncode == 0, "%s run: %s" % (tag, r.stderr[-400:])):
        continue
    exp = os.path.join(out, "export")
    cj = json.load(open(os.path.join(exp, "config.json")))
    ck.check(want(cj), "%s: export config.json rope %r theta %r max_pos %r" % (tag, cj.get("rope_scaling"), cj.get("rope_theta"),
                                                                             cj.get("max_position_embeddings")))
    got, ref = score(exp), hf_logits(exp)
    if got is not None:
        e = ck.close(got, ref, LOGITS_TOL, "%s: cpt score vs transformers on the export" % tag)
        # same weights, the base model's RoPE: must differ, else the rope change did nothing
        plain = os.path.join(out, "plain")
        os.makedirs(plain, exist_ok=True)
        for f in os.listdir(exp):
            if f != "config.json":
                os.symlink(os.path.join(exp, f), os.path.join(plain, f))
        pc = json.load(open(os.path.join(base, "config.json")))
        pc["max_position_embeddings"] = 4096
        json.dump(pc, open(os.path.join(plain, "config.json"), "w"))
        d = ou.rel_err(hf_logits(plain), ref)
        ck.check(d > 1e-3, "%s: the new RoPE changes the logits (%.3g)" % (tag, d))
        ou.log("  %-5s export: cpt vs transformers %.2e; vs the old RoPE %.2e" % (tag, e or -1, d))

# 3. allowed past the context
out = os.path.join(tmp, "allow")
r = run(["train", recipe, "model=" + base, "out_dir=" + out, "rope.allow_long_context=true"])
ck.check(r.returncode == 0, "rope.allow_long_context run: " + r.stderr[-300:])

# 4. Llama 3.2-shaped (scaled down): llama3 RoPE, tied embeddings, GQA
l32 = make_base("llama32", {"hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 16,
                            "intermediate_size": 96, "rope_theta": 500000.0, "max_position_embeddings": 4096,
                            "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                             "high_freq_factor": 4.0, "original_max_position_embeddings": 64}})
got = score(l32)
if got is not None:
    e = ck.close(got, hf_logits(l32), LOGITS_TOL, "llama3: cpt score vs transformers")
    ou.log("  llama3 base: cpt vs transformers %.2e" % (e or -1))
out = os.path.join(tmp, "l32run")
r = run(["train", recipe, "model=" + l32, "out_dir=" + out])
if ck.check(r.returncode == 0, "llama3 run: " + r.stderr[-300:]):
    exp = os.path.join(out, "export")
    cj = json.load(open(os.path.join(exp, "config.json")))
    ck.check(cj["rope_scaling"]["rope_type"] == "llama3" and cj["rope_scaling"]["original_max_position_embeddings"] == 64,
             "llama3 export keeps rope_scaling: %r" % cj.get("rope_scaling"))
    got = score(exp)
    if got is not None:
        e = ck.close(got, hf_logits(exp), LOGITS_TOL, "llama3 export: cpt score vs transformers")
        ou.log("  llama3 export: cpt vs transformers %.2e" % (e or -1))
ck.finish()

#!/usr/bin/env python3
"""test_backend_cli.py: CPT_BACKEND picks the compute backend of a whole cpt run, end to end.

On a small random byte-level Llama (cpt init; GQA, head_dim 12, vocab 264):
  1. `cpt score` with CPT_BACKEND=ref gives the loss and logits of the default (cpu) run
     within 1e-5 (fp32 kernels vs float64 inside; tests/backend/test_backend_train.c
     measures ~5e-7), and not bit for bit (so the ref run did go through ref);
  2. `cpt generate --greedy` gives the same 8 ids on both;
  3. `cpt train` (2 steps) with CPT_BACKEND=ref runs and its last loss matches the cpu run's
     within 1e-5;
  4. CPT_BACKEND=nope: each command fails (exit != 0, no crash) and says which variable
     is wrong and which backends exist.
"""
import json
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.environ.get("CPT_SRC", os.path.join(os.path.dirname(__file__), "..", "..")),
                                "tests", "oracle"))
import oracle_util as ou  # noqa: E402

TOL = 1e-5
ck = ou.Checker("test_backend_cli")
tmp = ou.tmpdir("backend_cli_%d" % os.getpid())


def run(args, backend=None):
    env = dict(os.environ)
    env.pop("CPT_BACKEND", None)
    if backend is not None:
        env["CPT_BACKEND"] = backend
    return ou.run_cpt(args, timeout=600, env=env)


cfg = {"architectures": ["LlamaForCausalLM"], "vocab_size": 264, "hidden_size": 48, "intermediate_size": 72,
       "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 12,
       "tie_word_embeddings": False, "bos_token_id": 256, "eos_token_id": 257, "rms_norm_eps": 1e-5,
       "max_position_embeddings": 128}
cfg_path = os.path.join(tmp, "config.json")
json.dump(cfg, open(cfg_path, "w"))
model = os.path.join(tmp, "model")
r = run(["init", "--config", cfg_path, "--byte-tokenizer", "--out", model, "--seed", "5", "--std", "0.2"])
if not ck.check(r.returncode == 0, "cpt init: " + r.stderr[-300:]):
    sys.exit(ck.finish())

text = "the backend table is the only path to compute " * 3
ids = list(text.encode())[:97]
ids_file = os.path.join(tmp, "ids.txt")
open(ids_file, "w").write(" ".join(map(str, ids)))

# 1. score
res = {}
for be in (None, "ref"):
    npy = os.path.join(tmp, "logits_%s.npy" % (be or "cpu"))
    r = run(["score", "--model", model, "--ids", ids_file, "--logits", npy], be)
    if ck.check(r.returncode == 0, "cpt score (CPT_BACKEND=%s): %s" % (be, r.stderr[-300:])):
        res[be] = (ou.parse_json_line(r.stdout)["loss"], np.load(npy))
if len(res) == 2:
    (lc, zc), (lr, zr) = res[None], res["ref"]
    el = abs(lc - lr) / abs(lr)
    ou.log("score: loss cpu %.9g ref %.9g (rel %.2e), logits rel %.2e" % (lc, lr, el, ou.rel_err(zc, zr)))
    ck.check(el <= TOL, "score loss cpu %.9g vs ref %.9g" % (lc, lr))
    ck.close(zc, zr, TOL, "score logits cpu vs ref")
    ck.check(not np.array_equal(zc, zr), "the ref logits are bitwise the cpu logits: ref was not used")

# 2. generate
gen = {}
for be in (None, "ref"):
    r = run(["generate", "--model", model, "--ids", " ".join(map(str, ids[:20])), "--max-new", "8", "--greedy",
             "--print-ids", "--ignore-eos"], be)
    if ck.check(r.returncode == 0, "cpt generate (CPT_BACKEND=%s): %s" % (be, r.stderr[-300:])):
        gen[be] = r.stdout.split()
if len(gen) == 2:
    ou.log("generate: cpu %s | ref %s" % (" ".join(gen[None][20:]), " ".join(gen["ref"][20:])))
    ck.check(gen[None] == gen["ref"] and len(gen[None]) == 28, "greedy ids differ: %s vs %s" % (gen[None], gen["ref"]))

# 3. train
with open(os.path.join(tmp, "train.txt"), "w") as f:
    f.write("\n\n".join(("alpha beta gamma delta %d " % i) * 8 for i in range(40)))
r = run(["data", "prepare", "--tokenizer", model, "--input", os.path.join(tmp, "train.txt"), "--out",
         os.path.join(tmp, "data"), "--no-filters", "--no-dedup", "--quiet", "--txt-docs", "blank", "--val-fraction", "0"])
ck.check(r.returncode == 0, "data prepare: " + r.stderr[-300:])
recipe = os.path.join(tmp, "r.yaml")
open(recipe, "w").write("""
data:
  sources:
    web:
      path: %s/data
  mixture: {web: 1.0}
training: {seq_len: 32, micro_batch: 2, grad_accum: 1, max_steps: 2}
stability: {skip_zscore: 0}
""" % tmp)
last = {}
for be in (None, "ref"):
    name = "run_" + (be or "cpu")
    out = os.path.join(tmp, name)
    r = run(["train", recipe, "model=" + model, "out_dir=" + out], be)
    if not ck.check(r.returncode == 0, "cpt train (CPT_BACKEND=%s): %s" % (be, (r.stderr + r.stdout)[-600:])):
        continue
    mpath = os.path.join(out, "metrics.jsonl")
    if ck.check(os.path.exists(mpath), "no metrics.jsonl for %s" % name):
        rows = [json.loads(l) for l in open(mpath) if l.strip()]
        losses = [row["loss"] for row in rows if row.get("kind") == "train"]
        if ck.check(len(losses) >= 1, "no training losses in %s" % mpath):
            last[be] = losses[-1]
if len(last) == 2:
    e = abs(last[None] - last["ref"]) / abs(last["ref"])
    ou.log("train: last loss cpu %.9g ref %.9g (rel %.2e)" % (last[None], last["ref"], e))
    ck.check(e <= TOL, "train last loss cpu %.9g vs ref %.9g" % (last[None], last["ref"]))

# 4. an unknown backend
for args in (["score", "--model", model, "--ids", ids_file],
             ["generate", "--model", model, "--ids", "1 2 3", "--max-new", "2", "--greedy"]):
    r = run(args, "nope")
    msg = r.stderr + r.stdout
    ck.check(r.returncode not in (0, -6, -11) and r.returncode > 0, "%s with CPT_BACKEND=nope: exit %d" % (args[0], r.returncode))
    ck.check("CPT_BACKEND=nope" in msg and "cpu, ref" in msg, "%s: message does not name the variable and the backends: %r"
             % (args[0], msg[-300:]))
if not ck.fails:
    shutil.rmtree(tmp, ignore_errors=True)
sys.exit(ck.finish())

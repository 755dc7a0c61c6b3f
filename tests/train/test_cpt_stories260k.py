#!/usr/bin/env python3
"""CPT of the real stories260K model on a domain corpus (Shakespeare) lowers the domain
loss, and 10% replay of TinyStories lowers the rise of the general (TinyStories) loss
compared with no replay. Measured through the CLI (cpt data prepare, cpt train with
demo/cpt.yaml) and printed as numbers.
cpt-test: slow
"""
import os, re, shutil, subprocess, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from skiputil import skip  # noqa: E402  (77 locally, a failure under CI=true)

BIN, SHARED, SRC = os.environ.get("CPT_BIN"), os.environ.get("CPT_SHARED"), os.environ.get("CPT_SRC")
data = os.path.join(SHARED or "", "data")
model = os.path.join(data, "models", "stories260K-hf")
if not BIN or not os.path.exists(BIN) or not os.path.isdir(model):
    skip("needs CPT_BIN and ../shared/data/models/stories260K-hf")
tmp = tempfile.mkdtemp(prefix="cpt_stories_", dir=os.environ.get("CPT_TMP"))
env = dict(os.environ, DEMO_OUT=tmp, DEMO_MODEL=model)
for name, src in [("general", "tinystories_train_head.txt"), ("domain", "tinyshakespeare.txt")]:
    subprocess.run([BIN, "data", "prepare", "--tokenizer", model, "--input", os.path.join(data, "corpora", "general", src),
                    "--out", os.path.join(tmp, "shards", name), "--txt-docs", "blank", "--no-filters", "--val-docs", "40",
                    "--quiet"], check=True, capture_output=True)
res = {}
for variant, extra in [("replay", []), ("noreplay", ["data.replay.source=", "data.replay.fraction=",
                                                       "data.mixture={domain: 1.0, general: 0.0}"])]:
    r = subprocess.run([BIN, "train", os.path.join(SRC, "demo", "cpt.yaml"), f"out_dir={tmp}/{variant}",
                        "training.max_steps=60", "eval.every=0", "checkpoint.every=0", "export.at_end=false"] + extra,
                       env=env, capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stderr[-2000:]); sys.exit(1)
    for m in re.finditer(r"^  (\w+)\s+base ppl ([\d.]+) -> ([\d.]+)", r.stderr, re.M):
        res[(variant, m.group(1))] = (float(m.group(2)), float(m.group(3)))
fails = 0
for k, (b, f) in sorted(res.items()):
    print(f"{k[0]:9s} {k[1]:8s} ppl {b:9.3f} -> {f:9.3f} ({100 * (f / b - 1):+.1f}%)")
def check(cond, what):
    global fails
    print(("ok   " if cond else "FAIL ") + what); fails += not cond
check(len(res) == 4, "both runs evaluated both sets")
if len(res) == 4:
    for v in ["replay", "noreplay"]:
        check(res[(v, "domain")][1] < 0.5 * res[(v, "domain")][0], f"{v}: domain perplexity at least halves")
    rise_r = res[("replay", "general")][1] / res[("replay", "general")][0]
    rise_n = res[("noreplay", "general")][1] / res[("noreplay", "general")][0]
    check(rise_r < rise_n, f"replay limits forgetting: general ppl x{rise_r:.3f} with replay vs x{rise_n:.3f} without")
shutil.rmtree(tmp, ignore_errors=True)
print(f"test_cpt_stories260k: {fails} failed")
sys.exit(1 if fails else 0)

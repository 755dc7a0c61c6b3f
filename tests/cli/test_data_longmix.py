#!/usr/bin/env python3
"""test_data_longmix.py: length-aware mixing through `cpt train` (ProLong, methods.md §5.5; issue 11).

One prepared directory of 60 documents (every third 2000 bytes, the others 100 bytes; byte-level
tokenizer, so a document is its bytes + BOS + EOS = 2002 or 102 tokens) is declared twice: source
"long" with min_doc_tokens 1000 and source "short" with max_doc_tokens 999, mixed 0.6 / 0.4.
Expected, counted by hand from the corpus written here (not by cpt): the log lists 20 * 2002 =
40040 tokens for long and 40 * 102 = 4080 for short; 4 steps of 5 sequences of 64 tokens train
exactly 12 * 64 = 768 target tokens of long and 8 * 64 = 512 of short (trainer_state.json and
report.md), i.e. the ratio is counted in tokens; with two stages (short only, then the mix) the
counts are those of each stage's pattern. A range that keeps no document, a negative
bound and min > max are refused with the key or the cause named.
"""
import json
import os
import random
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from skiputil import skip  # noqa: E402  (77 locally, a failure under CI=true)

BIN = os.environ.get("CPT_BIN")
if not BIN or not os.path.exists(BIN):
    skip("CPT_BIN not built")
fails = 0


def check(cond, what):
    global fails
    print(("ok   " if cond else "FAIL ") + what)
    fails += not cond


def run(args):
    return subprocess.run([BIN] + args, capture_output=True, text=True, timeout=600)


tmp = tempfile.mkdtemp(prefix="longmix_", dir=os.environ.get("CPT_TMP"))
cfg = os.path.join(tmp, "config.json")
json.dump({"architectures": ["LlamaForCausalLM"], "vocab_size": 264, "hidden_size": 32, "intermediate_size": 64,
           "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2, "tie_word_embeddings": True,
           "bos_token_id": 256, "eos_token_id": 257, "rms_norm_eps": 1e-5}, open(cfg, "w"))
base = os.path.join(tmp, "base")
r = run(["init", "--config", cfg, "--byte-tokenizer", "--out", base, "--seed", "3", "--std", "0.1"])
check(r.returncode == 0, "cpt init --byte-tokenizer: %s" % r.stderr[-300:])
rng = random.Random(1)
lens = [2000 if i % 3 == 0 else 100 for i in range(60)]
with open(os.path.join(tmp, "docs.jsonl"), "w") as f:
    for n in lens:
        f.write(json.dumps({"text": "".join(rng.choice("abcdefgh ") for _ in range(n - 1)) + "."}) + "\n")
data = os.path.join(tmp, "data")
r = run(["data", "prepare", "--tokenizer", base, "--input", os.path.join(tmp, "docs.jsonl"), "--out", data,
         "--no-filters", "--no-dedup", "--quiet", "--val-fraction", "0"])
check(r.returncode == 0 and "train tokens                    44120" in r.stdout,
      "prepare: %s %s" % (r.stdout[-400:], r.stderr[-300:]))

recipe = os.path.join(tmp, "r.yaml")
open(recipe, "w").write(f"""
model: {base}
data:
  sources:
    long: {{path: {data}, min_doc_tokens: 1000}}
    short: {{path: {data}, max_doc_tokens: 999}}
  mixture: {{long: 0.6, short: 0.4}}
training: {{seq_len: 64, micro_batch: 5, grad_accum: 1, max_steps: 4}}
optim: {{lr: 1.0e-3}}
checkpoint: {{every: 4, keep_last: 1}}
""")
out = os.path.join(tmp, "run")
r = run(["train", recipe, "out_dir=" + out])
check(r.returncode == 0, "train: %s" % r.stderr[-500:])
log = r.stdout + r.stderr
check("source long                40040 tokens" in log and "source short                4080 tokens" in log,
      "the log counts only the documents in each range: %r" % [ln for ln in log.splitlines() if ln.startswith("source")])
st_path = os.path.join(out, "checkpoints", "step-00000004", "trainer_state.json")
st = json.load(open(st_path)) if os.path.isfile(st_path) else {}
check(st.get("source_tokens") == {"long": 768, "short": 512}, "source tokens %s (want long 768, short 512)"
      % st.get("source_tokens"))
rep = open(os.path.join(out, "report.md")).read() if os.path.isfile(os.path.join(out, "report.md")) else ""
check("| long | 768 | 60.0% |" in rep and "| short | 512 | 40.0% |" in rep, "report.md per-source table")

# Per stage: short documents only for 2 steps, then the long mix for 2 steps (stages.#.mixture over
# the two length views). The second stage's pattern restarts at its first sample (long, short,
# long, short, long): 6 long and 4 short sequences -> long 384, short 640 + 256 = 896 tokens.
staged = os.path.join(tmp, "staged.yaml")
open(staged, "w").write(open(recipe).read().replace("  mixture: {long: 0.6, short: 0.4}\n", "") + """
stages:
  - {name: short-only, steps: 2, mixture: {short: 1.0}}
  - {name: long-mix, steps: 2, mixture: {long: 0.6, short: 0.4}}
""")
r = run(["train", staged, "out_dir=" + out + "_staged", "training.max_steps=4"])
check(r.returncode == 0, "staged train: %s" % r.stderr[-500:])
st_path = os.path.join(out + "_staged", "checkpoints", "step-00000004", "trainer_state.json")
st = json.load(open(st_path)) if os.path.isfile(st_path) else {}
check(st.get("source_tokens") == {"long": 384, "short": 896}, "staged source tokens %s (want long 384, short 896)"
      % st.get("source_tokens"))

r = run(["train", recipe, "out_dir=" + out + "_none", "data.sources.long.min_doc_tokens=5000"])
check(r.returncode != 0 and "'long'" in r.stderr and "min_doc_tokens" in r.stderr,
      "a range that keeps nothing: exit %d %r" % (r.returncode, r.stderr[-300:]))
r = run(["train", recipe, "out_dir=" + out + "_neg", "data.sources.long.min_doc_tokens=-3"])
check(r.returncode == 2 and "data.sources.long.min_doc_tokens" in r.stderr, "negative bound: exit %d" % r.returncode)
r = run(["train", recipe, "out_dir=" + out + "_swap", "data.sources.short.min_doc_tokens=2000"])
check(r.returncode != 0 and "min_doc_tokens 2000 is above max_doc_tokens 999" in r.stderr,
      "min > max: exit %d %r" % (r.returncode, r.stderr[-300:]))
print("%d failures" % fails)
sys.exit(1 if fails else 0)

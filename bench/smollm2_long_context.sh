#!/usr/bin/env bash
# smollm2_long_context.sh: extend SmolLM2-135M-Instruct (8K native context) with YaRN x4 to
# 32K and measure passkey retrieval at 8K / 16K / 32K before and after a short CPT at 16K
# (issue 11's outcome). Rows, all in this one run on this machine:
#   base             unchanged RoPE (8K and 16K: past 8K the model is out of its context)
#   base + YaRN x4   rope_scaling yarn, factor 4, original_max_position_embeddings 8192, no training
#   YaRN x4 + CPT    $STEPS steps of $MICRO x 16384 tokens (the same YaRN in the recipe and so in
#                    the export's config.json): 80% long documents (Tiny Shakespeare and the
#                    WikiText-2 test set, each one document, trained as consecutive 16K pieces
#                    in order) + 20% C4 (short, document-masked), AdamW lr $LR, warmup 2, cosine
# Passkey: `cpt eval-long` (Landmark Attention's prompt, greedy answer, keys random per trial)
# at depths $DEPTHS x $TRIALS trials per length. Short-context regression: the loss on held-out
# C4 documents (the training loop's validation, at step 0 and at the end).
#   bash bench/smollm2_long_context.sh   knobs: OUT STEPS MICRO LR DEPTHS TRIALS PRECISION
# About 100 minutes on 2 cores with AVX512-BF16 at the defaults (each CPT step is one 16K
# forward + backward; each 32K prompt one 32K prefill). Results are kept under $OUT: a rerun
# skips what is done.
set -Eeuo pipefail
BENCH=smollm2_long_context
source "$(dirname "$0")/lib.sh"   # here, cpt, shared, die, model (SmolLM2), prep
OUT=${OUT:-/tmp/cpt-smollm2-long}
STEPS=${STEPS:-12}
MICRO=${MICRO:-1}
LR=${LR:-1.0e-4}
DEPTHS=${DEPTHS:-0.25,0.5,0.75}
TRIALS=${TRIALS:-1}
PRECISION=${PRECISION:-bf16}   # falls back to fp32 (with a line in the log) where the CPU has no bf16 dot products
[ -f "$shared/corpora/general/tinyshakespeare.txt" ] || die "$shared/corpora/general not found" "../shared/data must sit beside the checkout"
mkdir -p "$OUT/shards"
YARN='"rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 8192}, "max_position_embeddings": 32768'
# each text file is one document (prepare's book defaults keep them whole)
prep long --input "$shared/corpora/general/tinyshakespeare.txt" --input "$shared/corpora/general/wikitext2_raw_test.txt" --val-docs 0
prep general --input "$shared/corpora/general/c4_demo.jsonl" --val-docs 50

passkey() { # NAME MODEL_DIR LENGTHS [--rope JSON]
  local name=$1 dir=$2 lengths=$3; shift 3
  [ -f "$OUT/long-$name.json" ] && return 0
  echo "== cpt eval-long ($name, lengths $lengths)"
  local t0; t0=$(date +%s)
  "$cpt" eval-long --model "$dir" --lengths "$lengths" --depths "$DEPTHS" --trials "$TRIALS" --tests passkey \
    --precision "$PRECISION" --allow-long-context --out "$OUT/long-$name.json" "$@" > "$OUT/long-$name.log" 2>&1 ||
    { tail -20 "$OUT/long-$name.log" >&2; die "eval-long $name failed"; }
  echo $(( $(date +%s) - t0 )) > "$OUT/wall-long-$name.txt"
}
r=$OUT/train.yaml
cat > "$r" <<YAML
model: $model
out_dir: $OUT/run
precision: $PRECISION
data:
  sources:
    long: {path: $OUT/shards/long}
    general: {path: $OUT/shards/general}
  mixture: {long: 0.8, general: 0.2}
  validation:
    general: $OUT/shards/general
training: {seq_len: 16384, micro_batch: $MICRO, grad_accum: 1, max_steps: $STEPS, block_causal: true, recompute: selective}
rope: {max_position_embeddings: 32768, scaling: {type: yarn, factor: 4.0, original_max_position_embeddings: 8192}}
optim: {lr: $LR, beta2: 0.95, weight_decay: 0.1, clip: 1.0}
schedule: {type: cosine, warmup_steps: 2, min_lr_ratio: 0.1}
eval: {every: $STEPS, sequences: 1}
checkpoint: {every: 0, keep_last: 1}
export: {at_end: true, dtype: f32}
threads: 2
YAML
# the recipe and its memory plan are checked before the long evaluations
"$cpt" train "$r" --plan > "$OUT/plan.log" 2>&1 || { tail -20 "$OUT/plan.log" >&2; die "the recipe or its memory plan failed"; }
passkey base "$model" 8192,16384
passkey yarn "$model" 8192,16384,32768 --rope "{$YARN}"

if [ ! -f "$OUT/run/export/config.json" ]; then
  rm -rf "$OUT/run"
  echo "== cpt train ($STEPS steps of $MICRO x 16384 tokens, lr $LR, $PRECISION)"
  t0=$(date +%s)
  "$cpt" train "$r" > "$OUT/train.log" 2>&1 || { tail -20 "$OUT/train.log" >&2; die "train failed"; }
  echo $(( $(date +%s) - t0 )) > "$OUT/wall-train.txt"
fi
passkey cpt "$OUT/run/export" 8192,16384,32768

python3 - "$OUT" "$STEPS" "$MICRO" <<'PY'
import json, os, sys
out, steps, micro = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def cell(name, L):
    j = json.load(open(os.path.join(out, "long-%s.json" % name)))["passkey"]
    it = [i for i in j["items"] if i["length"] == L]
    if not it:
        return "not run"
    s = sum(i["seconds"] for i in it) / len(it)
    return "%d/%d (%.0f s/prompt)" % (sum(i["correct"] for i in it), len(it), s)
print("| SmolLM2-135M-Instruct | passkey 8K | 16K | 32K |")
print("|---|---|---|---|")
for name, label in (("base", "unchanged RoPE"), ("yarn", "YaRN x4, no training"), ("cpt", "YaRN x4 + CPT at 16K")):
    print("| %s | %s |" % (label, " | ".join(cell(name, L) for L in (8192, 16384, 32768))))
ms = [json.loads(l) for l in open(os.path.join(out, "run", "metrics.jsonl")) if l.strip()]
val = [(m["step"], m["loss/general"]) for m in ms if m.get("kind") == "eval" and "loss/general" in m]
wall = int(open(os.path.join(out, "wall-train.txt")).read())
print("CPT: %d steps x %d x 16384 tokens, %d s wall (%.1f tokens/s)" % (steps, micro, wall, steps * micro * 16384 / wall))
print("short-context loss on held-out C4 (step, loss): " + ", ".join("%d %.4f" % v for v in val))
print("answers:")
for name in ("base", "yarn", "cpt"):
    for i in json.load(open(os.path.join(out, "long-%s.json" % name)))["passkey"]["items"]:
        print("  %-4s %5d depth %.2f key %5d %s %r" % (name, i["length"], i["depth"], i["key"], "ok " if i["correct"] else "bad", i["answer"]))
PY

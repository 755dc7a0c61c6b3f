#!/usr/bin/env bash
# knowledge_injection.sh: plain CPT vs PIT vs Knowledge-Instruct on SmolLM2-135M-Instruct
# (issue 15), on facts no pretrained model knows: `cpt synth bios` people.
#
# Data (cpt synth bios --people $PEOPLE --bios-per-person $K --paraphrases 1 --test-frac 0.5):
#   bios      every person's K biographies (train and test people)
#   qa        canonical questions about the train people (PIT's QA)
#   instruct  paraphrased questions about every person (Knowledge-Instruct's instructions)
#   general   C4 replay
# Runs, same steps, tokens per step and learning rate (so the same token budget):
#   plain  bios 0.9 + general 0.1
#   pit    stage 1 (PIT_QA_STEPS): qa 1.0; stage 2: bios 0.7 + qa 0.2 + general 0.1
#   ki     instruct 0.9 + general 0.1 (the facts only as instructions, no biographies)
# Measured on each trained model and the base: exact match / F1 on the held-out canonical
# questions of the test people (3-shot "Question: ...\nAnswer:", greedy), ARC-easy and
# HellaSwag on $GEN_LIMIT items (acc_norm), and the training wall time. Prints a table;
# everything is kept under $OUT.
# The train people's questions (qa_train, trained on by PIT) are scored too: recall of
# facts seen as QA, beside the held-out ones. Then `cpt compare` pairs each run with plain
# CPT on the held-out questions (paired standard error of the difference).
#   bash bench/knowledge_injection.sh    knobs: OUT PEOPLE K STEPS PIT_QA_STEPS LR GEN_LIMIT GENERAL
set -Eeuo pipefail
BENCH=knowledge_injection
source "$(dirname "$0")/lib.sh"   # here, cpt, shared, die, model (SmolLM2), prep
OUT=${OUT:-/tmp/cpt-knowledge}
PEOPLE=${PEOPLE:-40}
K=${K:-2}
STEPS=${STEPS:-16}
PIT_QA_STEPS=${PIT_QA_STEPS:-2}
LR=${LR:-2.0e-4}
GEN_LIMIT=${GEN_LIMIT:-100}
GENERAL=${GENERAL:-arc_easy,hellaswag}   # general tasks; "" for the held-out questions only
[ -d "$shared" ] || die "$shared not found" "../shared/data must sit beside the checkout"
mkdir -p "$OUT/shards"
"$cpt" synth bios --out "$OUT/bios" --people "$PEOPLE" --bios-per-person "$K" --paraphrases 1 --test-frac 0.5 --seed 1
# The biographies of one person are near duplicates by design and the QA lines are short:
# no filters, no dedup, every document trained on (no validation split of the facts).
prep bios --input "$OUT/bios/bios.jsonl" --no-filters --no-dedup --val-fraction 0
prep qa --input "$OUT/bios/qa_train.text.jsonl" --no-filters --no-dedup --val-fraction 0
prep instruct --input "$OUT/bios/instruct.text.jsonl" --no-filters --no-dedup --val-fraction 0
prep general --input "$shared/corpora/general/c4_demo.jsonl" --val-docs 50

evalm() { # NAME MODEL_DIR
  [ -f "$OUT/eval-$1.json" ] && return 0
  echo "== cpt eval ($1)"
  "$cpt" eval --model "$2" --tasks "qa:$OUT/bios/qa_test.jsonl,qa:$OUT/bios/qa_train.jsonl${GENERAL:+,$GENERAL}" --fewshot 3 \
    --max-new 16 --limit "$GEN_LIMIT" --out "$OUT/eval-$1.json" --items "$OUT/items-$1.jsonl" > "$OUT/eval-$1.log" 2>&1 ||
    { tail -20 "$OUT/eval-$1.log" >&2; die "eval $1 failed"; }
}
run() { # NAME MIXTURE-YAML [STAGES-YAML]
  local name=$1 mix=$2 body=${3:-} r="$OUT/$1.yaml"
  cat > "$r" <<YAML
model: $model
out_dir: $OUT/run-$name
data:
  sources:
    bios: {path: $OUT/shards/bios}
    qa: {path: $OUT/shards/qa}
    instruct: {path: $OUT/shards/instruct}
    general: {path: $OUT/shards/general}
  mixture: {$mix}
  validation:
    general: $OUT/shards/general
training: {seq_len: 256, micro_batch: 8, grad_accum: 1, max_steps: $STEPS}
optim: {lr: $LR, weight_decay: 0.0, clip: 1.0}
schedule: {type: cosine, warmup_steps: 2, min_lr_ratio: 0.1}
eval: {every: $STEPS, sequences: 8}
checkpoint: {every: 0, keep_last: 1}
$body
YAML
  if [ ! -f "$OUT/run-$name/export/config.json" ]; then
    rm -rf "$OUT/run-$name"
    echo "== cpt train ($name)"
    local t0=$(date +%s)
    "$cpt" train "$r" > "$OUT/train-$name.log" 2>&1 || { tail -20 "$OUT/train-$name.log" >&2; die "train $name failed"; }
    echo $(( $(date +%s) - t0 )) > "$OUT/wall-$name.txt"
  fi
  evalm "$name" "$OUT/run-$name/export"
}
evalm base "$model"
run plain "bios: 0.9, general: 0.1"
run pit "bios: 0.7, qa: 0.2, general: 0.1" "stages:
  - {name: qa-only, steps: $PIT_QA_STEPS, mixture: {qa: 1.0}}
  - {name: docs-with-qa, steps: $((STEPS - PIT_QA_STEPS)), mixture: {bios: 0.7, qa: 0.2, general: 0.1}}"
run ki "instruct: 0.9, general: 0.1"
for name in pit ki; do
  [ -f "$OUT/compare-$name/compare.json" ] && continue
  "$cpt" compare "$OUT/run-plain/export" "$OUT/run-$name/export" --tasks "qa:$OUT/bios/qa_test.jsonl" --fewshot 3 \
    --max-new 16 --limit "$GEN_LIMIT" --budget 0 --out-dir "$OUT/compare-$name" > "$OUT/compare-$name.log" 2>&1 ||
    { tail -20 "$OUT/compare-$name.log" >&2; die "compare $name failed"; }
done
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
def task(e, prefix):
    return next((v for k, v in e["tasks"].items() if k.startswith(prefix)), None)
print("| run | held-out EM | +- | F1 | train-people EM | F1 | ARC-easy acc_norm | +- | HellaSwag acc_norm | +- | train wall s |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
f = lambda t, k: "%.3f" % t[k] if t else "-"
for name in ("base", "plain", "pit", "ki"):
    p = os.path.join(out, "eval-%s.json" % name)
    if not os.path.exists(p):
        continue
    e = json.load(open(p))
    q, qt, a, h = task(e, "qa_test"), task(e, "qa_train"), task(e, "arc_easy"), task(e, "hellaswag")
    w = os.path.join(out, "wall-%s.txt" % name)
    wall = open(w).read().strip() if os.path.exists(w) else "-"
    print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (name, f(q, "exact_match"), f(q, "exact_match_stderr"),
          f(q, "f1"), f(qt, "exact_match"), f(qt, "f1"), f(a, "acc_norm"), f(a, "acc_norm_stderr"), f(h, "acc_norm"),
          f(h, "acc_norm_stderr"), wall))
for name in ("pit", "ki"):
    p = os.path.join(out, "compare-%s" % name, "compare.json")
    if os.path.exists(p):
        r = next(iter(json.load(open(p))["tasks"].values()))
        print("%s - plain, held-out EM (paired): %+.3f +- %.3f (n %d)" % (name, r["delta"], r["delta_stderr"], r["n"]))
PY

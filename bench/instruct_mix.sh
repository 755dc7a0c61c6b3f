#!/usr/bin/env bash
# instruct_mix.sh: does CPT of an instruct model erode its instruction following, and does
# a few percent of instruction data keep it? (issue 15; the seeds' advice: mix 1-5%.)
#
# SmolLM2-135M-Instruct, continued on PubMedQA abstracts with 10% C4 replay, two runs of the
# same steps, tokens and learning rate:
#   plain:  domain 0.90, general 0.10
#   mixed:  domain 0.87, general 0.10, instruct 0.03 (cpt synth qa pairs from the same
#           abstracts, chat template, loss on the answers)
# Each run measures perplexity (domain / general) and ifeval (prompt-level strict accuracy)
# at step 0 and at the end, inside cpt train (eval.ifeval). Prints a table; everything is
# kept under $OUT.
#   bash bench/instruct_mix.sh            knobs: OUT STEPS LR IF_LIMIT SYNTH_DOCS INSTRUCT
set -Eeuo pipefail
BENCH=instruct_mix
source "$(dirname "$0")/lib.sh"   # here, cpt, shared, die, model (SmolLM2), prep
OUT=${OUT:-/tmp/cpt-instruct-mix}
STEPS=${STEPS:-60}
LR=${LR:-5.0e-5}
IF_LIMIT=${IF_LIMIT:-50}
SYNTH_DOCS=${SYNTH_DOCS:-48}
INSTRUCT=${INSTRUCT:-0.03}
[ -d "$shared" ] || die "$shared not found" "../shared/data must sit beside the checkout"
mkdir -p "$OUT/text" "$OUT/shards"
python3 "$here/demo/extract-corpus.py" pubmedqa "$shared/corpora/medical/pubmedqa_ori_pqal.json" "$OUT/text/domain.jsonl" >/dev/null
if [ ! -s "$OUT/text/synth_qa.jsonl" ]; then
  echo "== cpt synth qa: $SYNTH_DOCS abstracts -> QA pairs"
  "$cpt" synth qa --model "$model" --input "$OUT/text/domain.jsonl" --out "$OUT/text/synth_qa.jsonl" --limit "$SYNTH_DOCS" \
    --types factual --per-doc 3 --max-new 200 --max-doc-tokens 512 --min-support 0.6 2> "$OUT/synth.log"
fi
prep domain --input "$OUT/text/domain.jsonl" --no-filters --val-docs 50
prep general --input "$shared/corpora/general/c4_demo.jsonl" --val-docs 50
prep instruct --input "$OUT/text/synth_qa.jsonl" --chat --val-docs 0
run() { # NAME MIXTURE-YAML
  local name=$1 mix=$2 r="$OUT/$1.yaml"
  cat > "$r" <<YAML
model: $model
out_dir: $OUT/run-$name
data:
  sources:
    domain: {path: $OUT/shards/domain}
    general: {path: $OUT/shards/general}
    instruct: {path: $OUT/shards/instruct}
  mixture: {$mix}
  validation:
    domain: $OUT/shards/domain
    general: $OUT/shards/general
training: {seq_len: 512, micro_batch: 4, grad_accum: 1, max_steps: $STEPS}
optim: {lr: $LR, weight_decay: 0.1, clip: 1.0}
schedule: {type: cosine, warmup_steps: 6, min_lr_ratio: 0.1}
eval:
  every: $STEPS
  sequences: 16
  forgetting_budget: {general: 0.05}
  on_budget: warn
  ifeval: {every: $STEPS, limit: $IF_LIMIT, max_new: 128, budget: 0.05}
checkpoint: {every: 0, keep_last: 1}
YAML
  rm -rf "$OUT/run-$name"
  echo "== cpt train ($name: $mix)"
  "$cpt" train "$r" > "$OUT/train-$name.log" 2>&1 || { tail -20 "$OUT/train-$name.log" >&2; die "train $name failed"; }
}
run plain "domain: 0.9, general: 0.1"
run mixed "domain: $(python3 -c "print(round(0.9 - $INSTRUCT, 4))"), general: 0.1, instruct: $INSTRUCT"
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
print("| run | step | domain ppl | general ppl | ifeval acc | +- | inst acc |")
print("|---|---|---|---|---|---|---|")
for name in ("plain", "mixed"):
    rows = [json.loads(l) for l in open(os.path.join(out, "run-" + name, "metrics.jsonl"))]
    ev = {}
    for r in rows:
        if r.get("kind") == "eval":
            ev.setdefault(r.get("step"), {}).update(r)
    for step in sorted(ev):
        e = ev[step]
        f = lambda k: ("%.4f" % e[k]) if k in e else "-"
        print("| %s | %s | %s | %s | %s | %s | %s |" % (name, step, f("ppl/domain"), f("ppl/general"), f("ifeval/acc"),
                                                       f("ifeval/acc_stderr"), f("ifeval/inst_acc")))
PY

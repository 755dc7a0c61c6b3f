#!/usr/bin/env bash
# fictional_injection.sh: does continued pretraining inject new facts into SmolLM2-135M-Instruct?
# (issue 15) Measured with the Fictional Knowledge probes (Chang et al. 2024,
# ../shared/data/knowledge-injection/fictional-knowledge: 130 invented documents, 5 probes per
# document at three levels: mem = a sentence of the document cut before a fact, gen = the same
# sentence paraphrased, hard = a new sentence whose completion combines facts).
#
# The first $DOCS documents are trained on (90% of the tokens, 10% C4 replay, consecutive
# 512-token pieces of each document); the next $CONTROL documents are never seen and are the
# control: a rise there is general drift (style, the invented names' vocabulary), not injection.
# Measured on the base and the trained model: each level's probes on the trained and the control
# documents -- acc (the target is the greedy continuation) and the dataset's score, the target's
# log-probability per token -- plus ARC-easy and HellaSwag (acc_norm, $GEN_LIMIT items) for
# forgetting; the mem / gen probes of the trained documents also run inside the training loop
# (eval.tasks) every $EVERY steps, so the report shows when the facts arrive; `cpt compare`
# pairs base and trained per probe (paired standard error). Prints a table, keeps all under $OUT.
#   bash bench/fictional_injection.sh   knobs: OUT DOCS CONTROL STEPS LR EVERY GEN_LIMIT PRECISION
set -Eeuo pipefail
BENCH=fictional_injection
source "$(dirname "$0")/lib.sh"   # here, cpt, shared, die, model (SmolLM2), prep
OUT=${OUT:-/tmp/cpt-fictional}
DOCS=${DOCS:-20}
CONTROL=${CONTROL:-20}
STEPS=${STEPS:-60}
LR=${LR:-2.0e-4}
EVERY=${EVERY:-15}
GEN_LIMIT=${GEN_LIMIT:-100}
PRECISION=${PRECISION:-bf16}   # falls back to fp32 (with a line in the log) where the CPU has no bf16 dot products
fk=$shared/knowledge-injection/fictional-knowledge/fictional_knowledge.json
[ -f "$fk" ] || die "$fk not found" "../shared/data must sit beside the checkout"
mkdir -p "$OUT/fk" "$OUT/shards"
python3 - "$fk" "$OUT/fk" "$DOCS" "$CONTROL" <<'PY'
import json, os, sys
src, out, n, c = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
docs = json.load(open(src))
if n + c > len(docs):
    sys.exit("fictional_injection: DOCS + CONTROL = %d > the dataset's %d documents" % (n + c, len(docs)))
json.dump(docs[:n], open(os.path.join(out, "trained.json"), "w"))
json.dump(docs[n:n + c], open(os.path.join(out, "control.json"), "w"))
with open(os.path.join(out, "trained.jsonl"), "w") as f:
    for d in docs[:n]:
        f.write(json.dumps({"text": d["train_context"]}) + "\n")
PY
# every document is trained on: no filters, no dedup, no validation split of the facts
prep docs --input "$OUT/fk/trained.jsonl" --no-filters --no-dedup --val-fraction 0
prep general --input "$shared/corpora/general/c4_demo.jsonl" --val-docs 50

probes=""
for set in trained control; do for lv in mem gen hard; do probes+="${probes:+,}fictional_$lv:$OUT/fk/$set.json"; done; done
evalm() { # NAME MODEL_DIR
  [ -f "$OUT/eval-$1.json" ] && return 0
  echo "== cpt eval ($1)"
  "$cpt" eval --model "$2" --tasks "$probes,arc_easy,hellaswag" --limit "$GEN_LIMIT" --precision "$PRECISION" \
    --out "$OUT/eval-$1.json" --items "$OUT/items-$1.jsonl" > "$OUT/eval-$1.log" 2>&1 ||
    { tail -20 "$OUT/eval-$1.log" >&2; die "eval $1 failed"; }
}
evalm base "$model"
r=$OUT/train.yaml
cat > "$r" <<YAML
model: $model
out_dir: $OUT/run
precision: $PRECISION
data:
  sources:
    docs: {path: $OUT/shards/docs}
    general: {path: $OUT/shards/general}
  mixture: {docs: 0.9, general: 0.1}
  validation:
    general: $OUT/shards/general
training: {seq_len: 512, micro_batch: 4, grad_accum: 1, max_steps: $STEPS}
optim: {lr: $LR, weight_decay: 0.0, clip: 1.0}
schedule: {type: cosine, warmup_steps: 5, min_lr_ratio: 0.1}
eval:
  every: $EVERY
  sequences: 8
  tasks: {names: "fictional_mem:$OUT/fk/trained.json,fictional_gen:$OUT/fk/trained.json", every: $EVERY, limit: 0, budget: 0.0}
checkpoint: {every: 0, keep_last: 1}
YAML
if [ ! -f "$OUT/run/export/config.json" ]; then
  rm -rf "$OUT/run"
  echo "== cpt train ($STEPS steps of 2048 tokens, lr $LR, $PRECISION)"
  t0=$(date +%s)
  "$cpt" train "$r" > "$OUT/train.log" 2>&1 || { tail -20 "$OUT/train.log" >&2; die "train failed"; }
  echo $(( $(date +%s) - t0 )) > "$OUT/wall-train.txt"
fi
evalm trained "$OUT/run/export"
if [ ! -f "$OUT/compare/compare.json" ]; then
  "$cpt" compare "$model" "$OUT/run/export" --tasks "$probes" --budget 0 --out-dir "$OUT/compare" > "$OUT/compare.log" 2>&1 ||
    { tail -20 "$OUT/compare.log" >&2; die "compare failed"; }
fi
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
b, t = (json.load(open(os.path.join(out, "eval-%s.json" % n)))["tasks"] for n in ("base", "trained"))
cmp = json.load(open(os.path.join(out, "compare", "compare.json")))["tasks"]
print("| probes | documents | n | acc base | acc trained | paired delta +- SE | log-prob/token base | trained |")
print("|---|---|---|---|---|---|---|---|")
for lv in ("mem", "gen", "hard"):
    for s in ("trained", "control"):
        k = "fictional_%s:%s" % (lv, s)
        c = next((v for kk, v in cmp.items() if kk.startswith(k)), None)
        print("| %s | %s | %d | %.3f | %.3f | %s | %.3f | %.3f |" % (lv, s, b[k]["n"], b[k]["acc"], t[k]["acc"],
              "%+.3f +- %.3f" % (c["delta"], c["delta_stderr"]) if c else "-", b[k]["logprob_per_token"], t[k]["logprob_per_token"]))
for k in ("arc_easy", "hellaswag"):
    print("%s acc_norm: base %.3f +- %.3f, trained %.3f +- %.3f" % (k, b[k]["acc_norm"], b[k]["acc_norm_stderr"], t[k]["acc_norm"], t[k]["acc_norm_stderr"]))
ms = [json.loads(l) for l in open(os.path.join(out, "run", "metrics.jsonl")) if l.strip()]
curve = {}
for m in ms:  # each task's metrics come on their own line
    for lv in ("mem", "gen"):
        k = "task/fictional_%s:trained.json/acc" % lv
        if k in m:
            curve.setdefault(m["step"], {})[lv] = m[k]
print("in the loop (trained documents, acc): " + ", ".join("step %d mem %.2f gen %.2f" % (st, c.get("mem", float("nan")),
      c.get("gen", float("nan"))) for st, c in sorted(curve.items())))
loss = [m for m in ms if m.get("kind") == "train" and "loss" in m]
if loss:
    print("training loss: step %d %.3f -> step %d %.3f" % (loss[0]["step"], loss[0]["loss"], loss[-1]["step"], loss[-1]["loss"]))
w = os.path.join(out, "wall-train.txt")
print("train wall: %s s" % (open(w).read().strip() if os.path.exists(w) else "-"))
PY

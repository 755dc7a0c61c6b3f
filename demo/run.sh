#!/usr/bin/env bash
# demo/run.sh: the continued-pretraining demo behind `make demo`.
#
# With ../shared/data present (and its stories260K model readable by cpt's tokenizer)
# the base model is the real stories260K; without it, the demo first makes its own small
# base model: a byte-level Llama pretrained by cpt on generated children's stories.
# Then it continues the base model on a new domain twice, with 10% replay of the
# general data and without, and shows domain and general perplexity before and after.
# Everything it writes goes under $DEMO_OUT (default demo-out/).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cpt="$here/build/cpt"
export DEMO_OUT=${DEMO_OUT:-$here/demo-out}
shared="$here/../shared/data"
steps=${DEMO_STEPS:-150}
rm -rf "$DEMO_OUT"
mkdir -p "$DEMO_OUT/text"
t0=$(date +%s)
say() { printf '\n== %s\n' "$*"; }

mode=selfmade
if [ -d "$shared/models/stories260K-hf" ] && [ -z "${DEMO_SELFMADE:-}" ] &&
   echo "Once upon a time" | "$cpt" tokenize --tokenizer "$shared/models/stories260K-hf" >/dev/null 2>&1; then
  mode=stories260k
fi

if [ "$mode" = stories260k ]; then
  say "base model: stories260K (../shared/data/models/stories260K-hf); general = TinyStories, domain = Shakespeare"
  base="$shared/models/stories260K-hf"
  tok="$base"
  gen_in="$shared/corpora/general/tinystories_train_head.txt"
  dom_in="$shared/corpora/general/tinyshakespeare.txt"
  prep_args=(--txt-docs blank --no-filters)
else
  say "no ../shared/data (or its tokenizer is not supported yet): making a base model first"
  awk -v kind=general -v docs=3000 -v seed=1 -f "$here/demo/make-text.awk" > "$DEMO_OUT/text/general.txt"
  awk -v kind=domain -v docs=1500 -v seed=2 -f "$here/demo/make-text.awk" > "$DEMO_OUT/text/domain.txt"
  "$cpt" init --config "$here/demo/base-config.json" --byte-tokenizer --out "$DEMO_OUT/base0" --seed 1
  tok="$DEMO_OUT/base0"
  gen_in="$DEMO_OUT/text/general.txt"
  dom_in="$DEMO_OUT/text/domain.txt"
  prep_args=(--txt-docs blank --no-filters)
fi

say "preparing data: clean, deduplicate, tokenize, shard (cpt data prepare)"
"$cpt" data prepare --tokenizer "$tok" --input "$gen_in" --out "$DEMO_OUT/shards/general" \
  "${prep_args[@]}" --val-docs 40 --quiet
"$cpt" data prepare --tokenizer "$tok" --input "$dom_in" --out "$DEMO_OUT/shards/domain" \
  "${prep_args[@]}" --val-docs 40 --quiet

if [ "$mode" = selfmade ]; then
  say "pretraining the base model on the general text (cpt train demo/pretrain.yaml)"
  "$cpt" train "$here/demo/pretrain.yaml" 2> "$DEMO_OUT/pretrain.log" || { tail -20 "$DEMO_OUT/pretrain.log"; exit 1; }
  grep -E "^eval|^done" "$DEMO_OUT/pretrain.log" | tail -3
  base="$DEMO_OUT/pretrain/export"
fi
export DEMO_MODEL="$base"

for variant in replay noreplay; do
  extra=()
  if [ "$variant" = noreplay ]; then extra=("data.replay.source=" "data.replay.fraction=" "data.mixture={domain: 1.0, general: 0.0}"); fi
  say "continued pretraining on the domain, $variant (cpt train demo/cpt.yaml)"
  "$cpt" train "$here/demo/cpt.yaml" out_dir="$DEMO_OUT/cpt-$variant" training.max_steps="$steps" \
    ${tok:+tokenizer="$tok"} "${extra[@]}" 2> "$DEMO_OUT/cpt-$variant.log" || { tail -20 "$DEMO_OUT/cpt-$variant.log"; exit 1; }
  grep -E "^  (domain|general)|^done" "$DEMO_OUT/cpt-$variant.log"
done

say "result: perplexity before -> after continued pretraining"
printf '%-10s %-10s %12s %12s %10s\n' run set base final change
for variant in replay noreplay; do
  grep -E "^  (domain|general)" "$DEMO_OUT/cpt-$variant.log" | while read -r set _ _ b _ f chg; do
    printf '%-10s %-10s %12s %12s %10s\n' "$variant" "$set" "$b" "$f" "$chg"
  done
done
echo
echo "reports:  $DEMO_OUT/cpt-replay/report.md  $DEMO_OUT/cpt-noreplay/report.md"
echo "curves:   $DEMO_OUT/cpt-replay/curves.svg  (TensorBoard: tensorboard --logdir $DEMO_OUT)"
echo "models:   $DEMO_OUT/cpt-replay/export (Hugging Face format)"
echo "demo took $(( $(date +%s) - t0 )) s"

#!/usr/bin/env bash
# demo/run.sh: the continued-pretraining demo behind `make demo`.
#
# With ../shared/data beside the checkout the base model is the real stories260K; a failing
# cpt command on that path fails the demo (non-zero exit), it never falls back. Only when
# ../shared/data is absent (or DEMO_SELFMADE=1) does the demo first make its own small base
# model: a byte-level Llama pretrained by cpt on generated children's stories.
# Then it continues the base model on a new domain twice, with 10% replay of the
# general data and without, and shows domain and general perplexity before and after.
# Everything it writes goes under $DEMO_OUT (default demo-out/), which it empties first;
# it marks that directory with $marker so it never deletes a directory it did not make.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cpt="${CPT_BIN:-$here/build/cpt}"
export DEMO_OUT=${DEMO_OUT:-$here/demo-out}
shared="$here/../shared/data"
steps=${DEMO_STEPS:-150}
precision=${DEMO_PRECISION:-fp32}   # the continued-pretraining runs' precision (fp32 | bf16)
marker=.cpt-demo-out
t0=$(date +%s)
say() { printf '\n== %s\n' "$*"; }
die() { printf 'demo: error: %s\n' "$1" >&2; [ -n "${2:-}" ] && printf 'demo: HINT: %s\n' "$2" >&2; exit 1; }

[ -x "$cpt" ] || die "$cpt not found" "build it first: make (or run the demo as make demo)"

# Empty DEMO_OUT only if it is missing, empty, or a previous demo's output (the marker).
if [ -e "$DEMO_OUT" ]; then
  [ -d "$DEMO_OUT" ] || die "DEMO_OUT=$DEMO_OUT exists and is not a directory" "choose another DEMO_OUT"
  if [ -n "$(ls -A "$DEMO_OUT")" ] && [ ! -f "$DEMO_OUT/$marker" ]; then
    die "DEMO_OUT=$DEMO_OUT is not empty and has no $marker, so it does not look like a demo output; refusing to delete it" \
        "point DEMO_OUT at a new or empty directory, or remove $DEMO_OUT yourself if it is an old demo output"
  fi
  rm -rf "$DEMO_OUT"
fi
mkdir -p "$DEMO_OUT/text"
echo "cpt demo output (demo/run.sh deletes and rewrites this directory)" > "$DEMO_OUT/$marker"

mode=stories260k
if [ -n "${DEMO_SELFMADE:-}" ] && [ "${DEMO_SELFMADE}" != 0 ]; then
  mode=selfmade; why="DEMO_SELFMADE=$DEMO_SELFMADE"
elif [ ! -d "$shared" ]; then
  mode=selfmade; why="no ../shared/data beside the checkout"
fi
trap 'echo "demo: FAILED (path: $mode) at line $LINENO; see the messages above" >&2' ERR
echo "demo: path: $mode${why:+ ($why)}"

if [ "$mode" = stories260k ]; then
  say "base model: stories260K (../shared/data/models/stories260K-hf); general = TinyStories, domain = Shakespeare"
  base="$shared/models/stories260K-hf"
  for f in "$base/config.json" "$base/model.safetensors" "$shared/corpora/general/tinystories_train_head.txt" \
           "$shared/corpora/general/tinyshakespeare.txt"; do
    [ -f "$f" ] || die "../shared/data is present but $f is missing" "restore ../shared, or run the self-made path: DEMO_SELFMADE=1 make demo"
  done
  tok="$base"
  gen_in="$shared/corpora/general/tinystories_train_head.txt"
  dom_in="$shared/corpora/general/tinyshakespeare.txt"
  prep_args=(--txt-docs blank --no-filters)
else
  say "self-made base model ($why): making a base model first"
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
  "$cpt" train "$here/demo/pretrain.yaml" 2> "$DEMO_OUT/pretrain.log" || { tail -20 "$DEMO_OUT/pretrain.log"; echo "demo: FAILED (path: $mode): cpt train failed, log above" >&2; exit 1; }
  grep -E "^eval|^done" "$DEMO_OUT/pretrain.log" | tail -3
  base="$DEMO_OUT/pretrain/export"
fi
export DEMO_MODEL="$base"

for variant in replay noreplay; do
  extra=()
  if [ "$variant" = noreplay ]; then extra=("data.replay.source=" "data.replay.fraction=" "data.mixture={domain: 1.0, general: 0.0}"); fi
  say "continued pretraining on the domain, $variant (cpt train demo/cpt.yaml)"
  "$cpt" train "$here/demo/cpt.yaml" out_dir="$DEMO_OUT/cpt-$variant" training.max_steps="$steps" precision="$precision" \
    ${tok:+tokenizer="$tok"} "${extra[@]}" 2> "$DEMO_OUT/cpt-$variant.log" || { tail -20 "$DEMO_OUT/cpt-$variant.log"; echo "demo: FAILED (path: $mode): cpt train failed, log above" >&2; exit 1; }
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
echo "demo ($mode path) took $(( $(date +%s) - t0 )) s"

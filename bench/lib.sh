# bench/lib.sh: what the SmolLM2 outcome scripts share (sourced, not run). After
#   BENCH=name; source "$(dirname "$0")/lib.sh"
# the script has: here (the checkout), cpt (CPT_BIN or build/cpt, checked), shared
# (../shared/data), die MSG [HINT], model (SmolLM2-135M-Instruct's HF directory, fetched and
# converted once by scripts/get-smollm2.sh) and prep NAME ARGS... (`cpt data prepare` with
# the model's tokenizer into $OUT/shards/NAME, skipped when already there; its log in
# $OUT/prepare-NAME.log). $OUT must be set before prep is called.
here=$(cd "$(dirname "$0")/.." && pwd)
cpt=${CPT_BIN:-$here/build/cpt}
shared=$(cd "$here/.." && pwd)/shared/data
die() { echo "$BENCH: error: $1" >&2; [ -n "${2:-}" ] && echo "$BENCH: HINT: $2" >&2; exit 1; }
[ -x "$cpt" ] || die "$cpt not found" "build first (make), or set CPT_BIN"
model=$(CPT_BIN="$cpt" "$here/scripts/get-smollm2.sh" | tail -1) || die "SmolLM2 could not be fetched" "see scripts/get-smollm2.sh"
prep() { local name=$1; shift; [ -f "$OUT/shards/$name/stats.json" ] && return 0
  mkdir -p "$OUT/shards"
  "$cpt" data prepare --tokenizer "$model" --out "$OUT/shards/$name" --quiet "$@" > "$OUT/prepare-$name.log" 2>&1 ||
    { cat "$OUT/prepare-$name.log" >&2; die "data prepare $name failed"; }; }

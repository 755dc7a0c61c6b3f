#!/usr/bin/env bash
# Runs every libFuzzer target built in $1 for a bounded time (FUZZ_SECONDS, default 30)
# on its seed corpus in tests/fuzz/corpus/<target>/. Any crash fails the run.
set -euo pipefail
build=${1:-build-fuzz}
secs=${FUZZ_SECONDS:-30}
here=$(cd "$(dirname "$0")/.." && pwd)
n=0; failed=0
for bin in "$build"/tests/fuzz_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin")
  seeds="$here/tests/fuzz/corpus/${name#fuzz_}"
  work=$(mktemp -d)
  [ -d "$seeds" ] && cp -r "$seeds"/. "$work"/ 2>/dev/null || true
  echo "== $name: ${secs}s"
  if "$bin" -max_total_time="$secs" -rss_limit_mb=4096 -print_final_stats=1 "$work" > "$work.log" 2>&1; then
    tail -n 3 "$work.log"
  else
    echo "FUZZ FAILURE in $name"; tail -n 60 "$work.log"; failed=$((failed+1))
  fi
  n=$((n+1)); rm -rf "$work" "$work.log"
done
echo "fuzzers: $((n-failed)) passed, $failed failed"
[ "$failed" -eq 0 ]

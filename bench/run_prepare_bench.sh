#!/usr/bin/env bash
# run_prepare_bench.sh: cpt data prepare vs bench/peer_prepare.py (HF tokenizers + numpy) on
# $CPT_SHARED/data/corpora (1x) and a 10x repetition, 1 and 2 threads; same work on both
# sides: NFC, quality filters and near dedup off, exact dedup on, GPT-2 tokenizer, EOS.
# Reports MB/s, tokens/s, peak RSS and the cpt/peer ratio. The 10x corpus repeats every
# file under a new name, so exact dedup drops 9 of 10 copies on both sides.
# Usage: bench/run_prepare_bench.sh [CPT_BIN]   (env: CPT_SHARED, default ../shared)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cpt=${1:-$here/../build/cpt}
shared=${CPT_SHARED:-$here/../../shared}
tok=$shared/data/tokenizers/gpt2/hf/tokenizer.json
work=$(mktemp -d /tmp/cpt_prep_bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
mapfile -t files < <(find "$shared/data/corpora" -type f \( -name '*.txt' -o -name '*.jsonl' \) | sort)
mkdir -p "$work/x10"
for r in $(seq 1 10); do for f in "${files[@]}"; do b=$(basename "$f"); cp "$f" "$work/x10/r${r}_$b"; done; done
mb1=$(du -cb "${files[@]}" | tail -1 | cut -f1)
mb10=$(du -cb "$work/x10" | tail -1 | cut -f1)
printf '%-5s %-3s %-5s %9s %12s %9s   %9s %12s %9s   %s\n' corpus thr side "MB/s" "tokens/s" "RSS MB" "peer MB/s" "peer tok/s" "peer RSS" "ratio MB/s"
for scale in 1 10; do
  if [ $scale = 1 ]; then ins=("${files[@]}"); bytes=$mb1; else ins=("$work/x10"); bytes=$mb10; fi
  for thr in 1 2; do
    rm -rf "$work/o1" "$work/o2"
    /usr/bin/time -f '%e %M' -o "$work/t1" env OMP_NUM_THREADS=$thr "$cpt" data prepare --tokenizer "$tok" \
      --input "${ins[@]}" --out "$work/o1" --no-filters --no-near-dedup --no-nfc --val-fraction 0 \
      --threads $thr --quiet > "$work/s1"
    ctok=$(python3 -c "import json;s=json.load(open('$work/o1/stats.json'));print(s['train_tokens'])")
    if [ $scale = 1 ]; then pins=("${files[@]}"); else mapfile -t pins < <(find "$work/x10" -type f | sort); fi
    /usr/bin/time -f '%e %M' -o "$work/t2" env RAYON_NUM_THREADS=$thr python3 "$here/peer_prepare.py" "$tok" \
      "$work/o2" "${pins[@]}" > "$work/s2"
    ptok=$(python3 -c "import json;print(json.load(open('$work/s2'))['tokens'])")
    read -r ct crss < "$work/t1"; read -r pt prss < "$work/t2"
    python3 - "$scale" "$thr" "$bytes" "$ct" "$crss" "$ctok" "$pt" "$prss" "$ptok" <<'PY'
import sys
sc, thr, b, ct, crss, ctok, pt, prss, ptok = sys.argv[1:]
b, ct, pt = float(b), float(ct), float(pt)
print("%-5s %-3s %-5s %9.2f %12.0f %9.1f   %9.2f %12.0f %9.1f   %.2fx  (tokens cpt %s peer %s)" % (
    sc + "x", thr, "cpt", b / 1e6 / ct, int(ctok) / ct, int(crss) / 1024, b / 1e6 / pt, int(ptok) / pt,
    int(prss) / 1024, (b / ct) / (b / pt), ctok, ptok))
PY
  done
done

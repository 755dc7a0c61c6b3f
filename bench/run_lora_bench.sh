#!/usr/bin/env bash
# LoRA CPT vs full-parameter CPT, cpt beside PyTorch + PEFT, same shape, threads and run:
#   cpt:  bench/train_bench.c (full, and --lora R: rank R, alpha 2R, all seven linears; fp32,
#         and precision bf16 where the CPU has AMX / AVX512-BF16)
#   peer: bench/peer_lora.py  (full and PEFT LoRA; impl hf = transformers + PEFT, sdpa = the
#         shared peer's model + PEFT; fp32 and autocast bf16): the fastest configuration that
#         runs is the one compared.
# Prints each JSON line and a table: tokens/s, peak RSS, trainable parameters.
# Usage: bench/run_lora_bench.sh [build-dir]   (THREADS, STEPS, SHAPE, SEQ, BATCH, RANK, PEER_CONFIGS may be set)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
threads=${THREADS:-2}; steps=${STEPS:-3}; shape=${SHAPE:-smollm135m}; seq=${SEQ:-512}; batch=${BATCH:-4}; rank=${RANK:-16}
peer_configs=${PEER_CONFIGS:-"hf:full:fp32 sdpa:full:fp32 sdpa:full:bf16 hf:lora:fp32 sdpa:lora:fp32 hf:lora:bf16 sdpa:lora:bf16"}
out=$(mktemp)
echo "fp32 FMA peak: $("$build/fma_peak" "$threads")"
common=(--shape "$shape" --seq "$seq" --batch "$batch" --steps "$steps" --threads "$threads")
precs="fp32"; "$build/cpt" --version | grep -q "bf16: yes" && precs="fp32 bf16"  # bf16 where the CPU has it
for p in $precs; do
  for mode in full lora; do
    extra=(--precision "$p"); [ "$mode" = lora ] && extra+=(--lora "$rank")
    l=$(OMP_NUM_THREADS=$threads "$build/train_bench" "${common[@]}" "${extra[@]}")
    echo "cpt $mode $p: $l"; echo "cpt $mode $l" >>"$out"
  done
done
for c in $peer_configs; do
  IFS=: read -r impl mode dtype <<<"$c"
  l=$(python3 "$here/bench/peer_lora.py" "${common[@]}" --impl "$impl" --mode "$mode" --rank "$rank" --dtype "$dtype" 2>/dev/null || echo '{}')
  echo "peer $impl $mode $dtype: $l"; echo "peer $mode $l" >>"$out"
done
python3 - "$out" <<'PY'
import json, sys
rows = []
for line in open(sys.argv[1]):
    who, mode, js = line.split(" ", 2)
    d = json.loads(js)
    if d.get("tokens_per_s"): rows.append((who, mode, d))
print("\n| who | mode | config | trainable | tokens/s | peak RSS MiB |\n|---|---|---|---:|---:|---:|")
for who, mode, d in rows:
    cfg = "cpt " + d.get("precision", "fp32") if who == "cpt" else "%s %s" % (d["impl"], d["dtype"])
    print("| %s | %s | %s | %d | %.1f | %d |" % (who, mode, cfg, d["trainable"], d["tokens_per_s"], d["peak_rss_mib"]))
for mode in ("full", "lora"):
    p = [d for w, m, d in rows if w == "peer" and m == mode]
    for c in [d for w, m, d in rows if w == "cpt" and m == mode]:
        if not p: break
        best = max(p, key=lambda d: d["tokens_per_s"])
        print("%s (cpt %s): cpt %.1f tok/s vs peer's fastest (%s %s) %.1f tok/s = %.2fx; peak RSS %d vs %d MiB" % (
            mode, c.get("precision", "fp32"), c["tokens_per_s"], best["impl"], best["dtype"], best["tokens_per_s"],
            c["tokens_per_s"] / best["tokens_per_s"], c["peak_rss_mib"], best["peak_rss_mib"]))
cf = [d for w, m, d in rows if w == "cpt" and m == "full" and d.get("precision") == "fp32"]
cl = [d for w, m, d in rows if w == "cpt" and m == "lora" and d.get("precision") == "fp32"]
if cf and cl:
    print("cpt LoRA vs full: %.2fx tokens/s, peak RSS %d vs %d MiB (%.0f%%)" % (
        cl[0]["tokens_per_s"] / cf[0]["tokens_per_s"], cl[0]["peak_rss_mib"], cf[0]["peak_rss_mib"], 100.0 * cl[0]["peak_rss_mib"] / cf[0]["peak_rss_mib"]))
PY
rm -f "$out"

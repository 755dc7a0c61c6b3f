#!/usr/bin/env bash
# Long-context training throughput (issue 9's benchmark): the SmolLM2-135M shape, random
# init, batch 1, at growing lengths; cpt with activation recomputation next to the PyTorch
# peer (../shared/bench/peer_torch_llama.py) with gradient checkpointing, in the same run,
# one after the other at each length, same thread count.
# Usage: bench/run_long_bench.sh [build-dir] [results.jsonl]
#   LENGTHS   (default "2048 4096 8192 16384 32768")
#   RECOMPUTE cpt's mode (default selective: keeps attention's output, recomputes the rest)
#   PRECISIONS cpt's precisions (default "fp32 bf16"; bf16 runs where the CPU has bf16 dot
#             products, else train_bench says so and runs fp32)
#   PEERS     impl:dtype configurations of the peer, all with --grad-ckpt
#             (default "sdpa:fp32 hf:fp32 sdpa:bf16"; the table compares with the fastest)
#   PEER_MAX_T  longest length the peer is run at (default 32768)
#   STEPS     timed steps per run (default 1), THREADS (default 2)
#   TIMEOUT   seconds per run before it counts as "did not finish" (default 5400)
# Prints one JSON line per run and a Markdown table at the end. Timings on a shared host move
# between runs: read the ratios of runs made side by side, never one absolute number.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
out=${2:-$build/long_bench.jsonl}
threads=${THREADS:-2}; steps=${STEPS:-1}; recompute=${RECOMPUTE:-selective}; precisions=${PRECISIONS:-"fp32 bf16"}
lengths=${LENGTHS:-"2048 4096 8192 16384 32768"}
peers=${PEERS:-"sdpa:fp32 hf:fp32 sdpa:bf16"}
peer_max_t=${PEER_MAX_T:-32768}; tmo=${TIMEOUT:-5400}
peer="$here/../shared/bench/peer_torch_llama.py"
[ -x "$build/train_bench" ] || { echo "run_long_bench: $build/train_bench not built (make)" >&2; exit 2; }
[ -f "$peer" ] || { echo "run_long_bench: the peer $peer is missing (../shared)" >&2; exit 2; }
: >"$out"
echo "fp32 FMA peak: $("$build/fma_peak" "$threads")"
for T in $lengths; do
  warm=1; [ "$T" -gt 4096 ] && warm=0   # one untimed step at short lengths; long steps take minutes
  for prec in $precisions; do
    if c=$(OMP_NUM_THREADS=$threads timeout "$tmo" "$build/train_bench" --shape smollm135m --seq "$T" --batch 1 \
             --steps "$steps" --warmup "$warm" --threads "$threads" --recompute "$recompute" --precision "$prec"); then
      echo "$c" | tee -a "$out"
    else
      echo "{\"impl\": \"cpt\", \"precision\": \"$prec\", \"seq\": $T, \"failed\": true}" | tee -a "$out"
    fi
  done
  [ "$T" -le "$peer_max_t" ] || continue
  for p in $peers; do
    IFS=: read -r impl dtype <<<"$p"
    if r=$(timeout "$tmo" python3 "$peer" --shape smollm135m --seq "$T" --batch 1 --steps "$steps" \
             --threads "$threads" --impl "$impl" --dtype "$dtype" --grad-ckpt 2>/dev/null | tail -1) && [ -n "$r" ]; then
      echo "$r" | tee -a "$out"
    else
      echo "{\"peer\": \"pytorch\", \"impl\": \"$impl\", \"dtype\": \"$dtype\", \"seq\": $T, \"failed\": true}" | tee -a "$out"
    fi
  done
done
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("\n| T | cpt precision | cpt tok/s | cpt MFU (causal, vs the peak of its precision) | attention share | cpt peak RSS | best peer (grad-ckpt) | peer tok/s | peer peak RSS | cpt / peer |")
print("|---|---|---|---|---|---|---|---|---|---|")
for T in sorted({r["seq"] for r in rows}):
    ps = [r for r in rows if r["seq"] == T and "peer" in r and not r.get("failed")]
    p = max(ps, key=lambda r: r["tokens_per_s"]) if ps else None
    for c in [r for r in rows if r["seq"] == T and r.get("impl") == "cpt"]:
        prec = c.get("precision", "fp32")
        if c.get("failed"):
            cs = "did not finish | | | "
        else:
            mfu = c.get("mfu_causal_bf16") if prec != "fp32" and c.get("mfu_causal_bf16") else c["mfu_causal"]
            cs = f"{c['tokens_per_s']:.0f} | {mfu*100:.1f}% | {c['attn_share']*100:.0f}% | {c['peak_rss_mib']/1024:.2f} GiB"
        if p:
            ps_ = f"{p['impl']} {p['dtype']} | {p['tokens_per_s']:.0f} | {p['peak_rss_mib']/1024:.2f} GiB"
            ratio = f"{c['tokens_per_s']/p['tokens_per_s']:.2f}x" if not c.get("failed") else ""
        else:
            ps_, ratio = "none finished | | ", ""
        print(f"| {T} | {prec} | {cs} | {ps_} | {ratio} |")
PY

#!/usr/bin/env bash
# Side-by-side training throughput: cpt (bench/train_bench.c) and the PyTorch peer
# (../shared/bench/peer_torch_llama.py), same shape, same threads, same run, alternating.
# Usage: bench/run_train_bench.sh [build-dir]   (THREADS, STEPS, SHAPES may be set)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
threads=${THREADS:-2}; steps=${STEPS:-5}
peer="$here/../shared/bench/peer_torch_llama.py"
shapes=${SHAPES:-"stories15m:256:4 smollm135m:512:4"}
echo "fp32 FMA peak: $("$build/fma_peak" "$threads")"
for spec in $shapes; do
  IFS=: read -r shape seq batch <<<"$spec"
  c=$(OMP_NUM_THREADS=$threads "$build/train_bench" --shape "$shape" --seq "$seq" --batch "$batch" --steps "$steps" --threads "$threads")
  # The peer prints one JSON line; add its peak RSS (MiB) measured the same way (getrusage).
  p=$(python3 - "$peer" --shape "$shape" --seq "$seq" --batch "$batch" --steps "$steps" --threads "$threads" <<'PY' 2>/dev/null || echo '{}'
import contextlib, io, json, resource, runpy, sys
peer = sys.argv[1]; sys.argv = sys.argv[1:]
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    runpy.run_path(peer, run_name="__main__")
d = json.loads(buf.getvalue().strip().splitlines()[-1])
d["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print(json.dumps(d))
PY
)
  echo "cpt:  $c"; echo "peer: $p"
  python3 - "$c" "$p" <<'PY'
import json, sys
c, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
if p.get("tokens_per_s"):
    print(f"=> {c['shape']}: cpt {c['tokens_per_s']:.0f} tok/s vs {p['peer']} {p['tokens_per_s']:.0f} tok/s: "
          f"{c['tokens_per_s']/p['tokens_per_s']:.2f}x; MFU (PaLM model FLOPs / measured FMA peak) cpt {c['mfu']*100:.1f}% vs peer {c['mfu']*p['tokens_per_s']/c['tokens_per_s']*100:.1f}%; "
          f"peak RSS cpt {c['peak_rss_mib']:.0f} MiB vs peer {p.get('peak_rss_mib', float('nan')):.0f} MiB")
PY
done

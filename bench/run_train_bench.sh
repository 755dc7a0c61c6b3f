#!/usr/bin/env bash
# Side-by-side training throughput: cpt (bench/train_bench.c) in fp32 and, where the CPU has
# AMX or AVX512-BF16, in bf16 (precision: bf16), and the PyTorch peer
# (../shared/bench/peer_torch_llama.py) in its fastest configurations (--impl sdpa / hf, fp32
# and autocast bf16), same shape, same threads, same run, one after the other.
# Usage: bench/run_train_bench.sh [build-dir]   (THREADS, STEPS, SHAPES, PEERS may be set)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
threads=${THREADS:-2}; steps=${STEPS:-3}
peer="$here/../shared/bench/peer_torch_llama.py"
shapes=${SHAPES:-"stories15m:256:4 smollm135m:512:4"}
peers=${PEERS:-"sdpa:fp32 sdpa:bf16 hf:bf16"}
out=$(mktemp)
echo "peaks: $("$build/fma_peak" "$threads")"
bf16=no; "$build/cpt" --version | grep -q "bf16: yes" && bf16=yes
for spec in $shapes; do
  IFS=: read -r shape seq batch <<<"$spec"
  precs="fp32"; [ "$bf16" = yes ] && precs="fp32 bf16"
  for p in $precs; do
    c=$(OMP_NUM_THREADS=$threads "$build/train_bench" --shape "$shape" --seq "$seq" --batch "$batch" --steps "$steps" --threads "$threads" --precision "$p")
    echo "cpt $p: $c"; echo "cpt $shape $c" >>"$out"
  done
  for pc in $peers; do
    IFS=: read -r impl dtype <<<"$pc"
    # The peer prints one JSON line; its peak RSS (MiB) is measured the same way (getrusage).
    l=$(python3 - "$peer" --shape "$shape" --seq "$seq" --batch "$batch" --steps "$steps" --threads "$threads" --impl "$impl" --dtype "$dtype" <<'PY' 2>/dev/null || echo '{}'
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
    echo "peer $impl $dtype: $l"; echo "peer $shape $l" >>"$out"
  done
done
python3 - "$out" <<'PY'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    who, shape, js = line.split(" ", 2)
    d = json.loads(js)
    if d.get("tokens_per_s"): rows.setdefault(shape, []).append((who, d))
print("\n| shape | who | config | tokens/s | MFU (fp32 peak) | MFU (bf16 peak) | peak RSS MiB |\n|---|---|---|---:|---:|---:|---:|")
for shape, rs in rows.items():
    c32 = [d for w, d in rs if w == "cpt" and d.get("precision") == "fp32"]
    for w, d in rs:
        cfg = "cpt " + d.get("precision", "fp32") if w == "cpt" else "%s %s" % (d["impl"], d["dtype"])
        mfu = d.get("mfu", 0) if w == "cpt" else (c32[0]["mfu"] * d["tokens_per_s"] / c32[0]["tokens_per_s"] if c32 else 0)
        m16 = d.get("mfu_bf16", 0)
        print("| %s | %s | %s | %.1f | %.1f%% | %s | %d |" % (shape, w, cfg, d["tokens_per_s"], 100 * mfu, "%.1f%%" % (100 * m16) if m16 else "", d["peak_rss_mib"]))
    cb = max((d for w, d in rs if w == "cpt"), key=lambda d: d["tokens_per_s"], default=None)
    pb = max((d for w, d in rs if w == "peer"), key=lambda d: d["tokens_per_s"], default=None)
    if cb and pb:
        print("%s: cpt's fastest (%s) %.1f tok/s vs the peer's fastest (%s %s) %.1f: %.2fx" % (
            shape, cb.get("precision"), cb["tokens_per_s"], pb["impl"], pb["dtype"], pb["tokens_per_s"], cb["tokens_per_s"] / pb["tokens_per_s"]))
    c16 = [d for w, d in rs if w == "cpt" and d.get("precision") != "fp32"]
    if c32 and c16:
        print("%s: cpt bf16 / cpt fp32 = %.2fx" % (shape, c16[0]["tokens_per_s"] / c32[0]["tokens_per_s"]))
PY
rm -f "$out"

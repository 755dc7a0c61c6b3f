#!/usr/bin/env bash
# dp_bench.sh: data-parallel throughput on the SmolLM2-135M shape (random weights, byte data):
# 1 process x 2 threads vs mpirun -np 1 x 1 thread vs mpirun -np 2 x 1 thread with zero 0 and
# with ZeRO-1 (training.zero=1), the same global batch (4 sequences of 256 tokens per step),
# side by side in one run. Prints tokens/s per step (from metrics.jsonl, before the final
# checkpoint), the communication share, the per-rank optimizer state and the measured peak
# memory (VmHWM) of rank 0 from the run logs.
# Usage: bench/dp_bench.sh [BUILD_DIR] [STEPS]
set -euo pipefail
BIN=$(cd "${1:-build}" && pwd)/cpt; STEPS=${2:-3}
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cat > "$W/cfg.json" <<J
{"architectures": ["LlamaForCausalLM"], "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
 "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "tie_word_embeddings": true,
 "bos_token_id": 256, "eos_token_id": 257, "rms_norm_eps": 1e-5}
J
"$BIN" init --config "$W/cfg.json" --byte-tokenizer --out "$W/base" --seed 1 --std 0.02 >/dev/null
python3 -c "
import random; r=random.Random(1); w=['alpha','beta','gamma','delta','omega']
open('$W/t.txt','w').write('\n\n'.join(' '.join(r.choice(w) for _ in range(200)) for _ in range(300)))"
"$BIN" data prepare --tokenizer "$W/base" --input "$W/t.txt" --out "$W/data" --no-filters --no-dedup --quiet --txt-docs blank --val-fraction 0 >/dev/null
cat > "$W/r.yaml" <<Y
model: $W/base
data: {sources: {web: {path: $W/data}}, mixture: {web: 1.0}}
training: {seq_len: 256, micro_batch: 1, max_steps: $STEPS}
checkpoint: {every: 1000}
export: {at_end: false}
Y
tps() { python3 -c "
import json,sys; ms=[json.loads(l) for l in open('$1/metrics.jsonl') if '\"train\"' in l]
print('%-28s tokens/s per step %s  losses %s' % ('$2', [round(m['tokens_per_s']) for m in ms], [round(m['loss'], 5) for m in ms]))"; }
OMP_NUM_THREADS=2 "$BIN" train "$W/r.yaml" out_dir="$W/t2" training.grad_accum=4 2>"$W/t2.log"; tps "$W/t2" "1 process x 2 threads"
mpirun --oversubscribe -np 1 -x OMP_NUM_THREADS=1 "$BIN" train "$W/r.yaml" out_dir="$W/n1" training.grad_accum=4 2>"$W/n1.log"; tps "$W/n1" "mpirun -np 1 x 1 thread"
mpirun --oversubscribe -np 2 -x OMP_NUM_THREADS=1 "$BIN" train "$W/r.yaml" out_dir="$W/n2" training.grad_accum=2 2>"$W/n2.log"; tps "$W/n2" "mpirun -np 2 x 1 thread"
mpirun --oversubscribe -np 2 -x OMP_NUM_THREADS=1 "$BIN" train "$W/r.yaml" out_dir="$W/z2" training.grad_accum=2 training.zero=1 2>"$W/z2.log"; tps "$W/z2" "mpirun -np 2 x 1 thread ZeRO-1"
for k in t2 n2 z2; do
  echo "== $k"; grep -E "optimizer state|data parallel: |AdamW|measured|peak" "$W/$k.log" | sed 's/\r//' || true
done

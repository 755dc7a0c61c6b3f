#!/usr/bin/env bash
# cp_bench.sh: context parallelism (parallel.context, ring attention) on the SmolLM2-135M shape
# (random weights, byte data) at one long sequence per step: 1 process x 2 threads against
# mpirun -np 2 x 1 thread with parallel.context=2 (each rank holds half of every sequence),
# the same global batch, side by side in one run. Prints tokens/s per step (metrics.jsonl),
# the losses (equal within fp32), the ring's share of the run and the measured peak memory
# (VmHWM) of rank 0 next to its memory plan, from the run logs.
# Usage: bench/cp_bench.sh [BUILD_DIR] [STEPS] [SEQ_LEN]
set -euo pipefail
BIN=$(cd "${1:-build}" && pwd)/cpt; STEPS=${2:-2}; T=${3:-4096}
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cat > "$W/cfg.json" <<J
{"architectures": ["LlamaForCausalLM"], "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
 "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "tie_word_embeddings": true,
 "max_position_embeddings": 65536, "bos_token_id": 256, "eos_token_id": 257, "rms_norm_eps": 1e-5}
J
"$BIN" init --config "$W/cfg.json" --byte-tokenizer --out "$W/base" --seed 1 --std 0.02 >/dev/null
python3 -c "
import random; r=random.Random(1); w=['alpha','beta','gamma','delta','omega']
open('$W/t.txt','w').write('\n\n'.join(' '.join(r.choice(w) for _ in range(4000)) for _ in range(40)))"
"$BIN" data prepare --tokenizer "$W/base" --input "$W/t.txt" --out "$W/data" --no-filters --no-dedup --quiet --txt-docs blank --val-fraction 0 >/dev/null
cat > "$W/r.yaml" <<Y
model: $W/base
data: {sources: {web: {path: $W/data}}, mixture: {web: 1.0}}
training: {seq_len: $T, micro_batch: 1, max_steps: $STEPS, recompute: selective}
checkpoint: {every: 1000}
export: {at_end: false}
Y
tps() { python3 -c "
import json,sys; ms=[json.loads(l) for l in open('$1/metrics.jsonl') if '\"train\"' in l]
print('%-36s tokens/s per step %s  losses %s' % ('$2', [round(m['tokens_per_s'], 1) for m in ms], [round(m['loss'], 5) for m in ms]))"; }
OMP_NUM_THREADS=2 "$BIN" train "$W/r.yaml" out_dir="$W/t2" 2>"$W/t2.log"; tps "$W/t2" "1 process x 2 threads (T=$T)"
mpirun --oversubscribe -np 2 -x OMP_NUM_THREADS=1 "$BIN" train "$W/r.yaml" out_dir="$W/c2" parallel.context=2 2>"$W/c2.log"
tps "$W/c2" "mpirun -np 2 x 1 thread, context 2"
for k in t2 c2; do
  echo "== $k"; grep -E "activations:|context parallel|memory: planned|total .*MiB" "$W/$k.log" | sed 's/\r//' || true
done

#!/usr/bin/env python3
"""Context parallelism in `cpt train` (parallel.context, ring attention over the zigzag split):
  1. the same global batch (micro_batch 2 x grad_accum 2 sequences of 48 tokens, documents of
     random length packed block-causally, so documents cross chunk and rank boundaries) trained
     10 steps as one process, as context groups of 2 (np 2) and 3 (np 3), and as 2 data-parallel
     groups of 2 (np 4, grad_accum 1): every loss within rel 2e-5 of the single process (fp32:
     only the order of sums differs; the model-level gradients are checked in
     tests/model/test_cp.c), the same per-source and total token counters, and the trainer state
     records context x data parallel sizes;
     causal (block_causal false) at np 2 as well, and np 4 = 2 x 2 with ZeRO-1 (the moments
     sharded over all 4 ranks, the shards written per rank);
  2. a checkpoint written at np 2 with context parallelism resumes as one process without it
     (the data position and the model are the same) and continues the reference within rel 2e-5;
  3. refusals with a HINT: parallel.context that does not divide the processes, a seq_len that
     2 x parallel.context does not divide.
mpirun missing: skip (a failure under CI=true)."""
import json, os, random, subprocess, sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import mpiutil  # noqa: E402

h = mpiutil.Harness("cp_")
BIN, tmp, check, run = h.bin, h.tmp, h.check, h.run
base = h.base()
rng = random.Random(11)
words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "zeta", "eta", "rho"]
def doc(n): return " ".join(rng.choice(words) for _ in range(n)) + "."
os.makedirs(os.path.join(tmp, "txt"))
with open(os.path.join(tmp, "txt", "d.txt"), "w") as f:
    f.write("\n\n".join(doc(rng.randint(2, 12)) for _ in range(600)))
r = run(["data", "prepare", "--tokenizer", base, "--input", os.path.join(tmp, "txt", "d.txt"), "--out", os.path.join(tmp, "d"),
         "--no-filters", "--no-dedup", "--quiet", "--txt-docs", "blank", "--val-fraction", "0.05"])
check(r.returncode == 0, f"data prepare: {r.stderr[-300:]}")
recipe = os.path.join(tmp, "r.yaml")
open(recipe, "w").write(f"""
model: {base}
data:
  sources:
    d: {{path: {tmp}/d}}
training: {{seq_len: 48, micro_batch: 2, grad_accum: 2, max_steps: 10}}
optim: {{lr: 3.0e-2, clip: 1.0}}
schedule: {{type: cosine, warmup_steps: 2}}
checkpoint: {{every: 5, keep_last: 3}}
""")

def losses(d):
    return [json.loads(l)["loss"] for l in open(os.path.join(d, "metrics.jsonl")) if json.loads(l)["kind"] == "train"]
def state(d, step):
    return json.load(open(os.path.join(d, "checkpoints", f"step-{step:08d}", "trainer_state.json")))
def worst(a, b):
    return max((abs(x - y) / abs(x) for x, y in zip(a, b)), default=float("inf"))
def mpi(n, args, timeout=900):
    return subprocess.run(mpiutil.cmd(n, [BIN] + args), capture_output=True, text=True, env=mpiutil.env(), timeout=timeout)

refs = {}
for bc in ("true", "false"):
    refs[bc] = os.path.join(tmp, f"ref_{bc}")
    r = run(["train", recipe, f"out_dir={refs[bc]}", f"training.block_causal={bc}"])
    check(r.returncode == 0, f"one process, block_causal {bc}: {r.stderr[-300:]}")

for n, K, ga, bc, zero in ((2, 2, 2, "true", 0), (3, 3, 2, "true", 0), (4, 2, 1, "true", 0), (2, 2, 2, "false", 0), (4, 2, 1, "true", 1)):
    d = os.path.join(tmp, f"cp_{n}_{K}_{bc}" + ("_zero" if zero else ""))
    r = mpi(n, ["train", recipe, f"out_dir={d}", f"parallel.context={K}", f"training.grad_accum={ga}", f"training.block_causal={bc}",
                f"training.zero={zero}"])
    hdr = f"context parallel: {K} ranks per sequence (ring attention, zigzag chunks of {48 // (2 * K)} tokens), {n // K} x {K} = {n} processes"
    check(r.returncode == 0 and hdr in r.stderr and f"global batch 2 x {ga} x {n // K} = 4 sequences" in r.stderr
          and "ring attention K/V passing" in r.stderr,
          f"np {n}, parallel.context {K}, grad_accum {ga}, block_causal {bc}: exit {r.returncode}: {r.stderr[-500:]}")
    if r.returncode:
        continue
    a, b = losses(refs[bc]), losses(d)
    w = worst(a, b)
    check(len(a) == len(b) == 10 and w <= 2e-5, f"np {n} K {K} zero {zero} block_causal {bc}: 10 losses equal one process within rel 2e-5 (worst {w:.2e})")
    sa, sb = state(refs[bc], 10), state(d, 10)
    tb = sb.get("trainer", {})
    check(sa["source_tokens"] == sb["source_tokens"] and sa["tokens"] == sb["tokens"] and tb.get("context_parallel") == K
          and tb.get("data_parallel_ranks") == n // K,
          f"np {n} K {K}: counters {sa['source_tokens']} / {sa['tokens']} vs {sb['source_tokens']} / {sb['tokens']}, "
          f"trainer state context {tb.get('context_parallel')} x data {tb.get('data_parallel_ranks')}")

# 2. save at np 2 with context parallelism, resume as one process without it
src = os.path.join(tmp, "cp_2_2_true")
if os.path.isdir(os.path.join(src, "checkpoints", "step-00000005")):
    res = os.path.join(tmp, "resume1")
    r = run(["train", recipe, f"out_dir={res}", "--resume", os.path.join(src, "checkpoints", "step-00000005")])
    check(r.returncode == 0 and "resumed from" in r.stderr, f"resume at np 1: {r.stderr[-300:]}")
    if r.returncode == 0:
        a, b = losses(refs["true"])[5:], losses(res)[-5:]
        w = worst(a, b)
        check(len(b) >= 5 and w <= 2e-5, f"steps 6-10 after the resume equal the reference within rel 2e-5 (worst {w:.2e})")
        check(state(res, 10)["source_tokens"] == state(refs["true"], 10)["source_tokens"], "per-source counters after the resume")

# 3. refusals
r = mpi(2, ["train", recipe, f"out_dir={tmp}/bad1", "parallel.context=3"], timeout=120)
check(r.returncode != 0 and "parallel.context 3 needs a multiple of 3 processes" in r.stderr and "HINT" in r.stderr,
      f"parallel.context 3 at np 2 refused: {r.stderr.strip()[-300:]}")
r = mpi(2, ["train", recipe, f"out_dir={tmp}/bad2", "parallel.context=2", "training.seq_len=50"], timeout=120)
check(r.returncode != 0 and "not a multiple of 2 x parallel.context = 4" in r.stderr and "HINT" in r.stderr,
      f"seq_len 50 with parallel.context 2 refused: {r.stderr.strip()[-300:]}")
sys.exit(1 if h.fails else 0)

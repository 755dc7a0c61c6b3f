#!/usr/bin/env python3
"""Data parallelism: `mpirun -np N cpt train` with micro_batch per rank and grad_accum A equals
one process with grad_accum A*N (the same global batch, the same samples by cpt_mix_rank_index):
  1. np = 1, 2, 3, 4 on a small random model with a replay source, EWC and L2 and spike
     skipping on: the loss of every one of 20 steps equals the single-process run's within
     rel 1e-5 (fp32: only the order of the gradient sums differs), the skipped steps and the
     per-source token counts are identical, and only rank 0 wrote metrics/checkpoints;
  2. SIGKILL of one rank mid-run: the job exits non-zero within 30 s and the latest
     checkpoint still loads (resume auto at np=2 continues from it); resuming it with a
     different global batch is refused with a HINT naming the grad_accum that keeps it.
mpirun missing: skip (a failure under CI=true)."""
import json, os, random, signal, subprocess, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import mpiutil  # noqa: E402

h = mpiutil.Harness("dp_")
BIN, tmp, check, run = h.bin, h.tmp, h.check, h.run
base = h.base()
rng = random.Random(7)
words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "zeta"]
def doc(n): return " ".join(rng.choice(words) for _ in range(n)) + "."
os.makedirs(os.path.join(tmp, "txt"))
for name, nd in [("domain", 300), ("replay", 200)]:
    with open(os.path.join(tmp, "txt", name + ".txt"), "w") as f:
        f.write("\n\n".join(doc(rng.randint(20, 60)) for _ in range(nd)))
    r = run(["data", "prepare", "--tokenizer", base, "--input", os.path.join(tmp, "txt", name + ".txt"), "--out",
             os.path.join(tmp, name), "--no-filters", "--no-dedup", "--quiet", "--txt-docs", "blank", "--val-fraction", "0.05"])
    check(r.returncode == 0, f"data prepare {name}: {r.stderr[-300:]}")

recipe = os.path.join(tmp, "r.yaml")
open(recipe, "w").write(f"""
model: {base}
data:
  sources:
    domain: {{path: {tmp}/domain}}
    replay: {{path: {tmp}/replay}}
  mixture: {{domain: 0.7, replay: 0.3}}
  validation:
    domain: {tmp}/domain
training: {{seq_len: 32, micro_batch: 2, max_steps: 20}}
optim: {{lr: 6.0e-2, clip: 0.5}}
schedule: {{type: cosine, warmup_steps: 2}}
regularization: {{l2_base: 0.01, ewc: {{lambda: 10.0, source: replay, samples: 8}}}}
stability: {{skip_zscore: 0.5, window: 8}}
eval: {{every: 10, sequences: 6}}
checkpoint: {{every: 5, keep_last: 2}}
""")

def losses(run_dir):
    ms = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl"))]
    return [m["loss"] for m in ms if m["kind"] == "train"]

def report_sources(run_dir):
    st = json.load(open(sorted(os.path.join(run_dir, "checkpoints", d) for d in os.listdir(os.path.join(run_dir, "checkpoints"))
                               if d.startswith("step-"))[-1] + "/trainer_state.json"))
    return st

GA = 2
for n in (1, 2, 3, 4):
    ref = os.path.join(tmp, f"ref{n}")
    r = run(["train", recipe, f"out_dir={ref}", f"training.grad_accum={GA * n}"])
    check(r.returncode == 0, f"single process, grad_accum {GA * n}: {r.stderr[-300:]}")
    dp = os.path.join(tmp, f"dp{n}")
    r = subprocess.run(mpiutil.cmd(n, [BIN, "train", recipe, f"out_dir={dp}", f"training.grad_accum={GA}"]),
                       capture_output=True, text=True, env=mpiutil.env(), timeout=900)
    check(r.returncode == 0 and f"global batch 2 x {GA} x {n} = {2 * GA * n}" in r.stderr,
          f"mpirun -np {n}: exit {r.returncode}: {r.stderr[-400:]}")
    if r.returncode or not os.path.exists(os.path.join(ref, "metrics.jsonl")):
        continue
    a, b = losses(ref), losses(dp)
    worst = max((abs(x - y) / abs(x) for x, y in zip(a, b)), default=float("inf"))
    check(len(a) == len(b) == 20 and worst <= 1e-5, f"np={n}: 20 losses equal the single process within rel 1e-5 (worst {worst:.2e})")
    sa = json.load(open(os.path.join(ref, "checkpoints", "step-00000020", "trainer_state.json")))
    sb = json.load(open(os.path.join(dp, "checkpoints", "step-00000020", "trainer_state.json")))
    check(sa.get("source_tokens") and sa["source_tokens"] == sb.get("source_tokens") and sa["tokens"] == sb["tokens"],
          f"np={n}: per-source token counters identical ({sa.get('source_tokens')} vs {sb.get('source_tokens')})")
    sk = lambda d: [json.loads(l)["step"] for l in open(os.path.join(d, "metrics.jsonl")) if '"skipped_step"' in l]
    # skip_zscore 0.5 at lr 6e-2 makes the guard fire on ordinary steps, so this can fail: every rank
    # must take the single process's decision (a skip on some ranks only would also diverge
    # the losses above).
    check(len(sk(ref)) > 0 and sk(ref) == sk(dp), f"np={n}: the same steps skipped ({sk(ref)} vs {sk(dp)})")

# SIGKILL one rank mid-run
kd = os.path.join(tmp, "kill")
p = subprocess.Popen(mpiutil.cmd(2, [BIN, "train", recipe, f"out_dir={kd}", "training.max_steps=400", f"training.grad_accum={GA}"]),
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=mpiutil.env())
deadline = time.time() + 300
victim = None
while time.time() < deadline and victim is None:
    ck = os.path.join(kd, "checkpoints")
    if os.path.isdir(ck) and any(x.startswith("step-") for x in os.listdir(ck)):
        out = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
        if len(out) >= 2:
            victim = int(out[-1])
    time.sleep(0.05)
check(victim is not None, "found a rank to kill after the first checkpoint")
if victim:
    os.kill(victim, signal.SIGKILL)
    t0 = time.time()
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill(); p.wait()
    dt = time.time() - t0
    check(p.returncode != 0 and dt < 30, f"job exits non-zero {dt:.1f} s after SIGKILL of one rank (exit {p.returncode})")
    latest = sorted(x for x in os.listdir(os.path.join(kd, "checkpoints")) if x.startswith("step-"))[-1]
    r = subprocess.run(mpiutil.cmd(2, [BIN, "train", recipe, f"out_dir={kd}", f"training.max_steps={int(latest[5:]) + 1}",
                                       f"training.grad_accum={GA}", "--resume", "auto"]),
                       capture_output=True, text=True, env=mpiutil.env(), timeout=600)
    check(r.returncode == 0 and "resumed from" in r.stderr, f"latest checkpoint {latest} loads at np=2: {r.stderr[-300:]}")
    # A different global batch would shift the data position: refused with the grad_accum
    # that keeps it (another number of ranks with the same global batch resumes: test_zero.py).
    r = run(["train", recipe, f"out_dir={kd}", f"training.max_steps={int(latest[5:]) + 2}", f"training.grad_accum={GA}",
             "--resume", "auto"])
    check(r.returncode != 0 and "saved by 2 ranks" in r.stderr and f"HINT: set training.grad_accum: {GA * 2}" in r.stderr,
          f"resume at np=1 of an np=2 run with half the global batch is refused: {r.stderr.strip()[-300:]}")
sys.exit(1 if h.fails else 0)

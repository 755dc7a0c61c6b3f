#!/usr/bin/env python3
"""ZeRO-1 (training.zero: 1) and universal checkpoints, `mpirun -np N cpt train`:
  1. zero=1 at np = 2, 3, 4 (grad_accum 2) against one process with zero=0 and grad_accum 2 N
     (the same global batch), 20 steps of a small random model with replay, EWC + L2, clipping
     and spike skipping on: every loss within rel 1e-5, the same skipped steps, and the final
     weights within max |a - b| <= 1e-4 (fp32: only the order of the gradient sums differs;
     observed ~1e-7). Against zero=0 at the same np the only difference is the order of the
     global norm's sum, so the weights agree within 1e-6: a shard whose update is skipped on one
     rank (its parameters stay at the previous step's values) breaks both by orders of magnitude.
  2. Universal checkpoints: the step-15 checkpoint of the np=2 zero=1 run resumes at np=1
     (grad_accum 4, zero=0 and zero=1) and at np=4 (grad_accum 1, zero=1); the step-15
     checkpoint of the single zero=0 run resumes at np=2 zero=1. Steps 16..20 equal the
     uninterrupted np=2 run within rel 1e-5, and the per-source token counters are identical.
     A resume that changes the global batch is refused with the grad_accum that keeps it.
  3. Sharded optimizer checkpoints (the default under ZeRO-1 on several ranks): the np=2 zero=1
     checkpoint holds optim-00000-of-00002 / optim-00001-of-00002.safetensors and no
     optim.safetensors, trainer_state.json describes the shards (ranges tiling the parameters)
     and every parameter's place; the resumes of 2. read these shards. `cpt ckpt consolidate`
     turns them into one optim.safetensors whose moments equal, bit for bit, the consolidated
     save of the same run (checkpoint.sharded_optim=false: rank 0 gathers), and the
     consolidated checkpoint resumes (steps 16..20 as before). A corrupt shard and a missing
     shard are refused naming the file; consolidating a one-file checkpoint does nothing.
mpirun missing: skip (a failure under CI=true)."""
import json, os, random, re, struct, subprocess, sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import mpiutil  # noqa: E402

h = mpiutil.Harness("zero_")
BIN, tmp, check, run = h.bin, h.tmp, h.check, h.run
base = h.base()
rng = random.Random(11)
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
checkpoint: {{every: 5, keep_last: 10}}
""")


def train(run_dir, np_, ga, zero, *extra):
    argv = [BIN, "train", recipe, f"out_dir={run_dir}", f"training.grad_accum={ga}", f"training.zero={zero}"] + list(extra)
    if np_ > 1:
        return subprocess.run(mpiutil.cmd(np_, argv), capture_output=True, text=True, env=mpiutil.env(), timeout=900)
    return subprocess.run(argv, capture_output=True, text=True, env=mpiutil.env(threads=2), timeout=900)


def losses(run_dir):
    ms = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl"))]
    return {m["step"]: m["loss"] for m in ms if m["kind"] == "train"}


def skipped(run_dir):
    return [json.loads(l)["step"] for l in open(os.path.join(run_dir, "metrics.jsonl")) if '"skipped_step"' in l]


def weights(path):
    """The tensors of a float32 safetensors file (8-byte header length, JSON header, data)."""
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", v
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype="<f4")
    return out


def ckpt(run_dir, step):
    return os.path.join(run_dir, "checkpoints", f"step-{step:08d}")


def wdiff(a, b):
    wa, wb = weights(os.path.join(ckpt(a, 20), "model.safetensors")), weights(os.path.join(ckpt(b, 20), "model.safetensors"))
    if set(wa) != set(wb):
        return float("inf")
    return max(float(np.max(np.abs(wa[k].astype(np.float64) - wb[k]))) for k in wa)


def state(run_dir, step):
    return json.load(open(os.path.join(ckpt(run_dir, step), "trainer_state.json")))


def rel(a, b, steps):
    return max((abs(a[s] - b[s]) / abs(a[s]) for s in steps if s in a and s in b), default=float("inf"))


GA = 2
ok_runs = {}
for n in (2, 3, 4):
    ref, z0, z1 = (os.path.join(tmp, f"{k}{n}") for k in ("ref", "z0_", "z1_"))
    r = train(ref, 1, GA * n, 0)
    check(r.returncode == 0, f"single process zero=0, grad_accum {GA * n}: {r.stderr[-300:]}")
    r = train(z1, n, GA, 1)
    check(r.returncode == 0 and re.search(rf"optimizer state \(AdamW m, v\): 2 x \d+ x 4 B / {n} ranks = [\d.]+ MiB per rank \(ZeRO-1\)", r.stderr),
          f"mpirun -np {n} zero=1: exit {r.returncode}, header shows the sharded optimizer state: {r.stderr[-400:]}")
    r0 = train(z0, n, GA, 0)
    check(r0.returncode == 0, f"mpirun -np {n} zero=0: exit {r0.returncode}: {r0.stderr[-300:]}")
    if r.returncode or r0.returncode or not os.path.exists(os.path.join(ref, "metrics.jsonl")):
        continue
    a, b = losses(ref), losses(z1)
    worst = rel(a, b, range(1, 21))
    check(len(a) == len(b) == 20 and worst <= 1e-5, f"np={n} zero=1: 20 losses equal the single process within rel 1e-5 (worst {worst:.2e})")
    check(len(skipped(ref)) > 0 and skipped(ref) == skipped(z1), f"np={n} zero=1: the same steps skipped ({skipped(ref)} vs {skipped(z1)})")
    d = wdiff(ref, z1)
    check(d <= 1e-4, f"np={n} zero=1: final weights equal the single process's within 1e-4 (max |diff| {d:.2e})")
    d0 = wdiff(z0, z1)
    check(d0 <= 1e-6, f"np={n}: final weights of zero=1 and zero=0 at the same np within 1e-6 (max |diff| {d0:.2e})")
    sa, sb = state(ref, 20), state(z1, 20)
    check(sa["source_tokens"] == sb["source_tokens"] and sa["tokens"] == sb["tokens"],
          f"np={n} zero=1: per-source token counters identical ({sa['source_tokens']} vs {sb['source_tokens']})")
    ok_runs[n] = (ref, z1)

# Universal checkpoints: resume the step-15 checkpoints with another number of ranks.
if 2 in ok_runs:
    ref2, z1_2 = ok_runs[2]
    full = losses(z1_2)
    cases = [("np2 zero=1 -> np1 zero=0", z1_2, 1, 4, 0), ("np2 zero=1 -> np1 zero=1", z1_2, 1, 4, 1),
             ("np2 zero=1 -> np4 zero=1", z1_2, 4, 1, 1), ("np1 zero=0 -> np2 zero=1", ref2, 2, 2, 1)]
    for i, (what, src, n, ga, zero) in enumerate(cases):
        out = os.path.join(tmp, f"resume{i}")
        r = train(out, n, ga, zero, "--resume", ckpt(src, 15))
        check(r.returncode == 0 and "resumed from" in r.stderr, f"{what}: resumes: {r.stderr[-400:]}")
        if r.returncode:
            continue
        b = losses(out)
        worst = rel(full, b, range(16, 21))
        check(sorted(b) == list(range(16, 21)) and worst <= 1e-5,
              f"{what}: steps 16..20 equal the uninterrupted np=2 run within rel 1e-5 (worst {worst:.2e})")
        sa, sb = state(z1_2, 20), state(out, 20)
        check(sa["source_tokens"] == sb["source_tokens"] and sa["tokens"] == sb["tokens"],
              f"{what}: per-source token counters identical ({sa['source_tokens']} vs {sb['source_tokens']})")
    out = os.path.join(tmp, "refused")
    r = train(out, 1, 2, 1, "--resume", ckpt(z1_2, 15))
    check(r.returncode != 0 and "HINT: set training.grad_accum: 4" in r.stderr,
          f"a resume that halves the global batch is refused with the grad_accum that keeps it: {r.stderr.strip()[-300:]}")

# Sharded optimizer checkpoints and `cpt ckpt consolidate`
if 2 in ok_runs:
    import shutil
    ref2, z1_2 = ok_runs[2]
    c15 = ckpt(z1_2, 15)
    files = sorted(os.listdir(c15))
    check("optim-00000-of-00002.safetensors" in files and "optim-00001-of-00002.safetensors" in files
          and "optim.safetensors" not in files, f"np=2 zero=1 checkpoint holds the two shards, no single file: {files}")
    stj = json.load(open(os.path.join(c15, "trainer_state.json")))
    sh = stj.get("optim_shards", [])
    npar = stj.get("n_params", 0)
    tiles = len(sh) == 2 and sh[0]["offset"] == 0 and sh[0]["offset"] + sh[0]["count"] == sh[1]["offset"] and \
        sh[1]["offset"] + sh[1]["count"] == npar
    params = stj.get("parameters", [])
    check(tiles and stj.get("optim_format") == "sharded" and len(params) > 0 and
          sum(int(np.prod(p["shape"])) for p in params) == npar,
          f"trainer_state.json: shards tile [0, {npar}) and the parameter list covers it: {sh}")
    gat = os.path.join(tmp, "gathered")
    r = train(gat, 2, GA, 1, "checkpoint.sharded_optim=false")
    check(r.returncode == 0 and os.path.exists(os.path.join(ckpt(gat, 15), "optim.safetensors")),
          f"np=2 zero=1 with checkpoint.sharded_optim=false writes one optim.safetensors: {r.stderr[-300:]}")
    work = os.path.join(tmp, "consolidated")
    shutil.copytree(c15, work)
    r = subprocess.run([BIN, "ckpt", "consolidate", work], capture_output=True, text=True, env=mpiutil.env())
    check(r.returncode == 0 and "merged 2 optimizer shards" in r.stdout, f"cpt ckpt consolidate: {r.stdout}{r.stderr}")
    if r.returncode == 0 and os.path.exists(os.path.join(ckpt(gat, 15), "optim.safetensors")):
        a, b = weights(os.path.join(work, "optim.safetensors")), weights(os.path.join(ckpt(gat, 15), "optim.safetensors"))
        same = set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)
        check(same and len(a) == 2 * len(params), f"consolidated moments equal the gathered save bit for bit ({len(a)} tensors)")
        check(not any(f.startswith("optim-") for f in os.listdir(work)) and
              "optim_shards" not in json.load(open(os.path.join(work, "trainer_state.json"))),
              f"the shards are gone and the state points at the single file: {sorted(os.listdir(work))}")
        out = os.path.join(tmp, "resume_cons")
        r = train(out, 1, 4, 0, "--resume", work)
        worst = rel(losses(z1_2), losses(out), range(16, 21)) if r.returncode == 0 else float("inf")
        check(r.returncode == 0 and worst <= 1e-5, f"the consolidated checkpoint resumes at np=1: worst rel {worst:.2e}: {r.stderr[-300:]}")
        r = subprocess.run([BIN, "ckpt", "consolidate", work], capture_output=True, text=True, env=mpiutil.env())
        check(r.returncode == 0 and "nothing to do" in r.stdout, f"consolidating again does nothing: {r.stdout}{r.stderr}")
    bad = os.path.join(tmp, "corrupt")
    shutil.copytree(c15, bad)
    fp = os.path.join(bad, "optim-00001-of-00002.safetensors")
    raw = bytearray(open(fp, "rb").read())
    raw[-5] ^= 0x40
    open(fp, "wb").write(bytes(raw))
    r = train(os.path.join(tmp, "rc"), 2, GA, 1, "--resume", bad)
    check(r.returncode != 0 and "optim-00001-of-00002.safetensors: checksum mismatch" in r.stderr and "HINT" in r.stderr,
          f"a corrupt shard is refused naming it: {r.stderr.strip()[-300:]}")
    os.remove(fp)
    r = train(os.path.join(tmp, "rm"), 1, 4, 0, "--resume", bad)
    check(r.returncode != 0 and "optimizer shard 1 of 2 is missing" in r.stderr, f"a missing shard is refused: {r.stderr.strip()[-300:]}")
sys.exit(1 if h.fails else 0)

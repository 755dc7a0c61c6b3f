#!/usr/bin/env python3
"""The memory plan of `cpt train` (cpt/memplan.h) against the real process.
cpt-test: slow  (two real training runs of a 25M-parameter model, ~1 min on 2 busy cores;
                 under ASan resident sizes are the sanitizer's, so not in that run)

  1. plan vs measured: the real `cpt train` on a random-init 25M-parameter byte-level
     Llama (seq_len 1024, one step, an evaluation at the start and the end, a checkpoint)
     for recompute none AND full (and full with L2-SP + EWC at seq_len 512: base copies,
     Fisher and its estimation planned): |planned total - peak RSS| / peak RSS <= 0.10, the peak
     read by the parent from wait4()'s ru_maxrss of the child (the kernel's count, not
     the process's own report). Both numbers are printed.
  2. --plan prints the same numbers as the run: every computed term byte-identical to
     the run's table and memory_plan.json; the measured process term within 2 MiB (it is
     an RSS reading); --plan leaves no run directory.
  3. a plan that cannot fit (micro_batch 4096: terabytes of activations) is refused
     before anything big is allocated: exit 1, the message names the planned and the
     available bytes (--plan's numbers, up to the measured process term) and has a HINT; the child's peak RSS
     stays far below the plan (nothing was allocated); no checkpoint or metrics.
     With training.memory_check=false the check does not refuse it (--plan then exits 0
     and says DOES NOT FIT, so the test allocates nothing).
"""
import json, os, random, re, shutil, subprocess, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from skiputil import skip  # noqa: E402

BIN = os.environ.get("CPT_BIN")
if not BIN or not os.path.exists(BIN):
    skip("CPT_BIN not built")
if not os.path.exists("/proc/self/status"):
    skip("no /proc: the memory plan is Linux-only")
fails = 0


def check(cond, what):
    global fails
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    fails += not cond


tmp = tempfile.mkdtemp(prefix="memplan_cli_", dir=os.environ.get("CPT_TMP"))


def run(args):
    return subprocess.run([BIN] + args, capture_output=True, text=True)


def run_rusage(args):
    """Run cpt with output to files; returns (rc, stdout, stderr, peak RSS bytes of the child)."""
    with open(os.path.join(tmp, "o.txt"), "w") as fo, open(os.path.join(tmp, "e.txt"), "w") as fe:
        p = subprocess.Popen([BIN] + args, stdout=fo, stderr=fe)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, open(os.path.join(tmp, "o.txt")).read(), open(os.path.join(tmp, "e.txt")).read(), ru.ru_maxrss * 1024


TERM_RE = re.compile(r"^  (.+?)\s{2,}\S+ [MG]iB\s+(\d+) bytes", re.M)


def parse_table(text):
    """{label: bytes} of the plan table ('total (peak)' and 'available' included)."""
    return {k.strip(): int(v) for k, v in TERM_RE.findall(text)}


# A 25M-parameter byte-level Llama: large enough that the plan (~0.5-0.7 GiB) dominates
# the process's own few MiB.
cfg = os.path.join(tmp, "config.json")
json.dump({"architectures": ["LlamaForCausalLM"], "vocab_size": 264, "hidden_size": 512, "intermediate_size": 1536,
           "num_hidden_layers": 8, "num_attention_heads": 8, "num_key_value_heads": 4, "tie_word_embeddings": True,
           "max_position_embeddings": 4096, "bos_token_id": 256, "eos_token_id": 257, "rms_norm_eps": 1e-5}, open(cfg, "w"))
base = os.path.join(tmp, "base")
r = run(["init", "--config", cfg, "--byte-tokenizer", "--out", base, "--seed", "3", "--std", "0.02"])
check(r.returncode == 0, "cpt init: " + r.stderr[-200:])
rng = random.Random(5)
words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "zeta"]
os.makedirs(os.path.join(tmp, "txt"))
with open(os.path.join(tmp, "txt", "train.txt"), "w") as f:
    f.write("\n\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(50, 400))) + "." for _ in range(200)))
r = run(["data", "prepare", "--tokenizer", base, "--input", os.path.join(tmp, "txt", "train.txt"), "--out",
         os.path.join(tmp, "data"), "--no-filters", "--no-dedup", "--quiet", "--txt-docs", "blank", "--val-fraction", "0.05"])
check(r.returncode == 0, "cpt data prepare: " + r.stderr[-200:])
recipe = os.path.join(tmp, "r.yaml")
open(recipe, "w").write(f"""
model: {base}
data:
  sources:
    web:
      path: {tmp}/data
  mixture: {{web: 1.0}}
  validation:
    held: {tmp}/data
training: {{seq_len: 1024, micro_batch: 1, grad_accum: 1, max_steps: 1}}
optim: {{lr: 1.0e-3}}
schedule: {{type: constant, warmup_steps: 0}}
eval: {{every: 0, sequences: 1}}
checkpoint: {{every: 0, keep_last: 1}}
export: {{at_end: false}}
stability: {{skip_zscore: 0}}
""")
COMPUTED = ["weights (fp32)", "gradients", "AdamW moments (m, v)", "L2-SP base weights", "EWC Fisher + base weights",
            "activations + scratch", "RoPE tables", "data loader buffers", "eval activations (transient)",
            "resume / ZeRO-1 save (transient)", "EWC Fisher load / estimation (transient)"]

# 1 + 2. plan vs measured peak, and --plan vs the run, for recompute none and full
EWC = ["training.seq_len=512", "regularization.l2_base=0.01", "regularization.ewc.lambda=10", "regularization.ewc.source=web",
       "regularization.ewc.samples=2"]
for mode, extra in [("none", []), ("full", []), ("full+ewc+l2", EWC)]:
    out = os.path.join(tmp, "run-" + mode)
    args = ["train", recipe, f"out_dir={out}", f"training.recompute={mode.split('+')[0]}"] + extra
    prc, pout, perr, _ = run_rusage(args + ["--plan"])
    check(prc == 0 and "fits" in pout, f"[{mode}] --plan exits 0 and says it fits" + (f": {perr[-300:]}" if prc else ""))
    check(not os.path.exists(out), f"[{mode}] --plan leaves no run directory")
    check("train: " not in perr and "eval step" not in perr, f"[{mode}] --plan does not train")
    planned = parse_table(pout)
    rc, _, err, peak = run_rusage(args)
    check(rc == 0, f"[{mode}] cpt train exits 0" + (f": {err[-400:]}" if rc else ""))
    ran = parse_table(err)
    js = json.load(open(os.path.join(out, "memory_plan.json"))) if rc == 0 else {"bytes": {}, "total": 0}
    total = js["total"]
    rel = abs(total - peak) / peak if peak else float("inf")
    print(f"[{mode}] planned {total} bytes ({total / 2**20:.1f} MiB), measured peak RSS {peak} bytes ({peak / 2**20:.1f} MiB), "
          f"plan - rss = {100 * (total - peak) / peak:+.2f}%", flush=True)
    check(rel <= 0.10, f"[{mode}] |plan - rss| / rss = {rel:.4f} <= 0.10")
    check(ran.get("total (peak)") == total, f"[{mode}] the printed table and memory_plan.json agree on the total")
    check(js.get("measured_peak_rss", 0) > 0, f"[{mode}] memory_plan.json records the measured peak after the run")
    same = [k for k in COMPUTED if planned.get(k) is not None and planned.get(k) == ran.get(k)]
    check(len(same) == len(COMPUTED), f"[{mode}] --plan and the run print byte-identical computed terms ({len(same)}/{len(COMPUTED)})")
    pp, rp = planned.get("process (measured)", -1), ran.get("process (measured)", -10**12)
    check(abs(pp - rp) <= 2 << 20, f"[{mode}] measured process term: --plan {pp} vs run {rp} bytes (within 2 MiB)")
    check(ran.get("activations + scratch") == js["bytes"].get("activations") and ran["activations + scratch"] > 0,
          f"[{mode}] activation term in the table and the JSON")
    rep = open(os.path.join(out, "report.md")).read() if os.path.exists(os.path.join(out, "report.md")) else ""
    check("## Memory plan" in rep and "measured peak RSS" in rep, f"[{mode}] report.md has the memory plan with the measured peak")

# 3. a plan that cannot fit
big = ["train", recipe, f"out_dir={tmp}/big", "training.micro_batch=4096"]
prc, pout, perr, _ = run_rusage(big + ["training.memory_check=false", "--plan"])
pt = parse_table(pout)
check(prc == 0 and "DOES NOT FIT" in pout and "memory_check is false" in perr,
      "override: --plan exits 0 and reports DOES NOT FIT" + (f": rc {prc} {perr[-300:]}" if prc else ""))
rc, _, err, peak = run_rusage(big)
m = re.search(r"needs (\d+) bytes .* but (\d+) bytes .* available", err)
check(rc == 1 and m is not None and "HINT" in err and "training.recompute: full" in err and "training.micro_batch" in err,
      "refused with exit 1, planned and available bytes and a HINT: " + err.strip().splitlines()[-1][:400] if err.strip() else "refused: no message")
if m:
    need, avail = int(m.group(1)), int(m.group(2))
    # Equal but for the measured process term (an RSS reading in each process).
    check(abs(need - pt.get("total (peak)", 0)) <= 2 << 20 and need > avail,
          f"refusal names the --plan total {need} (--plan: {pt.get('total (peak)')}) > available {avail}")
    check(abs(avail - pt.get("available", 0)) <= avail * 0.05 + (256 << 20), "refusal names the available bytes --plan saw")
    check(peak < need / 100 and peak < 1 << 30, f"refused before allocating: child peak RSS {peak / 2**20:.0f} MiB vs planned {need / 2**40:.2f} TiB")
check(not os.path.exists(os.path.join(tmp, "big", "checkpoints")) and not os.path.exists(os.path.join(tmp, "big", "metrics.jsonl")),
      "refused run wrote no checkpoint or metrics")

if fails == 0:
    shutil.rmtree(tmp, ignore_errors=True)
print(f"{fails} failed")
sys.exit(1 if fails else 0)

#!/usr/bin/env python3
"""eval.tasks in `cpt train` (src/cli/train_evaltasks.c) on a small random byte-level Llama:
benchmark tasks in the loop with the base cached and paired deltas.
  1. a 5-step run with names "arc_easy,qa:FILE", every 2, limit 6, max_new 4:
     task/arc_easy/acc_norm, task/qa.jsonl/exact_match and their stderr at steps 0, 2, 4, 5
     exactly, the delta keys from step 2 on; report.md's "Benchmark tasks" section;
  2. oracle: eval_tasks/base.json's per-item hits equal `cpt eval --items` on the base model
     (arc_easy: acc_norm's pick == gold; qa: exact_match), and the step-5 delta and its
     paired stderr equal those recomputed here from `cpt eval --items` on the exported final
     model (export.dtype f32) against the base's;
  3. a resumed run (--resume auto) reads the cached base (no step-0 re-measurement, same
     base.json) and a resumed run whose eval.tasks.limit changed is refused naming
     base.json with a HINT; an unknown task name is refused before training.
mpirun missing: skip (the harness is the data-parallel one; a failure under CI=true)."""
import json, math, os, random, statistics, subprocess, sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import mpiutil  # noqa: E402

h = mpiutil.Harness("tasks_")
BIN, tmp, check, run = h.bin, h.tmp, h.check, h.run
base = h.base()
h.words_shards(base, 7)
# the QA gold answers: the base model's own greedy replies on the even items (a first cpt eval
# run), so the base scores there and training moves the score
qa = os.path.join(tmp, "qa.jsonl")
with open(qa, "w") as f:
    for i in range(6):
        f.write(json.dumps({"question": "alpha beta %d" % i, "answers": ["zzz"]}) + "\n")
draft = os.path.join(tmp, "draft.items.jsonl")
e = subprocess.run([BIN, "eval", "--model", base, "--tasks", "qa:" + qa, "--max-new", "4", "--items", draft],
                   capture_output=True, text=True, env=mpiutil.env())
check(e.returncode == 0, "draft eval: " + e.stderr[-300:])
replies = [json.loads(l)["response"] for l in open(draft)] if e.returncode == 0 else [""] * 6
with open(qa, "w") as f:
    for i in range(6):
        gold = replies[i].strip() if i % 2 == 0 and replies[i].strip() else "zzz"
        f.write(json.dumps({"question": "alpha beta %d" % i, "answers": [gold]}) + "\n")
recipe = os.path.join(tmp, "r.yaml")
open(recipe, "w").write(f"""
model: {base}
data:
  sources:
    d: {{path: {tmp}/d}}
training: {{seq_len: 32, micro_batch: 2, max_steps: 5}}
optim: {{lr: 3.0e-2}}
checkpoint: {{every: 2, keep_last: 3}}
export: {{dtype: f32}}
eval:
  tasks: {{names: "arc_easy,qa:{qa}", every: 2, limit: 6, max_new: 4, budget: 0.0}}
""")
out = os.path.join(tmp, "run")
r = run(["train", recipe, f"out_dir={out}"])
check(r.returncode == 0, "train with eval.tasks: " + r.stderr[-500:])


def items(model, tasks, limit):
    p = os.path.join(tmp, "items-%d.jsonl" % random.randrange(1 << 30))
    e = subprocess.run([BIN, "eval", "--model", model, "--tasks", tasks, "--limit", str(limit), "--max-new", "4", "--items", p],
                       capture_output=True, text=True, env=mpiutil.env())
    check(e.returncode == 0, "cpt eval %s: %s" % (tasks, e.stderr[-300:]))
    hits = {"arc_easy": [], "qa.jsonl": []}
    for l in (open(p) if e.returncode == 0 else []):
        it = json.loads(l)
        if "exact_match" in it:
            hits["qa.jsonl"].append(float(it["exact_match"]))
        else:
            hits["arc_easy"].append(float(it["pred_norm"] == it["gold"]))
    return hits


if r.returncode == 0:
    ms = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
    for key in ("task/arc_easy/acc_norm", "task/qa.jsonl/exact_match", "task/arc_easy/stderr"):
        steps = [m["step"] for m in ms if key in m]
        check(steps == [0, 2, 4, 5], f"{key} at steps {steps}, want 0, 2, 4, 5")
    dsteps = [m["step"] for m in ms if "task/arc_easy/delta" in m]
    check(dsteps == [2, 4, 5], f"delta at steps {dsteps}")
    check(r.stderr.count("task arc_easy at step ") == 4, "a log line per run")
    rep = open(os.path.join(out, "report.md")).read()
    check("## Benchmark tasks" in rep and "| arc_easy | acc_norm | 6 |" in rep, "report.md has the Benchmark tasks section")
    bj = json.load(open(os.path.join(out, "eval_tasks", "base.json")))
    hb = items(base, "arc_easy,qa:" + qa, 6)
    for t in ("arc_easy", "qa.jsonl"):
        check(bj["tasks"][t]["hits"] == hb[t] and len(hb[t]) == 6, f"base.json {t} hits {bj['tasks'][t]['hits']} vs cpt eval {hb[t]}")
    ht = items(os.path.join(out, "export"), "arc_easy,qa:" + qa, 6)
    last = {}
    for m in ms:
        if m["step"] == 5 and m.get("kind") == "eval":
            last.update(m)
    last = [last] if "task/arc_easy/delta" in last else []
    check(sum(hb["qa.jsonl"]) >= 2, f"the base answers its planted QA items: {hb['qa.jsonl']}")
    for t, metric in (("arc_easy", "acc_norm"), ("qa.jsonl", "exact_match")):
        d = [y - x for x, y in zip(hb[t], ht[t])]
        if len(d) != 6 or not last:
            check(False, f"{t}: no items or no step-5 metrics")
            continue
        m = last[0]
        se = statistics.stdev(d) / math.sqrt(len(d))
        check(abs(m[f"task/{t}/delta"] - statistics.mean(d)) < 1e-9 and abs(m[f"task/{t}/delta_stderr"] - se) < 1e-9
              and abs(m[f"task/{t}/{metric}"] - statistics.mean(ht[t])) < 1e-9,
              f"{t} step 5: {m} vs recomputed delta {statistics.mean(d)} +- {se}, score {statistics.mean(ht[t])}")
    # resume from the step-4 checkpoint: the cached base, no step-0 run
    before = open(os.path.join(out, "eval_tasks", "base.json")).read()
    r2 = run(["train", recipe, f"out_dir={out}", "training.max_steps=7", "--resume", "auto", "--resume-allow-changes"])
    check(r2.returncode == 0 and "task arc_easy at step 0" not in r2.stderr, "resume: " + r2.stderr[-400:])
    check(open(os.path.join(out, "eval_tasks", "base.json")).read() == before, "resume rewrote base.json")
    r3 = run(["train", recipe, f"out_dir={out}", "eval.tasks.limit=4", "--resume", "auto", "--resume-allow-changes"])
    check(r3.returncode != 0 and "base.json" in r3.stderr and "HINT" in r3.stderr, "changed limit on resume: " + r3.stderr.strip()[-300:])
r = run(["train", recipe, f"out_dir={tmp}/bad", "eval.tasks.names=arc_easy,no_such_task"])
check(r.returncode != 0 and "no_such_task" in r.stderr and "HINT" in r.stderr, "unknown task: " + r.stderr.strip()[-300:])
sys.exit(1 if h.fails else 0)

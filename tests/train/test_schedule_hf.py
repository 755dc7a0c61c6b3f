"""test_schedule_hf.py: cpt's LR schedules against transformers' schedulers, step by step.

The C side is the dumper mode of build/tests/test_schedule (lr for a range of steps).
The oracle is torch.optim.lr_scheduler.LambdaLR built by transformers'
get_constant_schedule_with_warmup / get_linear_schedule_with_warmup /
get_cosine_with_min_lr_schedule_with_warmup / get_wsd_schedule, read with get_last_lr()
before each scheduler.step() (= the LR of optimizer update number t). Both sides are float64;
tolerance 1e-12 relative (exact where the reference is 0). The infinite schedule has no HF
implementation: it is checked against a direct transcription of methods.md §4.3 below.
"""
import math
import os
import subprocess
import sys
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from skiputil import skip  # noqa: E402  (77 locally, a failure under CI=true)

FAILS = 0
CHECKS = 0


def check(cond, what):
    global FAILS, CHECKS
    CHECKS += 1
    if not cond:
        FAILS += 1
        print(f"FAIL: {what}", file=sys.stderr)


def helper():
    cands = []
    if os.environ.get("CPT_BIN"):
        cands.append(os.path.join(os.path.dirname(os.environ["CPT_BIN"]), "tests", "test_schedule"))
    if os.environ.get("CPT_SRC"):
        cands.append(os.path.join(os.environ["CPT_SRC"], "build", "tests", "test_schedule"))
    for c in cands:
        if os.access(c, os.X_OK):
            return c
    print(f"FAIL: test_schedule helper not found in {cands}", file=sys.stderr)
    sys.exit(1)


BIN = None


def c_lrs(n, **kw):
    args = [BIN] + [f"{k}={v}" for k, v in kw.items()] + [f"range=0:{n}"]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode:
        print(f"FAIL: {' '.join(args)}: {r.stderr}", file=sys.stderr)
        return None
    return [float(x) for x in r.stdout.split()]


def hf_lrs(make, lr, n):
    import torch

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    sch = make(opt)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()"
        for _ in range(n):
            out.append(sch.get_last_lr()[0])
            opt.step()
            sch.step()
    return out


def compare(label, got, want):
    if got is None:
        check(False, f"{label}: no output")
        return
    check(len(got) == len(want), f"{label}: {len(got)} values, expected {len(want)}")
    worst, where = 0.0, -1
    for t, (g, w) in enumerate(zip(got, want)):
        if w == 0.0:
            e = 0.0 if g == 0.0 else math.inf
        else:
            e = abs(g - w) / abs(w)
        if e > worst:
            worst, where = e, t
    check(worst <= 1e-12, f"{label}: worst relative error {worst:.3g} at step {where}"
          f" (cpt {got[where] if where >= 0 else None!r}, reference {want[where] if where >= 0 else None!r})")
    return worst


def infinite_ref(t, lr, W, Tcd, Tann, T, c, m, shape, alpha):
    """methods.md §4.3, written independently of src/train/schedule.c."""
    emax, econst, emin = lr, lr * c, lr * m
    if t < W:
        return emax * t / W
    if t <= Tcd and Tcd > W:
        x = (t - W) / (Tcd - W)
        if shape == "cosine":
            return econst + (emax - econst) / 2 * (1 + math.cos(math.pi * x))
        h = lambda x: 1 / math.sqrt(1 + alpha * x) - 1  # noqa: E731
        return emax + (econst - emax) * h(x) / h(1)
    if t <= Tann:
        return econst
    if t <= T:
        return econst * (emin / econst) ** ((t - Tann) / (T - Tann))
    return emin


def main():
    global BIN
    try:
        import torch  # noqa: F401
        import transformers.optimization as O
    except ImportError as e:
        skip(str(e))
    BIN = helper()
    worst = 0.0
    lr = 3e-4
    for W, T in [(0, 1), (0, 100), (1, 100), (10, 100), (37, 1000), (100, 100), (5, 7)]:
        # Cosine with a floor, steps 0..T inclusive (past T HF's cosine rises again).
        for m in (0.0, 0.1, 0.37):
            want = hf_lrs(lambda o: O.get_cosine_with_min_lr_schedule_with_warmup(
                o, num_warmup_steps=W, num_training_steps=T, min_lr_rate=m), lr, T + 1)
            got = c_lrs(T + 1, type="cosine", lr=lr, warmup=W, total=T, min=m)
            worst = max(worst, compare(f"cosine W={W} T={T} m={m}", got, want) or 0)
        # Linear to 0, and past T.
        want = hf_lrs(lambda o: O.get_linear_schedule_with_warmup(o, W, T), lr, T + 25)
        got = c_lrs(T + 25, type="linear", lr=lr, warmup=W, total=T, min=0)
        worst = max(worst, compare(f"linear W={W} T={T}", got, want) or 0)
        # Constant after warmup.
        want = hf_lrs(lambda o: O.get_constant_schedule_with_warmup(o, W), lr, T + 25)
        got = c_lrs(T + 25, type="constant", lr=lr, warmup=W, total=T)
        worst = max(worst, compare(f"constant W={W}", got, want) or 0)
    # WSD: HF warms up from min_lr_ratio, which is cpt's rewarm_from.
    for W, T, frac in [(0, 100, 0.2), (10, 100, 0.2), (37, 1000, 0.25), (3, 50, 1.0 - 3 / 50), (0, 10, 1.0)]:
        D = int(math.floor(frac * T + 0.5))
        for shape in ("cosine", "linear", "1-sqrt"):
            for m in (0.0, 0.1):
                want = hf_lrs(lambda o: O.get_wsd_schedule(
                    o, num_warmup_steps=W, num_decay_steps=D, num_training_steps=T, decay_type=shape,
                    min_lr_ratio=m), lr, T + 25)
                got = c_lrs(T + 25, type="wsd", lr=lr, warmup=W, total=T, min=m, rewarm=m,
                            decay_frac=frac, decay_shape=shape)
                worst = max(worst, compare(f"wsd W={W} T={T} D={D} {shape} m={m}", got, want) or 0)
    # Infinite schedule against the transcription above (phase boundaries included).
    for (W, Tcd, Tann, T) in [(10, 50, 80, 100), (50, 150, 800, 1000), (0, 0, 40, 60), (0, 30, 30, 30)]:
        for shape in ("cosine", "inv-sqrt"):
            for c, m, a in [(0.5, 0.1, 10.0), (0.25, 0.01, 3.0)]:
                want = [infinite_ref(t, lr, W, Tcd, Tann, T, c, m, shape, a) for t in range(T + 10)]
                got = c_lrs(T + 10, type="infinite", lr=lr, warmup=W, total=T, cooldown_end=Tcd,
                            anneal_start=Tann, const=c, min=m, cooldown_shape=shape, timescale=a)
                # The transcription uses other operation orders: 1e-12 still holds in float64.
                worst = max(worst, compare(f"infinite {W},{Tcd},{Tann},{T} {shape} c={c} m={m}", got, want) or 0)
    # A bad schedule makes the dumper fail with the field named.
    r = subprocess.run([BIN, "type=cosine", "lr=1e-3", "warmup=20", "total=10", "range=0:1"],
                       capture_output=True, text=True)
    check(r.returncode == 2 and "warmup_steps" in r.stderr, f"warmup > total accepted: {r.returncode} {r.stderr}")
    print(f"test_schedule_hf: {CHECKS} checks, {FAILS} failed, worst relative error {worst:.3g}", file=sys.stderr)
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()

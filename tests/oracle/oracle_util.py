"""oracle_util.py: shared plumbing for the Python parity tests (env, skips, running cpt, checks).

Not a test itself (CTest only picks up test_*.py).  Exit codes follow tests/CMakeLists.txt:
0 pass, 1 fail, 77 skip; skips follow tests/skiputil.py (a failure under CI=true).
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("CPT_SRC") or os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
import skiputil  # noqa: E402

SKIP = skiputil.SKIP

# The model fixtures made by make_fixtures.py (adamw is a training fixture, not a model).
MODEL_FIXTURES = ("llama_gqa_tied", "llama_mha_untied", "llama_headdim", "mistral", "qwen2", "qwen3")


def log(*a):
    print(*a, flush=True)


def skip(why):
    """Exit 77 (skipped), or 1 under CI=true: see tests/skiputil.py."""
    skiputil.skip(why)


skip_part = skiputil.skip_part


def cpt_bin():
    """Path of the cpt binary, or exit 77 if there is none."""
    b = os.environ.get("CPT_BIN") or os.path.join(SRC, "build", "cpt")
    if not (os.path.isfile(b) and os.access(b, os.X_OK)):
        skip("no cpt binary at %r (set CPT_BIN)" % b)
    return b


def run_cpt(args, timeout=300, **kw):
    """Run cpt with args; returns CompletedProcess (text, captured)."""
    return subprocess.run([cpt_bin()] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, **kw)


def not_implemented(p):
    """cpt's dispatcher answers an unknown command with exit 2 and 'unknown command'."""
    return p.returncode == 2 and "unknown command" in (p.stderr + p.stdout)


def require_commands(*cmds):
    """Exit 1 (fail) unless every `cpt <cmd>` is in the dispatcher (probed with --help).

    Every command these tests exercise exists; one that vanished from the dispatcher
    is a regression, not a reason to skip."""
    for c in cmds:
        p = run_cpt([c, "--help"], timeout=60)
        if not_implemented(p):
            log("FAIL: `cpt %s` is missing from the dispatcher (cpt %s --help: exit %d, %r)"
                % (c, c, p.returncode, (p.stderr + p.stdout).strip()[-200:]))
            sys.exit(1)


def tmpdir(name):
    base = os.environ.get("CPT_TMP") or os.path.join(SRC, "build", "test-tmp")
    d = os.path.join(base, name)
    os.makedirs(d, exist_ok=True)
    return d


def fixtures():
    """The fixture directory; generates it (make_fixtures.main) if it is missing or stale."""
    d = os.environ.get("CPT_FIXTURES") or os.path.join(SRC, "build", "fixtures")
    sys.path.insert(0, HERE)
    import make_fixtures
    vfile = os.path.join(d, "VERSION")
    ok = os.path.exists(vfile) and open(vfile).read().strip() == make_fixtures.FIXTURE_VERSION
    if not ok:
        log("fixtures missing or stale in %s: generating" % d)
        if make_fixtures.main(["--out", d]) != 0:
            log("FAIL: make_fixtures failed")
            sys.exit(1)
    return d


def shared():
    return os.environ.get("CPT_SHARED") or os.path.join(os.path.dirname(SRC), "shared")


def parse_json_line(stdout):
    """The last non-empty stdout line as JSON (cpt score prints exactly one)."""
    lines = [l for l in stdout.splitlines() if l.strip()]
    if not lines:
        raise ValueError("no output on stdout")
    return json.loads(lines[-1])


def rel_err(got, ref):
    """max |got - ref| / max |ref| (the tolerance measure the tests use for tensors)."""
    import numpy as np
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if got.shape != ref.shape:
        return float("inf")
    if not np.all(np.isfinite(got)):
        return float("inf")
    scale = float(np.abs(ref).max()) or 1.0
    return float(np.abs(got - ref).max()) / scale


class Checker:
    """Counts checks; each failure is printed with its context. finish() exits 0/1."""

    def __init__(self, name):
        self.name, self.n, self.fails = name, 0, []

    def check(self, cond, what):
        self.n += 1
        if not cond:
            self.fails.append(what)
            log("FAIL:", what)
        return bool(cond)

    def close(self, got, ref, tol, what):
        e = rel_err(got, ref)
        return self.check(e <= tol, "%s: rel err %.3g > tol %.1g" % (what, e, tol)) and e

    def finish(self):
        """Exit 1 on any failure or if nothing was checked; 77 if a part was skipped."""
        log("%s: %d checks, %d failed" % (self.name, self.n, len(self.fails)))
        if self.n == 0:
            log("FAIL: no checks ran")
            sys.exit(1)
        skiputil.finish(bool(self.fails))


def torch_setup():
    import torch
    torch.set_num_threads(2)
    sys.path.insert(0, HERE)
    import qwen3_compat
    qwen3_compat.register()
    return torch


def hf_load(model_dir, dtype=None):
    """transformers model (float32, eager) from a directory, Qwen3 included."""
    torch = torch_setup()
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=dtype or torch.float32,
                                             attn_implementation="eager")
    return m.eval()


def hf_logits_loss(model, ids):
    """(logits float64 ndarray [T, V], loss float) for one row, loss with labels=input_ids."""
    torch = torch_setup()
    x = torch.tensor([list(ids)], dtype=torch.long)
    with torch.no_grad():
        out = model(x, labels=x)
    return out.logits[0].double().numpy(), float(out.loss)

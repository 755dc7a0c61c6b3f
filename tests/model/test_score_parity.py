#!/usr/bin/env python3
"""test_score_parity.py: `cpt score` logits/loss/ppl equal transformers on every oracle fixture model.

cpt-test: needs-oracle

For each fixture model (tests/oracle/make_fixtures.py) and each of its B rows: write the
row's ids whitespace-separated, run `cpt score --model DIR --ids FILE --logits OUT.npy`,
and compare with transformers run on that single row (labels = input_ids, so the loss is
the mean next-token CE over the T-1 predicted positions).  Skips (77) when there is no
cpt binary or `cpt score` is not implemented.
"""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.environ.get("CPT_SRC", os.path.join(os.path.dirname(__file__), "..", "..")),
                                "tests", "oracle"))
import oracle_util as ou  # noqa: E402

# Tolerances: logits = max abs diff / max abs reference; loss = |diff| / |reference|.
LOGITS_TOL = 1e-4
LOSS_TOL = 1e-5


def check_row(ck, model, model_dir, ids, tag, tmp):
    ids_file = os.path.join(tmp, tag + ".ids")
    out_npy = os.path.join(tmp, tag + ".npy")
    with open(ids_file, "w") as f:
        f.write(" ".join(str(int(i)) for i in ids) + "\n")
    if os.path.exists(out_npy):
        os.remove(out_npy)
    p = ou.run_cpt(["score", "--model", model_dir, "--ids", ids_file, "--logits", out_npy])
    if not ck.check(p.returncode == 0, "%s: cpt score exit %d: %s" % (tag, p.returncode, p.stderr.strip()[-500:])):
        return
    try:
        js = ou.parse_json_line(p.stdout)
    except ValueError as e:
        ck.check(False, "%s: stdout is not one JSON line (%s): %r" % (tag, e, p.stdout[-300:]))
        return
    ref_logits, ref_loss = ou.hf_logits_loss(model, ids)
    T, V = ref_logits.shape
    ck.check(js.get("tokens") == T, "%s: tokens %r != %d" % (tag, js.get("tokens"), T))
    loss, ppl = js.get("loss"), js.get("ppl")
    if ck.check(isinstance(loss, (int, float)) and isinstance(ppl, (int, float)),
                "%s: loss/ppl missing or not numbers: %r" % (tag, js)):
        ck.check(abs(loss - ref_loss) <= LOSS_TOL * abs(ref_loss),
                 "%s: loss %.8f vs transformers %.8f (rel %.2g > %.0e)"
                 % (tag, loss, ref_loss, abs(loss - ref_loss) / abs(ref_loss), LOSS_TOL))
        ck.check(abs(ppl - math.exp(loss)) <= 1e-6 * math.exp(loss), "%s: ppl %r != exp(loss) %r"
                 % (tag, ppl, math.exp(loss)))
    if not ck.check(os.path.exists(out_npy), "%s: --logits file %s not written" % (tag, out_npy)):
        return
    got = np.load(out_npy)
    ck.check(got.dtype == np.float32, "%s: logits dtype %s, want float32" % (tag, got.dtype))
    if ck.check(got.shape == (T, V), "%s: logits shape %s, want %s" % (tag, got.shape, (T, V))):
        e = ck.close(got, ref_logits, LOGITS_TOL, "%s: logits" % tag)
        if e is not False:
            ou.log("  %-22s loss %.6f (ref %.6f)  logits rel err %.2e" % (tag, loss, ref_loss, e))


def main():
    ou.cpt_bin()
    ou.require_commands("score")
    fx = ou.fixtures()
    from safetensors.numpy import load_file
    tmp = ou.tmpdir("score_parity")
    ck = ou.Checker("test_score_parity")
    for name in ou.MODEL_FIXTURES:
        model_dir = os.path.join(fx, name, "model")
        model = ou.hf_load(model_dir)
        ref = load_file(os.path.join(fx, name, "ref.safetensors"))
        for b, ids in enumerate(ref["input_ids"]):
            check_row(ck, model, model_dir, ids, "%s[%d]" % (name, b), tmp)
    ck.finish()


if __name__ == "__main__":
    main()

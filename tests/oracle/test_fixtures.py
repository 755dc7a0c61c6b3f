#!/usr/bin/env python3
"""test_fixtures.py: checks the oracle fixtures themselves against references that share no code with them.

cpt-test: needs-oracle

The C parity tests are only as good as the fixtures, so each fixture is re-derived:
  * logits and loss: npref.py, a from-scratch numpy float64 forward (own safetensors reader,
    own RoPE/attention/MLP, own shifted CE) - not transformers;
  * gradients: central finite differences of the npref float64 loss on a few entries of
    every parameter, against the stored fp32 autograd grads;
    plus: every named parameter has a grad of its own shape, tied models have no lm_head grad;
  * AdamW: the 10 steps replayed with a hand-written clip + AdamW (per the formula in
    make_fixtures.py's docstring, not torch.optim), gradients from autograd.
"""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import npref  # noqa: E402
import oracle_util as ou  # noqa: E402

# Tolerances: tensors rel = max abs diff / max abs reference.
LOGITS_TOL = 1e-5     # numpy f64 vs torch f32 (observed ~1e-6)
LOSS_TOL = 1e-6       # relative
FD_TOL = 1e-4         # |fd - grad| <= FD_TOL * (max |grad of that param| + 1e-3)
FD_PER_PARAM = 3
DIR_TOL = 1e-5        # |fd along u - <g, u>| / |g|_2 for a random unit u (observed ~1e-7)
ADAMW_LOSS_TOL = 1e-5  # relative, per step
ADAMW_PARAM_TOL = 1e-5  # rel, per final tensor


def check_model(ck, fx, name):
    from safetensors.numpy import load_file
    d = os.path.join(fx, name)
    ref = load_file(os.path.join(d, "ref.safetensors"))
    cfg, w = npref.load_model(os.path.join(d, "model"))
    ids, labels = ref["input_ids"], ref["labels"]
    logits = np.stack([npref.forward(cfg, w, r) for r in ids])
    e = ck.close(ref["logits"], logits, LOGITS_TOL, "%s: fixture logits vs numpy forward" % name)
    s, n = npref.shifted_ce(logits, labels)
    ck.check(abs(s / n - ref["loss"][0]) <= LOSS_TOL * s / n,
             "%s: fixture loss %.8f vs numpy %.8f" % (name, ref["loss"][0], s / n))
    ck.check(((labels == -100).sum(1) >= 1).all() and (labels[:, 1:] == -100).any(),
             "%s: labels have no -100 at t >= 1 in some row" % name)

    # every tensor the model stores, minus the tied lm_head alias, is a parameter
    params = {k: v for k, v in w.items() if not (k == "lm_head.weight" and cfg["tie_word_embeddings"])}
    grads = {k[5:]: v for k, v in ref.items() if k.startswith("grad.")}
    ck.check(set(grads) == set(params), "%s: grad names != parameter names: %s" % (name, set(grads) ^ set(params)))
    ck.check(("lm_head.weight" in grads) != bool(cfg["tie_word_embeddings"]), "%s: lm_head grad vs tie flag" % name)

    def loss_at():  # numpy float64 (transformers' RMSNorm/softmax upcast to fp32 only, so no torch.double)
        lg = np.stack([npref.forward(cfg, w, r) for r in ids])
        s_, n_ = npref.shifted_ce(lg, labels)
        return s_ / n_

    rng = np.random.default_rng(7)
    worst = worst_dir = 0.0
    for pname, p in params.items():
        g = grads.get(pname)
        if g is None or not ck.check(g.shape == p.shape, "%s: grad.%s shape" % (name, pname)):
            continue
        flat = p.reshape(-1)  # a view: writes go into w (and into lm_head too when tied)
        assert np.shares_memory(flat, p)
        # the largest-|g| entry (a strong signal) plus random ones
        picks = [int(np.abs(g).argmax())] + list(rng.integers(0, flat.size, FD_PER_PARAM - 1))
        for i in picks:
            h = 1e-6
            old = float(flat[i])
            flat[i] = old + h
            lp = loss_at()
            flat[i] = old - h
            lm = loss_at()
            flat[i] = old
            fd = (lp - lm) / (2 * h)
            err = abs(fd - g.reshape(-1)[i]) / (np.abs(g).max() + 1e-3)
            worst = max(worst, err)
            ck.check(err <= FD_TOL, "%s: grad.%s[%d] = %.6g, finite difference %.6g" % (name, pname, i, g.reshape(-1)[i], fd))
        # directional derivative: one FD along a random unit direction u checks <g, u>, i.e. every
        # entry at once (a single wrong entry shifts it by ~err/sqrt(n), far above FD noise)
        u = rng.standard_normal(p.shape)
        u /= np.linalg.norm(u)
        old = p.copy()
        h = 1e-6
        p[...] = old + h * u
        lp = loss_at()
        p[...] = old - h * u
        lm = loss_at()
        p[...] = old
        fd, dot = (lp - lm) / (2 * h), float((g.astype(np.float64) * u).sum())
        derr = abs(fd - dot) / (np.linalg.norm(g) + 1e-6)
        worst_dir = max(worst_dir, derr)
        ck.check(derr <= DIR_TOL, "%s: grad.%s along a random direction: <g,u> = %.8g, finite difference %.8g"
                 % (name, pname, dot, fd))
    ou.log("  %-17s logits rel %.1e  loss %.6f  grads: %d params, worst FD rel %.1e, directional %.1e"
           % (name, e or 0, s / n, len(grads), worst, worst_dir))


def check_adamw(ck, fx, torch):
    from safetensors import safe_open
    d = os.path.join(fx, "adamw")
    with safe_open(os.path.join(d, "ref.safetensors"), "pt") as f:
        meta = f.metadata()
        ref = {k: f.get_tensor(k) for k in f.keys()}
    lr, b1, b2, eps = (float(meta[k]) for k in ("lr", "beta1", "beta2", "eps"))
    wd, max_norm, A, S = float(meta["weight_decay"]), float(meta["max_norm"]), int(meta["accum"]), int(meta["steps"])
    ids, labels = ref["input_ids"], ref["labels"]
    ck.check(tuple(ids.shape) == (S, A, 2, 13) and labels.shape == ids.shape, "adamw: input shapes %s" % (ids.shape,))
    counts = (labels[:, :, :, 1:] != -100).sum((2, 3))
    ck.check(bool((counts[:, 0] != counts[:, 1]).all()), "adamw: micro-batches with equal valid counts: %s" % counts)
    model = ou.hf_load(os.path.join(d, "model"))
    model.train()
    params = list(model.named_parameters())
    m = {k: torch.zeros_like(p) for k, p in params}
    v = {k: torch.zeros_like(p) for k, p in params}
    V = model.config.vocab_size
    for s in range(S):
        for _, p in params:
            p.grad = None
        n = int(counts[s].sum())
        total = 0.0
        for a in range(A):
            lg = model(ids[s, a]).logits
            lab = labels[s, a, :, 1:].reshape(-1)
            lp = torch.log_softmax(lg[:, :-1].reshape(-1, V).float(), -1)
            valid = lab != -100
            l = -(lp[valid, lab[valid]]).sum() / n
            l.backward()
            total += float(l)
        norm = math.sqrt(sum(float((p.grad.double() ** 2).sum()) for _, p in params))
        ck.check(abs(total - float(ref["losses"][s])) <= ADAMW_LOSS_TOL * total,
                 "adamw: step %d loss %.7f vs fixture %.7f" % (s, total, float(ref["losses"][s])))
        ck.check(abs(norm - float(ref["grad_norms"][s])) <= 1e-5 * norm,
                 "adamw: step %d grad norm %.7f vs fixture %.7f" % (s, norm, float(ref["grad_norms"][s])))
        scale = min(1.0, max_norm / (norm + 1e-6))
        t = s + 1
        with torch.no_grad():
            for k, p in params:
                g = p.grad * scale
                if p.ndim >= 2:
                    p.mul_(1 - lr * wd)
                m[k] = b1 * m[k] + (1 - b1) * g
                v[k] = b2 * v[k] + (1 - b2) * g * g
                p.sub_((lr / (1 - b1 ** t)) * m[k] / (v[k].sqrt() / math.sqrt(1 - b2 ** t) + eps))
    worst = 0.0
    for k, p in params:
        ck.close(p.detach().numpy(), ref["final." + k].numpy(), ADAMW_PARAM_TOL, "adamw: final.%s" % k)
        worst = max(worst, ou.rel_err(p.detach().numpy(), ref["final." + k].numpy()))
    moved = max(ou.rel_err(ref["final." + k].numpy(), p0) for k, p0 in
                npref.st_read(os.path.join(d, "model", "model.safetensors"))[0].items())
    ck.check(moved > 1e-3, "adamw: parameters barely moved (%.2g): the trajectory tests nothing" % moved)
    ou.log("  adamw             %d steps replayed, final params worst rel %.1e, moved %.2g" % (S, worst, moved))


def main():
    fx = ou.fixtures()
    torch = ou.torch_setup()
    torch.set_default_dtype(torch.float32)
    ck = ou.Checker("test_fixtures")
    for name in ou.MODEL_FIXTURES:
        check_model(ck, fx, name)
    check_adamw(ck, fx, torch)
    ck.finish()


if __name__ == "__main__":
    main()

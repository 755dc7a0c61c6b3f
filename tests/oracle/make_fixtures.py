#!/usr/bin/env python3
"""make_fixtures.py --out DIR: the PyTorch/transformers golden fixtures the C model is checked against.

It only writes fixtures; the comparisons live in tests/model/, tests/cli/ and
tests/oracle/test_fixtures.py (which re-derives these files with an independent numpy
forward, finite differences and a hand-written AdamW).

Everything is float32 on CPU, 2 threads, seeded, eager attention.  Idempotent: if
DIR/VERSION holds FIXTURE_VERSION the script exits at once; VERSION is written last,
so an interrupted run is redone.  Bump FIXTURE_VERSION whenever the output changes.

Layout, per model fixture <name> in CONFIGS:
  DIR/<name>/model/            config.json + model.safetensors (save_pretrained, fp32;
                               a tied model stores no lm_head.weight)
  DIR/<name>/ref.safetensors   input_ids I64 [B, T]     random in [0, vocab), B=2, T=13
                               labels    I64 [B, T]     input_ids with ~20% set to -100
                                                       (at least one per row, at t >= 1)
                               logits    F32 [B, T, V]  model(input_ids).logits
                               loss      F32 [1]        model(input_ids, labels=labels).loss:
                                         mean over valid SHIFTED positions of
                                         CE(logits[b, t], labels[b, t+1]), t < T-1
                               grad.<p>  F32            d loss / d p for every name in
                                         model.named_parameters() (tied: the lm_head
                                         gradient is inside grad.model.embed_tokens.weight)
Random init is made non-degenerate: initializer_range 0.2 (logits std ~1), every
RMSNorm weight 1 + 0.1*randn, every bias 0.1*randn.

DIR/adamw/: a training trajectory on the llama_gqa_tied shape (seed ADAMW_SEED).
  model/                       the initial parameters
  ref.safetensors              input_ids I64 [S=10, A=2, B=2, T=13], labels likewise
                               (-100s; the two micro-batches of a step always have a
                               different number of valid shifted labels)
                               losses     F32 [S]  step loss, before that step's update
                               grad_norms F32 [S]  global L2 grad norm before clipping
                               final.<p>  F32      parameters after the S steps
  Step semantics (also in the file's metadata, key "semantics"):
    N     = number of valid (label != -100) shifted labels in BOTH micro-batches
    loss  = sum over micro-batches a of sum_{b,t} CE(logits_a[b,t], labels_a[b,t+1]) / N
            (HF's num_items_in_batch convention; NOT the mean of per-micro-batch means)
    grads = d loss / d params, accumulated over the micro-batches
    grad_norm = sqrt(sum over all params of sum g^2); torch.nn.utils.clip_grad_norm_
            (max_norm=0.5): g *= 0.5 / (grad_norm + 1e-6) if that factor is < 1
    torch.optim.AdamW(lr=1e-3, betas=(0.9, 0.95), eps=1e-8), constant LR, two groups:
            weight_decay 0.1 for params with ndim >= 2, 0.0 for 1-D (norms, biases).
            Per element, step t (1-based):  p *= 1 - lr*wd;  m = b1*m + (1-b1)*g;
            v = b2*v + (1-b2)*g^2;  p -= (lr / (1-b1^t)) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
  Metadata keys (strings): lr, beta1, beta2, eps, weight_decay, max_norm, accum, steps.
"""
import argparse
import json
import os
import shutil
import sys
import time

import torch
import transformers
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qwen3_compat  # noqa: E402

FIXTURE_VERSION = "cpt-oracle-fixtures 1 (torch %s, transformers %s)" % (
    torch.__version__.split("+")[0], transformers.__version__)

B, T = 2, 13
INIT_RANGE = 0.2
ADAMW_SEED = 4242
ADAMW = dict(lr=1e-3, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1, max_norm=0.5, accum=2, steps=10)

_COMMON = dict(hidden_act="silu", rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=64,
               initializer_range=INIT_RANGE, pad_token_id=None, bos_token_id=1, eos_token_id=2,
               attn_implementation="eager")


def _cfg(**kw):
    d = dict(_COMMON)
    d.update(kw)
    return d


# name -> (architecture, seed, config kwargs)
CONFIGS = {
    "llama_gqa_tied": ("llama", 1, _cfg(vocab_size=67, hidden_size=48, num_hidden_layers=2, num_attention_heads=6,
                                        num_key_value_heads=2, intermediate_size=80, tie_word_embeddings=True)),
    "llama_mha_untied": ("llama", 2, _cfg(vocab_size=53, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                          num_key_value_heads=4, intermediate_size=72, tie_word_embeddings=False,
                                          rms_norm_eps=1e-6, rope_theta=500000.0)),
    "llama_headdim": ("llama", 3, _cfg(vocab_size=61, hidden_size=40, num_hidden_layers=2, num_attention_heads=5,
                                       num_key_value_heads=1, head_dim=12, intermediate_size=64,
                                       tie_word_embeddings=False)),
    "mistral": ("mistral", 4, _cfg(vocab_size=59, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                   num_key_value_heads=2, head_dim=16, intermediate_size=48,
                                   tie_word_embeddings=False, sliding_window=None)),
    "qwen2": ("qwen2", 5, _cfg(vocab_size=71, hidden_size=48, num_hidden_layers=2, num_attention_heads=6,
                               num_key_value_heads=2, intermediate_size=96, tie_word_embeddings=True,
                               rms_norm_eps=1e-6, rope_theta=1e6)),
    "qwen3": ("qwen3", 6, _cfg(vocab_size=63, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                               num_key_value_heads=2, head_dim=16, intermediate_size=64,
                               tie_word_embeddings=False, rms_norm_eps=1e-6)),
}


def arch_classes(arch):
    if arch == "llama":
        return LlamaConfig, LlamaForCausalLM
    if arch == "mistral":
        return MistralConfig, MistralForCausalLM
    if arch == "qwen2":
        return Qwen2Config, Qwen2ForCausalLM
    if arch == "qwen3":
        return qwen3_compat.classes()
    raise ValueError(arch)


def build_model(arch, seed, kw):
    """Construct a seeded model with the non-degenerate init described in the docstring."""
    cfg_cls, model_cls = arch_classes(arch)
    torch.manual_seed(seed)
    model = model_cls(cfg_cls(**kw))
    assert model.config._attn_implementation == "eager", model.config._attn_implementation
    with torch.no_grad():
        for mod in model.modules():
            if type(mod).__name__.endswith("RMSNorm"):
                mod.weight.copy_(1.0 + 0.1 * torch.randn_like(mod.weight))
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.copy_(0.1 * torch.randn_like(p))
    model.eval()  # no dropout anywhere (all dropout probs are 0 anyway)
    return model


def make_labels(ids, gen, rate=0.2):
    """ids with ~rate of entries set to -100; every row gets >= 1 masked entry at t >= 1
    (t = 0 is never a shifted target, so masking only there would test nothing) and
    keeps >= 2 valid shifted targets."""
    labels = ids.clone()
    rows, t = ids.shape
    mask = torch.rand(ids.shape, generator=gen) < rate
    for r in range(rows):
        if not mask[r, 1:].any():
            mask[r, 1 + int(torch.randint(0, t - 1, (1,), generator=gen))] = True
        while (~mask[r, 1:]).sum() < 2:
            mask[r, 1 + int(torch.nonzero(mask[r, 1:])[0])] = False
    labels[mask] = -100
    return labels


def shifted_ce_sum(logits, labels):
    v = logits.shape[-1]
    return torch.nn.functional.cross_entropy(logits[..., :-1, :].reshape(-1, v).float(),
                                             labels[..., 1:].reshape(-1), ignore_index=-100, reduction="sum")


def contiguous(d):
    return {k: v.detach().contiguous().clone() for k, v in d.items()}


def save_model(model, path):
    model.save_pretrained(path, safe_serialization=True)
    with open(os.path.join(path, "config.json")) as f:
        cfg = json.load(f)
    assert cfg.get("torch_dtype") == "float32", cfg.get("torch_dtype")


def make_model_fixture(out, name, arch, seed, kw):
    model = build_model(arch, seed, kw)
    V = model.config.vocab_size
    gen = torch.Generator().manual_seed(1000 + seed)
    ids = torch.randint(0, V, (B, T), generator=gen)
    labels = make_labels(ids, gen)
    with torch.no_grad():
        logits = model(ids).logits
    out_ = model(ids, labels=labels)
    loss = out_.loss
    # self-check: HF's internal shift + mean equals our reading of it
    n_valid = int((labels[:, 1:] != -100).sum())
    mine = shifted_ce_sum(out_.logits, labels) / n_valid
    assert torch.allclose(loss, mine, rtol=1e-6, atol=0), (name, loss.item(), mine.item())
    assert torch.equal(out_.logits.detach(), logits), name
    loss.backward()
    ref = {"input_ids": ids, "labels": labels, "logits": logits.float(), "loss": loss.detach().reshape(1)}
    names = []
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        ref["grad." + pname] = p.grad
        names.append(pname)
    d = os.path.join(out, name)
    save_model(model, os.path.join(d, "model"))
    meta = {"fixture": name, "version": FIXTURE_VERSION, "B": str(B), "T": str(T),
            "loss": "mean CE over valid shifted labels (HF labels= convention)",
            "tied": str(bool(model.config.tie_word_embeddings)).lower()}
    save_file(contiguous(ref), os.path.join(d, "ref.safetensors"), metadata=meta)
    std = logits.std().item()
    return "%-17s params %6d  logits std %.2f  loss %.4f  valid %d/%d" % (
        name, sum(p.numel() for p in model.parameters()), std, loss.item(), n_valid, B * (T - 1))


def make_adamw_fixture(out):
    arch, _, kw = CONFIGS["llama_gqa_tied"]
    model = build_model(arch, ADAMW_SEED, kw)
    d = os.path.join(out, "adamw")
    save_model(model, os.path.join(d, "model"))
    S, A = ADAMW["steps"], ADAMW["accum"]
    V = model.config.vocab_size
    gen = torch.Generator().manual_seed(ADAMW_SEED + 1)
    ids = torch.randint(0, V, (S, A, B, T), generator=gen)
    labels = torch.empty_like(ids)
    for s in range(S):
        counts = []
        for a in range(A):
            # different masking rates per micro-batch, and force distinct valid counts
            while True:
                lab = make_labels(ids[s, a], gen, rate=0.1 + 0.25 * a + 0.02 * s)
                c = int((lab[:, 1:] != -100).sum())
                if c not in counts:
                    break
            counts.append(c)
            labels[s, a] = lab
    params = [p for p in model.parameters()]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": ADAMW["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=ADAMW["lr"], betas=(ADAMW["beta1"], ADAMW["beta2"]), eps=ADAMW["eps"],
                            foreach=False)
    model.train()
    losses, norms = [], []
    for s in range(S):
        opt.zero_grad(set_to_none=True)
        n = int((labels[s, :, :, 1:] != -100).sum())
        total = 0.0
        for a in range(A):
            l = shifted_ce_sum(model(ids[s, a]).logits, labels[s, a]) / n
            l.backward()
            total += l.item()
        losses.append(total)
        norms.append(float(torch.nn.utils.clip_grad_norm_(params, max_norm=ADAMW["max_norm"])))
        opt.step()
    ref = {"input_ids": ids, "labels": labels,
           "losses": torch.tensor(losses, dtype=torch.float32),
           "grad_norms": torch.tensor(norms, dtype=torch.float32)}
    for pname, p in model.named_parameters():
        ref["final." + pname] = p
    meta = {k: repr(v) if isinstance(v, float) else str(v) for k, v in ADAMW.items()}
    meta.update({"fixture": "adamw", "version": FIXTURE_VERSION, "B": str(B), "T": str(T),
                 "betas": "(%r, %r)" % (ADAMW["beta1"], ADAMW["beta2"]),
                 "weight_decay_groups": "ndim>=2: weight_decay; ndim<2: 0.0",
                 "semantics": "loss = sum over micro-batches of token-summed shifted CE (ignore -100) / N, "
                              "N = valid shifted labels over all micro-batches; grads accumulated; "
                              "clip_grad_norm_(max_norm); torch.optim.AdamW (decoupled decay, bias-corrected); "
                              "losses[s] before step s's update; grad_norms[s] before clipping"})
    save_file(contiguous(ref), os.path.join(d, "ref.safetensors"), metadata=meta)
    clipped = sum(1 for x in norms if x > ADAMW["max_norm"])
    return "adamw             losses %.4f -> %.4f  grad norms %.3f..%.3f (%d/%d clipped)" % (
        losses[0], losses[-1], min(norms), max(norms), clipped, S)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="fixture directory (created)")
    ap.add_argument("--force", action="store_true", help="regenerate even if VERSION matches")
    args = ap.parse_args(argv)
    vfile = os.path.join(args.out, "VERSION")
    if not args.force and os.path.exists(vfile):
        with open(vfile) as f:
            if f.read().strip() == FIXTURE_VERSION:
                print("make_fixtures: %s is up to date (%s)" % (args.out, FIXTURE_VERSION))
                return 0
    t0 = time.time()
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)
    if os.path.exists(vfile):
        os.remove(vfile)
    for name in list(CONFIGS) + ["adamw"]:
        shutil.rmtree(os.path.join(args.out, name), ignore_errors=True)
    for name, (arch, seed, kw) in CONFIGS.items():
        print("make_fixtures:", make_model_fixture(args.out, name, arch, seed, kw), flush=True)
    print("make_fixtures:", make_adamw_fixture(args.out), flush=True)
    tmp = vfile + ".tmp"
    with open(tmp, "w") as f:
        f.write(FIXTURE_VERSION + "\n")
    os.replace(tmp, vfile)
    print("make_fixtures: wrote %s in %.1f s" % (args.out, time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())

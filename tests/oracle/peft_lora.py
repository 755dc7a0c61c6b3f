#!/usr/bin/env python3
"""peft_lora.py: the Hugging Face PEFT + transformers side of tests/model/test_lora_peft.c.

  peft_lora.py make FIXTURE_DIR OUT R ALPHA TARGETS MODULES_TO_SAVE RSLORA
      Wraps FIXTURE_DIR/model (a make_fixtures.py model) with peft.get_peft_model
      (LoraConfig(r, lora_alpha, target_modules=TARGETS (comma list), modules_to_save
      (comma list or "-"), use_rslora, lora_dropout 0, bias none, CAUSAL_LM)), sets every
      lora_B to 0.3 * randn and adds 0.05 * randn to the modules_to_save copies (PEFT's
      init would make B = 0 and the check vacuous), then writes
        OUT/peft_adapter/        PeftModel.save_pretrained
        OUT/peft_ref.safetensors logits F32 [B, T, V] of FIXTURE_DIR/ref.safetensors'
                                 input_ids; grad.<name> for every trainable parameter,
                                 d (SUM over valid shifted labels of CE) / d p, named
                                 as in the saved adapter (no ".default")
  peft_lora.py check FIXTURE_DIR OUT
      Loads the adapter cpt wrote (OUT/cpt_adapter) with PeftModel.from_pretrained onto
      the HF base, and compares its logits with cpt's (OUT/cpt_logits.safetensors,
      "logits"): max |diff| / max |ref| < 1e-4. Then merge_and_unload() and compares
      every weight with the merged model cpt wrote (OUT/cpt_merged, cpt_model_save_hf):
      max |diff| < 1e-5 absolute (fp32 rounding of W + s B A; |W| < 1).
  peft_lora.py adamw FIXTURE_DIR OUT R ALPHA TARGETS MODULES_TO_SAVE RSLORA
      As make (random lora_B, perturbed copies), saves the starting adapter to
      OUT/adamw_init, then takes S = 10 steps of torch.optim.AdamW(lr 1e-3, betas
      (0.9, 0.95), eps 1e-8, weight_decay 0.1: every adapter tensor is a matrix, so all
      decay, as in cpt's trainer) over the trainable parameters, each on its own random
      batch (B 2, T 13, ~20% labels -100), loss = mean CE over valid shifted labels,
      clip_grad_norm_(max_norm 7) before each step (some steps clip). Writes
      OUT/adamw_ref.safetensors: input_ids / labels I64 [S, B, T], losses F32 [S],
      grad_norms F32 [S] (before clipping), final.<name> for every adapter tensor.
Exit 0 pass, 1 fail, 77 when peft is not installed.
"""
import os
import sys

import torch

try:
    import peft
    from peft import LoraConfig, PeftModel, get_peft_model
except ImportError:
    print("peft not installed (pip install -r tests/requirements.txt)")
    sys.exit(77)
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

torch.set_num_threads(2)


def load_base(fx):
    m = AutoModelForCausalLM.from_pretrained(os.path.join(fx, "model"), torch_dtype=torch.float32,
                                             attn_implementation="eager")
    m.eval()
    return m


def cpt_name(n):
    return n.replace("modules_to_save.default.", "").replace(".default", "")


def wrap(fx, r, alpha, targets, mts, rslora):
    torch.manual_seed(4242)
    base = load_base(fx)
    cfg = LoraConfig(r=int(r), lora_alpha=float(alpha), target_modules=targets.split(","),
                     modules_to_save=None if mts == "-" else mts.split(","), use_rslora=rslora == "1",
                     lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")
    pm = get_peft_model(base, cfg)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if not p.requires_grad:
                continue
            if "lora_B" in n:
                p.copy_(0.3 * torch.randn_like(p))
            elif "modules_to_save" in n:
                p.add_(0.05 * torch.randn_like(p))
    return pm


def make(fx, out, r, alpha, targets, mts, rslora):
    pm = wrap(fx, r, alpha, targets, mts, rslora)
    pm.save_pretrained(os.path.join(out, "peft_adapter"))
    ref = load_file(os.path.join(fx, "ref.safetensors"))
    ids, labels = ref["input_ids"], ref["labels"]
    logits = pm(input_ids=ids).logits
    lg = logits[:, :-1].reshape(-1, logits.shape[-1])
    loss = torch.nn.functional.cross_entropy(lg, labels[:, 1:].reshape(-1), ignore_index=-100, reduction="sum")
    loss.backward()
    res = {"logits": logits.detach().contiguous()}
    for n, p in pm.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, n
            res["grad." + cpt_name(n)] = p.grad.contiguous()
    save_file(res, os.path.join(out, "peft_ref.safetensors"))
    print("peft %s: %d trainable tensors, loss sum %.4f" % (peft.__version__, len(res) - 1, loss.item()))
    return 0


def adamw(fx, out, r, alpha, targets, mts, rslora):
    pm = wrap(fx, r, alpha, targets, mts, rslora)
    pm.save_pretrained(os.path.join(out, "adamw_init"))
    S, B, T, V = 10, 2, 13, pm.config.vocab_size
    gen = torch.Generator().manual_seed(31337)
    params = [(n, p) for n, p in pm.named_parameters() if p.requires_grad]
    opt = torch.optim.AdamW([p for _, p in params], lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    ids = torch.randint(0, V, (S, B, T), generator=gen)
    labels = ids.clone()
    labels[torch.rand(S, B, T, generator=gen) < 0.2] = -100
    labels[:, :, 1] = ids[:, :, 1]  # at least one valid shifted label per row
    losses, norms = [], []
    for s in range(S):
        opt.zero_grad()
        logits = pm(input_ids=ids[s]).logits
        lab = labels[s][:, 1:].reshape(-1)
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), lab, ignore_index=-100,
                                                 reduction="sum") / (lab != -100).sum()
        loss.backward()
        norms.append(torch.nn.utils.clip_grad_norm_([p for _, p in params], max_norm=7.0).item())
        losses.append(loss.item())
        opt.step()
    res = {"input_ids": ids, "labels": labels, "losses": torch.tensor(losses), "grad_norms": torch.tensor(norms)}
    for n, p in params:
        res["final." + cpt_name(n)] = p.detach().contiguous()
    save_file(res, os.path.join(out, "adamw_ref.safetensors"))
    print("peft adamw: losses %.4f -> %.4f, grad norms %.3f .. %.3f" % (losses[0], losses[-1], min(norms), max(norms)))
    return 0


def check(fx, out):
    ok = True
    base = load_base(fx)
    pm = PeftModel.from_pretrained(base, os.path.join(out, "cpt_adapter"))
    pm.eval()
    ids = load_file(os.path.join(fx, "ref.safetensors"))["input_ids"]
    want = load_file(os.path.join(out, "cpt_logits.safetensors"))["logits"]
    with torch.no_grad():
        got = pm(input_ids=ids).logits
    rel = ((got - want).abs().max() / want.abs().max()).item()
    print("PEFT-loaded cpt adapter: logits rel err %.3g (tol 1e-4)" % rel)
    ok &= rel < 1e-4
    base_sd = {n: w.clone() for n, w in load_base(fx).state_dict().items()}
    merged = pm.merge_and_unload()
    mine = load_file(os.path.join(out, "cpt_merged", "model.safetensors"))
    worst, wname, moved = 0.0, "", 0.0
    sd = merged.state_dict()
    for n, w in sd.items():
        if n == "lm_head.weight" and merged.config.tie_word_embeddings:
            continue
        if n not in mine:
            print("merged tensor %s missing in cpt's merged model" % n)
            ok = False
            continue
        d = (w - mine[n]).abs().max().item()
        moved = max(moved, (w - base_sd[n]).abs().max().item())
        if d > worst:
            worst, wname = d, n
    print("merge_and_unload vs cpt merge: max |diff| %.3g (%s), tol 1e-5" % (worst, wname))
    ok &= worst < 1e-5
    print("merge moved the base weights by up to %.3g (must be > 1e-3, else the check is vacuous)" % moved)
    ok &= moved > 1e-3
    return 0 if ok else 1


if __name__ == "__main__":
    if sys.argv[1] == "make":
        sys.exit(make(*sys.argv[2:9]))
    if sys.argv[1] == "adamw":
        sys.exit(adamw(*sys.argv[2:9]))
    sys.exit(check(sys.argv[2], sys.argv[3]))

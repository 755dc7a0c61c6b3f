#!/usr/bin/env python3
"""test_export_merge.py: `cpt export MODEL --adapter DIR` / `--merge` against PEFT's merge_and_unload.

cpt-test: needs-oracle

On the oracle fixture models llama_mha_untied (LoRA on q/v/down + embed_tokens + lm_head,
rsLoRA) and llama_gqa_tied (all seven linears): PEFT (peft.get_peft_model, random lora_B,
perturbed modules_to_save copies) saves an adapter; `cpt export --adapter` writes the
merged model (f32); every weight must equal PEFT's merge_and_unload() within 1e-5
absolute (fp32 rounding of W + s B A), the merge must have moved the weights (> 1e-3,
else vacuous), and transformers loading cpt's export gives the PeftModel's logits within
1e-4 relative (max|a-b| / max|ref|). `--merge` alone reads MODEL/adapter. Errors: --merge
without an adapter directory names adapter_config.json with a HINT.
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.environ.get("CPT_SRC", os.path.join(os.path.dirname(__file__), "..", "..")), "tests"))
import skiputil  # noqa: E402

try:
    import peft  # noqa: F401
    import torch
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM
except ImportError as e:
    skiputil.skip("oracle packages missing (%s): pip install -r tests/requirements.txt" % e)

W_TOL, LOGITS_TOL = 1e-5, 1e-4
BIN = os.environ.get("CPT_BIN")
FX = os.environ.get("CPT_FIXTURES")
if not BIN or not FX or not os.path.isdir(FX):
    skiputil.skip("CPT_BIN / CPT_FIXTURES not set (run ctest -R oracle_fixtures)")
tmp = tempfile.mkdtemp(prefix="export_merge_", dir=os.environ.get("CPT_TMP"))
torch.set_num_threads(2)
failed = False


def fail(msg):
    global failed
    failed = True
    print("FAIL: " + msg, flush=True)


def load(path):
    m = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32, attn_implementation="eager")
    return m.eval()


def case(name, targets, mts, r, alpha, rslora, use_merge_flag):
    torch.manual_seed(99)
    base_dir = os.path.join(FX, name, "model")
    pm = get_peft_model(load(base_dir), LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, modules_to_save=mts,
                                                   use_rslora=rslora, lora_dropout=0.0, task_type="CAUSAL_LM"))
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if p.requires_grad and "lora_B" in n:
                p.copy_(0.3 * torch.randn_like(p))
            elif p.requires_grad and "modules_to_save" in n:
                p.add_(0.05 * torch.randn_like(p))
    work = os.path.join(tmp, name)
    if use_merge_flag:  # a model directory with its adapter in MODEL/adapter
        shutil.copytree(base_dir, os.path.join(work, "model"))
        pm.save_pretrained(os.path.join(work, "model", "adapter"))
        args = [BIN, "export", os.path.join(work, "model"), "--merge"]
    else:
        pm.save_pretrained(os.path.join(work, "adapter"))
        args = [BIN, "export", base_dir, "--adapter", os.path.join(work, "adapter")]
    out = os.path.join(work, "merged")
    p = subprocess.run(args + ["--out", out, "--dtype", "f32"], capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        fail("%s: cpt export failed: %s" % (name, p.stderr))
        return
    ids = load_file(os.path.join(FX, name, "ref.safetensors"))["input_ids"]
    with torch.no_grad():
        want_logits = pm(input_ids=ids).logits
    base_sd = {k: v.clone() for k, v in load(base_dir).state_dict().items()}
    merged = pm.merge_and_unload().state_dict()
    mine = load_file(os.path.join(out, "model.safetensors"))
    worst, moved = 0.0, 0.0
    for k, w in merged.items():
        if k == "lm_head.weight" and k not in mine:
            continue  # tied
        if k not in mine:
            fail("%s: %s missing from cpt's export" % (name, k))
            continue
        worst = max(worst, (w - mine[k]).abs().max().item())
        moved = max(moved, (w - base_sd[k]).abs().max().item())
    with torch.no_grad():
        got = load(out)(input_ids=ids).logits
    rel = ((got - want_logits).abs().max() / want_logits.abs().max()).item()
    print("%-17s weights vs merge_and_unload %.3g (tol %g), moved %.3g; logits %.3g (tol %g)"
          % (name, worst, W_TOL, moved, rel, LOGITS_TOL), flush=True)
    if not worst < W_TOL:
        fail("%s: merged weights differ from PEFT's by %.3g" % (name, worst))
    if not moved > 1e-3:
        fail("%s: the merge did not change the weights (%.3g): vacuous" % (name, moved))
    if not rel < LOGITS_TOL:
        fail("%s: logits of cpt's merged export differ from PEFT's by %.3g" % (name, rel))


case("llama_mha_untied", ["q_proj", "v_proj", "down_proj"], ["embed_tokens", "lm_head"], 3, 5.0, True, False)
case("llama_gqa_tied", ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], None, 4, 8.0, False,
     True)

p = subprocess.run([BIN, "export", os.path.join(FX, "qwen3", "model"), "--merge", "--out", os.path.join(tmp, "x")],
                   capture_output=True, text=True, timeout=120)
if p.returncode == 0 or "adapter_config.json" not in p.stderr or "HINT" not in p.stderr:
    fail("--merge without an adapter: rc %d, stderr %r" % (p.returncode, p.stderr))
skiputil.finish(failed)

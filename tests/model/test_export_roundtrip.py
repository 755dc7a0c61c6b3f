#!/usr/bin/env python3
"""test_export_roundtrip.py: `cpt convert --from hf` writes directories transformers loads back unchanged.

cpt-test: needs-oracle

For every fixture model (and stories260K when $CPT_SHARED has it):
  cpt convert --from hf SRC --out OUT --dtype f32   -> transformers logits == original (expect exact)
  cpt convert --from hf SRC --out OUT --dtype bf16  -> transformers logits (loaded as float32) ==
      the original model with every weight rounded to bf16 (torch .to(bfloat16).float())
and OUT/config.json keeps architectures, sizes and the tie flag, OUT/model.safetensors keeps
the tensor names.  Skips (77) without a cpt binary or `cpt convert`.
"""
import json
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.environ.get("CPT_SRC", os.path.join(os.path.dirname(__file__), "..", "..")),
                                "tests", "oracle"))
import oracle_util as ou  # noqa: E402

# Tolerances: logits rel = max abs diff / max abs reference.
F32_TOL = 1e-5   # f32 export must be lossless; reported as "exact" when the diff is 0
BF16_TOL = 1e-4  # vs the bf16-rounded original (same weights, so only op-order noise)

CONFIG_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
               "num_key_value_heads", "rms_norm_eps", "rope_theta")


def head_dim(c):
    return c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]


def tensor_names(d):
    from safetensors import safe_open
    with safe_open(os.path.join(d, "model.safetensors"), "np") as f:
        return set(f.keys())


def logits_of(model, ids):
    torch = ou.torch_setup()
    with torch.no_grad():
        return model(torch.tensor(ids, dtype=torch.long)).logits.double().numpy()


def check_model(ck, name, src, ids, tmp):
    torch = ou.torch_setup()
    orig = ou.hf_load(src)
    ref = logits_of(orig, ids)
    rounded = ou.hf_load(src)
    with torch.no_grad():
        for p in rounded.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    ref_bf16 = logits_of(rounded, ids)
    ck.check(ou.rel_err(ref_bf16, ref) > 1e-7, "%s: bf16 rounding changed nothing: the bf16 check is vacuous" % name)
    with open(os.path.join(src, "config.json")) as f:
        src_cfg = json.load(f)
    for dtype, want, tol in (("f32", ref, F32_TOL), ("bf16", ref_bf16, BF16_TOL)):
        tag = "%s/%s" % (name, dtype)
        out = os.path.join(tmp, "%s_%s" % (name, dtype))
        shutil.rmtree(out, ignore_errors=True)
        p = ou.run_cpt(["convert", "--from", "hf", src, "--out", out, "--dtype", dtype])
        if not ck.check(p.returncode == 0, "%s: cpt convert exit %d: %s" % (tag, p.returncode, p.stderr[-400:])):
            continue
        with open(os.path.join(out, "config.json")) as f:
            cfg = json.load(f)
        ck.check(cfg.get("architectures") == src_cfg["architectures"], "%s: architectures %r != %r"
                 % (tag, cfg.get("architectures"), src_cfg["architectures"]))
        for k in CONFIG_KEYS:
            if k in src_cfg:
                ck.check(cfg.get(k) == src_cfg[k], "%s: config %s = %r, source %r" % (tag, k, cfg.get(k), src_cfg[k]))
        ck.check(head_dim(cfg) == head_dim(src_cfg), "%s: head_dim %r != %r" % (tag, head_dim(cfg), head_dim(src_cfg)))
        ck.check(bool(cfg.get("tie_word_embeddings", False)) == bool(src_cfg.get("tie_word_embeddings", False)),
                 "%s: tie_word_embeddings %r != %r" % (tag, cfg.get("tie_word_embeddings"),
                                                      src_cfg.get("tie_word_embeddings")))
        ck.check(tensor_names(out) == tensor_names(src), "%s: tensor names differ: %s"
                 % (tag, sorted(tensor_names(out) ^ tensor_names(src))))
        try:
            got = logits_of(ou.hf_load(out, torch.float32), ids)
        except Exception as e:  # a directory transformers cannot load is a failure, not a crash
            ck.check(False, "%s: transformers cannot load %s: %s" % (tag, out, e))
            continue
        e = ck.close(got, want, tol, "%s: logits" % tag)
        if e is not False:
            ou.log("  %-24s logits rel err %s" % (tag, "0 (exact)" if e == 0 else "%.2e" % e))


def main():
    ou.cpt_bin()
    ou.require_commands("convert")
    fx = ou.fixtures()
    from safetensors.numpy import load_file
    tmp = ou.tmpdir("export_roundtrip")
    ck = ou.Checker("test_export_roundtrip")
    for name in ou.MODEL_FIXTURES:
        ids = load_file(os.path.join(fx, name, "ref.safetensors"))["input_ids"]
        check_model(ck, name, os.path.join(fx, name, "model"), ids, tmp)
    stories = os.path.join(ou.shared(), "data", "models", "stories260K-hf")
    if os.path.isdir(stories):
        with open(os.path.join(stories, "reference_greedy.json")) as f:
            ids = np.array([json.load(f)["greedy_tokens"]], dtype=np.int64)
        check_model(ck, "stories260K", stories, ids, tmp)
    else:
        ou.skip_part("stories260K not found under CPT_SHARED")
    ck.finish()


if __name__ == "__main__":
    main()

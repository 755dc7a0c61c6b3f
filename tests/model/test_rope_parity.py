#!/usr/bin/env python3
"""test_rope_parity.py: every RoPE scaling type against transformers 4.51.3, past the original context.

cpt-test: needs-oracle

For each case below (random small models of the Llama, Mistral, Qwen2 and Qwen3 families,
the rope types spread over them; T = 600 positions against an original context of 256):
  1. tables: cpt_rope_init at init and for seq_len = T, and the cos/sin tables of a forward
     of T positions (test_rope_parity --tables) against transformers' ROPE_INIT_FUNCTIONS and
     the model's own rotary embedding (its dynamic_rope_update included);
  2. one training step (test_rope_parity --check): logits, loss and the gradient of every
     parameter against transformers (eager attention, float32), B = 2, labels with -100s;
  3. scoring through `cpt score`;
  4. for the length-dependent types (dynamic, longrope) and llama3, the KV-cache path
     (test_rope_parity --decode): a prompt of 200 tokens, then one token at a time to 320,
     against transformers' prefill + cached single-token forwards (what generate() runs);
  5. `cpt convert --from hf` writes a config.json (rope_scaling, rope_theta,
     partial_rotary_factor) that transformers loads back to the same logits.
Also: the Llama 3.2-shaped case (rope_type llama3, factor 32, tied embeddings, theta 5e5)
loads, scores, decodes and takes a training step (loss and every gradient); a sequence
past the context without a rope option is refused with a HINT.

partial_rotary_factor: transformers 4.51.3's Llama/Mistral/Qwen classes rotate the whole
head (their apply_rotary_pos_emb fails on a partial cos); transformers' partial-rotary
models (Phi-3, GPT-NeoX, ...) rotate the first rot dims and pass the rest. The partial case
runs Llama with transformers' own Phi-3 apply_rotary_pos_emb, which is what cpt implements.

Tolerances (relative = max|a-b| / max|ref|) are below. Measured on the dev machine (2 threads):
inv_freq bit-identical for every case, cos/sin <= 1.2e-7 absolute, logits <= 4e-6,
loss <= 1.1e-7, every gradient <= 3e-6, KV-cache logits <= 1.8e-6.
"""
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.environ.get("CPT_SRC", os.path.join(os.path.dirname(__file__), "..", "..")),
                                "tests", "oracle"))
import oracle_util as ou  # noqa: E402

INV_TOL = 2.5e-7     # inverse frequencies: about 2 float32 ulp (libm powf vs torch's vectorized pow)
TABLE_TOL = 5e-7     # cos/sin (absolute / attention factor): cosf/sinf vs torch's, same fp32 angles
LOGITS_TOL = 1e-4
LOSS_TOL = 1e-5
GRAD_TOL = 2e-4
DECODE_TOL = 1e-4

T, B, ORIG = 600, 2, 256
PROMPT, DECODE_N = 200, 320

SMALL = dict(vocab_size=61, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             head_dim=16, intermediate_size=48, tie_word_embeddings=False)


def _lr(n, seed):
    rng = np.random.RandomState(seed)
    return [float(x) for x in np.round(1.0 + 3.0 * rng.rand(n), 4)]


# name -> (arch, seed, config overrides, attach-phi3-partial-rotary)
CASES = {
    "llama_linear": ("llama", 11, dict(max_position_embeddings=ORIG, rope_scaling={"rope_type": "linear", "factor": 4.0}), False),
    "mistral_dynamic": ("mistral", 12, dict(max_position_embeddings=ORIG, sliding_window=None,
                                            rope_scaling={"rope_type": "dynamic", "factor": 3.0}), False),
    "qwen2_yarn_legacy_type": ("qwen2", 13, dict(max_position_embeddings=4 * ORIG, rope_theta=1e6, tie_word_embeddings=True,
                                                 rope_scaling={"type": "yarn", "factor": 4.0,
                                                               "original_max_position_embeddings": ORIG}), False),
    "qwen3_yarn_mscale": ("qwen3", 14, dict(max_position_embeddings=ORIG,
                                            rope_scaling={"rope_type": "yarn", "factor": 4.0, "beta_fast": 16.0,
                                                          "beta_slow": 2.0, "mscale": 0.8, "mscale_all_dim": 0.5}), False),
    "llama32_llama3": ("llama", 15, dict(vocab_size=67, hidden_size=64, num_attention_heads=4, num_key_value_heads=1,
                                         head_dim=16, intermediate_size=96, tie_word_embeddings=True, rope_theta=500000.0,
                                         max_position_embeddings=32 * ORIG,
                                         rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                                       "high_freq_factor": 4.0, "original_max_position_embeddings": ORIG}),
                       False),
    "qwen3_longrope": ("qwen3", 16, dict(max_position_embeddings=4 * ORIG, original_max_position_embeddings=ORIG,
                                         rope_scaling={"rope_type": "longrope", "short_factor": _lr(8, 1),
                                                       "long_factor": _lr(8, 2)}), False),
    "qwen2_longrope_factor": ("qwen2", 17, dict(max_position_embeddings=4 * ORIG,
                                                rope_scaling={"rope_type": "longrope", "factor": 4.0, "attention_factor": 1.1,
                                                              "short_factor": _lr(8, 3), "long_factor": _lr(8, 4)}), False),
    "llama_abf_theta": ("llama", 18, dict(max_position_embeddings=4 * ORIG, rope_theta=1e6), False),
    "llama_partial_yarn": ("llama", 19, dict(max_position_embeddings=ORIG, partial_rotary_factor=0.5,
                                             rope_scaling={"rope_type": "yarn", "factor": 4.0}), True),
    "mistral_partial_dynamic": ("mistral", 20, dict(max_position_embeddings=ORIG, sliding_window=None, partial_rotary_factor=0.75,
                                                    rope_scaling={"rope_type": "dynamic", "factor": 3.0}), True),
}
DECODE_CASES = ("mistral_dynamic", "qwen3_longrope", "llama32_llama3", "mistral_partial_dynamic")


def driver():
    b = os.environ.get("CPT_BIN") or os.path.join(ou.SRC, "build", "cpt")
    d = os.path.join(os.path.dirname(b), "tests", "test_rope_parity")
    if not os.access(d, os.X_OK):
        ou.skip("no test_rope_parity driver next to cpt (%s)" % d)
    return d


def patch_partial(on):
    """Llama/Mistral/Qwen modules use transformers' partial-rotary apply (Phi-3's) when on."""
    import transformers.models.llama.modeling_llama as ml
    import transformers.models.mistral.modeling_mistral as mm
    import transformers.models.phi3.modeling_phi3 as mp
    for mod in (ml, mm):
        if not hasattr(mod, "_cpt_orig_apply"):
            mod._cpt_orig_apply = mod.apply_rotary_pos_emb
        mod.apply_rotary_pos_emb = mp.apply_rotary_pos_emb if on else mod._cpt_orig_apply


def hf_step(mf, model, ids, labels):
    out = model(ids, labels=labels)
    out.loss.backward()
    ref = {"input_ids": ids, "labels": labels, "logits": out.logits.detach().float(), "loss": out.loss.detach().reshape(1)}
    for pname, p in model.named_parameters():
        ref["grad." + pname] = p.grad
    return ref


def run(cmd):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600)


def check_case(ck, name, tmp, drv):
    torch = ou.torch_setup()
    sys.path.insert(0, ou.HERE)
    import make_fixtures as mf
    from safetensors.torch import save_file
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    arch, seed, over, partial = CASES[name]
    patch_partial(partial)
    kw = mf._cfg(**dict(SMALL, **over))
    model = mf.build_model(arch, seed, kw)
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    mf.save_model(model, os.path.join(d, "model"))
    gen = torch.Generator().manual_seed(5000 + seed)
    V = model.config.vocab_size
    ids = torch.randint(0, V, (B, T), generator=gen)
    labels = mf.make_labels(ids, gen)
    fresh = ou.hf_load(os.path.join(d, "model"))  # the model as transformers loads the saved config
    rtype = fresh.model.rotary_emb.rope_type

    # 1. tables
    out = os.path.join(d, "tab")
    p = run([drv, "--tables", d, T, out])
    if ck.check(p.returncode == 0, "%s: --tables: %s" % (name, p.stderr.strip()[-400:])):
        got = np.load(out + ".inv.npy")
        half = got.shape[1] - 1
        inv0, af0 = ROPE_INIT_FUNCTIONS[rtype](fresh.config, "cpu")
        invT, afT = ROPE_INIT_FUNCTIONS[rtype](fresh.config, "cpu", seq_len=torch.tensor(T))
        e_inv = max(ou.rel_err(got[0, :half], inv0.numpy()), ou.rel_err(got[1, :half], invT.numpy()))
        e_af = max(abs(got[0, half] - af0) / af0, abs(got[1, half] - afT) / afT)
        ck.check(e_inv <= INV_TOL, "%s: inv_freq rel err %.3g > %.1g" % (name, e_inv, INV_TOL))
        ck.check(e_af <= 1e-7, "%s: attention factor %r/%r vs %r/%r" % (name, got[0, half], got[1, half], af0, afT))
        x = torch.zeros(1, T, 4)
        cos, sin = fresh.model.rotary_emb(x, torch.arange(T)[None])
        af = float(fresh.model.rotary_emb.attention_scaling)
        e_tab = max(float(np.abs(np.load(out + ".cos.npy") - cos[0, :, :half].numpy()).max()),
                    float(np.abs(np.load(out + ".sin.npy") - sin[0, :, :half].numpy()).max())) / af
        ck.check(e_tab <= TABLE_TOL, "%s: cos/sin abs err %.3g > %.1g" % (name, e_tab, TABLE_TOL))
        ou.log("  %-24s %-8s inv_freq %.2e  attn %.1e  cos/sin %.2e" % (name, rtype, e_inv, e_af, e_tab))

    # 2. a training step
    ref = hf_step(mf, ou.hf_load(os.path.join(d, "model")), ids, labels)
    save_file(mf.contiguous(ref), os.path.join(d, "ref.safetensors"))
    p = run([drv, "--check", d])
    if ck.check(p.returncode == 0, "%s: --check: %s" % (name, p.stderr.strip()[-400:])):
        js = ou.parse_json_line(p.stdout)
        ck.check(js["logits"] <= LOGITS_TOL, "%s: logits rel err %.3g" % (name, js["logits"]))
        ck.check(js["loss"] <= LOSS_TOL, "%s: loss rel err %.3g" % (name, js["loss"]))
        ck.check(js["grad_worst"] <= GRAD_TOL, "%s: gradient of %s rel err %.3g" % (name, js["grad_worst_name"], js["grad_worst"]))
        ck.check(js["n_grads"] == js["n_tensors"] == len(list(model.named_parameters())),
                 "%s: %d gradients compared of %d tensors" % (name, js["n_grads"], js["n_tensors"]))
        ou.log("  %-24s step: logits %.2e  loss %.2e  worst grad %.2e (%s, %d tensors)"
               % (name, js["logits"], js["loss"], js["grad_worst"], js["grad_worst_name"], js["n_grads"]))

    # 3. cpt score on row 0
    ids_file = os.path.join(d, "row0.ids")
    with open(ids_file, "w") as f:
        f.write(" ".join(str(int(i)) for i in ids[0]) + "\n")
    npy = os.path.join(d, "score.npy")
    p = ou.run_cpt(["score", "--model", os.path.join(d, "model"), "--ids", ids_file, "--logits", npy])
    if ck.check(p.returncode == 0, "%s: cpt score: %s" % (name, p.stderr.strip()[-400:])):
        e = ck.close(np.load(npy), ref["logits"][0].double().numpy(), LOGITS_TOL, "%s: cpt score logits" % name)
        ou.log("  %-24s score: logits %.2e" % (name, e or -1))

    # 4. KV cache
    if name in DECODE_CASES:
        seq = ids[0, :DECODE_N]
        with open(ids_file, "w") as f:
            f.write(" ".join(str(int(i)) for i in seq) + "\n")
        npy = os.path.join(d, "decode.npy")
        p = run([drv, "--decode", d, PROMPT, ids_file, npy])
        if ck.check(p.returncode == 0, "%s: --decode: %s" % (name, p.stderr.strip()[-400:])):
            hf = ou.hf_load(os.path.join(d, "model"))
            with torch.no_grad():
                o = hf(seq[None, :PROMPT], use_cache=True)
                rows, pkv = [o.logits[0]], o.past_key_values
                for t in range(PROMPT, DECODE_N):
                    o = hf(seq[None, t:t + 1], past_key_values=pkv, use_cache=True)
                    rows.append(o.logits[0])
                    pkv = o.past_key_values
            want = torch.cat(rows).double().numpy()
            e = ck.close(np.load(npy), want, DECODE_TOL, "%s: KV-cache logits" % name)
            # the cached path really differs from a full forward for these types (else the check is weak)
            full = ref["logits"][0, :DECODE_N].double().numpy()
            ou.log("  %-24s decode: logits %.2e  (full-forward differs by %.2e)" % (name, e or -1, ou.rel_err(want, full)))

        # cpt generate (its prompt as one forward, as generate() prefills it), prompt past the original context
        prompt = ids[1, :300]
        p = ou.run_cpt(["generate", "--model", os.path.join(d, "model"), "--ids", " ".join(str(int(i)) for i in prompt),
                        "--max-new", 24, "--greedy", "--print-ids", "--ignore-eos"])
        if ck.check(p.returncode == 0, "%s: cpt generate: %s" % (name, p.stderr.strip()[-300:])):
            hf = ou.hf_load(os.path.join(d, "model"))
            with torch.no_grad():
                want = hf.generate(prompt[None], attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                                   max_new_tokens=24, do_sample=False, min_new_tokens=24,
                                   eos_token_id=None, pad_token_id=0)[0].tolist()
            got = [int(x) for x in p.stdout.split()]
            ck.check(got == want, "%s: cpt generate %s vs transformers %s" % (name, got[300:], want[300:]))

    # 5. config.json written by cpt, read by transformers
    conv = os.path.join(d, "converted")
    p = ou.run_cpt(["convert", "--from", "hf", os.path.join(d, "model"), "--out", conv, "--dtype", "f32"])
    if ck.check(p.returncode == 0, "%s: cpt convert: %s" % (name, p.stderr.strip()[-400:])):
        back = ou.hf_load(conv)
        with torch.no_grad():
            e = ou.rel_err(back(ids).logits.double().numpy(), ref["logits"].double().numpy())
        ck.check(e <= 1e-6, "%s: converted model logits differ by %.3g" % (name, e))
        with open(os.path.join(conv, "config.json")) as f:
            cj = json.load(f)
        ck.check(cj.get("rope_theta") == kw.get("rope_theta"), "%s: rope_theta %r" % (name, cj.get("rope_theta")))
    patch_partial(False)


def check_refusal(ck, tmp):
    """A sequence past max_position_embeddings with no rope option is refused with a HINT."""
    torch = ou.torch_setup()
    sys.path.insert(0, ou.HERE)
    import make_fixtures as mf
    d = os.path.join(tmp, "refuse")
    mf.save_model(mf.build_model("llama", 21, mf._cfg(**dict(SMALL, max_position_embeddings=ORIG))), os.path.join(d, "model"))
    ids_file = os.path.join(d, "long.ids")
    with open(ids_file, "w") as f:
        f.write(" ".join(str(i % 61) for i in range(ORIG + 1)) + "\n")
    p = ou.run_cpt(["score", "--model", os.path.join(d, "model"), "--ids", ids_file])
    ck.check(p.returncode != 0 and "HINT" in p.stderr and "rope_scaling" in p.stderr and str(ORIG) in p.stderr,
             "score past the context: exit %d, stderr %r" % (p.returncode, p.stderr[-400:]))
    with open(ids_file, "w") as f:
        f.write(" ".join(str(i % 61) for i in range(ORIG)) + "\n")
    p = ou.run_cpt(["score", "--model", os.path.join(d, "model"), "--ids", ids_file])
    ck.check(p.returncode == 0, "score at exactly the context: exit %d %r" % (p.returncode, p.stderr[-300:]))
    with open(ids_file, "w") as f:
        f.write(" ".join(str(i % 61) for i in range(ORIG + 1)) + "\n")
    p = ou.run_cpt(["score", "--model", os.path.join(d, "model"), "--ids", ids_file, "--allow-long-context"])
    ck.check(p.returncode == 0, "score past the context with --allow-long-context: exit %d %r" % (p.returncode, p.stderr[-300:]))
    p = ou.run_cpt(["generate", "--model", os.path.join(d, "model"), "--ids", " ".join(["1"] * (ORIG - 2)), "--max-new", "4",
                    "--greedy", "--print-ids", "--ignore-eos"])
    ck.check(p.returncode != 0 and "HINT" in p.stderr and "--allow-long-context" in p.stderr,
             "generate past the context refused: exit %d %r" % (p.returncode, p.stderr[-300:]))
    p = ou.run_cpt(["generate", "--model", os.path.join(d, "model"), "--ids", " ".join(["1"] * (ORIG - 2)), "--max-new", "4",
                    "--greedy", "--print-ids", "--ignore-eos", "--allow-long-context"])
    ck.check(p.returncode == 0 and len(p.stdout.split()) == ORIG + 2, "generate past the context allowed: %r" % p.stderr[-300:])


def main():
    ou.cpt_bin()
    drv = driver()
    ou.torch_setup()
    tmp = ou.tmpdir("rope_parity")
    ck = ou.Checker("test_rope_parity")
    only = os.environ.get("ROPE_CASES")
    for name in CASES:
        if not only or name in only.split(","):
            check_case(ck, name, tmp, drv)
    check_refusal(ck, tmp)
    ck.finish()


if __name__ == "__main__":
    main()

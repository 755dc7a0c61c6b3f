#!/usr/bin/env python3
"""`cpt convert --from hf DIR --to gguf` (cpt/gguf_export.h) checked against independent code.

Models: random small Llama configs written by transformers (GQA + tied, MHA + untied, and
one with intermediate_size 72 so Q8_0 falls back to F16 for ffn_down, whose rows are 72
long) with the GPT-2 tokenizer from ../shared, and SmolLM2-135M (scripts/get-smollm2.sh).
For each type f32, f16, bf16, q8_0:
1. gguf.GGUFReader (llama.cpp's own reader) opens our file; every tensor maps to an HF
   tensor; its expected value is the HF tensor with q/k rows permuted by `permute` below,
   written from llama.cpp's convert_hf_to_gguf LlamaModel.permute (reshape to
   [n_head, 2, rows/n_head/2, ...], swap axes 1 and 2), independently of the C code.
   f32: equal bit for bit; f16/bf16/q8_0: the stored bytes equal
   gguf.quants.quantize(expected, type) bit for bit; 1-D tensors are F32; output.weight is
   absent exactly when tied. Metadata: architecture, the {arch}.* hyperparameters, the
   tokenizer arrays (tokens equal the source vocabulary by id, merges as in tokenizer.json).
2. transformers loads the export (from_pretrained(dir, gguf_file=...)): logits equal the HF
   source model: f32 within 1e-5 relative (max abs diff / max abs logit); q8_0 within
   Q8_TOL (weights rounded to 8 bits: measured ~1e-2 on these models, bound 5e-2).
   AutoTokenizer.from_pretrained(dir, gguf_file=...) gives the same ids as the source
   tokenizer.json on a text with unicode.
3. Round trip in cpt: `convert --from gguf` of an f32 export equals the source safetensors
   exactly; SmolLM2: import(export(import(SmolLM2.gguf))) == import(SmolLM2.gguf) exactly.
4. Must-fail: unknown --type, a Unigram tokenizer.json, llama3 rope
   scaling, sliding window, a missing output directory: nonzero exit, a message with HINT,
   no output file.
Skips with a message where an oracle or data is missing; FAILS when CI=true.
cpt-test: slow
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from skiputil import skip  # noqa: E402

try:
    import numpy as np
    import torch
    import gguf
    from gguf import GGMLQuantizationType as Q
    from gguf.quants import quantize
    import accelerate  # noqa: F401  (transformers' GGUF loader needs it)
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM
except ImportError as e:
    skip(f"oracle missing: {e}")

F32_TOL = 1e-5
Q8_TOL = 5e-2
TEXT = "Hello wörld! naïve café — 東京 2024, emoji 🙂 and tabs\tand  spaces.\nNew line: x=3.14"

src = os.environ.get("CPT_SRC", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
cpt = os.environ.get("CPT_BIN", os.path.join(src, "build", "cpt"))
shared = os.environ.get("CPT_SHARED", os.path.join(src, "..", "shared"))
if not os.path.exists(cpt):
    skip(f"no cpt binary at {cpt}")
gpt2_tok = os.path.join(shared, "data", "tokenizers", "gpt2", "hf")
if not os.path.isfile(os.path.join(gpt2_tok, "tokenizer.json")):
    skip(f"{gpt2_tok}/tokenizer.json missing (../shared)")
tmp = tempfile.mkdtemp(dir=os.environ.get("CPT_TMP"))
torch.manual_seed(0)

FAILS = 0
CHECKS = 0


def check(cond, what):
    global FAILS, CHECKS
    CHECKS += 1
    if not cond:
        FAILS += 1
        print("FAIL:", what, flush=True)


def run(*args):
    return subprocess.run([cpt, *args], capture_output=True, text=True)


def permute(w, n_head, n_head_kv):
    """llama.cpp convert_hf_to_gguf.py LlamaModel.permute."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


BLK = {"input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj.weight": "attn_q.weight",
       "self_attn.k_proj.weight": "attn_k.weight", "self_attn.v_proj.weight": "attn_v.weight",
       "self_attn.o_proj.weight": "attn_output.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
       "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
       "mlp.down_proj.weight": "ffn_down.weight", "self_attn.q_proj.bias": "attn_q.bias",
       "self_attn.k_proj.bias": "attn_k.bias", "self_attn.v_proj.bias": "attn_v.bias",
       "self_attn.q_norm.weight": "attn_q_norm.weight", "self_attn.k_norm.weight": "attn_k_norm.weight"}


def gguf_name(hf):
    top = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
           "lm_head.weight": "output.weight"}
    if hf in top:
        return top[hf]
    parts = hf.split(".")
    return f"blk.{parts[2]}." + BLK[".".join(parts[3:])]


def expected_tensors(hf_dir, cfg, arch):
    sd = load_file(os.path.join(hf_dir, "model.safetensors"))
    out = {}
    for k, v in sd.items():
        v = v.astype(np.float32)
        if k == "lm_head.weight" and cfg.get("tie_word_embeddings"):
            continue
        if arch != "llama":
            pass  # convert_hf_to_gguf's Qwen2Model/Qwen3Model do not permute
        elif k.endswith("q_proj.weight"):
            v = permute(v, cfg["num_attention_heads"], cfg["num_attention_heads"])
        elif k.endswith("k_proj.weight"):
            v = permute(v, cfg["num_attention_heads"], cfg["num_key_value_heads"])
        out[gguf_name(k)] = v
    return out


def check_file(path, hf_dir, cfg, ty, label, arch="llama"):
    r = gguf.GGUFReader(path)
    exp = expected_tensors(hf_dir, cfg, arch)
    names = {t.name for t in r.tensors}
    check(names == set(exp), f"{label}: tensor names differ: {sorted(names ^ set(exp))[:6]}")
    check(("output.weight" in names) == (not cfg.get("tie_word_embeddings")), f"{label}: output.weight vs tie")
    qt = {"f32": Q.F32, "f16": Q.F16, "bf16": Q.BF16, "q8_0": Q.Q8_0}[ty]
    nbad = 0
    for t in r.tensors:
        if t.name not in exp:
            continue
        e = exp[t.name]
        want = Q.F32 if e.ndim == 1 else qt
        if want == Q.Q8_0 and e.shape[-1] % 32:
            want = Q.F16  # llama.cpp's fallback for rows that are not whole Q8_0 blocks
        if t.tensor_type != want:
            nbad += 1
            print(f"FAIL: {label}: {t.name} has type {t.tensor_type.name}, expected {want.name}")
            continue
        if list(reversed([int(x) for x in t.shape])) != list(e.shape):
            nbad += 1
            print(f"FAIL: {label}: {t.name} shape {list(t.shape)} vs HF {e.shape}")
            continue
        if want == Q.F32:
            ok = np.array_equal(np.asarray(t.data).reshape(e.shape).view(np.uint32), e.view(np.uint32))
        else:
            ref = np.asarray(quantize(e, want)).view(np.uint8).reshape(-1)
            ok = np.array_equal(np.asarray(t.data).view(np.uint8).reshape(-1), ref)
        if not ok:
            nbad += 1
            print(f"FAIL: {label}: {t.name} ({want.name}) differs from the HF tensor")
    check(nbad == 0, f"{label}: {nbad} tensors differ")
    f = r.fields

    def val(k):
        return f[k].contents() if k in f else None
    check(val("general.architecture") == arch, f"{label}: general.architecture")
    for key, ck in (("embedding_length", "hidden_size"), ("block_count", "num_hidden_layers"),
                    ("feed_forward_length", "intermediate_size"), ("attention.head_count", "num_attention_heads"),
                    ("attention.head_count_kv", "num_key_value_heads"), ("context_length", "max_position_embeddings"),
                    ("vocab_size", "vocab_size")):
        check(val(f"{arch}.{key}") == cfg[ck], f"{label}: {arch}.{key} = {val(f'{arch}.{key}')} != {cfg[ck]}")
    check(np.float32(val(f"{arch}.rope.freq_base")) == np.float32(cfg.get("rope_theta", 10000.0)), f"{label}: freq_base")
    check(np.float32(val(f"{arch}.attention.layer_norm_rms_epsilon")) == np.float32(cfg["rms_norm_eps"]), f"{label}: eps")
    tj = json.load(open(os.path.join(hf_dir, "tokenizer.json")))
    vocab = dict(tj["model"]["vocab"])
    for a in tj["added_tokens"]:
        vocab[a["content"]] = a["id"]
    toks = val("tokenizer.ggml.tokens")
    byid = {i: s for s, i in vocab.items()}
    check(val("tokenizer.ggml.model") == "gpt2", f"{label}: tokenizer model")
    check(len(toks) == cfg["vocab_size"] and all(toks[i] == byid.get(i, f"[PAD{i}]") for i in range(len(toks))),
          f"{label}: tokens differ from tokenizer.json")
    merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
    check(val("tokenizer.ggml.merges") == merges, f"{label}: merges differ")
    return r


def logits_of(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].double().numpy()


def hf_check(gdir, gname, hf_dir, ty, label):
    ref_m = AutoModelForCausalLM.from_pretrained(hf_dir, torch_dtype=torch.float32)
    m = AutoModelForCausalLM.from_pretrained(gdir, gguf_file=gname, torch_dtype=torch.float32)
    ids = list(range(1, 40, 3))
    a, b = logits_of(m, ids), logits_of(ref_m, ids)
    rel = float(np.abs(a - b).max() / np.abs(b).max())
    tol = F32_TOL if ty == "f32" else Q8_TOL
    print(f"{label}: transformers logits rel diff {rel:.3g} (tol {tol})")
    check(rel <= tol, f"{label}: logits rel diff {rel} > {tol}")
    if ty == "f32":
        ref_tok = Tokenizer.from_file(os.path.join(hf_dir, "tokenizer.json"))
        t = AutoTokenizer.from_pretrained(gdir, gguf_file=gname)
        ours = t(TEXT, add_special_tokens=False)["input_ids"]
        want = ref_tok.encode(TEXT, add_special_tokens=False).ids
        check(ours == want, f"{label}: transformers GGUF tokenizer ids differ: {ours[:12]} vs {want[:12]}")


def make_random(name, cls=None, tok=None, **kw):
    d = os.path.join(tmp, name)
    cls = cls or (LlamaConfig, LlamaForCausalLM)
    kw.setdefault("vocab_size", 50257)
    kw.setdefault("bos_token_id", 50256)
    kw.setdefault("eos_token_id", 50256)
    c = cls[0](max_position_embeddings=256, rms_norm_eps=1e-5, rope_theta=10000.0, **kw)
    m = cls[1](c)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.1)  # norms too, so a wrong norm mapping shows
    m.save_pretrained(d, safe_serialization=True)
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if os.path.exists(os.path.join(tok or gpt2_tok, f)):
            shutil.copy(os.path.join(tok or gpt2_tok, f), d)
    return d, json.load(open(os.path.join(d, "config.json")))


models = [
    make_random("gqa_tied", hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, tie_word_embeddings=True),
    make_random("mha_untied", hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=4, tie_word_embeddings=False),
    make_random("ffn72", hidden_size=64, intermediate_size=72, num_hidden_layers=1, num_attention_heads=2,
                num_key_value_heads=1, tie_word_embeddings=False),
]

# Qwen2 (q/k/v biases, no permutation, the Qwen tokenizer: NFC + Split -> tokenizer.ggml.pre
# qwen2, vocab padded past the tokenizer's ids) and Qwen3 (q/k norms; transformers 4.51 has no
# Qwen3 GGUF loader, so Qwen3 is checked by GGUFReader and the cpt round trip only).
qwen_tok = os.path.join(shared, "data", "tokenizers", "qwen3")
arch_of = {}
if os.path.isfile(os.path.join(qwen_tok, "tokenizer.json")):
    from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM
    qkw = dict(vocab_size=151680, bos_token_id=151643, eos_token_id=151645, hidden_size=64, intermediate_size=128,
               num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    models.append(make_random("qwen2", (Qwen2Config, Qwen2ForCausalLM), qwen_tok, **qkw))
    models.append(make_random("qwen3", (Qwen3Config, Qwen3ForCausalLM), qwen_tok, head_dim=16, **qkw))
    arch_of = {"qwen2": "qwen2", "qwen3": "qwen3"}
else:
    qwen_missing = f"{qwen_tok}/tokenizer.json missing: Qwen2/Qwen3 exports not checked"
    print("SKIP part:", qwen_missing)

for hf_dir, cfg in models:
    label0 = os.path.basename(hf_dir)
    arch = arch_of.get(label0, "llama")
    for ty in ("f32", "f16", "bf16", "q8_0"):
        label = f"{label0}/{ty}"
        gdir = os.path.join(tmp, f"{label0}_{ty}")
        os.makedirs(gdir)
        out = os.path.join(gdir, "m.gguf")
        r = run("convert", "--from", "hf", hf_dir, "--to", "gguf", "--out", out, "--type", ty)
        check(r.returncode == 0, f"{label}: convert failed: {r.stderr}")
        if r.returncode:
            continue
        check_file(out, hf_dir, cfg, ty, label, arch)
        if ty in ("f32", "q8_0") and arch != "qwen3":
            hf_check(gdir, "m.gguf", hf_dir, ty, label)
        if ty == "f32":
            back = os.path.join(tmp, f"{label0}_back")
            r = run("convert", "--from", "gguf", out, "--out", back)
            check(r.returncode == 0, f"{label}: convert --from gguf failed: {r.stderr}")
            if r.returncode == 0:
                a, b = load_file(os.path.join(back, "model.safetensors")), load_file(os.path.join(hf_dir, "model.safetensors"))
                if cfg.get("tie_word_embeddings"):
                    b.pop("lm_head.weight", None)
                    a.pop("lm_head.weight", None)
                check(set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in b),
                      f"{label}: convert --from gguf of the export differs from the source")
    print(f"{label0}: checked", flush=True)

# ---- SmolLM2: import(export(import(gguf))) == import(gguf), f32 ----
r = subprocess.run([os.path.join(src, "scripts", "get-smollm2.sh")], capture_output=True, text=True,
                   env=dict(os.environ, CPT_BIN=cpt))
smol_skipped = None if arch_of else qwen_missing
if r.returncode != 0:
    smol_skipped = "SmolLM2 could not be fetched (scripts/get-smollm2.sh): " + r.stderr.strip()[-300:]
else:
    hf = r.stdout.strip().splitlines()[-1]
    cfg = json.load(open(os.path.join(hf, "config.json")))
    out = os.path.join(tmp, "smol.gguf")
    r = run("convert", "--from", "hf", hf, "--to", "gguf", "--out", out, "--type", "f32")
    check(r.returncode == 0, f"smollm2: export failed: {r.stderr}")
    if r.returncode == 0:
        check_file(out, hf, cfg, "f32", "smollm2/f32")
        rd = gguf.GGUFReader(out)
        check(rd.fields["tokenizer.ggml.pre"].contents() == "smollm", "smollm2: tokenizer.ggml.pre")
        check("tokenizer.chat_template" in rd.fields, "smollm2: chat_template")
        back = os.path.join(tmp, "smol_back")
        r = run("convert", "--from", "gguf", out, "--out", back)
        check(r.returncode == 0, f"smollm2: re-import failed: {r.stderr}")
        if r.returncode == 0:
            a, b = load_file(os.path.join(back, "model.safetensors")), load_file(os.path.join(hf, "model.safetensors"))
            check(set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in b),
                  "smollm2: import(export(import(gguf))) != import(gguf)")
            for f in ("tokenizer.json", "config.json"):
                check(json.load(open(os.path.join(back, f))) == json.load(open(os.path.join(hf, f))),
                      f"smollm2: {f} differs after the round trip")
        # gguf -> gguf directly
        os.makedirs(os.path.join(tmp, "again"))
        out2 = os.path.join(tmp, "again", "smol.gguf")  # same stem: general.name is the file's stem
        r = run("convert", "--from", "gguf", out, "--to", "gguf", "--out", out2, "--type", "f32")
        check(r.returncode == 0 and open(out, "rb").read() == open(out2, "rb").read(),
              f"smollm2: convert --from gguf --to gguf is not the identity at f32: {r.stderr}")

# ---- cpt export DIR --gguf: the same file as convert (same stem, so same general.name) ----
os.makedirs(os.path.join(tmp, "via_export"))
ex = os.path.join(tmp, "via_export", "m.gguf")
r = run("export", models[0][0], "--gguf", ex, "--type", "q8_0", "--tokenizer", models[0][0])
check(r.returncode == 0 and open(ex, "rb").read() == open(os.path.join(tmp, "gqa_tied_q8_0", "m.gguf"), "rb").read(),
      f"cpt export --gguf differs from convert --to gguf: {r.stderr}")
r = run("export", models[0][0], "--gguf", ex, "--out", os.path.join(tmp, "x"))
check(r.returncode == 2 and "exactly one" in r.stderr, f"export with both --out and --gguf: {r.stderr}")

# ---- must-fail ----
hf0 = models[0][0]


def must_fail(args, want, what, out, hint="HINT"):
    r = run(*args)
    msg = r.stderr
    check(r.returncode != 0 and want in msg and hint in msg and not os.path.exists(out),
          f"must-fail {what}: rc {r.returncode}, stderr: {msg.strip()[-300:]}")


bad = os.path.join(tmp, "bad.gguf")
must_fail(["convert", "--from", "hf", hf0, "--to", "gguf", "--out", bad, "--type", "q4_k"], "q4_k", "unknown --type", bad,
          hint="f32|f16|bf16|q8_0")  # the option parser lists the valid choices
must_fail(["convert", "--from", "gguf", os.path.join(tmp, "gqa_tied_f32", "m.gguf"), "--to", "gguf", "--out",
           os.path.join(tmp, "no", "dir2", "x.gguf")], "dir2", "gguf->gguf, missing output directory",
          os.path.join(tmp, "no", "dir2"))
must_fail(["convert", "--from", "hf", hf0, "--to", "gguf", "--out", os.path.join(tmp, "no", "dir", "x.gguf")],
          "x.gguf", "missing output directory", os.path.join(tmp, "no", "dir", "x.gguf"))
# a tokenizer kind GGUF has no "llama"/"gpt2" form for (SentencePiece exports are
# test_gguf_spm_export.py's)
uni = os.path.join(tmp, "unigram")
shutil.copytree(hf0, uni)
tj = json.load(open(os.path.join(uni, "tokenizer.json")))
tj["model"] = {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0.0], ["a", -1.0]]}
json.dump(tj, open(os.path.join(uni, "tokenizer.json"), "w"))
must_fail(["convert", "--from", "hf", uni, "--to", "gguf", "--out", bad], "Unigram", "unigram tokenizer", bad)
for name, patch, want in (("llama3rope", {"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                          "high_freq_factor": 4.0,
                                                          "original_max_position_embeddings": 128}}, "llama3"),
                          ("mistral_sw", {"architectures": ["MistralForCausalLM"], "model_type": "mistral",
                                          "sliding_window": 64}, "sliding_window")):
    d = os.path.join(tmp, name)
    shutil.copytree(hf0, d)
    c = json.load(open(os.path.join(d, "config.json")))
    c.update(patch)
    json.dump(c, open(os.path.join(d, "config.json"), "w"))
    must_fail(["convert", "--from", "hf", d, "--to", "gguf", "--out", bad], want, name, bad)

print(f"{CHECKS} checks, {FAILS} failed")
if FAILS:
    sys.exit(1)
if smol_skipped:
    skip(smol_skipped + " (everything else passed)")
shutil.rmtree(tmp, ignore_errors=True)

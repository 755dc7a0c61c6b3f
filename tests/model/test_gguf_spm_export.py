#!/usr/bin/env python3
"""GGUF export of SentencePiece tokenizers (tokenizer.ggml.model "llama"), checked against
independent code: sentencepiece (its ModelProto and SentencePieceProcessor), llama.cpp's
`gguf` reader, transformers' GGUF loader, HF tokenizers.

1. stories260K (HF dir, SentencePiece tokenizer.model only) -> `cpt convert --to gguf` (and
   `cpt export DIR --gguf`, which must write the same bytes):
   - gguf.GGUFReader: tokens, scores (bit for bit) and token types equal sentencepiece's
     ModelProto pieces and SentencePieceProcessor's id_to_piece / get_score / is_* view;
     bos/eos/unk ids equal sp.bos_id() etc.; add_bos/add_eos from tokenizer_config.json,
     add_space_prefix / remove_extra_whitespaces = normalizer_spec.add_dummy_prefix /
     remove_extra_whitespaces; tokenizer_config.json's chat_template is tokenizer.chat_template.
   - transformers' GGUF loader: AutoTokenizer(dir, gguf_file=...) gives the same ids as
     AutoTokenizer(stories260K-hf) on corpus text; the model's logits equal the HF dir's
     within F32_TOL relative (max abs diff / max abs logit).
   - `cpt convert --from gguf`: `cpt tokenize` with the imported tokenizer gives the ids
     of `cpt tokenize` with the original tokenizer.model and of sentencepiece itself on
     corpus text; every imported F32 tensor equals the source safetensors exactly.
2. Mistral's SPM-BPE tokenizer.json (byte fallback, no tokenizer.model beside it) with a
   random 1-layer vocab-32000 model from `cpt init`: the exported tokens and types equal
   Mistral's tokenizer.model.v1 (the same tokenizer as a .model: ../shared SOURCES.md), the
   scores (made from merge ranks) order the pieces any merge makes exactly as the .model's
   scores do, no merges are stored; re-imported, HF tokenizers and `cpt tokenize` give the
   original tokenizer.json's ids on corpus text.
3. Refused by name with a HINT, no output file: an SPM-style tokenizer.json missing one
   merge (rebuilding merges from scores would tokenize differently), a Metaspace
   pre-tokenizer with split = true, a Unigram tokenizer.json.
Skips with a message where an oracle or data is missing; FAILS when CI=true.
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
    import accelerate  # noqa: F401  (transformers' GGUF loader needs it)
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as spm_pb
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer
except ImportError as e:
    skip(f"oracle missing: {e}")

F32_TOL = 1e-5
CHUNK = 60000  # bytes of each corpus file tokenized (whole lines)

src = os.environ.get("CPT_SRC", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
cpt = os.environ.get("CPT_BIN", os.path.join(src, "build", "cpt"))
shared = os.environ.get("CPT_SHARED", os.path.join(src, "..", "shared"))
if not os.path.exists(cpt):
    skip(f"no cpt binary at {cpt}")
data = os.path.join(shared, "data")
stories = os.path.join(data, "models", "stories260K-hf")
mistral = os.path.join(data, "tokenizers", "mistral")
for p in (os.path.join(stories, "tokenizer.model"), os.path.join(mistral, "tokenizer.json"),
          os.path.join(mistral, "tokenizer.model.v1")):
    if not os.path.isfile(p):
        skip(f"{p} missing (../shared)")
CORPORA = [os.path.join(data, "corpora", *p) for p in
           (("general", "tinystories_valid_head.txt"), ("general", "wikitext2_raw_test.txt"),
            ("general", "tinyshakespeare.txt"), ("general", "c4_demo.jsonl"), ("arxiv", "arxiv_cs_ml_abstracts.csv"),
            ("medical", "pubmedqa_ori_pqal.json"))]
for p in CORPORA:
    if not os.path.isfile(p):
        skip(f"{p} missing (../shared)")
tmp = tempfile.mkdtemp(dir=os.environ.get("CPT_TMP"))

FAILS = 0
CHECKS = 0


def check(cond, what):
    global FAILS, CHECKS
    CHECKS += 1
    if not cond:
        FAILS += 1
        print("FAIL:", what, flush=True)


def run(*args, stdin=None):
    return subprocess.run([cpt, *args], capture_output=True, input=stdin)


def must_run(*args):
    r = run(*args)
    if r.returncode != 0:
        print(f"FAIL: cpt {' '.join(args)}: {r.stderr.decode(errors='replace')[-600:]}")
        sys.exit(1)


def texts():
    """A CHUNK-byte slice (whole lines) of each corpus: several scripts, double spaces,
    CSV/JSON punctuation, newlines."""
    out = []
    for p in CORPORA:
        b = open(p, "rb").read(CHUNK * 2)
        b = b[:b.rfind(b"\n", 0, CHUNK) + 1] or b[:CHUNK]
        out.append((os.path.basename(p), b.decode("utf-8", errors="ignore")))
    return out


TEXTS = texts()


def cpt_ids(tok, text, special=True):
    r = run("tokenize", "--tokenizer", tok, *([] if special else ["--no-special"]), stdin=text.encode())
    if r.returncode != 0:
        return ["error: " + r.stderr.decode(errors="replace")]
    return [int(x) for x in r.stdout.split()]


def field(r, key):
    f = r.fields.get(key)
    return None if f is None else f.contents()


def first_diff(a, b):
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


# ---- 1. stories260K: a SentencePiece tokenizer.model ----
sgguf = os.path.join(tmp, "stories.gguf")
must_run("convert", "--from", "hf", stories, "--to", "gguf", "--out", sgguf, "--type", "f32")
r = gguf.GGUFReader(sgguf)
proto = spm_pb.ModelProto()
proto.ParseFromString(open(os.path.join(stories, "tokenizer.model"), "rb").read())
sp = spm.SentencePieceProcessor(model_file=os.path.join(stories, "tokenizer.model"))
n = sp.get_piece_size()
toks, scores, types = field(r, "tokenizer.ggml.tokens"), field(r, "tokenizer.ggml.scores"), field(r, "tokenizer.ggml.token_type")
check(field(r, "tokenizer.ggml.model") == "llama", "stories: tokenizer.ggml.model")
check(field(r, "tokenizer.ggml.merges") is None, "stories: no merges for a SentencePiece vocabulary")
check(toks == [p.piece for p in proto.pieces] == [sp.id_to_piece(i) for i in range(n)], "stories: tokens != pieces")
check(np.array_equal(np.array(scores, np.float32), np.array([p.score for p in proto.pieces], np.float32)) and
      scores == [sp.get_score(i) for i in range(n)], "stories: scores differ from sentencepiece's")
check(types == [p.type for p in proto.pieces], "stories: token_type != ModelProto piece types")
sp_type = [2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 5 if sp.is_unused(i) else 6 if sp.is_byte(i) else 1
           for i in range(n)]
check(types == sp_type, "stories: token_type != SentencePieceProcessor's is_unknown/is_control/is_byte")
check((field(r, "tokenizer.ggml.bos_token_id"), field(r, "tokenizer.ggml.eos_token_id"),
       field(r, "tokenizer.ggml.unknown_token_id")) == (sp.bos_id(), sp.eos_id(), sp.unk_id()), "stories: special ids")
check(field(r, "tokenizer.ggml.padding_token_id") is None, "stories: no pad (sp.pad_id() = -1)")
tcfg = json.load(open(os.path.join(stories, "tokenizer_config.json")))
check((field(r, "tokenizer.ggml.add_bos_token"), field(r, "tokenizer.ggml.add_eos_token")) ==
      (tcfg["add_bos_token"], tcfg["add_eos_token"]), "stories: add_bos/add_eos")
ns = proto.normalizer_spec
check(field(r, "tokenizer.ggml.add_space_prefix") == ns.add_dummy_prefix, "stories: add_space_prefix")
check(bool(field(r, "tokenizer.ggml.remove_extra_whitespaces")) == ns.remove_extra_whitespaces,
      "stories: remove_extra_whitespaces")

check(field(r, "tokenizer.chat_template") is None, "stories: no chat template in, none out")
# `cpt export CKPT --gguf` takes the same path: the same bytes (same file stem, so same general.name)
os.makedirs(os.path.join(tmp, "ex"))
must_run("export", stories, "--gguf", os.path.join(tmp, "ex", "stories.gguf"), "--type", "f32", "--tokenizer", stories)
check(open(os.path.join(tmp, "ex", "stories.gguf"), "rb").read() == open(sgguf, "rb").read(),
      "stories: cpt export --gguf differs from cpt convert --to gguf")
# a chat template in tokenizer_config.json travels as tokenizer.chat_template
cdir = os.path.join(tmp, "stories_chat")
shutil.copytree(stories, cdir)
TEMPLATE = "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>\n{% endfor %}"
json.dump(dict(tcfg, chat_template=TEMPLATE), open(os.path.join(cdir, "tokenizer_config.json"), "w"))
must_run("convert", "--from", "hf", cdir, "--to", "gguf", "--out", os.path.join(tmp, "chat.gguf"), "--type", "f32")
check(field(gguf.GGUFReader(os.path.join(tmp, "chat.gguf")), "tokenizer.chat_template") == TEMPLATE,
      "stories: chat template not exported")

# transformers' GGUF loader vs transformers on the HF dir
hf_tok = AutoTokenizer.from_pretrained(stories)
g_tok = AutoTokenizer.from_pretrained(tmp, gguf_file="stories.gguf")
for name, t in TEXTS:
    a, b = g_tok(t)["input_ids"], hf_tok(t)["input_ids"]
    check(a == b, f"stories {name}: transformers GGUF tokenizer ids differ at {first_diff(a, b)} ({len(a)} vs {len(b)})")
ref_m = AutoModelForCausalLM.from_pretrained(stories, torch_dtype=torch.float32)
g_m = AutoModelForCausalLM.from_pretrained(tmp, gguf_file="stories.gguf", torch_dtype=torch.float32)
ids = hf_tok(TEXTS[0][1][:600])["input_ids"][:120]
with torch.no_grad():
    la = g_m(torch.tensor([ids])).logits[0].double().numpy()
    lb = ref_m(torch.tensor([ids])).logits[0].double().numpy()
rel = float(np.abs(la - lb).max() / np.abs(lb).max())
print(f"stories: transformers GGUF logits rel diff {rel:.3g} over {len(ids)} tokens (tol {F32_TOL})")
check(rel <= F32_TOL, f"stories: logits rel diff {rel} > {F32_TOL}")

# cpt's import of the GGUF
simp = os.path.join(tmp, "stories_imp")
must_run("convert", "--from", "gguf", sgguf, "--out", simp)
n_ids = 0
for name, t in TEXTS:
    a, b = cpt_ids(simp, t), cpt_ids(stories, t)
    check(a == b, f"stories {name}: cpt ids of the imported tokenizer differ at {first_diff(a, b)}")
    c = cpt_ids(simp, t, special=False)
    check(c == sp.encode(t), f"stories {name}: imported ids != sentencepiece's at {first_diff(c, sp.encode(t))}")
    n_ids += len(a)
print(f"stories: {n_ids} ids on {len(TEXTS)} corpus slices, import == original == sentencepiece")
src_sd, imp_sd = load_file(os.path.join(stories, "model.safetensors")), load_file(os.path.join(simp, "model.safetensors"))
check(set(src_sd) <= set(imp_sd) | {"lm_head.weight"}, f"stories: tensors lost: {sorted(set(src_sd) - set(imp_sd))}")
for k, v in src_sd.items():
    if k in imp_sd:
        check(imp_sd[k].dtype == np.float32 and np.array_equal(imp_sd[k], v.astype(np.float32)),
              f"stories: imported {k} differs")

# ---- 2. Mistral's SentencePiece-style BPE tokenizer.json ----
mdir = os.path.join(tmp, "mistral")
cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 32000, "hidden_size": 16,
       "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
       "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": True,
       "bos_token_id": 1, "eos_token_id": 2}
json.dump(cfg, open(os.path.join(tmp, "mistral_config.json"), "w"))
must_run("init", "--config", os.path.join(tmp, "mistral_config.json"), "--out", mdir)
for f in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(os.path.join(mistral, f), mdir)
mgguf = os.path.join(tmp, "mistral.gguf")
must_run("convert", "--from", "hf", mdir, "--to", "gguf", "--out", mgguf, "--type", "f32")
r = gguf.GGUFReader(mgguf)
mproto = spm_pb.ModelProto()
mproto.ParseFromString(open(os.path.join(mistral, "tokenizer.model.v1"), "rb").read())
toks, types = field(r, "tokenizer.ggml.tokens"), field(r, "tokenizer.ggml.token_type")
scores = np.array(field(r, "tokenizer.ggml.scores"), np.float64)
check(field(r, "tokenizer.ggml.model") == "llama", "mistral: tokenizer.ggml.model")
check(field(r, "tokenizer.ggml.merges") is None, "mistral: no merges for a SentencePiece vocabulary")
check(toks == [p.piece for p in mproto.pieces], "mistral: tokens != tokenizer.model.v1 pieces")
check(types == [p.type for p in mproto.pieces], "mistral: token_type != tokenizer.model.v1 piece types")
vocab = {p: i for i, p in enumerate(toks)}
made = [i for i, p in enumerate(toks) if types[i] == 1 and any(p[:k] in vocab and p[k:] in vocab for k in range(1, len(p)))]
spm_scores = np.array([mproto.pieces[i].score for i in made])
ours_order, spm_order = np.argsort(-scores[made], kind="stable"), np.argsort(-spm_scores, kind="stable")
check(np.array_equal(ours_order, spm_order), "mistral: the scores order the merged pieces unlike tokenizer.model.v1's")
print(f"mistral: {len(made)} pieces made by merges, ordered by score as in tokenizer.model.v1")
check((field(r, "tokenizer.ggml.bos_token_id"), field(r, "tokenizer.ggml.eos_token_id"),
       field(r, "tokenizer.ggml.unknown_token_id"), field(r, "tokenizer.ggml.add_bos_token"),
       field(r, "tokenizer.ggml.add_eos_token"), field(r, "tokenizer.ggml.add_space_prefix")) ==
      (1, 2, 0, True, False, True), "mistral: special ids / flags")
mimp = os.path.join(tmp, "mistral_imp")
must_run("convert", "--from", "gguf", mgguf, "--out", mimp)
orig_hf = Tokenizer.from_file(os.path.join(mistral, "tokenizer.json"))
imp_hf = Tokenizer.from_file(os.path.join(mimp, "tokenizer.json"))
n_ids = 0
for name, t in TEXTS:
    want = orig_hf.encode(t).ids
    a, b = imp_hf.encode(t).ids, cpt_ids(mimp, t)
    check(a == want, f"mistral {name}: HF tokenizers on the imported tokenizer.json differ at {first_diff(a, want)}")
    check(b == want, f"mistral {name}: cpt ids of the imported tokenizer differ at {first_diff(b, want)}")
    check(cpt_ids(mdir, t) == want, f"mistral {name}: cpt on the original tokenizer.json != HF tokenizers")
    n_ids += len(want)
print(f"mistral: {n_ids} ids on {len(TEXTS)} corpus slices, import == original")


# ---- 3. refused by name with a HINT ----
def must_fail(d, want, what):
    out = os.path.join(tmp, "bad.gguf")
    r = run("convert", "--from", "hf", d, "--to", "gguf", "--out", out)
    msg = r.stderr.decode(errors="replace")
    check(r.returncode != 0 and want in msg and "HINT" in msg and not os.path.exists(out),
          f"must-fail {what}: rc {r.returncode}, stderr: {msg.strip()[-300:]}")


def patched(name, fn):
    d = os.path.join(tmp, name)
    shutil.copytree(mdir, d)
    tj = json.load(open(os.path.join(d, "tokenizer.json")))
    fn(tj)
    json.dump(tj, open(os.path.join(d, "tokenizer.json"), "w"))
    return d


must_fail(patched("no_merge", lambda tj: tj["model"]["merges"].remove("▁ t")), "not one of model.merges",
          "a missing merge")
must_fail(patched("metaspace_split", lambda tj: tj.update(
    normalizer=None, pre_tokenizer={"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True})),
    "split = true", "Metaspace split")
must_fail(patched("unigram", lambda tj: tj.update(model={"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0.0]]})),
          "Unigram", "unigram tokenizer")

print(f"{CHECKS} checks, {FAILS} failed")
if FAILS:
    sys.exit(1)
shutil.rmtree(tmp, ignore_errors=True)

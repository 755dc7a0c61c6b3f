"""npref.py: a from-scratch numpy (float64) reference of the Llama-family forward pass.

It exists to check the oracle itself: test_fixtures.py compares it with the
transformers-made fixtures, and fake_cpt.py uses it to run the CLI tests end to end
before the C code exists.  It is not fast, has no backward, and reads only what the
fixtures and stories260K need (F32/F16/BF16/F64 safetensors, one file per model).

Architectures: LlamaForCausalLM, MistralForCausalLM (no sliding window), Qwen2ForCausalLM
(q/k/v biases), Qwen3ForCausalLM (q_norm/k_norm on each head before RoPE).  RoPE is the
HF "rotate_half" layout; inv_freq and the angles are computed in float32 exactly as
transformers does, everything else in float64.
"""
import json
import math
import os
import struct

import numpy as np

ARCHS = ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM")
REQUIRED = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")


class ModelError(Exception):
    """A bad model directory; the message names the file and the field."""


# ---------------------------------------------------------------- safetensors (own reader/writer)
_DT = {"F32": ("<f4", 4), "F64": ("<f8", 8), "F16": ("<f2", 2), "BF16": (None, 2), "I64": ("<i8", 8)}


def st_read(path):
    """-> (dict name -> float64/int64 ndarray, metadata dict). Validates sizes and offsets."""
    fn = os.path.basename(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ModelError("%s: cannot read (%s). HINT: check the model directory" % (path, e.strerror))
    if len(raw) < 8:
        raise ModelError("%s: file is %d bytes, shorter than the 8-byte header length" % (fn, len(raw)))
    (hlen,) = struct.unpack("<Q", raw[:8])
    if hlen > len(raw) - 8:
        raise ModelError("%s: header length %d exceeds file size %d. HINT: file truncated?" % (fn, hlen, len(raw)))
    try:
        hdr = json.loads(raw[8:8 + hlen])
    except ValueError as e:
        raise ModelError("%s: header is not JSON (%s)" % (fn, e))
    meta = hdr.pop("__metadata__", {}) or {}
    base = 8 + hlen
    out = {}
    for name, h in hdr.items():
        dt, shape, (a, b) = h["dtype"], h["shape"], h["data_offsets"]
        if dt not in _DT:
            raise ModelError("%s: tensor %s has unsupported dtype %s" % (fn, name, dt))
        n = int(np.prod(shape)) if shape else 1
        if b - a != n * _DT[dt][1] or a > b:
            raise ModelError("%s: tensor %s: offsets [%d, %d) do not match shape %s x %s" % (fn, name, a, b, shape, dt))
        if base + b > len(raw):
            raise ModelError("%s: tensor %s ends at byte %d but the file has %d bytes. HINT: file truncated?"
                             % (fn, name, base + b, len(raw)))
        buf = raw[base + a: base + b]
        if dt == "BF16":
            arr = (np.frombuffer(buf, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(buf, _DT[dt][0])
        out[name] = arr.reshape(shape).astype(np.int64 if dt == "I64" else np.float64)
    return out, meta


def bf16_round(x):
    """float32 -> bf16 bits (uint16), round to nearest even (NaN kept quiet)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(x)
    r[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)
    return r


def bf16_to_f32(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def st_write(path, tensors, dtype="F32", metadata=None):
    """Write {name: array} as safetensors in F32 or BF16 (names sorted, 8-byte aligned header)."""
    hdr, blobs, off = {}, [], 0
    if metadata:
        hdr["__metadata__"] = metadata
    for name in sorted(tensors):
        a = np.asarray(tensors[name], dtype=np.float32)
        data = bf16_round(a).tobytes() if dtype == "BF16" else a.astype("<f4").tobytes()
        hdr[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


# ---------------------------------------------------------------- config
def load_config(model_dir):
    path = os.path.join(model_dir, "config.json")
    try:
        with open(path) as f:
            cfg = json.load(f)
    except OSError as e:
        raise ModelError("%s: cannot read (%s). HINT: --model must be a Hugging Face model directory"
                         % (path, e.strerror))
    except ValueError as e:
        raise ModelError("config.json: not valid JSON (%s)" % e)
    archs = cfg.get("architectures")
    if not isinstance(archs, list) or len(archs) != 1 or archs[0] not in ARCHS:
        raise ModelError("config.json: field 'architectures' = %s is not supported. HINT: one of %s"
                         % (json.dumps(archs), ", ".join(ARCHS)))
    for k in REQUIRED:
        if not isinstance(cfg.get(k), int) or cfg[k] <= 0:
            raise ModelError("config.json: field '%s' is missing or not a positive integer" % k)
    cfg.setdefault("num_key_value_heads", cfg["num_attention_heads"])
    h, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    if not isinstance(kv, int) or kv <= 0 or h % kv:
        raise ModelError("config.json: field 'num_key_value_heads' = %s does not divide num_attention_heads = %d"
                         % (kv, h))
    if cfg.get("head_dim") is None:
        if cfg["hidden_size"] % h:
            raise ModelError("config.json: field 'hidden_size' %d is not a multiple of num_attention_heads %d"
                             % (cfg["hidden_size"], h))
        cfg["head_dim"] = cfg["hidden_size"] // h
    cfg.setdefault("rms_norm_eps", 1e-6)
    cfg.setdefault("rope_theta", 10000.0)
    cfg.setdefault("tie_word_embeddings", False)  # Llama/Mistral/Qwen2 defaults
    if cfg.get("rope_scaling"):
        raise ModelError("config.json: field 'rope_scaling' is not supported by npref")
    return cfg


def load_model(model_dir):
    cfg = load_config(model_dir)
    w, _ = st_read(os.path.join(model_dir, "model.safetensors"))
    if cfg.get("tie_word_embeddings") and "lm_head.weight" not in w:
        w["lm_head.weight"] = w["model.embed_tokens.weight"]
    return cfg, w


# ---------------------------------------------------------------- forward
def _rms(x, wt, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * wt


def _rope_tables(T, hd, theta):
    inv = (1.0 / (np.float32(theta) ** (np.arange(0, hd, 2, dtype=np.int64).astype(np.float32) / np.float32(hd))))
    ang = (np.arange(T, dtype=np.float32)[:, None] * inv.astype(np.float32)[None, :]).astype(np.float32)
    ang = np.concatenate([ang, ang], axis=-1).astype(np.float64)
    return np.cos(ang), np.sin(ang)


def _rope(x, cos, sin):  # x [heads, T, hd]
    half = x.shape[-1] // 2
    rot = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rot * sin


def _bf16(x):
    return bf16_to_f32(bf16_round(np.asarray(x, np.float32))).astype(np.float64)


def forward(cfg, w, ids, bf16=False):
    """ids: int sequence of length T -> logits float64 [T, vocab].

    bf16: the products of the linears and the LM head take their inputs rounded to bf16 (round
    to nearest even) and sum in float64, as cpt's --precision bf16 does with fp32 sums; the
    attention, norms, RoPE and softmax stay exact."""
    rd = _bf16 if bf16 else (lambda a: a)
    ids = np.asarray(ids, dtype=np.int64)
    T = len(ids)
    H, KV, hd, eps = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"], cfg["rms_norm_eps"]
    arch = cfg["architectures"][0]
    if ids.min() < 0 or ids.max() >= cfg["vocab_size"]:
        raise ValueError("token id out of range")
    x = w["model.embed_tokens.weight"][ids]
    cos, sin = _rope_tables(T, hd, cfg["rope_theta"])
    mask = np.triu(np.full((T, T), -np.inf), 1)

    def lin(name, v):
        y = rd(v) @ rd(w[name + ".weight"]).T
        return y + w[name + ".bias"] if name + ".bias" in w else y

    for L in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % L
        h = _rms(x, w[p + "input_layernorm.weight"], eps)
        q = lin(p + "self_attn.q_proj", h).reshape(T, H, hd).transpose(1, 0, 2)
        k = lin(p + "self_attn.k_proj", h).reshape(T, KV, hd).transpose(1, 0, 2)
        v = lin(p + "self_attn.v_proj", h).reshape(T, KV, hd).transpose(1, 0, 2)
        if arch == "Qwen3ForCausalLM":
            q = _rms(q, w[p + "self_attn.q_norm.weight"], eps)
            k = _rms(k, w[p + "self_attn.k_norm.weight"], eps)
        q, k = _rope(q, cos, sin), _rope(k, cos, sin)
        g = H // KV
        k, v = np.repeat(k, g, axis=0), np.repeat(v, g, axis=0)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(hd) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        o = (s @ v).transpose(1, 0, 2).reshape(T, H * hd)
        x = x + lin(p + "self_attn.o_proj", o)
        h = _rms(x, w[p + "post_attention_layernorm.weight"], eps)
        gt = lin(p + "mlp.gate_proj", h)
        x = x + lin(p + "mlp.down_proj", gt / (1.0 + np.exp(-gt)) * lin(p + "mlp.up_proj", h))
    x = _rms(x, w["model.norm.weight"], eps)
    return rd(x) @ rd(w["lm_head.weight"]).T


def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def shifted_ce(logits, labels):
    """(sum of CE over valid shifted labels, count). logits [..., T, V], labels [..., T]."""
    lp = log_softmax(logits[..., :-1, :])
    tgt = np.asarray(labels)[..., 1:]
    valid = tgt != -100
    picked = np.take_along_axis(lp, np.where(valid, tgt, 0)[..., None], axis=-1)[..., 0]
    return float(-(picked * valid).sum()), int(valid.sum())


# ---------------------------------------------------------------- llama2.c import
def llama2c_read(path, permute=True):
    """Legacy (version 0) llama2.c checkpoint -> (config dict, HF-named float32 tensors).
    Header: 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len);
    vocab_size < 0 means an untied classifier follows.  q/k rows are permuted from the
    interleaved-pair RoPE layout of llama2.c to HF's rotate_half layout."""
    with open(path, "rb") as f:
        raw = f.read()
    dim, hid, nl, nh, nkv, vocab, seq = struct.unpack("<7i", raw[:28])
    tied = vocab > 0
    vocab = abs(vocab)
    hd = dim // nh
    a = np.frombuffer(raw, "<f4", offset=28)
    pos = [0]

    def take(*shape):
        n = int(np.prod(shape))
        t = a[pos[0]:pos[0] + n].reshape(shape)
        pos[0] += n
        return t

    emb = take(vocab, dim)
    rms_att = take(nl, dim)
    wq, wk, wv, wo = take(nl, dim, dim), take(nl, nkv * hd, dim), take(nl, nkv * hd, dim), take(nl, dim, dim)
    rms_ffn = take(nl, dim)
    w1, w2, w3 = take(nl, hid, dim), take(nl, dim, hid), take(nl, hid, dim)
    rms_final = take(dim)
    take(seq, hd // 2)
    take(seq, hd // 2)  # freq_cis_real / imag: unused
    wcls = emb if tied else take(vocab, dim)

    def perm(m, heads):  # llama2.c interleaved pairs -> HF halves
        rows, cols = m.shape
        return m.reshape(heads, rows // heads // 2, 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols)

    t = {"model.embed_tokens.weight": emb, "model.norm.weight": rms_final}
    if not tied:
        t["lm_head.weight"] = wcls
    for L in range(nl):
        p = "model.layers.%d." % L
        t[p + "input_layernorm.weight"] = rms_att[L]
        t[p + "post_attention_layernorm.weight"] = rms_ffn[L]
        t[p + "self_attn.q_proj.weight"] = perm(wq[L], nh) if permute else wq[L]
        t[p + "self_attn.k_proj.weight"] = perm(wk[L], nkv) if permute else wk[L]
        t[p + "self_attn.v_proj.weight"] = wv[L]
        t[p + "self_attn.o_proj.weight"] = wo[L]
        t[p + "mlp.gate_proj.weight"] = w1[L]
        t[p + "mlp.down_proj.weight"] = w2[L]
        t[p + "mlp.up_proj.weight"] = w3[L]
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": vocab, "hidden_size": dim,
           "intermediate_size": hid, "num_hidden_layers": nl, "num_attention_heads": nh, "num_key_value_heads": nkv,
           "head_dim": hd, "max_position_embeddings": seq, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
           "hidden_act": "silu", "tie_word_embeddings": tied, "torch_dtype": "float32"}
    return cfg, {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in t.items()}

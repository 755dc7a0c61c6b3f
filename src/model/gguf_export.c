/* gguf_export.c: cpt model + HF tokenizer files -> GGUF v3 (cpt/gguf_export.h); the file
 * format is gguf_write.c, the inverse direction gguf_import.c / gguf_tokenizer.c.
 *
 * llama.cpp's convert_hf_to_gguf (LlamaModel.permute) stores q_proj/k_proj rows (and their
 * biases) per head interleaved: gguf_row(h, 2j + c) = hf_row(h, c*hd/2 + j), for llama only
 * (Qwen2/Qwen3 converters do not permute); gguf_import.c undoes exactly this. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/fileio.h"
#include "cpt/gguf_export.h"
#include "cpt/tokenizer.h"
#include "gguf_names.h"

int cpt_gguf_export_type(const char *s) {
    if (!s) return -1;
    if (!strcmp(s, "f32")) return CPT_GGML_F32;
    if (!strcmp(s, "f16")) return CPT_GGML_F16;
    if (!strcmp(s, "bf16")) return CPT_GGML_BF16;
    if (!strcmp(s, "q8_0")) return CPT_GGML_Q8_0;
    return -1;
}

/* ---- config -> {arch}.* ---- */

static int refuse(cpt_err *err, const char *what, const char *hint) {
    return cpt_err_set(err, CPT_EUNSUPPORTED, "GGUF export: %s cannot be represented in GGUF. HINT: %s", what, hint);
}

static int write_hparams(cpt_gguf_writer *w, const cpt_config *c, const char *arch, uint32_t type, cpt_err *err) {
    char k[128];
    int rc;
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", arch, s), k)
    /* llama_ftype: ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q8_0 7, MOSTLY_BF16 32 */
    uint32_t ftype = type == CPT_GGML_F16 ? 1 : type == CPT_GGML_Q8_0 ? 7 : type == CPT_GGML_BF16 ? 32 : 0;
    if ((rc = cpt_gguf_w_str(w, "general.architecture", arch, strlen(arch), err)) ||
        (rc = cpt_gguf_w_u32(w, "general.file_type", ftype, err)) ||
        (rc = cpt_gguf_w_u32(w, "general.quantization_version", 2, err)) ||
        (rc = cpt_gguf_w_u32(w, KEY("vocab_size"), (uint32_t)c->vocab_size, err)) ||
        (rc = cpt_gguf_w_u32(w, KEY("context_length"), (uint32_t)c->max_pos, err)) ||
        (rc = cpt_gguf_w_u32(w, KEY("embedding_length"), (uint32_t)c->hidden_size, err)) ||
        (rc = cpt_gguf_w_u32(w, KEY("block_count"), (uint32_t)c->n_layers, err)) ||
        (rc = cpt_gguf_w_u32(w, KEY("feed_forward_length"), (uint32_t)c->intermediate_size, err)) ||
        (rc = cpt_gguf_w_u32(w, KEY("attention.head_count"), (uint32_t)c->n_heads, err)) ||
        (rc = cpt_gguf_w_u32(w, KEY("attention.head_count_kv"), (uint32_t)c->n_kv_heads, err)) ||
        (rc = cpt_gguf_w_f32(w, KEY("rope.freq_base"), (float)c->rope_theta, err)) ||
        (rc = cpt_gguf_w_f32(w, KEY("attention.layer_norm_rms_epsilon"), (float)c->rms_eps, err)) ||
        (rc = cpt_gguf_w_u32(w, KEY("rope.dimension_count"), (uint32_t)c->head_dim, err)))
        return rc;
    if (c->head_dim * c->n_heads != c->hidden_size &&
        ((rc = cpt_gguf_w_u32(w, KEY("attention.key_length"), (uint32_t)c->head_dim, err)) ||
         (rc = cpt_gguf_w_u32(w, KEY("attention.value_length"), (uint32_t)c->head_dim, err))))
        return rc;
    const cpt_rope_scaling *rs = &c->rope_scaling;
    if (rs->type == CPT_ROPE_LINEAR || rs->type == CPT_ROPE_YARN) {
        const char *ty = rs->type == CPT_ROPE_LINEAR ? "linear" : "yarn";
        if ((rc = cpt_gguf_w_str(w, KEY("rope.scaling.type"), ty, strlen(ty), err)) ||
            (rc = cpt_gguf_w_f32(w, KEY("rope.scaling.factor"), (float)rs->factor, err)))
            return rc;
        if (rs->original_max_pos > 0 &&
            (rc = cpt_gguf_w_u32(w, KEY("rope.scaling.original_context_length"), (uint32_t)rs->original_max_pos, err)))
            return rc;
    }
#undef KEY
    return CPT_OK;
}

static int check_representable(const cpt_config *c, const char **arch, cpt_err *err) {
    switch (c->arch) {
    case CPT_ARCH_LLAMA: case CPT_ARCH_MISTRAL: *arch = "llama"; break;
    case CPT_ARCH_QWEN2: *arch = "qwen2"; break;
    case CPT_ARCH_QWEN3: *arch = "qwen3"; break;
    default: return refuse(err, "this architecture", "cpt exports llama, mistral, qwen2 and qwen3 models");
    }
    if (c->partial_rotary_factor != 1.0)
        return refuse(err, "partial_rotary_factor != 1", "cpt's GGUF importer and llama's rope need full rotary");
    if (c->sliding_window > 0)
        return refuse(err, "sliding_window attention", "llama.cpp's llama/qwen2 graphs attend to the full context; export a model without sliding_window");
    if (c->mlp_bias) return refuse(err, "mlp_bias", "llama.cpp's llama architecture has no FFN biases");
    if (c->qk_norm && c->arch != CPT_ARCH_QWEN3)
        return refuse(err, "q/k norms outside Qwen3", "only general.architecture qwen3 has attn_q_norm/attn_k_norm");
    const cpt_rope_scaling *rs = &c->rope_scaling;
    if (rs->type == CPT_ROPE_LLAMA3)
        return refuse(err, "rope_scaling llama3",
                      "llama.cpp stores it as a rope_freqs tensor that cpt's importer refuses; export before the context extension");
    if (rs->type != CPT_ROPE_DEFAULT && rs->type != CPT_ROPE_LINEAR && rs->type != CPT_ROPE_YARN)
        return refuse(err, "this rope_scaling type (dynamic/longrope)", "GGUF has rope.scaling.type none, linear and yarn only");
    if (rs->type == CPT_ROPE_YARN && (rs->beta_fast || rs->beta_slow || rs->mscale || rs->mscale_all_dim || rs->attention_factor))
        return refuse(err, "yarn with explicit beta/mscale/attention_factor",
                      "GGUF's rope.scaling.* keys record only factor and original_context_length");
    return CPT_OK;
}

/* ---- tokenizer.json -> tokenizer.ggml.* ---- */

static const char *tok_str(json_t *v) { /* "content" or {"content": ...} */
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_object(v)) return json_string_value(json_object_get(v, "content"));
    return NULL;
}

static int is_bytelevel(json_t *p, int use_regex) {
    if (!json_is_object(p) || strcmp(json_string_value(json_object_get(p, "type")) ?: "", "ByteLevel")) return 0;
    json_t *u = json_object_get(p, "use_regex");
    int ur = u ? json_is_true(u) : 1;
    return ur == use_regex && !json_is_true(json_object_get(p, "add_prefix_space"));
}
static int is_split(json_t *p, const char *re) {
    if (!json_is_object(p) || strcmp(json_string_value(json_object_get(p, "type")) ?: "", "Split")) return 0;
    const char *r = json_string_value(json_object_get(json_object_get(p, "pattern"), "Regex"));
    const char *beh = json_string_value(json_object_get(p, "behavior"));
    return r && !strcmp(r, re) && beh && !strcmp(beh, "Isolated") && !json_is_true(json_object_get(p, "invert"));
}
static int is_digits(json_t *p) {
    const char *t = json_string_value(json_object_get(p, "type"));
    return (t && !strcmp(t, "Digits") && json_is_true(json_object_get(p, "individual_digits"))) || is_split(p, "\\p{N}");
}

/* The tokenizer.ggml.pre name llama.cpp uses for this pre-tokenizer (and normalizer); NULL
 * if none of those gguf_tokenizer.c maps back. */
static const char *pre_name(json_t *pre, json_t *norm) {
    int no_norm = !norm || json_is_null(norm);
    const char *nt = no_norm ? NULL : json_string_value(json_object_get(norm, "type"));
    if (is_bytelevel(pre, 1)) return no_norm ? "gpt2" : NULL;
    const char *t = json_string_value(json_object_get(pre, "type"));
    json_t *l = json_object_get(pre, "pretokenizers");
    if (!t || strcmp(t, "Sequence") || json_array_size(l) != 2) return NULL;
    json_t *a = json_array_get(l, 0), *b = json_array_get(l, 1);
    if (no_norm && is_digits(a) && is_bytelevel(b, 1)) return "smollm";
    if (no_norm && is_split(a, CPT_GGUF_LLAMA3_RE) && is_bytelevel(b, 0)) return "llama-bpe";
    if (nt && !strcmp(nt, "NFC") && is_split(a, CPT_GGUF_QWEN2_RE) && is_bytelevel(b, 0)) return "qwen2";
    return NULL;
}

/* SentencePiece -> tokenizer.ggml.model "llama", as convert_hf_to_gguf's
 * _create_vocab_sentencepiece lays it out: tokens / scores / token_type by id, ids the
 * tokenizer does not use (embedding rows beyond it) as "[PAD<id>]" UNUSED with score
 * -10000, tokenizer.ggml.pre "default". The vocabulary comes from cpt's own tokenizer
 * (a .model, or an SPM-style tokenizer.json: cpt_tok_spm_vocab_get says which it takes),
 * so what is exported is what cpt tokenizes with. remove_extra_whitespaces is written
 * (as llama.cpp's T5 converter does) only when the .model collapses spaces; llama.cpp's
 * SPM tokenizer ignores it, gguf_tokenizer.c turns it back into a normalizer. */
static int write_spm_tokenizer(cpt_gguf_writer *w, const cpt_config *c, const char *dir, cpt_err *err) {
    cpt_tok *t = NULL;
    int rc = cpt_tok_load(&t, dir, err);
    if (rc) return rc;
    cpt_tok_spm_vocab v = {0};
    int64_t n = c->vocab_size;
    char **toks = NULL;
    size_t *lens = NULL;
    float *scores = NULL;
    int32_t *types = NULL;
    if ((rc = cpt_tok_spm_vocab_get(t, &v, err))) goto done;
    if (v.n > n) {
        rc = cpt_err_set_at(err, CPT_EINVAL, dir, "the tokenizer has %d ids but the model's vocab_size is %lld. HINT: is this the "
                            "model's tokenizer?", v.n, (long long)n);
        goto done;
    }
    toks = calloc((size_t)n, sizeof *toks);
    lens = calloc((size_t)n, sizeof *lens);
    scores = malloc((size_t)n * sizeof *scores);
    types = malloc((size_t)n * sizeof *types);
    if (!toks || !lens || !scores || !types) goto oom;
    for (int64_t i = 0; i < n; i++) {
        if (i < v.n && v.piece[i]) {
            if (!(toks[i] = malloc(v.len[i] + 1))) goto oom;
            memcpy(toks[i], v.piece[i], v.len[i]);
            toks[i][v.len[i]] = 0;
            lens[i] = v.len[i];
            scores[i] = v.score[i];
            types[i] = v.type[i];
        } else {
            char pad[32];
            int k = snprintf(pad, sizeof pad, "[PAD%lld]", (long long)i);
            if (!(toks[i] = strdup(pad))) goto oom;
            lens[i] = (size_t)k;
            scores[i] = -10000.0f;
            types[i] = CPT_GGUF_TT_UNUSED;
        }
    }
    if ((rc = cpt_gguf_w_str(w, "tokenizer.ggml.model", "llama", 5, err)) ||
        (rc = cpt_gguf_w_str(w, "tokenizer.ggml.pre", "default", 7, err)) ||
        (rc = cpt_gguf_w_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, lens, (uint64_t)n, err)) ||
        (rc = cpt_gguf_w_arr(w, "tokenizer.ggml.scores", CPT_GGUF_F32, scores, (uint64_t)n, err)) ||
        (rc = cpt_gguf_w_arr(w, "tokenizer.ggml.token_type", CPT_GGUF_I32, types, (uint64_t)n, err)))
        goto done;
    int64_t sid[4] = {cpt_tok_bos(t), cpt_tok_eos(t), cpt_tok_pad(t), cpt_tok_unk(t)};
    if (sid[0] < 0) sid[0] = c->bos_id;
    if (sid[1] < 0) sid[1] = c->eos_id;
    static const char *const skey[4] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                        "tokenizer.ggml.padding_token_id", "tokenizer.ggml.unknown_token_id"};
    for (int k = 0; k < 4; k++)
        if (sid[k] >= 0 && sid[k] < n && (rc = cpt_gguf_w_u32(w, skey[k], (uint32_t)sid[k], err))) goto done;
    if ((rc = cpt_gguf_w_bool(w, "tokenizer.ggml.add_bos_token", v.add_bos, err)) ||
        (rc = cpt_gguf_w_bool(w, "tokenizer.ggml.add_eos_token", v.add_eos, err)) ||
        (rc = cpt_gguf_w_bool(w, "tokenizer.ggml.add_space_prefix", v.add_space_prefix, err)))
        goto done;
    if (v.remove_extra_ws && (rc = cpt_gguf_w_bool(w, "tokenizer.ggml.remove_extra_whitespaces", 1, err))) goto done;
    const char *ct = cpt_tok_chat_template(t);
    if (ct && (rc = cpt_gguf_w_str(w, "tokenizer.chat_template", ct, strlen(ct), err))) goto done;
    goto done;
oom:
    rc = cpt_err_set(err, CPT_ENOMEM, "out of memory building the GGUF tokenizer");
done:
    for (int64_t i = 0; toks && i < n; i++) free(toks[i]);
    free(toks);
    free(lens);
    free(scores);
    free(types);
    cpt_tok_spm_vocab_free(&v);
    cpt_tok_free(t);
    return rc;
}

static int write_tokenizer(cpt_gguf_writer *w, const cpt_config *c, const char *dir, cpt_err *err) {
    char p[4200];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    if (!cpt_is_file(p)) {
        snprintf(p, sizeof p, "%s/tokenizer.model", dir);
        if (cpt_is_file(p)) return write_spm_tokenizer(w, c, dir, err);
        return cpt_err_set_at(err, CPT_ENOTFOUND, dir,
                              "neither tokenizer.json nor tokenizer.model: a GGUF model needs its tokenizer. HINT: pass the "
                              "tokenizer directory");
    }
    json_error_t je;
    json_t *tj = json_load_file(p, 0, &je), *tc = NULL;
    if (!tj) return cpt_err_set_at(err, CPT_EFORMAT, p, "line %d: %s", je.line, je.text);
    char pc[4200];
    snprintf(pc, sizeof pc, "%s/tokenizer_config.json", dir);
    if (cpt_is_file(pc) && !(tc = json_load_file(pc, JSON_DECODE_INT_AS_REAL, &je))) {
        json_decref(tj);
        return cpt_err_set_at(err, CPT_EFORMAT, pc, "line %d: %s", je.line, je.text);
    }
    int rc = CPT_OK;
    char **toks = NULL;
    int32_t *types = NULL;
    char **merges = NULL;
    size_t n_merges = 0;
    int64_t n = c->vocab_size;
    json_t *model = json_object_get(tj, "model"), *vocab = json_object_get(model, "vocab");
    const char *mt = json_string_value(json_object_get(model, "type"));
    if (!mt || strcmp(mt, "BPE") || !json_is_object(vocab)) {
        rc = cpt_err_set_at(err, CPT_EUNSUPPORTED, p, "model.type \"%s\" cannot be exported. HINT: cpt exports byte-level BPE tokenizers",
                            mt ? mt : "?");
        goto done;
    }
    if (json_is_true(json_object_get(model, "byte_fallback"))) { /* SentencePiece-style BPE */
        json_decref(tj);
        json_decref(tc);
        return write_spm_tokenizer(w, c, dir, err);
    }
    const char *pre = pre_name(json_object_get(tj, "pre_tokenizer"), json_object_get(tj, "normalizer"));
    if (!pre) {
        rc = cpt_err_set_at(err, CPT_EUNSUPPORTED, p,
                            "the pre_tokenizer/normalizer is not one llama.cpp names (tokenizer.ggml.pre). HINT: known are "
                            "ByteLevel (gpt2), Digits+ByteLevel (smollm), the Llama-3 Split (llama-bpe), the Qwen2 Split+NFC (qwen2)");
        goto done;
    }
    toks = calloc((size_t)n, sizeof *toks);
    types = calloc((size_t)n, sizeof *types);
    if (!toks || !types) {
        rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
        goto done;
    }
    const char *key;
    json_t *v;
    json_object_foreach(vocab, key, v) {
        json_int_t id = json_integer_value(v);
        if (!json_is_integer(v) || id < 0 || id >= n) {
            rc = cpt_err_set_at(err, CPT_EFORMAT, p, "token \"%s\" has id %lld outside the model's vocab_size %lld. HINT: "
                                "is this the model's tokenizer?", key, (long long)id, (long long)n);
            goto done;
        }
        if (toks[id]) {
            rc = cpt_err_set_at(err, CPT_EFORMAT, p, "id %lld is given to two tokens", (long long)id);
            goto done;
        }
        if (!(toks[id] = strdup(key))) goto oom;
        types[id] = CPT_GGUF_TT_NORMAL;
    }
    size_t i;
    json_array_foreach(json_object_get(tj, "added_tokens"), i, v) {
        json_int_t id = json_integer_value(json_object_get(v, "id"));
        const char *s = json_string_value(json_object_get(v, "content"));
        if (!s || id < 0 || id >= n) {
            rc = cpt_err_set_at(err, CPT_EFORMAT, p, "added_tokens[%zu] has no content or an id outside vocab_size %lld", i,
                                (long long)n);
            goto done;
        }
        if (toks[id] && strcmp(toks[id], s)) {
            rc = cpt_err_set_at(err, CPT_EFORMAT, p, "added token \"%s\" reuses id %lld of \"%s\"", s, (long long)id, toks[id]);
            goto done;
        }
        if (!toks[id] && !(toks[id] = strdup(s))) goto oom;
        types[id] = json_is_true(json_object_get(v, "special")) ? CPT_GGUF_TT_CONTROL : CPT_GGUF_TT_USER;
    }
    /* ids the tokenizer does not use (embedding rows padded to a round size): llama.cpp's
     * converter names them [PAD<id>] and marks them unused */
    for (int64_t t = 0; t < n; t++)
        if (!toks[t]) {
            char pad[32];
            snprintf(pad, sizeof pad, "[PAD%lld]", (long long)t);
            if (!(toks[t] = strdup(pad))) goto oom;
            types[t] = CPT_GGUF_TT_UNUSED;
        }
    json_t *mj = json_object_get(model, "merges");
    n_merges = json_array_size(mj);
    if (!(merges = calloc(n_merges ? n_merges : 1, sizeof *merges))) goto oom;
    json_array_foreach(mj, i, v) {
        if (json_is_string(v)) {
            merges[i] = strdup(json_string_value(v));
        } else if (json_is_array(v) && json_array_size(v) == 2 && json_is_string(json_array_get(v, 0)) &&
                   json_is_string(json_array_get(v, 1))) {
            const char *a = json_string_value(json_array_get(v, 0)), *b = json_string_value(json_array_get(v, 1));
            if ((merges[i] = malloc(strlen(a) + strlen(b) + 2))) sprintf(merges[i], "%s %s", a, b);
        } else {
            rc = cpt_err_set_at(err, CPT_EFORMAT, p, "model.merges[%zu] is neither \"a b\" nor [a, b]", i);
            goto done;
        }
        if (!merges[i]) goto oom;
    }
    if ((rc = cpt_gguf_w_str(w, "tokenizer.ggml.model", "gpt2", 4, err)) ||
        (rc = cpt_gguf_w_str(w, "tokenizer.ggml.pre", pre, strlen(pre), err)) ||
        (rc = cpt_gguf_w_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, NULL, (uint64_t)n, err)) ||
        (rc = cpt_gguf_w_arr(w, "tokenizer.ggml.token_type", CPT_GGUF_I32, types, (uint64_t)n, err)) ||
        (rc = cpt_gguf_w_arr_str(w, "tokenizer.ggml.merges", (const char *const *)merges, NULL, n_merges, err)))
        goto done;
    /* special ids: tokenizer_config's strings looked up in the vocabulary, else config.json */
    static const char *const spec[][2] = {{"bos_token", "tokenizer.ggml.bos_token_id"},
                                          {"eos_token", "tokenizer.ggml.eos_token_id"},
                                          {"pad_token", "tokenizer.ggml.padding_token_id"},
                                          {"unk_token", "tokenizer.ggml.unknown_token_id"}};
    for (int s = 0; s < 4; s++) {
        int64_t id = -1;
        const char *str = tc ? tok_str(json_object_get(tc, spec[s][0])) : NULL;
        for (int64_t t = 0; str && t < n && id < 0; t++)
            if (!strcmp(toks[t], str)) id = t;
        if (id < 0 && s == 0) id = c->bos_id;
        if (id < 0 && s == 1) id = c->eos_id;
        if (id >= 0 && id < n && (rc = cpt_gguf_w_u32(w, spec[s][1], (uint32_t)id, err))) goto done;
    }
    static const char *const flags[][2] = {{"add_bos_token", "tokenizer.ggml.add_bos_token"},
                                           {"add_eos_token", "tokenizer.ggml.add_eos_token"}};
    for (int f = 0; f < 2; f++) {
        json_t *b = tc ? json_object_get(tc, flags[f][0]) : NULL;
        if (json_is_boolean(b) && (rc = cpt_gguf_w_bool(w, flags[f][1], json_is_true(b), err))) goto done;
    }
    json_t *ct = tc ? json_object_get(tc, "chat_template") : NULL;
    if (json_is_string(ct) &&
        (rc = cpt_gguf_w_str(w, "tokenizer.chat_template", json_string_value(ct), json_string_length(ct), err)))
        goto done;
    if (ct && !json_is_string(ct) && !json_is_null(ct)) {
        rc = cpt_err_set_at(err, CPT_EUNSUPPORTED, pc, "chat_template is a list of named templates; GGUF export takes one string. "
                            "HINT: keep only the default template");
        goto done;
    }
    goto done;
oom:
    rc = cpt_err_set(err, CPT_ENOMEM, "out of memory building the GGUF tokenizer");
done:
    for (int64_t t = 0; toks && t < n; t++) free(toks[t]);
    for (size_t m = 0; merges && m < n_merges; m++) free(merges[m]);
    free(toks);
    free(types);
    free(merges);
    json_decref(tj);
    json_decref(tc);
    return rc;
}

/* ---- tensors ---- */

/* HF name -> GGUF name; *permute_heads > 0 when llama's rows must be permuted. */
static int gguf_name(const char *hf, const cpt_config *c, char *out, size_t cap, int *permute_heads) {
    *permute_heads = 0;
    for (size_t i = 0; i < CPT_GGUF_N_TOP; i++)
        if (!strcmp(hf, cpt_gguf_top_names[i][1])) return snprintf(out, cap, "%s", cpt_gguf_top_names[i][0]), 1;
    int l, n = 0;
    if (sscanf(hf, "model.layers.%d.%n", &l, &n) != 1 || n == 0) return 0;
    for (size_t i = 0; i < CPT_GGUF_N_BLK; i++)
        if (!strcmp(hf + n, cpt_gguf_blk_names[i][1])) {
            const char *g = cpt_gguf_blk_names[i][0];
            snprintf(out, cap, "blk.%d.%s", l, g);
            int llama = c->arch == CPT_ARCH_LLAMA || c->arch == CPT_ARCH_MISTRAL;
            if (llama && !strncmp(g, "attn_q.", 7)) *permute_heads = c->n_heads;
            if (llama && !strncmp(g, "attn_k.", 7)) *permute_heads = c->n_kv_heads;
            return 1;
        }
    return 0;
}

static void permute_rows(float *dst, const float *src, int64_t n_heads, int64_t hd, int64_t cols) {
    int64_t half = hd / 2;
    for (int64_t h = 0; h < n_heads; h++)
        for (int64_t j = 0; j < half; j++)
            for (int64_t c = 0; c < 2; c++)
                memcpy(dst + (h * hd + 2 * j + c) * cols, src + (h * hd + c * half + j) * cols, sizeof(float) * (size_t)cols);
}

int cpt_model_save_gguf(const cpt_model *m, const char *tok_dir, const char *path, uint32_t type, cpt_err *err) {
    const cpt_config *c = &m->cfg;
    const char *arch = NULL;
    if (type != CPT_GGML_F32 && type != CPT_GGML_F16 && type != CPT_GGML_BF16 && type != CPT_GGML_Q8_0)
        return cpt_err_set(err, CPT_EINVAL, "GGUF export type %u is not one of f32, f16, bf16, q8_0", type);
    int rc = check_representable(c, &arch, err);
    if (rc) return rc;
    if (!tok_dir)
        return cpt_err_set(err, CPT_EINVAL, "GGUF export needs the model's tokenizer. HINT: pass --tokenizer DIR");
    cpt_gguf_writer *w = NULL;
    if ((rc = cpt_gguf_writer_new(&w, 32, err))) return rc;
    /* general.name: the output file's stem (transformers' GGUF loader requires the key) */
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    size_t blen = strlen(base);
    if (blen > 5 && !strcmp(base + blen - 5, ".gguf")) blen -= 5;
    if ((rc = cpt_gguf_w_str(w, "general.name", base, blen, err)) || (rc = write_hparams(w, c, arch, type, err)) || (rc = write_tokenizer(w, c, tok_dir, err))) goto done;
    for (int i = 0; i < m->n_tensors && !rc; i++) {
        const cpt_tensor *t = &m->tensors[i];
        if (c->tie_embeddings && !strcmp(t->name, "lm_head.weight")) continue; /* a view of token_embd */
        char gn[128];
        int ph = 0;
        if (!gguf_name(t->name, c, gn, sizeof gn, &ph)) {
            rc = cpt_err_set(err, CPT_EUNSUPPORTED, "GGUF export: tensor %s has no llama.cpp name. HINT: llama.cpp's %s "
                             "architecture has no such tensor", t->name, arch);
            break;
        }
        int64_t rows = t->shape[0], cols = t->ndim > 1 ? t->shape[1] : 1;
        const float *src = m->params + t->off;
        float *perm = NULL;
        if (ph) {
            if (rows % ph || (rows / ph) % 2) {
                rc = cpt_err_set(err, CPT_EINVAL, "tensor %s: %lld rows do not split into %d heads of even size", t->name,
                                 (long long)rows, ph);
                break;
            }
            if (!(perm = malloc(sizeof(float) * t->numel))) {
                rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
                break;
            }
            permute_rows(perm, src, ph, rows / ph, cols);
            src = perm;
        }
        uint64_t ne[2] = {(uint64_t)(t->ndim > 1 ? cols : rows), (uint64_t)rows};
        uint32_t n_dims = (uint32_t)t->ndim;
        /* 1-D tensors stay F32 (llama.cpp); Q8_0 needs rows of whole blocks, else F16 */
        uint32_t ty = n_dims == 1 ? CPT_GGML_F32 : type;
        if (ty == CPT_GGML_Q8_0 && ne[0] % 32) ty = CPT_GGML_F16;
        uint64_t be, bb;
        cpt_ggml_type_block(ty, &be, &bb);
        uint64_t nbytes = t->numel / be * bb;
        if (ty == CPT_GGML_F32) {
            rc = cpt_gguf_w_tensor(w, gn, n_dims, ne, ty, src, nbytes, perm != NULL, err);
            continue;
        }
        void *q = malloc(nbytes ? nbytes : 1);
        if (!q) {
            free(perm);
            rc = cpt_err_set(err, CPT_ENOMEM, "out of memory quantizing %s", t->name);
            break;
        }
        rc = cpt_ggml_quant(ty, src, q, t->numel, err);
        free(perm);
        if (rc) {
            free(q);
            break;
        }
        rc = cpt_gguf_w_tensor(w, gn, n_dims, ne, ty, q, nbytes, 1, err);
    }
    if (!rc) rc = cpt_gguf_writer_write(w, path, err);
done:
    cpt_gguf_writer_free(w);
    return rc;
}

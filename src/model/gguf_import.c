/* gguf_import.c: GGUF model -> cpt model (config from `{arch}.*` keys, tensors by name,
 * llama.cpp's q/k permutation undone); the tokenizer is gguf_tokenizer.c.
 *
 * llama.cpp's convert_hf_to_gguf (LlamaModel.modify_tensors -> permute) stores q_proj and
 * k_proj rows per head as [2, hd/2] -> [hd/2, 2] (rotate_half pairs made interleaved):
 *   gguf_row(h, 2j + c) = hf_row(h, c*hd/2 + j)
 * so the inverse is the same row gather llama2.c import uses (methods.md 1.8, 14.4). It
 * applies to llama only: the Qwen2/Qwen3 converters do not permute. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/gguf_import.h"
#include "gguf_names.h"

/* The shortest decimal that reads back as the same float32: GGUF stores eps and theta as
 * f32, and 1e-05 in config.json is what the original HF model said (not 9.99999975e-06). */
static double f32_decimal(double v) {
    float f = (float)v;
    char buf[64];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)f);
        if (strtof(buf, NULL) == f) return strtod(buf, NULL);
    }
    return v;
}

static int opt_int(const cpt_gguf *g, const char *key, int64_t def, int64_t *out, cpt_err *err) {
    if (!cpt_gguf_find(g, key)) {
        *out = def;
        return CPT_OK;
    }
    return cpt_gguf_get_int(g, key, out, err);
}

static int opt_float(const cpt_gguf *g, const char *key, double def, double *out, cpt_err *err) {
    if (!cpt_gguf_find(g, key)) {
        *out = def;
        return CPT_OK;
    }
    return cpt_gguf_get_float(g, key, out, err);
}

static int req_int(const cpt_gguf *g, const char *arch, const char *suffix, int64_t *out, cpt_err *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int rc = cpt_gguf_get_int(g, key, out, err);
    if (!rc && (*out <= 0 || *out > (1ll << 31)))
        return cpt_err_set_at(err, CPT_EFORMAT, cpt_gguf_label(g), "metadata \"%s\" = %lld is out of range", key,
                              (long long)*out);
    return rc;
}

int cpt_gguf_config_json(const cpt_gguf *g, char **json, cpt_err *err) {
    *json = NULL;
    const char *label = cpt_gguf_label(g);
    char *arch = NULL;
    int rc = cpt_gguf_get_strdup(g, "general.architecture", &arch, err);
    if (rc) return rc;
    const char *hf_arch = NULL;
    if (!strcmp(arch, "llama")) hf_arch = "LlamaForCausalLM";
    else if (!strcmp(arch, "qwen2")) hf_arch = "Qwen2ForCausalLM";
    else if (!strcmp(arch, "qwen3")) hf_arch = "Qwen3ForCausalLM";
    if (!hf_arch) {
        rc = cpt_err_set_at(err, CPT_EUNSUPPORTED, label,
                            "general.architecture \"%s\" is not supported. HINT: cpt imports llama, qwen2 and qwen3 GGUF models",
                            arch);
        free(arch);
        return rc;
    }
    char key[128];
    int64_t D, L, I, H, KV, ctx, rot, kl, V;
    double eps, theta;
#define K(s) (snprintf(key, sizeof key, "%s.%s", arch, s), key)
    if ((rc = req_int(g, arch, "embedding_length", &D, err)) || (rc = req_int(g, arch, "block_count", &L, err)) ||
        (rc = req_int(g, arch, "feed_forward_length", &I, err)) ||
        (rc = req_int(g, arch, "attention.head_count", &H, err)) ||
        (rc = opt_int(g, K("attention.head_count_kv"), H, &KV, err)) ||
        (rc = opt_int(g, K("context_length"), 2048, &ctx, err)) ||
        (rc = cpt_gguf_get_float(g, K("attention.layer_norm_rms_epsilon"), &eps, err)) ||
        (rc = opt_float(g, K("rope.freq_base"), 10000.0, &theta, err)))
        goto done;
    if (D % H) {
        rc = cpt_err_set_at(err, CPT_EFORMAT, label, "embedding_length %lld is not a multiple of head_count %lld",
                            (long long)D, (long long)H);
        goto done;
    }
    if ((rc = opt_int(g, K("attention.key_length"), D / H, &kl, err)) ||
        (rc = opt_int(g, K("rope.dimension_count"), kl, &rot, err)))
        goto done;
    if (rot != kl) {
        rc = cpt_err_set_at(err, CPT_EUNSUPPORTED, label,
                            "%s = %lld differs from the head dim %lld: partial rotary embeddings are not supported", key,
                            (long long)rot, (long long)kl);
        goto done;
    }
    /* vocab: {arch}.vocab_size, else the token list, else token_embd's rows */
    V = 0;
    const cpt_gguf_kv *toks = cpt_gguf_find(g, "tokenizer.ggml.tokens");
    const cpt_gguf_tensor *emb = cpt_gguf_find_tensor(g, "token_embd.weight");
    if (cpt_gguf_find(g, K("vocab_size"))) {
        if ((rc = cpt_gguf_get_int(g, key, &V, err))) goto done;
    } else if (toks && toks->type == CPT_GGUF_ARRAY) {
        V = (int64_t)toks->arr_n;
    } else if (emb && emb->n_dims == 2) {
        V = (int64_t)emb->ne[1];
    }
    if (V <= 0 || V > (1ll << 31)) {
        rc = cpt_err_set_at(err, CPT_EFORMAT, label, "cannot tell the vocabulary size (no %s.vocab_size, tokens or token_embd)", arch);
        goto done;
    }
    if (cpt_gguf_find_tensor(g, "rope_freqs.weight")) {
        rc = cpt_err_set_at(err, CPT_EUNSUPPORTED, label,
                            "tensor rope_freqs.weight (llama3-style RoPE scaling baked into frequencies) is not supported: "
                            "its low/high frequency factors are not recorded. HINT: convert the original HF model instead");
        goto done;
    }
    json_t *root = json_object();
    json_object_set_new(root, "architectures", json_pack("[s]", hf_arch));
    json_object_set_new(root, "model_type", json_string(arch));
    json_object_set_new(root, "vocab_size", json_integer(V));
    json_object_set_new(root, "hidden_size", json_integer(D));
    json_object_set_new(root, "intermediate_size", json_integer(I));
    json_object_set_new(root, "num_hidden_layers", json_integer(L));
    json_object_set_new(root, "num_attention_heads", json_integer(H));
    json_object_set_new(root, "num_key_value_heads", json_integer(KV));
    json_object_set_new(root, "head_dim", json_integer(kl));
    json_object_set_new(root, "max_position_embeddings", json_integer(ctx));
    json_object_set_new(root, "rms_norm_eps", json_real(f32_decimal(eps)));
    json_object_set_new(root, "rope_theta", json_real(f32_decimal(theta)));
    json_object_set_new(root, "hidden_act", json_string("silu"));
    json_object_set_new(root, "tie_word_embeddings", json_boolean(cpt_gguf_find_tensor(g, "output.weight") == NULL));
    if (!strcmp(arch, "llama")) {
        json_object_set_new(root, "attention_bias", json_boolean(cpt_gguf_find_tensor(g, "blk.0.attn_q.bias") != NULL));
        json_object_set_new(root, "mlp_bias", json_false());
    }
    int64_t id;
    static const char *ids[][2] = {{"tokenizer.ggml.bos_token_id", "bos_token_id"},
                                   {"tokenizer.ggml.eos_token_id", "eos_token_id"},
                                   {"tokenizer.ggml.padding_token_id", "pad_token_id"}};
    for (int i = 0; i < 3; i++)
        if (cpt_gguf_find(g, ids[i][0])) {
            if ((rc = cpt_gguf_get_int(g, ids[i][0], &id, err))) {
                json_decref(root);
                goto done;
            }
            json_object_set_new(root, ids[i][1], json_integer(id));
        }
    /* RoPE scaling: {arch}.rope.scaling.type "none" | "linear" | "yarn" (llama.cpp names) */
    if (cpt_gguf_find(g, K("rope.scaling.type"))) {
        char *ty = NULL;
        if ((rc = cpt_gguf_get_strdup(g, key, &ty, err))) {
            json_decref(root);
            goto done;
        }
        if (strcmp(ty, "none") != 0) {
            double factor = 1.0;
            int64_t orig = 0;
            if ((rc = opt_float(g, K("rope.scaling.factor"), 1.0, &factor, err)) ||
                (rc = opt_int(g, K("rope.scaling.original_context_length"), 0, &orig, err))) {
                free(ty);
                json_decref(root);
                goto done;
            }
            json_t *rs = json_object();
            json_object_set_new(rs, "rope_type", json_string(ty));
            json_object_set_new(rs, "factor", json_real(f32_decimal(factor)));
            if (orig > 0) json_object_set_new(rs, "original_max_position_embeddings", json_integer(orig));
            json_object_set_new(root, "rope_scaling", rs);
        }
        free(ty);
    } else if (cpt_gguf_find(g, K("rope.scale_linear"))) {
        double factor;
        if ((rc = cpt_gguf_get_float(g, key, &factor, err))) {
            json_decref(root);
            goto done;
        }
        json_object_set_new(root, "rope_scaling", json_pack("{s:s,s:f}", "rope_type", "linear", "factor", f32_decimal(factor)));
    }
#undef K
    *json = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    json_decref(root);
    if (!*json) rc = cpt_err_set(err, CPT_ENOMEM, "out of memory writing the config");
done:
    free(arch);
    return rc;
}

/* Undo llama.cpp's permute: src rows in gguf order, dst in HF order (n_heads heads). */
static void unpermute_rows(float *dst, const float *src, int64_t n_heads, int64_t hd, int64_t cols) {
    int64_t half = hd / 2;
    for (int64_t h = 0; h < n_heads; h++)
        for (int64_t j = 0; j < half; j++)
            for (int64_t c = 0; c < 2; c++)
                memcpy(dst + (h * hd + c * half + j) * cols, src + (h * hd + 2 * j + c) * cols,
                       sizeof(float) * (size_t)cols);
}

/* GGUF tensor name -> HF name; *permute_heads > 0 when the rows need unpermuting. */
static int map_name(const char *gn, const cpt_config *c, char *hf, size_t cap, int *permute_heads) {
    *permute_heads = 0;
    for (size_t i = 0; i < CPT_GGUF_N_TOP; i++)
        if (!strcmp(gn, cpt_gguf_top_names[i][0])) return snprintf(hf, cap, "%s", cpt_gguf_top_names[i][1]), 1;
    int l, n = 0;
    if (sscanf(gn, "blk.%d.%n", &l, &n) != 1 || n == 0 || l < 0 || l >= c->n_layers) return 0;
    const char *rest = gn + n;
    for (size_t i = 0; i < CPT_GGUF_N_BLK; i++)
        if (!strcmp(rest, cpt_gguf_blk_names[i][0])) {
            snprintf(hf, cap, "model.layers.%d.%s", l, cpt_gguf_blk_names[i][1]);
            if (c->arch == CPT_ARCH_LLAMA && !strncmp(rest, "attn_q.", 7)) *permute_heads = c->n_heads;
            if (c->arch == CPT_ARCH_LLAMA && !strncmp(rest, "attn_k.", 7)) *permute_heads = c->n_kv_heads;
            return 1;
        }
    return 0;
}

int cpt_model_from_gguf(cpt_model **out, const cpt_gguf *g, cpt_err *err) {
    *out = NULL;
    const char *label = cpt_gguf_label(g);
    char *json = NULL;
    int rc = cpt_gguf_config_json(g, &json, err);
    if (rc) return rc;
    cpt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    char where[600];
    snprintf(where, sizeof where, "%s (config from metadata)", label);
    rc = cpt_config_parse(&cfg, json, strlen(json), where, err);
    free(json);
    if (rc) return rc;
    cpt_model *m = NULL;
    rc = cpt_model_create(&m, &cfg, err);
    cpt_config_free(&cfg);
    if (rc) return rc;
    uint8_t *seen = calloc((size_t)m->n_tensors + 1, 1);
    float *tmp = NULL;
    if (!seen) {
        rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < cpt_gguf_n_tensors(g); i++) {
        const cpt_gguf_tensor *t = cpt_gguf_tensor_at(g, i);
        char hf[128];
        int ph = 0;
        if (!map_name(t->name, &m->cfg, hf, sizeof hf, &ph)) {
            rc = cpt_err_set_at(err, CPT_EUNSUPPORTED, label,
                                "tensor \"%s\" has no place in a %s model with %d layers. HINT: is general.architecture right?",
                                t->name, m->cfg.model_type, m->cfg.n_layers);
            goto fail;
        }
        const cpt_tensor *ct = cpt_model_find(m, hf);
        if (!ct) {
            rc = cpt_err_set_at(err, CPT_EFORMAT, label, "tensor \"%s\" (%s) is not expected by the config from the metadata",
                                t->name, hf);
            goto fail;
        }
        /* GGUF dims are PyTorch's reversed */
        int shape_ok = (int)t->n_dims == ct->ndim && t->numel == ct->numel;
        for (int k = 0; shape_ok && k < ct->ndim; k++) shape_ok = (int64_t)t->ne[ct->ndim - 1 - k] == ct->shape[k];
        if (!shape_ok) {
            rc = cpt_err_set_at(err, CPT_EFORMAT, label,
                                "tensor \"%s\" has ne [%llu, %llu] but %s needs shape [%lld, %lld] (PyTorch order)", t->name,
                                (unsigned long long)t->ne[0], (unsigned long long)t->ne[1], hf, (long long)ct->shape[0],
                                (long long)(ct->ndim > 1 ? ct->shape[1] : 1));
            goto fail;
        }
        size_t idx = (size_t)(ct - m->tensors);
        if (seen[idx]++) {
            rc = cpt_err_set_at(err, CPT_EFORMAT, label, "tensor %s given twice", hf);
            goto fail;
        }
        float *dst = m->params + ct->off;
        if (ph) {
            int64_t rows = ct->shape[0], cols = ct->ndim > 1 ? ct->shape[1] : 1;
            if (rows % ph || (rows / ph) % 2) {
                rc = cpt_err_set_at(err, CPT_EFORMAT, label, "tensor \"%s\": %lld rows do not split into %d heads of even size",
                                    t->name, (long long)rows, ph);
                goto fail;
            }
            free(tmp);
            if (!(tmp = malloc(sizeof(float) * ct->numel))) {
                rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
                goto fail;
            }
            if ((rc = cpt_gguf_tensor_f32(g, t, tmp, err))) goto fail;
            unpermute_rows(dst, tmp, ph, rows / ph, cols);
        } else if ((rc = cpt_gguf_tensor_f32(g, t, dst, err))) {
            goto fail;
        }
    }
    for (int i = 0; i < m->n_tensors; i++) {
        /* a tied lm_head is a view of the embedding and has no entry of its own */
        if (!seen[i] && !(m->cfg.tie_embeddings && !strcmp(m->tensors[i].name, "lm_head.weight"))) {
            rc = cpt_err_set_at(err, CPT_EFORMAT, label, "tensor for %s is missing", m->tensors[i].name);
            goto fail;
        }
    }
    free(tmp);
    free(seen);
    *out = m;
    return CPT_OK;
fail:
    free(tmp);
    free(seen);
    cpt_model_free(m);
    return rc;
}

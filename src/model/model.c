/* model.c: the tensor table of a Llama-family decoder (HF names, one flat fp32 buffer),
 * views into buffers with that layout, random init and the RoPE tables. The passes are
 * in forward.c (training/scoring) and decode.c (KV-cache generation). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/backend.h"
#include "cpt/model.h"
#include "cpt/rope.h"
#include "model/model-impl.h"

static int add_tensor(cpt_model *m, int *cap, const char *name, int ndim, int64_t d0, int64_t d1, int decay,
                      cpt_err *err) {
    if (m->n_tensors == *cap) {
        int nc = *cap ? *cap * 2 : 64;
        cpt_tensor *t = realloc(m->tensors, sizeof(cpt_tensor) * (size_t)nc);
        if (!t) return cpt_err_set(err, CPT_ENOMEM, "out of memory building the tensor table");
        m->tensors = t;
        *cap = nc;
    }
    cpt_tensor *t = &m->tensors[m->n_tensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = ndim > 1 ? d1 : 1;
    t->numel = (size_t)d0 * (size_t)(ndim > 1 ? d1 : 1);
    /* Keep every tensor 64-byte aligned (16 floats) inside the flat buffer. */
    t->off = m->n_params;
    m->n_params += (t->numel + 15) & ~(size_t)15;
    t->decay = decay;
    return CPT_OK;
}

/* n_params * 4 cannot overflow: cpt_model_create checked it. */
size_t cpt_model_buffer_bytes(const cpt_model *m) { return sizeof(float) * m->n_params; }

int cpt_model_create(cpt_model **out, const cpt_config *cfg, cpt_err *err) {
    *out = NULL;
    cpt_model *m = calloc(1, sizeof *m);
    if (!m) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    m->cfg = *cfg;
    m->cfg.raw_json = cfg->raw_json ? strdup(cfg->raw_json) : NULL;
    const cpt_config *c = &m->cfg;
    int D = c->hidden_size, V = c->vocab_size, I = c->intermediate_size;
    int qd = c->n_heads * c->head_dim, kd = c->n_kv_heads * c->head_dim;
    int cap = 0, rc = CPT_OK;
    char name[96];
#define T2(nm, a, b) if ((rc = add_tensor(m, &cap, nm, 2, a, b, 1, err))) goto fail
#define T1(nm, a) if ((rc = add_tensor(m, &cap, nm, 1, a, 1, 0, err))) goto fail
    T2("model.embed_tokens.weight", V, D);
    for (int l = 0; l < c->n_layers; l++) {
#define LN(suffix) (snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix), name)
        T2(LN("self_attn.q_proj.weight"), qd, D);
        if (c->qkv_bias) T1(LN("self_attn.q_proj.bias"), qd);
        T2(LN("self_attn.k_proj.weight"), kd, D);
        if (c->qkv_bias) T1(LN("self_attn.k_proj.bias"), kd);
        T2(LN("self_attn.v_proj.weight"), kd, D);
        if (c->qkv_bias) T1(LN("self_attn.v_proj.bias"), kd);
        T2(LN("self_attn.o_proj.weight"), D, qd);
        if (c->o_bias) T1(LN("self_attn.o_proj.bias"), D);
        if (c->qk_norm) {
            T1(LN("self_attn.q_norm.weight"), c->head_dim);
            T1(LN("self_attn.k_norm.weight"), c->head_dim);
        }
        T2(LN("mlp.gate_proj.weight"), I, D);
        if (c->mlp_bias) T1(LN("mlp.gate_proj.bias"), I);
        T2(LN("mlp.up_proj.weight"), I, D);
        if (c->mlp_bias) T1(LN("mlp.up_proj.bias"), I);
        T2(LN("mlp.down_proj.weight"), D, I);
        if (c->mlp_bias) T1(LN("mlp.down_proj.bias"), D);
        T1(LN("input_layernorm.weight"), D);
        T1(LN("post_attention_layernorm.weight"), D);
#undef LN
    }
    T1("model.norm.weight", D);
    if (!c->tie_embeddings) T2("lm_head.weight", V, D);
#undef T1
#undef T2
    size_t bytes;
    if (!cpt_mul_size(m->n_params, sizeof(float), &bytes)) {
        rc = cpt_err_set(err, CPT_EINVAL, "model too large");
        goto fail;
    }
    if ((rc = cpt_backend_select(&m->be, err))) goto fail;
    m->params = m->be->alloc(cpt_model_buffer_bytes(m));
    if (!m->params) {
        rc = cpt_err_set(err, CPT_ENOMEM, "out of memory allocating %zu bytes of parameters", bytes);
        goto fail;
    }
    if ((rc = cpt_model_view(m, m->params, &m->w, err))) goto fail;
    /* Norm weights start at one (transformers' init). */
    for (int i = 0; i < m->n_tensors; i++)
        if (strstr(m->tensors[i].name, "norm.weight") || strstr(m->tensors[i].name, "layernorm.weight"))
            for (size_t j = 0; j < m->tensors[i].numel; j++) m->params[m->tensors[i].off + j] = 1.0f;
    *out = m;
    return CPT_OK;
fail:
    cpt_model_free(m);
    return rc;
}

void cpt_model_free(cpt_model *m) {
    if (!m) return;
    if (m->view_of) { /* a view (cpt_model_view_range): its table only */
        free(m->tensors);
        free(m);
        return;
    }
    cpt_view_free(&m->w);
    if (m->lowp) m->be->free(m->lowp);
    if (m->params) m->be->free(m->params);
    free(m->tensors);
    if (m->rope_cos) m->be->free(m->rope_cos);
    if (m->rope_sin) m->be->free(m->rope_sin);
    cpt_config_free(&m->cfg);
    free(m);
}

size_t cpt_model_lowp_bytes(const cpt_model *m) { return sizeof(uint16_t) * m->n_params; }

int cpt_model_set_precision(cpt_model *m, int precision, cpt_err *err) {
    if (precision == CPT_PREC_FP32) {
        if (m->lowp) m->be->free(m->lowp);
        m->lowp = NULL;
        return CPT_OK;
    }
    if (precision != CPT_PREC_BF16) return cpt_err_set(err, CPT_EINVAL, "unknown precision %d", precision);
    if (!m->be->supports("linear_bf16"))
        return cpt_err_set(err, CPT_EUNSUPPORTED, "precision bf16: the %s backend has no bf16 kernel on this machine (needs AVX-512 and cpt built with oneDNN). HINT: use precision: fp32",
                           m->be->name);
    if (!m->lowp && !(m->lowp = m->be->alloc(cpt_model_lowp_bytes(m) ? cpt_model_lowp_bytes(m) : 64)))
        return cpt_err_set(err, CPT_ENOMEM, "out of memory for the bf16 copy of the weights (%zu bytes)", cpt_model_lowp_bytes(m));
    cpt_model_refresh_lowp(m);
    return CPT_OK;
}

void cpt_model_refresh_lowp(cpt_model *m) {
    if (m->lowp) m->be->to_bf16(m->lowp, m->params, m->n_params);
}

int cpt_model_view_range(cpt_model *m, const uint8_t *trained, cpt_model **out, int *first, cpt_err *err) {
    *out = NULL;
    if (first) *first = 0;
    int i0 = -1, i1 = -1;
    for (int i = 0; i < m->n_tensors; i++)
        if (trained[i]) i1 = i, i0 = i0 < 0 ? i : i0;
    if (i0 < 0 || (i0 == 0 && i1 == m->n_tensors - 1)) return CPT_OK; /* nothing, or everything */
    for (int i = 1; i < m->n_tensors; i++)
        if (m->tensors[i].off <= m->tensors[i - 1].off)
            return cpt_err_set(err, CPT_ESTATE, "tensor table of the model is not in layout order at '%s'", m->tensors[i].name);
    cpt_model *v = calloc(1, sizeof *v);
    int n = i1 - i0 + 1;
    if (!v || !(v->tensors = malloc(sizeof(cpt_tensor) * (size_t)n))) {
        free(v);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    }
    size_t lo = m->tensors[i0].off, hi = m->tensors[i1].off + ((m->tensors[i1].numel + 15) & ~(size_t)15);
    for (int i = 0; i < n; i++) {
        v->tensors[i] = m->tensors[i0 + i];
        v->tensors[i].off -= lo;
    }
    v->n_tensors = n;
    v->n_params = hi - lo;
    v->params = m->params + lo;
    v->be = m->be;
    v->cfg = m->cfg;
    v->cfg.raw_json = NULL; /* borrowed fields are not freed: cpt_model_free of a view frees its table only */
    v->view_of = m;
    *out = v;
    if (first) *first = i0;
    return CPT_OK;
}

const cpt_tensor *cpt_model_find(const cpt_model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
    return NULL;
}

int cpt_model_view_masked(const cpt_model *m, float *base, const uint8_t *frozen, size_t win_off, size_t win_n, cpt_view *v,
                          cpt_err *err) {
    memset(v, 0, sizeof *v);
    v->layers = calloc((size_t)m->cfg.n_layers, sizeof(cpt_layer_view));
    if (!v->layers) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    for (int i = 0; i < m->n_tensors; i++) {
        const cpt_tensor *t = &m->tensors[i];
        int outside = win_n > 0 && (t->off < win_off || t->off + t->numel > win_off + win_n);
        float *p = (frozen && frozen[i]) || outside ? NULL : base + (t->off - (win_n > 0 ? win_off : 0));
        const char *n = t->name;
        if (!strcmp(n, "model.embed_tokens.weight")) v->embed = p;
        else if (!strcmp(n, "model.norm.weight")) v->final_norm = p;
        else if (!strcmp(n, "lm_head.weight")) v->lm_head = p;
        else {
            int l = -1, k = 0;
            char rest[96];
            if (sscanf(n, "model.layers.%d.%n", &l, &k) != 1 || k <= 0 || l < 0 || l >= m->cfg.n_layers) continue;
            snprintf(rest, sizeof rest, "%s", n + k);
            cpt_layer_view *L = &v->layers[l];
            static const struct { const char *s; size_t off; } map[] = {
#define F(s, f) {s, offsetof(cpt_layer_view, f)}
                F("input_layernorm.weight", attn_norm), F("post_attention_layernorm.weight", mlp_norm),
                F("self_attn.q_proj.weight", wq), F("self_attn.k_proj.weight", wk),
                F("self_attn.v_proj.weight", wv), F("self_attn.o_proj.weight", wo),
                F("self_attn.q_proj.bias", bq), F("self_attn.k_proj.bias", bk),
                F("self_attn.v_proj.bias", bv), F("self_attn.o_proj.bias", bo),
                F("self_attn.q_norm.weight", q_norm), F("self_attn.k_norm.weight", k_norm),
                F("mlp.gate_proj.weight", wg), F("mlp.up_proj.weight", wu), F("mlp.down_proj.weight", wd),
                F("mlp.gate_proj.bias", bg), F("mlp.up_proj.bias", bu), F("mlp.down_proj.bias", bd),
#undef F
            };
            for (size_t j = 0; j < sizeof map / sizeof map[0]; j++)
                if (!strcmp(rest, map[j].s)) *(float **)((char *)L + map[j].off) = p;
        }
    }
    if (m->cfg.tie_embeddings) v->lm_head = v->embed;
    return CPT_OK;
}

int cpt_model_view(const cpt_model *m, float *base, cpt_view *v, cpt_err *err) {
    return cpt_model_view_masked(m, base, NULL, 0, 0, v, err);
}

void cpt_view_free(cpt_view *v) {
    free(v->layers);
    v->layers = NULL;
}


/* Normal init: cpt_splitmix64 uniforms through Box-Muller (portable, seedable). */
void cpt_model_init_random(cpt_model *m, uint64_t seed, float std) {
    uint64_t s = seed;
    for (int i = 0; i < m->n_tensors; i++) {
        const cpt_tensor *t = &m->tensors[i];
        float *p = m->params + t->off;
        int is_norm = strstr(t->name, "norm.weight") != NULL;
        int is_bias = strstr(t->name, ".bias") != NULL;
        for (size_t j = 0; j < t->numel; j++) {
            if (is_norm) p[j] = 1.0f;
            else if (is_bias) p[j] = 0.0f;
            else {
                double u1 = ((cpt_splitmix64(&s) >> 11) + 1.0) / 9007199254740993.0;
                double u2 = (cpt_splitmix64(&s) >> 11) / 9007199254740992.0;
                p[j] = (float)(std * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
            }
        }
    }
}

size_t cpt_model_rope_bytes(const cpt_config *c, int n_pos) {
    size_t half = (size_t)(cpt_config_rot_dim(c) / 2);
    return 2 * sizeof(float) * (size_t)(n_pos > 0 ? n_pos : 0) * half;
}

/* (Re)build the tables for positions [0, n_pos) from the frequencies for seq_len `key`. */
static int rope_build(cpt_model *m, long long key, int n_pos, cpt_err *err) {
    if (m->rope_built && key == m->rope_key && n_pos <= m->rope_n_pos) return CPT_OK;
    if (m->rope_built && n_pos < m->rope_n_pos) n_pos = m->rope_n_pos;
    int rot = cpt_config_rot_dim(&m->cfg), half = rot / 2;
    size_t tab = cpt_model_rope_bytes(&m->cfg, n_pos) / 2; /* one of the two tables */
    float *c = malloc(tab ? tab : 1), *s = malloc(tab ? tab : 1);
    float *inv = malloc(sizeof(float) * (size_t)(half > 0 ? half : 1));
    if (!c || !s || !inv) {
        free(c), free(s), free(inv);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory for RoPE tables of %d positions", n_pos);
    }
    float af = 1.0f;
    int rc = cpt_rope_init(&m->cfg, key, inv, &af, err);
    if (rc) {
        free(c), free(s), free(inv);
        return rc;
    }
    cpt_rope_tables(c, s, inv, af, n_pos, rot);
    free(inv);
    /* Built on the host, used by the kernels: backend memory. */
    size_t tb = sizeof(float) * (size_t)n_pos * half;
    float *dc = m->be->alloc(tb), *ds = m->be->alloc(tb);
    if (!dc || !ds) {
        if (dc) m->be->free(dc);
        if (ds) m->be->free(ds);
        free(c), free(s);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory for RoPE tables of %d positions", n_pos);
    }
    m->be->copy_to_device(dc, c, tb);
    m->be->copy_to_device(ds, s, tb);
    m->be->sync(); /* before the host tables go */
    free(c), free(s);
    if (m->rope_cos) m->be->free(m->rope_cos);
    if (m->rope_sin) m->be->free(m->rope_sin);
    m->rope_cos = dc;
    m->rope_sin = ds;
    m->rope_n_pos = n_pos;
    m->rope_key = key;
    m->rope_built = 1;
    return CPT_OK;
}

static int rope_check_len(const cpt_model *m, int n_pos, cpt_err *err) {
    long long ctx = cpt_config_context_len(&m->cfg);
    if (n_pos <= ctx || m->allow_long_context) return CPT_OK;
    return cpt_err_set(err, CPT_EINVAL,
                       "sequence of %d positions is longer than the model's context of %lld (max_position_embeddings %d, rope_scaling %s). "
                       "HINT: extend RoPE for the run with the recipe keys rope.theta (a larger base, e.g. 500000) or "
                       "rope.scaling (e.g. {type: yarn, factor: 4}) and rope.max_position_embeddings, or set "
                       "rope.allow_long_context: true (cpt score / generate: --allow-long-context) to run past the context as it is",
                       n_pos, ctx, m->cfg.max_pos, cpt_rope_type_name(m->cfg.rope_scaling.type));
}

/* transformers' dynamic_rope_update (modeling_rope_utils.py): which seq_len the
 * frequencies of this forward are computed for. grow_only: a decoding step, which may
 * move the frequencies only forward (see model.h). */
static int rope_step(cpt_model *m, int n_pos, int grow_only, cpt_err *err) {
    if (n_pos < 1) n_pos = 1;
    int rc = rope_check_len(m, n_pos, err);
    if (rc) return rc;
    const cpt_config *c = &m->cfg;
    long long key = m->rope_built ? m->rope_key : 0, cached = m->rope_cached ? m->rope_cached : c->max_pos;
    if (c->rope_scaling.type == CPT_ROPE_DYNAMIC) {
        if (n_pos > cached) key = cached = n_pos; /* growth */
        if (!grow_only && n_pos < c->max_pos && cached > c->max_pos) key = 0, cached = c->max_pos; /* reset */
    } else if (c->rope_scaling.type == CPT_ROPE_LONGROPE) {
        long long L = cpt_rope_longrope_original(c);
        /* transformers builds long_inv_freq with seq_len = original + 1 */
        if (n_pos > L) key = L + 1;
        else if (!grow_only) key = 0;
    }
    if ((rc = rope_build(m, key, n_pos, err))) return rc;
    m->rope_cached = cached;
    return CPT_OK;
}

int cpt_model_rope_update(cpt_model *m, int n_pos, cpt_err *err) { return rope_step(m, n_pos, 0, err); }

int cpt_model_ensure_rope(cpt_model *m, int n_pos, cpt_err *err) { return rope_step(m, n_pos, 1, err); }

int cpt_model_set_backend(cpt_model *m, const cpt_backend *be, cpt_err *err) {
    if (!be) return cpt_err_set(err, CPT_EINVAL, "cpt_model_set_backend: no backend given");
    if (be == m->be) return CPT_OK;
    size_t bytes = sizeof(float) * m->n_params;
    float *host = malloc(bytes ? bytes : 1), *dev = be->alloc(bytes);
    if (!host || !dev) {
        free(host);
        if (dev) be->free(dev);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory moving %zu bytes of parameters to backend '%s'", bytes, be->name);
    }
    m->be->sync();
    m->be->copy_to_host(host, m->params, bytes);
    be->copy_to_device(dev, host, bytes);
    be->sync();
    free(host);
    cpt_view nv;
    int rc = cpt_model_view(m, dev, &nv, err);
    if (rc) {
        be->free(dev);
        return rc;
    }
    /* The RoPE tables move too (same frequencies, so the rope state stays valid). */
    float *tabs[2] = {m->rope_cos, m->rope_sin}, *moved[2] = {NULL, NULL};
    size_t tb = sizeof(float) * (size_t)m->rope_n_pos * (size_t)(cpt_config_rot_dim(&m->cfg) / 2);
    for (int i = 0; i < 2 && tabs[i]; i++) {
        float *h = malloc(tb ? tb : 1);
        moved[i] = h ? be->alloc(tb) : NULL;
        if (moved[i]) {
            m->be->copy_to_host(h, tabs[i], tb);
            m->be->sync();
            be->copy_to_device(moved[i], h, tb);
            be->sync();
        }
        free(h);
        if (!moved[i]) {
            if (moved[0]) be->free(moved[0]);
            cpt_view_free(&nv);
            be->free(dev);
            return cpt_err_set(err, CPT_ENOMEM, "out of memory moving the RoPE tables to backend '%s'", be->name);
        }
    }
    for (int i = 0; i < 2; i++)
        if (tabs[i]) m->be->free(tabs[i]);
    m->rope_cos = moved[0], m->rope_sin = moved[1];
    cpt_view_free(&m->w);
    m->be->free(m->params);
    int had_lowp = m->lowp != NULL; /* the bf16 copy is remade on the new backend */
    if (had_lowp) m->be->free(m->lowp), m->lowp = NULL;
    m->params = dev, m->w = nv, m->be = be;
    return had_lowp ? cpt_model_set_precision(m, CPT_PREC_BF16, err) : CPT_OK;
}

/* lora.c: the LoRA adapter's parameter set (cpt/lora.h): layout under PEFT's tensor
 * names, PEFT's default initialisation, attach / detach, and the merge. The forward
 * and backward of the adapters are in forward.c (the linear calls). */
#include "cpt/lora.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/backend.h"
#include "model/model-impl.h"

static const char *const target_names[CPT_LORA_NT] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                      "gate_proj", "up_proj", "down_proj"};

const char *cpt_lora_target_name(int t) { return t >= 0 && t < CPT_LORA_NT ? target_names[t] : NULL; }

unsigned cpt_lora_target_bits(const char *name) {
    if (!strcmp(name, "all-linear")) return CPT_LORA_ALL_LINEAR;
    for (int t = 0; t < CPT_LORA_NT; t++)
        if (!strcmp(name, target_names[t])) return 1u << t;
    return 0;
}

/* "self_attn." or "mlp." + target name: the module path inside a decoder layer. */
static const char *target_parent(int t) { return t <= CPT_LORA_O ? "self_attn" : "mlp"; }

static int lora_add(cpt_model *pm, int *cap, const char *name, int64_t d0, int64_t d1, cpt_err *err) {
    if (pm->n_tensors == *cap) {
        int nc = *cap ? *cap * 2 : 64;
        cpt_tensor *t = realloc(pm->tensors, sizeof(cpt_tensor) * (size_t)nc);
        if (!t) return cpt_err_set(err, CPT_ENOMEM, "out of memory building the LoRA tensor table");
        pm->tensors = t;
        *cap = nc;
    }
    cpt_tensor *t = &pm->tensors[pm->n_tensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = 2;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->numel = (size_t)d0 * (size_t)d1;
    t->off = pm->n_params;
    pm->n_params += (t->numel + 15) & ~(size_t)15; /* 64-byte aligned tensors, as the model */
    t->decay = 1;
    return CPT_OK;
}

size_t cpt_lora_n_trainable(const cpt_lora *lo) {
    size_t n = 0;
    for (int i = 0; i < lo->pm->n_tensors; i++) n += lo->pm->tensors[i].numel;
    return n;
}

void cpt_lora_free(cpt_lora *lo) {
    if (!lo) return;
    if (lo->base && lo->base->lora == lo) {
        lo->base->w.embed = lo->base_embed;
        lo->base->w.lm_head = lo->base_lm_head;
        lo->base->lora = NULL;
    }
    if (lo->pm) {
        if (lo->pm->params) lo->pm->be->free(lo->pm->params);
        free(lo->pm->tensors);
        free(lo->pm);
    }
    free(lo->ta);
    free(lo);
}

int cpt_lora_create(cpt_lora **out, cpt_model *m, const cpt_lora_cfg *cfg, uint64_t seed, cpt_err *err) {
    *out = NULL;
    const cpt_config *c = &m->cfg;
    if (m->lora)
        return cpt_err_set(err, CPT_ESTATE, "the model already has a LoRA adapter attached. HINT: merge or free it first");
    if (cfg->rank < 1 || cfg->rank > 65536)
        return cpt_err_set(err, CPT_EINVAL, "lora.rank %d must be in [1, 65536]. HINT: typical ranks are 8-64", cfg->rank);
    if (!(cfg->alpha > 0) || !isfinite(cfg->alpha))
        return cpt_err_set(err, CPT_EINVAL, "lora.alpha %g must be a positive number. HINT: alpha = 2 * rank is common", cfg->alpha);
    if (!(cfg->dropout >= 0 && cfg->dropout < 1))
        return cpt_err_set(err, CPT_EINVAL, "lora.dropout %g must be in [0, 1)", cfg->dropout);
    if (!cfg->targets && !cfg->save_embed && !cfg->save_lm_head)
        return cpt_err_set(err, CPT_EINVAL, "LoRA has nothing to train. HINT: set lora.targets (e.g. [q_proj, v_proj] or all-linear)");
    if (cfg->targets & ~CPT_LORA_ALL_LINEAR) return cpt_err_set(err, CPT_EINVAL, "unknown LoRA target bits 0x%x", cfg->targets);
    if (cfg->save_lm_head && c->tie_embeddings)
        return cpt_err_set(err, CPT_EINVAL, "lora.modules_to_save: lm_head, but this model ties its LM head to embed_tokens (tie_word_embeddings). HINT: list embed_tokens instead");
    cpt_lora *lo = calloc(1, sizeof *lo);
    if (!lo) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    lo->cfg = *cfg;
    lo->seed = seed;
    lo->scale = (float)(cfg->use_rslora ? cfg->alpha / sqrt((double)cfg->rank) : cfg->alpha / cfg->rank);
    lo->n_layers = c->n_layers;
    lo->embed_t = lo->lm_head_t = -1;
    int D = c->hidden_size, I = c->intermediate_size, qd = c->n_heads * c->head_dim, kd = c->n_kv_heads * c->head_dim;
    int in[CPT_LORA_NT] = {D, D, D, qd, D, D, I}, o[CPT_LORA_NT] = {qd, kd, kd, D, I, I, D};
    memcpy(lo->in, in, sizeof in);
    memcpy(lo->out, o, sizeof o);
    lo->pm = calloc(1, sizeof *lo->pm);
    lo->ta = malloc(sizeof(int) * (size_t)c->n_layers * CPT_LORA_NT);
    int rc = CPT_OK, cap = 0, r = cfg->rank;
    if (!lo->pm || !lo->ta) {
        rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
        goto fail;
    }
    cpt_model *pm = lo->pm;
    pm->be = m->be;
    pm->adapter = lo;
    pm->cfg = *c;
    pm->cfg.raw_json = NULL;
    char name[96];
    /* modules_to_save first, then the adapters by layer in PEFT's (module) order. */
    if (cfg->save_embed) {
        lo->embed_t = pm->n_tensors;
        if ((rc = lora_add(pm, &cap, "base_model.model.model.embed_tokens.weight", c->vocab_size, D, err))) goto fail;
    }
    for (int l = 0; l < c->n_layers; l++)
        for (int t = 0; t < CPT_LORA_NT; t++) {
            lo->ta[l * CPT_LORA_NT + t] = -1;
            if (!(cfg->targets & (1u << t))) continue;
            lo->ta[l * CPT_LORA_NT + t] = pm->n_tensors;
            snprintf(name, sizeof name, "base_model.model.model.layers.%d.%s.%s.lora_A.weight", l, target_parent(t),
                     target_names[t]);
            if ((rc = lora_add(pm, &cap, name, r, in[t], err))) goto fail;
            snprintf(name, sizeof name, "base_model.model.model.layers.%d.%s.%s.lora_B.weight", l, target_parent(t),
                     target_names[t]);
            if ((rc = lora_add(pm, &cap, name, o[t], r, err))) goto fail;
        }
    if (cfg->save_lm_head) {
        lo->lm_head_t = pm->n_tensors;
        if ((rc = lora_add(pm, &cap, "base_model.model.lm_head.weight", c->vocab_size, D, err))) goto fail;
    }
    size_t bytes = cpt_model_buffer_bytes(pm);
    float *host = malloc(bytes ? bytes : 1);
    if (!host || !(pm->params = pm->be->alloc(bytes ? bytes : 64))) {
        free(host);
        rc = cpt_err_set(err, CPT_ENOMEM, "out of memory for the LoRA parameters (%zu floats)", pm->n_params);
        goto fail;
    }
    memset(host, 0, bytes);
    /* A: U(-1/sqrt(in), 1/sqrt(in)) = kaiming_uniform_(a = sqrt(5)) (gain sqrt(2 / 6),
     * bound gain * sqrt(3 / fan_in)); B stays 0, so the adapted model starts as the base. */
    uint64_t s = seed ^ 0x6c6f7261ull; /* "lora" */
    for (int l = 0; l < c->n_layers; l++)
        for (int t = 0; t < CPT_LORA_NT; t++) {
            int ti = lo->ta[l * CPT_LORA_NT + t];
            if (ti < 0) continue;
            const cpt_tensor *A = &pm->tensors[ti];
            double bound = 1.0 / sqrt((double)in[t]);
            for (size_t j = 0; j < A->numel; j++) {
                double u = (cpt_splitmix64(&s) >> 11) / 9007199254740992.0;
                host[A->off + j] = (float)((2.0 * u - 1.0) * bound);
            }
        }
    /* modules_to_save copies start as the base tensors (read through the host). */
    if (lo->embed_t >= 0)
        m->be->copy_to_host(host + pm->tensors[lo->embed_t].off, m->w.embed, sizeof(float) * (size_t)c->vocab_size * D);
    if (lo->lm_head_t >= 0)
        m->be->copy_to_host(host + pm->tensors[lo->lm_head_t].off, m->w.lm_head,
                            sizeof(float) * (size_t)c->vocab_size * D);
    pm->be->copy_to_device(pm->params, host, bytes);
    pm->be->sync();
    free(host);
    lo->base = m;
    lo->base_embed = m->w.embed;
    lo->base_lm_head = m->w.lm_head;
    if (lo->embed_t >= 0) m->w.embed = pm->params + pm->tensors[lo->embed_t].off;
    if (lo->lm_head_t >= 0) m->w.lm_head = pm->params + pm->tensors[lo->lm_head_t].off;
    m->lora = lo;
    *out = lo;
    return CPT_OK;
fail:
    cpt_lora_free(lo);
    return rc;
}

void cpt_lora_apply(const cpt_model *m, int l, int t, float *y, const float *x, int n, float *t_r, float *t_y) {
    const cpt_lora *lo = m->lora;
    if (!lo || lo->ta[l * CPT_LORA_NT + t] < 0) return;
    const cpt_backend *be = m->be;
    const cpt_model *pm = lo->pm;
    int ti = lo->ta[l * CPT_LORA_NT + t], r = lo->cfg.rank, K = lo->in[t], O = lo->out[t];
    be->linear_fwd(t_r, x, pm->params + pm->tensors[ti].off, NULL, n, K, r);
    be->scale(t_r, (size_t)n * r, lo->scale);
    be->linear_fwd(t_y, t_r, pm->params + pm->tensors[ti + 1].off, NULL, n, r, O);
    be->add_inplace(y, t_y, (size_t)n * O);
}

void cpt_lora_scratch(const cpt_model *m, size_t *r, size_t *out) {
    *r = *out = 0;
    const cpt_lora *lo = m->lora;
    if (!lo) return;
    *r = (size_t)lo->cfg.rank;
    for (int t = 0; t < CPT_LORA_NT; t++)
        if ((size_t)lo->out[t] > *out) *out = (size_t)lo->out[t];
}

/* The base weight of linear t in layer l. */
static float *base_weight(const cpt_model *m, int l, int t) {
    const cpt_layer_view *L = &m->w.layers[l];
    float *w[CPT_LORA_NT] = {L->wq, L->wk, L->wv, L->wo, L->wg, L->wu, L->wd};
    return w[t];
}

int cpt_lora_merge(cpt_lora *lo, cpt_err *err) {
    cpt_model *m = lo->base, *pm = lo->pm;
    if (!m || m->lora != lo) return cpt_err_set(err, CPT_ESTATE, "the LoRA adapter is not attached to a model");
    size_t vd = sizeof(float) * (size_t)m->cfg.vocab_size * m->cfg.hidden_size;
    if (m->cfg.tie_embeddings && lo->embed_t >= 0) {
        /* PEFT trains a copy of embed_tokens while the tied LM head keeps the original: unless
         * the copy still equals the original, the merged model has two different matrices. */
        float *h0 = malloc(vd), *h1 = malloc(vd);
        int same = 0;
        if (h0 && h1) {
            m->be->copy_to_host(h0, lo->base_embed, vd);
            m->be->copy_to_host(h1, pm->params + pm->tensors[lo->embed_t].off, vd);
            m->be->sync();
            same = !memcmp(h0, h1, vd);
        }
        free(h0), free(h1);
        if (!same)
            return cpt_err_set(err, CPT_EUNSUPPORTED, "cannot merge: the model ties lm_head to embed_tokens, but the adapter trained a separate embed_tokens copy (lora.modules_to_save) while the LM head kept the original, as PEFT does. HINT: keep the adapter unmerged (load it with PEFT), or train without embed_tokens in lora.modules_to_save");
    }
    /* W [out, in] += s * B [out, r] A [r, in], through the backend: linear_bwd's dW
     * term accumulates dy^T x; with dy = s B^T [r, out] and x = A [r, in] (N = r) that
     * is s B A. (W is passed as the unused dx operand's weight: dx is NULL.) */
    const cpt_backend *be = m->be;
    int r = lo->cfg.rank, maxo = 0;
    for (int t = 0; t < CPT_LORA_NT; t++) maxo = lo->out[t] > maxo ? lo->out[t] : maxo;
    /* sBt [r, out]: s * B^T, so that dW += sBt^T A = s B A. */
    float *sbt = be->alloc(sizeof(float) * (size_t)r * maxo);
    float *hb = malloc(sizeof(float) * (size_t)r * maxo), *ht = malloc(sizeof(float) * (size_t)r * maxo);
    if (!sbt || !hb || !ht) {
        if (sbt) be->free(sbt);
        free(hb), free(ht);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory merging the LoRA adapter");
    }
    for (int l = 0; l < lo->n_layers; l++)
        for (int t = 0; t < CPT_LORA_NT; t++) {
            int ti = lo->ta[l * CPT_LORA_NT + t];
            if (ti < 0) continue;
            int O = lo->out[t], K = lo->in[t];
            const float *A = pm->params + pm->tensors[ti].off, *B = pm->params + pm->tensors[ti + 1].off;
            be->copy_to_host(hb, B, sizeof(float) * (size_t)O * r);
            be->sync();
            for (int o = 0; o < O; o++)
                for (int j = 0; j < r; j++) ht[(size_t)j * O + o] = lo->scale * hb[(size_t)o * r + j];
            be->copy_to_device(sbt, ht, sizeof(float) * (size_t)r * O);
            float *W = base_weight(m, l, t);
            be->linear_bwd(NULL, W, NULL, sbt, A, W, r, K, O, 0);
            be->sync();
        }
    be->free(sbt);
    free(hb), free(ht);
    /* Write the modules_to_save copies over the model's own tensors and restore its views. */
    m->w.embed = lo->base_embed;
    m->w.lm_head = lo->base_lm_head;
    if (lo->embed_t >= 0) {
        float *h = malloc(vd);
        if (!h) return cpt_err_set(err, CPT_ENOMEM, "out of memory merging the LoRA adapter");
        be->copy_to_host(h, pm->params + pm->tensors[lo->embed_t].off, vd);
        be->sync();
        be->copy_to_device(lo->base_embed, h, vd);
        be->sync();
        free(h);
    }
    if (lo->lm_head_t >= 0) {
        float *h = malloc(vd);
        if (!h) return cpt_err_set(err, CPT_ENOMEM, "out of memory merging the LoRA adapter");
        be->copy_to_host(h, pm->params + pm->tensors[lo->lm_head_t].off, vd);
        be->sync();
        be->copy_to_device(lo->base_lm_head, h, vd);
        be->sync();
        free(h);
    }
    m->lora = NULL;
    return CPT_OK;
}

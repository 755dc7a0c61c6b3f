/* decode.c: incremental decoding with a KV cache (one token per call), for generation.
 * Same math as forward.c in inference form; the cache holds post-RoPE keys and values.
 * The cache and its scratch are backend memory (m->be->alloc): the token and its
 * position go in with copy_to_device, the logits come out with copy_to_host, and the
 * new key and value rows are written by the kernels straight into their cache slots. In bf16
 * precision the linear layers and the LM head multiply with the bf16 weight copy (a one-row
 * product is bound by reading the weights, which bf16 halves); attention stays fp32. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/backend.h"
#include "cpt/lora.h"
#include "cpt/model.h"
#include "model/model-impl.h"

/* struct cpt_kvcache is in model/model-impl.h (cpt_model_prefill fills it). */

/* The cache's buffers and their bytes, in one table so that cpt_kvcache_plan_bytes counts
 * exactly what cpt_kvcache_create allocates. slot[i] NULL: the table is only sized. */
enum { KV_NB = 22 };
static void kv_table(const cpt_model *m, int max_len, cpt_kvcache *kc, void **slot[KV_NB], size_t bytes[KV_NB]) {
    const cpt_config *c = &m->cfg;
    size_t D = (size_t)c->hidden_size, qd = (size_t)c->n_heads * c->head_dim, I = (size_t)c->intermediate_size,
           kd = (size_t)c->n_kv_heads * c->head_dim, f = sizeof(float), kvn = (size_t)c->n_layers * (size_t)max_len * kd;
    size_t lr, lw;
    cpt_lora_scratch(m, &lr, &lw);
    size_t ws = m->be->attn_workspace_bytes(1, max_len, c->head_dim, omp_get_max_threads());
    size_t b[KV_NB] = {f * kvn, f * kvn, f * D, f * D, f * D, f * qd, f * qd, f * qd, f * kd, f * I, f * I, f * I,
                       f * (size_t)c->n_heads, ws, f * 4, f * (size_t)c->n_heads, f * (size_t)c->n_kv_heads, sizeof(int32_t) * 2,
                       f * (size_t)c->vocab_size, f * lr, f * lw, sizeof(uint16_t) * cpt_infer_xs_per_row(c)};
    memcpy(bytes, b, sizeof b);
    if (!kc) return;
    void **p[KV_NB] = {(void **)&kc->k, (void **)&kc->v, (void **)&kc->x, (void **)&kc->xn, (void **)&kc->tmp, (void **)&kc->q,
                       (void **)&kc->att, (void **)&kc->qr, (void **)&kc->kr, (void **)&kc->g, (void **)&kc->u, (void **)&kc->h,
                       (void **)&kc->scores, (void **)&kc->ws, (void **)&kc->rstd, (void **)&kc->qrs, (void **)&kc->krs,
                       (void **)&kc->tok, (void **)&kc->logits, (void **)&kc->lora_t, (void **)&kc->lora_y, (void **)&kc->xs16};
    memcpy(slot, p, sizeof p);
    kc->ws_bytes = ws;
    kc->lora_r = (int)lr;
}

size_t cpt_kvcache_plan_bytes(const cpt_model *m, int max_len) {
    void **slot[KV_NB];
    size_t bytes[KV_NB], tot = 0;
    if (max_len <= 0) return 0;
    kv_table(m, max_len, NULL, slot, bytes);
    for (int i = 0; i < KV_NB; i++) tot += bytes[i];
    return tot;
}

int cpt_kvcache_create(cpt_kvcache **out, const cpt_model *m, int max_len, cpt_err *err) {
    const cpt_config *c = &m->cfg;
    *out = NULL;
    if (max_len <= 0) return cpt_err_set(err, CPT_EINVAL, "KV cache length must be positive");
    cpt_kvcache *kc = calloc(1, sizeof *kc);
    if (!kc) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    const cpt_backend *be = kc->be = m->be;
    kc->max_len = max_len, kc->L = c->n_layers, kc->kd = c->n_kv_heads * c->head_dim, kc->V = c->vocab_size;
    void **slot[KV_NB];
    size_t bytes[KV_NB];
    kv_table(m, max_len, kc, slot, bytes);
    for (int i = 0; i < KV_NB; i++) {
        if (!bytes[i]) continue; /* no LoRA: no adapter scratch */
        if (!(*slot[i] = be->alloc(bytes[i]))) {
            cpt_kvcache_free(kc);
            return cpt_err_set(err, CPT_ENOMEM, "out of memory for a KV cache of %d tokens", max_len);
        }
    }
    *out = kc;
    return CPT_OK;
}

void cpt_kvcache_free(cpt_kvcache *c) {
    if (!c) return;
    void *ps[] = {c->k, c->v, c->x, c->xn, c->q, c->att, c->tmp, c->g, c->u, c->h, c->scores, c->rstd,
                  c->ws, c->qr, c->kr, c->qrs, c->krs, c->tok, c->logits, c->lora_t, c->lora_y, c->xs16};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        if (ps[i]) c->be->free(ps[i]);
    free(c);
}

int cpt_kvcache_len(const cpt_kvcache *c) { return c->len; }

int cpt_model_decode(cpt_model *m, cpt_kvcache *kc, int32_t token, float *logits, cpt_err *err) {
    const cpt_backend *be = m->be;
    const cpt_config *c = &m->cfg;
    int D = c->hidden_size, V = c->vocab_size, I = c->intermediate_size, H = c->n_heads, KV = c->n_kv_heads;
    int hd = c->head_dim, qd = H * hd, kd = KV * hd, rot = cpt_config_rot_dim(c);
    float eps = (float)c->rms_eps, scale = 1.0f / sqrtf((float)hd);
    if (kc->len >= kc->max_len) return cpt_err_set(err, CPT_EINVAL, "KV cache is full (%d tokens)", kc->max_len);
    if (token < 0 || token >= V) return cpt_err_set(err, CPT_EINVAL, "token id %d is outside the vocabulary [0, %d)", token, V);
    int pos = kc->len, rc;
    if (c->sliding_window > 0 && pos >= c->sliding_window)
        return cpt_err_set(err, CPT_EUNSUPPORTED, "generation past the sliding window (%lld tokens) is not implemented", c->sliding_window);
    if ((rc = cpt_model_ensure_rope(m, pos + 1, err))) return rc;
    if (be != kc->be) return cpt_err_set(err, CPT_ESTATE, "the model changed backend after its KV cache was made");
    if (kc->lora_r != (m->lora ? m->lora->cfg.rank : 0))
        return cpt_err_set(err, CPT_ESTATE, "the KV cache was made %s a LoRA adapter of rank %d. HINT: make the cache after attaching (or merging) the adapter",
                           kc->lora_r ? "for" : "without", kc->lora_r ? kc->lora_r : m->lora->cfg.rank);
    float *lt = kc->lora_t, *ly = kc->lora_y;
    const int32_t tp[2] = {token, pos};
    be->copy_to_device(kc->tok, tp, sizeof tp);
    const int32_t *dtok = kc->tok, *p32 = kc->tok + 1;
    be->embed_fwd(kc->x, m->w.embed, dtok, 1, D);
    for (int l = 0; l < c->n_layers; l++) {
        const cpt_layer_view *L = &m->w.layers[l];
        float *kcache = kc->k + (size_t)l * kc->max_len * kd, *vcache = kc->v + (size_t)l * kc->max_len * kd;
        float *knew = kcache + (size_t)pos * kd, *vnew = vcache + (size_t)pos * kd; /* this token's cache rows */
        be->rmsnorm_fwd(kc->xn, kc->rstd, kc->x, L->attn_norm, 1, D, eps);
        if (c->qk_norm) {
            cpt_model_linear_infer(m, kc->qr, kc->xn, L->wq, L->bq, 1, D, qd, kc->xs16);
            cpt_lora_apply(m, l, CPT_LORA_Q, kc->qr, kc->xn, 1, lt, ly);
            cpt_model_linear_infer(m, kc->kr, kc->xn, L->wk, L->bk, 1, D, kd, kc->xs16);
            cpt_lora_apply(m, l, CPT_LORA_K, kc->kr, kc->xn, 1, lt, ly);
            be->rmsnorm_fwd(kc->q, kc->qrs, kc->qr, L->q_norm, H, hd, eps);
            be->rmsnorm_fwd(knew, kc->krs, kc->kr, L->k_norm, KV, hd, eps);
        } else {
            cpt_model_linear_infer(m, kc->q, kc->xn, L->wq, L->bq, 1, D, qd, kc->xs16);
            cpt_lora_apply(m, l, CPT_LORA_Q, kc->q, kc->xn, 1, lt, ly);
            cpt_model_linear_infer(m, knew, kc->xn, L->wk, L->bk, 1, D, kd, kc->xs16);
            cpt_lora_apply(m, l, CPT_LORA_K, knew, kc->xn, 1, lt, ly);
        }
        cpt_model_linear_infer(m, vnew, kc->xn, L->wv, L->bv, 1, D, kd, kc->xs16);
        cpt_lora_apply(m, l, CPT_LORA_V, vnew, kc->xn, 1, lt, ly);
        be->rope_fwd(kc->q, m->rope_cos, m->rope_sin, p32, 1, H, hd, rot);
        be->rope_fwd(knew, m->rope_cos, m->rope_sin, p32, 1, KV, hd, rot);
        /* the new query row at position pos against the pos+1 cached keys: the training kernel */
        if (be->attn_fwd(kc->att, kc->scores, kc->q, kcache, vcache, NULL, NULL, 1, 1, pos + 1, pos, H, KV, hd, scale,
                         kc->ws, kc->ws_bytes))
            return cpt_err_set(err, CPT_EINVAL, "attention refused its arguments in layer %d", l);
        cpt_model_linear_infer(m, kc->tmp, kc->att, L->wo, L->bo, 1, qd, D, kc->xs16);
        cpt_lora_apply(m, l, CPT_LORA_O, kc->tmp, kc->att, 1, lt, ly);
        be->add_inplace(kc->x, kc->tmp, D);
        be->rmsnorm_fwd(kc->xn, kc->rstd, kc->x, L->mlp_norm, 1, D, eps);
        cpt_model_linear_infer(m, kc->g, kc->xn, L->wg, L->bg, 1, D, I, kc->xs16);
        cpt_lora_apply(m, l, CPT_LORA_GATE, kc->g, kc->xn, 1, lt, ly);
        cpt_model_linear_infer(m, kc->u, kc->xn, L->wu, L->bu, 1, D, I, kc->xs16);
        cpt_lora_apply(m, l, CPT_LORA_UP, kc->u, kc->xn, 1, lt, ly);
        be->swiglu_fwd(kc->h, kc->g, kc->u, (size_t)I);
        cpt_model_linear_infer(m, kc->tmp, kc->h, L->wd, L->bd, 1, I, D, kc->xs16);
        cpt_lora_apply(m, l, CPT_LORA_DOWN, kc->tmp, kc->h, 1, lt, ly);
        be->add_inplace(kc->x, kc->tmp, D);
    }
    be->rmsnorm_fwd(kc->xn, kc->rstd, kc->x, m->w.final_norm, 1, D, eps);
    cpt_model_linear_infer(m, kc->logits, kc->xn, m->w.lm_head, NULL, 1, D, V, kc->xs16);
    be->copy_to_host(logits, kc->logits, sizeof(float) * (size_t)V);
    be->sync(); /* the caller reads the logits now */
    kc->len++;
    return CPT_OK;
}

/* decode.c: incremental decoding with a KV cache (one token per call), for generation.
 * Same math as forward.c in inference form; the cache holds post-RoPE keys and values. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/backend.h"
#include "cpt/model.h"

struct cpt_kvcache {
    int max_len, len, L, kd;
    size_t ws_bytes;            /* attention tile scratch */
    float *k, *v;                     /* [L][max_len, kd] */
    float *x, *xn, *q, *kk, *vv, *att, *tmp, *g, *u, *h, *scores, *rstd, *ws, *qr, *kr, *qrs, *krs;
};

int cpt_kvcache_create(cpt_kvcache **out, const cpt_model *m, int max_len, cpt_err *err) {
    const cpt_config *c = &m->cfg;
    *out = NULL;
    if (max_len <= 0) return cpt_err_set(err, CPT_EINVAL, "KV cache length must be positive");
    cpt_kvcache *kc = calloc(1, sizeof *kc);
    if (!kc) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    int D = c->hidden_size, qd = c->n_heads * c->head_dim, I = c->intermediate_size;
    kc->max_len = max_len, kc->L = c->n_layers, kc->kd = c->n_kv_heads * c->head_dim;
    size_t kvn = (size_t)c->n_layers * max_len * kc->kd;
    kc->k = malloc(sizeof(float) * kvn);
    kc->v = malloc(sizeof(float) * kvn);
    kc->x = malloc(sizeof(float) * D), kc->xn = malloc(sizeof(float) * D), kc->tmp = malloc(sizeof(float) * D);
    kc->q = malloc(sizeof(float) * qd), kc->att = malloc(sizeof(float) * qd), kc->qr = malloc(sizeof(float) * qd);
    kc->kk = malloc(sizeof(float) * kc->kd), kc->vv = malloc(sizeof(float) * kc->kd), kc->kr = malloc(sizeof(float) * kc->kd);
    kc->g = malloc(sizeof(float) * I), kc->u = malloc(sizeof(float) * I), kc->h = malloc(sizeof(float) * I);
    kc->scores = malloc(sizeof(float) * c->n_heads); /* the new row's log-sum-exp per head */
    kc->ws_bytes = m->be->attn_workspace_bytes(1, max_len, c->head_dim, omp_get_max_threads());
    kc->ws = malloc(kc->ws_bytes);
    kc->rstd = malloc(sizeof(float) * 4);
    kc->qrs = malloc(sizeof(float) * c->n_heads), kc->krs = malloc(sizeof(float) * c->n_kv_heads);
    if (!kc->k || !kc->v || !kc->x || !kc->xn || !kc->tmp || !kc->q || !kc->att || !kc->qr || !kc->kk || !kc->vv ||
        !kc->kr || !kc->g || !kc->u || !kc->h || !kc->scores || !kc->ws || !kc->rstd || !kc->qrs || !kc->krs) {
        cpt_kvcache_free(kc);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory for a KV cache of %d tokens", max_len);
    }
    *out = kc;
    return CPT_OK;
}

void cpt_kvcache_free(cpt_kvcache *c) {
    if (!c) return;
    float *ps[] = {c->k, c->v, c->x, c->xn, c->q, c->kk, c->vv, c->att, c->tmp, c->g, c->u, c->h, c->scores,
                   c->rstd, c->ws, c->qr, c->kr, c->qrs, c->krs};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) free(ps[i]);
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
    int32_t p32 = pos;
    be->embed_fwd(kc->x, m->w.embed, &token, 1, D);
    for (int l = 0; l < c->n_layers; l++) {
        const cpt_layer_view *L = &m->w.layers[l];
        float *kcache = kc->k + (size_t)l * kc->max_len * kd, *vcache = kc->v + (size_t)l * kc->max_len * kd;
        be->rmsnorm_fwd(kc->xn, kc->rstd, kc->x, L->attn_norm, 1, D, eps);
        if (c->qk_norm) {
            be->linear_fwd(kc->qr, kc->xn, L->wq, L->bq, 1, D, qd);
            be->linear_fwd(kc->kr, kc->xn, L->wk, L->bk, 1, D, kd);
            be->rmsnorm_fwd(kc->q, kc->qrs, kc->qr, L->q_norm, H, hd, eps);
            be->rmsnorm_fwd(kc->kk, kc->krs, kc->kr, L->k_norm, KV, hd, eps);
        } else {
            be->linear_fwd(kc->q, kc->xn, L->wq, L->bq, 1, D, qd);
            be->linear_fwd(kc->kk, kc->xn, L->wk, L->bk, 1, D, kd);
        }
        be->linear_fwd(kc->vv, kc->xn, L->wv, L->bv, 1, D, kd);
        be->rope_fwd(kc->q, m->rope_cos, m->rope_sin, &p32, 1, H, hd, rot);
        be->rope_fwd(kc->kk, m->rope_cos, m->rope_sin, &p32, 1, KV, hd, rot);
        memcpy(kcache + (size_t)pos * kd, kc->kk, sizeof(float) * kd);
        memcpy(vcache + (size_t)pos * kd, kc->vv, sizeof(float) * kd);
        /* the new query row at position pos against the pos+1 cached keys: the training kernel */
        if (be->attn_fwd(kc->att, kc->scores, kc->q, kcache, vcache, NULL, NULL, 1, 1, pos + 1, pos, H, KV, hd, scale,
                         kc->ws, kc->ws_bytes))
            return cpt_err_set(err, CPT_EINVAL, "attention refused its arguments in layer %d", l);
        be->linear_fwd(kc->tmp, kc->att, L->wo, L->bo, 1, qd, D);
        be->add_inplace(kc->x, kc->tmp, D);
        be->rmsnorm_fwd(kc->xn, kc->rstd, kc->x, L->mlp_norm, 1, D, eps);
        be->linear_fwd(kc->g, kc->xn, L->wg, L->bg, 1, D, I);
        be->linear_fwd(kc->u, kc->xn, L->wu, L->bu, 1, D, I);
        be->swiglu_fwd(kc->h, kc->g, kc->u, (size_t)I);
        be->linear_fwd(kc->tmp, kc->h, L->wd, L->bd, 1, I, D);
        be->add_inplace(kc->x, kc->tmp, D);
    }
    be->rmsnorm_fwd(kc->xn, kc->rstd, kc->x, m->w.final_norm, 1, D, eps);
    be->linear_fwd(logits, kc->xn, m->w.lm_head, NULL, 1, D, V);
    kc->len++;
    return CPT_OK;
}

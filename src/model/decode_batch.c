/* decode_batch.c: one decoding step for several sequences at once (cpt_model_decode_batch).
 * Decoding one sequence is a chain of matrix-vector products, bound by reading the weights;
 * with B sequences each weight read serves B rows, so the linear layers and the LM head
 * become B-row products. Attention stays per sequence, against that sequence's own KV cache
 * (lengths differ). Same kernels and math as decode.c (bf16 products in bf16 precision). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/backend.h"
#include "cpt/lora.h"
#include "cpt/model.h"
#include "model/model-impl.h"

struct cpt_decode_batch {
    const cpt_backend *be;
    int B;
    int32_t *tok;  /* [2B]: the tokens, then their positions */
    float *x, *xn, *q, *k, *v, *att, *tmp, *g, *u, *h, *rstd, *qr, *kr, *qrs, *krs, *logits;
    uint16_t *xs16;        /* [B, max(D, q dim, I)]: products' inputs in bf16 (bf16 precision) */
    int lora_r;            /* rank of the model's LoRA adapter at creation (0: none) */
    float *lora_t, *lora_y; /* its scratch, [B, r] and [B, max out] */
};

void cpt_decode_batch_free(cpt_decode_batch *d) {
    if (!d) return;
    void *ps[] = {d->tok, d->x, d->xn, d->q, d->k, d->v, d->att, d->tmp, d->g, d->u, d->h,
                  d->rstd, d->qr, d->kr, d->qrs, d->krs, d->logits, d->lora_t, d->lora_y, d->xs16};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        if (ps[i]) d->be->free(ps[i]);
    free(d);
}

int cpt_decode_batch_create(cpt_decode_batch **out, const cpt_model *m, int B, cpt_err *err) {
    *out = NULL;
    if (B < 1 || B > 4096) return cpt_err_set(err, CPT_EINVAL, "decode batch of %d sequences (1 to 4096)", B);
    const cpt_config *c = &m->cfg;
    cpt_decode_batch *d = calloc(1, sizeof *d);
    if (!d) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    const cpt_backend *be = d->be = m->be;
    d->B = B;
    size_t f = sizeof(float), b = (size_t)B, D = (size_t)c->hidden_size, qd = (size_t)c->n_heads * c->head_dim,
           kd = (size_t)c->n_kv_heads * c->head_dim, I = (size_t)c->intermediate_size;
    d->tok = be->alloc(sizeof(int32_t) * 2 * b);
    d->x = be->alloc(f * b * D), d->xn = be->alloc(f * b * D), d->tmp = be->alloc(f * b * D);
    d->q = be->alloc(f * b * qd), d->att = be->alloc(f * b * qd), d->qr = be->alloc(f * b * qd);
    d->k = be->alloc(f * b * kd), d->v = be->alloc(f * b * kd), d->kr = be->alloc(f * b * kd);
    d->g = be->alloc(f * b * I), d->u = be->alloc(f * b * I), d->h = be->alloc(f * b * I);
    d->rstd = be->alloc(f * b), d->qrs = be->alloc(f * b * c->n_heads), d->krs = be->alloc(f * b * c->n_kv_heads);
    d->logits = be->alloc(f * b * (size_t)c->vocab_size);
    d->xs16 = be->alloc(sizeof(uint16_t) * b * cpt_infer_xs_per_row(c));
    size_t lr, lw;
    cpt_lora_scratch(m, &lr, &lw);
    if (lr && (!(d->lora_t = be->alloc(f * b * lr)) || !(d->lora_y = be->alloc(f * b * lw)))) {
        cpt_decode_batch_free(d);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory for a decode batch of %d", B);
    }
    d->lora_r = (int)lr;
    if (!d->tok || !d->x || !d->xn || !d->tmp || !d->q || !d->att || !d->qr || !d->k || !d->v || !d->kr || !d->g || !d->u ||
        !d->h || !d->rstd || !d->qrs || !d->krs || !d->logits || !d->xs16) {
        cpt_decode_batch_free(d);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory for a decode batch of %d", B);
    }
    *out = d;
    return CPT_OK;
}

int cpt_model_decode_batch(cpt_model *m, cpt_decode_batch *d, cpt_kvcache *const *kc, int n, const int32_t *tokens,
                           float *logits, cpt_err *err) {
    const cpt_backend *be = m->be;
    const cpt_config *c = &m->cfg;
    int D = c->hidden_size, V = c->vocab_size, I = c->intermediate_size, H = c->n_heads, KV = c->n_kv_heads;
    int hd = c->head_dim, qd = H * hd, kd = KV * hd, rot = cpt_config_rot_dim(c);
    float eps = (float)c->rms_eps, scale = 1.0f / sqrtf((float)hd);
    if (n < 1 || n > d->B) return cpt_err_set(err, CPT_EINVAL, "decode batch: %d sequences for a batch of %d", n, d->B);
    if (be != d->be) return cpt_err_set(err, CPT_ESTATE, "the model changed backend after its decode batch was made");
    if (d->lora_r != (m->lora ? m->lora->cfg.rank : 0))
        return cpt_err_set(err, CPT_ESTATE, "the decode batch was made %s a LoRA adapter of rank %d. HINT: make it after attaching (or merging) the adapter",
                           d->lora_r ? "for" : "without", d->lora_r ? d->lora_r : m->lora->cfg.rank);
    float *lt = d->lora_t, *ly = d->lora_y;
    int32_t *tp = malloc(sizeof(int32_t) * 2 * (size_t)n);
    if (!tp) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    int maxpos = 0, rc = CPT_OK;
    for (int b = 0; b < n && !rc; b++) {
        const cpt_kvcache *k = kc[b];
        if (k->be != be) rc = cpt_err_set(err, CPT_ESTATE, "sequence %d: its KV cache belongs to another backend", b);
        else if (k->len >= k->max_len) rc = cpt_err_set(err, CPT_EINVAL, "sequence %d: KV cache is full (%d tokens)", b, k->max_len);
        else if (tokens[b] < 0 || tokens[b] >= V)
            rc = cpt_err_set(err, CPT_EINVAL, "sequence %d: token id %d is outside the vocabulary [0, %d)", b, tokens[b], V);
        else if (c->sliding_window > 0 && k->len >= c->sliding_window)
            rc = cpt_err_set(err, CPT_EUNSUPPORTED, "generation past the sliding window (%lld tokens) is not implemented", c->sliding_window);
        for (int j = 0; j < b && !rc; j++)
            if (kc[j] == k) rc = cpt_err_set(err, CPT_EINVAL, "sequences %d and %d share one KV cache", j, b);
        tp[b] = tokens[b], tp[n + b] = k->len;
        if (k->len > maxpos) maxpos = k->len;
    }
    if (!rc) rc = cpt_model_ensure_rope(m, maxpos + 1, err);
    if (rc) {
        free(tp);
        return rc;
    }
    be->copy_to_device(d->tok, tp, sizeof(int32_t) * 2 * (size_t)n);
    const int32_t *dtok = d->tok, *p32 = d->tok + n;
    be->embed_fwd(d->x, m->w.embed, dtok, n, D);
    for (int l = 0; l < c->n_layers; l++) {
        const cpt_layer_view *L = &m->w.layers[l];
        be->rmsnorm_fwd(d->xn, d->rstd, d->x, L->attn_norm, n, D, eps);
        if (c->qk_norm) {
            cpt_model_linear_infer(m, d->qr, d->xn, L->wq, L->bq, n, D, qd, d->xs16);
            cpt_lora_apply(m, l, CPT_LORA_Q, d->qr, d->xn, n, lt, ly);
            cpt_model_linear_infer(m, d->kr, d->xn, L->wk, L->bk, n, D, kd, d->xs16);
            cpt_lora_apply(m, l, CPT_LORA_K, d->kr, d->xn, n, lt, ly);
            be->rmsnorm_fwd(d->q, d->qrs, d->qr, L->q_norm, n * H, hd, eps);
            be->rmsnorm_fwd(d->k, d->krs, d->kr, L->k_norm, n * KV, hd, eps);
        } else {
            cpt_model_linear_infer(m, d->q, d->xn, L->wq, L->bq, n, D, qd, d->xs16);
            cpt_lora_apply(m, l, CPT_LORA_Q, d->q, d->xn, n, lt, ly);
            cpt_model_linear_infer(m, d->k, d->xn, L->wk, L->bk, n, D, kd, d->xs16);
            cpt_lora_apply(m, l, CPT_LORA_K, d->k, d->xn, n, lt, ly);
        }
        cpt_model_linear_infer(m, d->v, d->xn, L->wv, L->bv, n, D, kd, d->xs16);
        cpt_lora_apply(m, l, CPT_LORA_V, d->v, d->xn, n, lt, ly);
        be->rope_fwd(d->q, m->rope_cos, m->rope_sin, p32, n, H, hd, rot);
        be->rope_fwd(d->k, m->rope_cos, m->rope_sin, p32, n, KV, hd, rot);
        for (int b = 0; b < n; b++) {
            cpt_kvcache *k = kc[b];
            int pos = tp[n + b];
            float *kcache = k->k + (size_t)l * k->max_len * kd, *vcache = k->v + (size_t)l * k->max_len * kd;
            be->copy(kcache + (size_t)pos * kd, d->k + (size_t)b * kd, sizeof(float) * (size_t)kd);
            be->copy(vcache + (size_t)pos * kd, d->v + (size_t)b * kd, sizeof(float) * (size_t)kd);
            if (be->attn_fwd(d->att + (size_t)b * qd, k->scores, d->q + (size_t)b * qd, kcache, vcache, NULL, NULL, 1, 1, pos + 1,
                             pos, H, KV, hd, scale, k->ws, k->ws_bytes)) {
                free(tp);
                return cpt_err_set(err, CPT_EINVAL, "attention refused its arguments in layer %d (sequence %d)", l, b);
            }
        }
        cpt_model_linear_infer(m, d->tmp, d->att, L->wo, L->bo, n, qd, D, d->xs16);
        cpt_lora_apply(m, l, CPT_LORA_O, d->tmp, d->att, n, lt, ly);
        be->add_inplace(d->x, d->tmp, (size_t)n * D);
        be->rmsnorm_fwd(d->xn, d->rstd, d->x, L->mlp_norm, n, D, eps);
        cpt_model_linear_infer(m, d->g, d->xn, L->wg, L->bg, n, D, I, d->xs16);
        cpt_lora_apply(m, l, CPT_LORA_GATE, d->g, d->xn, n, lt, ly);
        cpt_model_linear_infer(m, d->u, d->xn, L->wu, L->bu, n, D, I, d->xs16);
        cpt_lora_apply(m, l, CPT_LORA_UP, d->u, d->xn, n, lt, ly);
        be->swiglu_fwd(d->h, d->g, d->u, (size_t)n * I);
        cpt_model_linear_infer(m, d->tmp, d->h, L->wd, L->bd, n, I, D, d->xs16);
        cpt_lora_apply(m, l, CPT_LORA_DOWN, d->tmp, d->h, n, lt, ly);
        be->add_inplace(d->x, d->tmp, (size_t)n * D);
    }
    be->rmsnorm_fwd(d->xn, d->rstd, d->x, m->w.final_norm, n, D, eps);
    cpt_model_linear_infer(m, d->logits, d->xn, m->w.lm_head, NULL, n, D, V, d->xs16);
    be->copy_to_host(logits, d->logits, sizeof(float) * (size_t)n * V);
    be->sync();
    for (int b = 0; b < n; b++) kc[b]->len++;
    free(tp);
    return CPT_OK;
}

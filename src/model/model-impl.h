/* model-impl.h: private helpers shared by the model's source files. */
#ifndef CPT_MODEL_IMPL_H
#define CPT_MODEL_IMPL_H

#include "cpt/model.h"
#include "cpt/ops.h"

/* Like cpt_model_view, but tensors flagged in `frozen` get NULL pointers. */
int cpt_model_view_masked(const cpt_model *m, float *base, const uint8_t *frozen, cpt_view *v, cpt_err *err);

/* The KV cache's layout, for cpt_model_prefill (forward.c) to fill it in one forward. */
struct cpt_kvcache {
    const struct cpt_backend *be; /* the model's backend at creation: owns every buffer below */
    int max_len, len, L, kd, V;
    int32_t *tok;               /* [2] the token and its position, in backend memory */
    float *logits;              /* [V] */
    size_t ws_bytes;            /* attention tile scratch */
    float *k, *v;               /* [L][max_len, kd], post-RoPE keys and the values */
    float *x, *xn, *q, *att, *tmp, *g, *u, *h, *scores, *rstd, *ws, *qr, *kr, *qrs, *krs;
};

#endif

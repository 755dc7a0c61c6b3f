/* model-impl.h: private helpers shared by the model's source files. */
#ifndef CPT_MODEL_IMPL_H
#define CPT_MODEL_IMPL_H

#include "cpt/model.h"
#include "cpt/ops.h"

/* Like cpt_model_view, but tensors flagged in `frozen` get NULL pointers, and with a window
 * (win_n > 0) `base` holds only the parameter range [win_off, win_off + win_n): tensors
 * inside it point to base + (off - win_off), tensors outside it get NULL. */
int cpt_model_view_masked(const cpt_model *m, float *base, const uint8_t *frozen, size_t win_off, size_t win_n, cpt_view *v,
                          cpt_err *err);

/* The KV cache's layout, for cpt_model_prefill (forward.c) to fill it in one forward. */
struct cpt_kvcache {
    const struct cpt_backend *be; /* the model's backend at creation: owns every buffer below */
    int max_len, len, L, kd, V;
    int32_t *tok;               /* [2] the token and its position, in backend memory */
    float *logits;              /* [V] */
    size_t ws_bytes;            /* attention tile scratch */
    float *k, *v;               /* [L][max_len, kd], post-RoPE keys and the values */
    float *x, *xn, *q, *att, *tmp, *g, *u, *h, *scores, *rstd, *ws, *qr, *kr, *qrs, *krs;
    uint16_t *xs16;             /* [max(D, q dim, I)]: a product's input rounded to bf16 (bf16 precision) */
    int lora_r;                 /* rank of the LoRA adapter the model had at creation (0: none) */
    float *lora_t, *lora_y;     /* its scratch: [r] and [max out features] */
};

/* y[N, O] = x W^T + b in decoding (decode.c, decode_batch.c): with the model's bf16 copy
 * when it has one (cpt_model_set_precision; xs: N x K bf16 scratch), else fp32. */
void cpt_model_linear_infer(const cpt_model *m, float *y, const float *x, const float *W, const float *b, int N, int K, int O,
                            uint16_t *xs);
/* Elements of that scratch per row: the widest input of a decoder linear, max(D, q dim, I). */
static inline size_t cpt_infer_xs_per_row(const cpt_config *c) {
    size_t D = (size_t)c->hidden_size, qd = (size_t)c->n_heads * c->head_dim, I = (size_t)c->intermediate_size;
    size_t w = D > qd ? D : qd;
    return w > I ? w : I;
}

/* LoRA in inference (decode.c, decode_batch.c): y[n, out] += s * (x A^T) B^T for linear t
 * (CPT_LORA_*) of layer l when the model's adapter targets it, the same kernels and order as
 * the training forward; t_r [n, r] and t_y [n, out] backend scratch. No-op without one. */
void cpt_lora_apply(const cpt_model *m, int l, int t, float *y, const float *x, int n, float *t_r, float *t_y);
/* The scratch sizes (floats per row) that needs: rank and the widest output (0, 0: no adapter). */
void cpt_lora_scratch(const cpt_model *m, size_t *r, size_t *out);

#endif

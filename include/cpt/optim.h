/* cpt/optim.h: AdamW over a model's flat parameter buffer, exactly as
 * torch.optim.AdamW (methods.md 3.1), with per-tensor weight-decay groups (tensor
 * table `decay` flag: matrices and embeddings decay, norms and biases do not),
 * per-tensor LR multipliers and frozen tensors; and global-norm gradient clipping as
 * torch.nn.utils.clip_grad_norm_ (methods.md 3.2). Moments m, v share the parameter
 * layout, so they are saved and restored as whole buffers. */
#ifndef CPT_OPTIM_H
#define CPT_OPTIM_H

#include "cpt/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cpt_adamw_cfg {
    double lr;           /* peak LR; the per-step LR is passed to cpt_adamw_step */
    double beta1, beta2; /* (0.9, 0.999) in torch; CPT usually (0.9, 0.95) */
    double eps;          /* 1e-8 */
    double weight_decay; /* applied to tensors with decay = 1 */
} cpt_adamw_cfg;

typedef struct cpt_adamw {
    size_t off, n;  /* the view: parameters [off, off + n) of the flat buffer (ZeRO-1 shard);
                       the whole buffer is off 0, n = n_params */
    float *m, *v;   /* [n] each: m[i] is the moment of params[off + i], backend memory */
    const struct cpt_backend *be; /* the model's backend at creation (allocates m, v) */
    long long step; /* optimizer steps taken (torch's "step" state) */
} cpt_adamw;

int cpt_adamw_create(cpt_adamw **out, const cpt_model *m, cpt_err *err);
/* The state of parameters [off, off + n) only (ZeRO-1: this rank's shard); a range that
 * cuts tensors is fine (every tensor is updated where it meets the range). */
int cpt_adamw_create_range(cpt_adamw **out, const cpt_model *m, size_t off, size_t n, cpt_err *err);
void cpt_adamw_free(cpt_adamw *o);
/* Bytes cpt_adamw_create allocates for m and v (the memory plan counts this); with
 * ZeRO-1 over `ranks` processes, the largest shard's (cpt_comm_shard). */
size_t cpt_adamw_state_bytes(const cpt_model *m);
size_t cpt_adamw_state_bytes_sharded(const cpt_model *m, int ranks);

/* One step at learning rate `lr` for every tensor (times lr_mult[i] if lr_mult is
 * non-NULL); tensors with frozen[i] set are skipped entirely (no moment update). Only
 * the parameters of the view [o->off, o->off + o->n) change; grads is the full buffer. */
void cpt_adamw_step(cpt_adamw *o, cpt_model *m, const float *grads, const cpt_adamw_cfg *cfg, double lr,
                    const float *lr_mult, const uint8_t *frozen);

/* Global L2 norm of the gradients (float64 accumulation, fixed order). */
double cpt_grad_norm(const cpt_model *m, const float *grads);
/* Sum of squares of the gradients in [off, off + n), tensor by tensor in table order
 * (ZeRO-1: one shard's part of the global norm); (0, n_params) gives cpt_grad_norm^2. */
double cpt_grad_sumsq_range(const cpt_model *m, const float *grads, size_t off, size_t n);
/* The clip_grad_norm_ factor for a known norm: min(max_norm / (norm + 1e-6), 1); 1 when
 * clipping is off (max_norm <= 0) or the norm is not finite. */
double cpt_grad_clip_coef(double norm, double max_norm);
/* grads[off, off + n) *= coef over the tensors that meet the range. */
void cpt_grad_scale_range(const cpt_model *m, float *grads, size_t off, size_t n, double coef);
/* Clip to max_norm as clip_grad_norm_: g *= min(max_norm / (norm + 1e-6), 1).
 * Returns the norm before clipping; a non-finite norm leaves grads untouched (the
 * caller should skip the step). max_norm <= 0 disables clipping. */
double cpt_grad_clip(const cpt_model *m, float *grads, double max_norm);

#ifdef __cplusplus
}
#endif
#endif

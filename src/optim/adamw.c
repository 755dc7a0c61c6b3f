/* adamw.c: AdamW state and step over the tensor table (the whole parameter buffer or a
 * contiguous view of it, the ZeRO-1 shard), and global-norm clipping. */
#include "cpt/optim.h"

#include <math.h>
#include <stdlib.h>

#include "cpt/backend.h"
#include "cpt/comm.h"

int cpt_adamw_create_range(cpt_adamw **out, const cpt_model *m, size_t off, size_t n, cpt_err *err) {
    *out = NULL;
    if (off > m->n_params || n > m->n_params - off)
        return cpt_err_set(err, CPT_EINVAL, "AdamW view [%zu, %zu) outside the %zu parameters", off, off + n, m->n_params);
    cpt_adamw *o = calloc(1, sizeof *o);
    if (!o) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    o->off = off;
    o->n = n;
    o->be = m->be;
    size_t bytes = sizeof(float) * (n ? n : 1);
    o->m = o->be->alloc(bytes);
    o->v = o->be->alloc(bytes);
    if (!o->m || !o->v) {
        cpt_adamw_free(o);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory for AdamW moments (%zu parameters)", n);
    }
    o->be->zero(o->m, bytes);
    o->be->zero(o->v, bytes);
    *out = o;
    return CPT_OK;
}

int cpt_adamw_create(cpt_adamw **out, const cpt_model *m, cpt_err *err) {
    return cpt_adamw_create_range(out, m, 0, m->n_params, err);
}

size_t cpt_adamw_state_bytes(const cpt_model *m) { return 2 * cpt_model_buffer_bytes(m); }

size_t cpt_adamw_state_bytes_sharded(const cpt_model *m, int ranks) {
    size_t off, len;
    cpt_comm_shard(m->n_params, ranks > 0 ? ranks : 1, 0, &off, &len); /* shard 0 is a largest one */
    return 2 * sizeof(float) * len;
}

void cpt_adamw_free(cpt_adamw *o) {
    if (!o) return;
    if (o->m) o->be->free(o->m);
    if (o->v) o->be->free(o->v);
    free(o);
}

/* The part [*a, *b) of tensor t inside [off, off + n); 0 when they do not meet. */
static int meet(const cpt_tensor *t, size_t off, size_t n, size_t *a, size_t *b) {
    size_t lo = t->off > off ? t->off : off, hi = t->off + t->numel < off + n ? t->off + t->numel : off + n;
    if (lo >= hi) return 0;
    *a = lo, *b = hi;
    return 1;
}

void cpt_adamw_step(cpt_adamw *o, cpt_model *m, const float *grads, const cpt_adamw_cfg *cfg, double lr,
                    const float *lr_mult, const uint8_t *frozen) {
    const cpt_backend *be = m->be;
    o->step++;
    double bc1 = 1.0 - pow(cfg->beta1, (double)o->step);
    double bc2 = 1.0 - pow(cfg->beta2, (double)o->step);
    for (int i = 0; i < m->n_tensors; i++) {
        if (frozen && frozen[i]) continue;
        const cpt_tensor *t = &m->tensors[i];
        size_t a, b;
        if (!meet(t, o->off, o->n, &a, &b)) continue;
        double tlr = lr * (lr_mult ? lr_mult[i] : 1.0);
        double wd = t->decay ? cfg->weight_decay : 0.0;
        be->adamw_update(m->params + a, grads + a, o->m + (a - o->off), o->v + (a - o->off), b - a, (float)tlr, cfg->beta1,
                         cfg->beta2, (float)cfg->eps, (float)wd, bc1, bc2);
    }
}

double cpt_grad_sumsq_range(const cpt_model *m, const float *grads, size_t off, size_t n) {
    const cpt_backend *be = m->be;
    double s = 0.0;
    for (int i = 0; i < m->n_tensors; i++) {
        size_t a, b;
        if (meet(&m->tensors[i], off, n, &a, &b)) s += be->sumsq(grads + a, b - a);
    }
    return s;
}

double cpt_grad_norm(const cpt_model *m, const float *grads) { return sqrt(cpt_grad_sumsq_range(m, grads, 0, m->n_params)); }

double cpt_grad_clip_coef(double norm, double max_norm) {
    if (max_norm <= 0 || !isfinite(norm)) return 1.0;
    double coef = max_norm / (norm + 1e-6);
    return coef < 1.0 ? coef : 1.0;
}

void cpt_grad_scale_range(const cpt_model *m, float *grads, size_t off, size_t n, double coef) {
    if (coef >= 1.0) return;
    const cpt_backend *be = m->be;
    for (int i = 0; i < m->n_tensors; i++) {
        size_t a, b;
        if (meet(&m->tensors[i], off, n, &a, &b)) be->scale(grads + a, b - a, (float)coef);
    }
}

double cpt_grad_clip(const cpt_model *m, float *grads, double max_norm) {
    double norm = cpt_grad_norm(m, grads);
    cpt_grad_scale_range(m, grads, 0, m->n_params, cpt_grad_clip_coef(norm, max_norm));
    return norm;
}

/* adamw.c: AdamW state and step over the tensor table, and global-norm clipping. */
#include "cpt/optim.h"

#include <math.h>
#include <stdlib.h>

#include "cpt/backend.h"

int cpt_adamw_create(cpt_adamw **out, const cpt_model *m, cpt_err *err) {
    *out = NULL;
    cpt_adamw *o = calloc(1, sizeof *o);
    if (!o) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    o->n = m->n_params;
    o->be = m->be;
    o->m = o->be->alloc(cpt_model_buffer_bytes(m));
    o->v = o->be->alloc(cpt_model_buffer_bytes(m));
    if (!o->m || !o->v) {
        cpt_adamw_free(o);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory for AdamW moments (%zu parameters)", m->n_params);
    }
    *out = o;
    return CPT_OK;
}

size_t cpt_adamw_state_bytes(const cpt_model *m) { return 2 * cpt_model_buffer_bytes(m); }

void cpt_adamw_free(cpt_adamw *o) {
    if (!o) return;
    if (o->m) o->be->free(o->m);
    if (o->v) o->be->free(o->v);
    free(o);
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
        double tlr = lr * (lr_mult ? lr_mult[i] : 1.0);
        double wd = t->decay ? cfg->weight_decay : 0.0;
        be->adamw_update(m->params + t->off, grads + t->off, o->m + t->off, o->v + t->off, t->numel, (float)tlr,
                         cfg->beta1, cfg->beta2, (float)cfg->eps, (float)wd, bc1, bc2);
    }
}

double cpt_grad_norm(const cpt_model *m, const float *grads) {
    const cpt_backend *be = m->be;
    double s = 0.0;
    for (int i = 0; i < m->n_tensors; i++) s += be->sumsq(grads + m->tensors[i].off, m->tensors[i].numel);
    return sqrt(s);
}

double cpt_grad_clip(const cpt_model *m, float *grads, double max_norm) {
    double norm = cpt_grad_norm(m, grads);
    if (max_norm <= 0 || !isfinite(norm)) return norm;
    double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) {
        const cpt_backend *be = m->be;
        for (int i = 0; i < m->n_tensors; i++) be->scale(grads + m->tensors[i].off, m->tensors[i].numel, (float)coef);
    }
    return norm;
}

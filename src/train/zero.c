/* zero.c: ZeRO stage 1 (cpt/zero.h). Buffers are host memory (the CPU backends), as
 * in dp.c. */
#include "cpt/zero.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/backend.h"

int cpt_zero_create(cpt_zero **out, cpt_comm *c, const cpt_model *m, cpt_adamw **opt, cpt_err *err) {
    *out = NULL;
    *opt = NULL;
    if (!c) c = cpt_comm_single();
    cpt_zero *z = calloc(1, sizeof *z);
    if (!z) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    z->comm = c;
    z->be = m->be;
    cpt_comm_shard(m->n_params, c->size, c->rank, &z->off, &z->len);
    int rc = cpt_adamw_create_range(opt, m, z->off, z->len, err);
    if (rc) {
        cpt_zero_free(z);
        return cpt_err_wrap(err, "ZeRO-1: the AdamW state of shard %d of %d", c->rank, c->size);
    }
    *out = z;
    return CPT_OK;
}

void cpt_zero_free(cpt_zero *z) {
    free(z);
}

int cpt_zero_reduce_grads(cpt_zero *z, const cpt_model *m, float *grads, cpt_err *err) {
    cpt_comm *c = z->comm;
    double t0 = cpt_now();
    int rc = c->reduce_scatter_sum_f32(c, grads, grads + z->off, m->n_params, err);
    if (rc) return cpt_err_wrap(err, "ZeRO-1: reduce-scatter of %zu gradients", m->n_params);
    z->t_comm += cpt_now() - t0;
    return CPT_OK;
}

int cpt_zero_grad_norm(cpt_zero *z, const cpt_model *m, const float *grads, double *stats, int n_stats, double *norm,
                       cpt_err *err) {
    enum { MAXS = 1 + CPT_CKPT_MAX_SOURCES };
    if (n_stats < 0 || n_stats > MAXS) return cpt_err_set(err, CPT_EINVAL, "ZeRO-1: %d step statistics (at most %d)", n_stats, MAXS);
    double v[1 + MAXS];
    v[0] = cpt_grad_sumsq_range(m, grads, z->off, z->len);
    if (n_stats) memcpy(v + 1, stats, sizeof(double) * (size_t)n_stats);
    cpt_comm *c = z->comm;
    double t0 = cpt_now();
    int rc = c->size > 1 ? c->allreduce_sum_f64(c, v, 1 + (size_t)n_stats, err) : CPT_OK;
    if (rc) return cpt_err_wrap(err, "ZeRO-1: all-reduce of the gradient sum of squares and the step statistics");
    z->t_comm += cpt_now() - t0;
    if (n_stats) memcpy(stats, v + 1, sizeof(double) * (size_t)n_stats);
    *norm = sqrt(v[0]);
    return CPT_OK;
}

int cpt_zero_update(cpt_zero *z, cpt_adamw *opt, cpt_model *m, float *grads, const cpt_adamw_cfg *cfg, double lr,
                    const float *lr_mult, const uint8_t *frozen, double clip, double norm, cpt_err *err) {
    cpt_grad_scale_range(m, grads, z->off, z->len, cpt_grad_clip_coef(norm, clip));
    cpt_adamw_step(opt, m, grads, cfg, lr, lr_mult, frozen);
    cpt_comm *c = z->comm;
    double t0 = cpt_now();
    int rc = c->allgather_f32(c, m->params, m->n_params, err);
    if (rc) return cpt_err_wrap(err, "ZeRO-1: all-gather of %zu parameters", m->n_params);
    z->t_comm += cpt_now() - t0;
    return CPT_OK;
}

/* Rank 0 receives shard r of a state buffer into full + off_r; rank r sends its own.
 * Pieces of at most 1 GiB (sendrecv counts are int). */
static int gather_buf(cpt_comm *c, const cpt_model *m, const float *mine, float *full, cpt_err *err) {
    const size_t chunk = ((size_t)1 << 30) / sizeof(float);
    size_t off, len;
    if (c->rank == 0) {
        cpt_comm_shard(m->n_params, c->size, 0, &off, &len);
        if (len) memcpy(full + off, mine, sizeof(float) * len);
        for (int r = 1; r < c->size; r++) {
            cpt_comm_shard(m->n_params, c->size, r, &off, &len);
            for (size_t o = 0; o < len; o += chunk) {
                size_t k = len - o < chunk ? len - o : chunk;
                int rc = c->sendrecv(c, NULL, 0, r, full + off + o, sizeof(float) * k, r, err);
                if (rc) return rc;
            }
        }
        return CPT_OK;
    }
    cpt_comm_shard(m->n_params, c->size, c->rank, &off, &len);
    for (size_t o = 0; o < len; o += chunk) {
        size_t k = len - o < chunk ? len - o : chunk;
        int rc = c->sendrecv(c, mine + o, sizeof(float) * k, 0, NULL, 0, 0, err);
        if (rc) return rc;
    }
    return CPT_OK;
}

void cpt_zero_state_free(cpt_adamw *full) {
    if (!full) return;
    if (full->v) full->be->free(full->v);
    free(full);
}

int cpt_zero_gather_state(cpt_zero *z, const cpt_model *m, const cpt_adamw *shard, float *scratch, cpt_adamw **full,
                          cpt_err *err) {
    *full = NULL;
    cpt_comm *c = z->comm;
    cpt_adamw *f = NULL;
    if (c->rank == 0) {
        f = calloc(1, sizeof *f);
        if (f) f->be = m->be, f->v = m->be->alloc(cpt_model_buffer_bytes(m));
        if (!f || !f->v) {
            cpt_zero_state_free(f);
            /* the others wait in the gather: the caller aborts the job */
            return cpt_err_set(err, CPT_ENOMEM, "ZeRO-1: out of memory for the second moments (%zu floats) rank 0 gathers for the checkpoint",
                               m->n_params);
        }
        f->off = 0, f->n = m->n_params, f->m = scratch, f->step = shard->step;
        m->be->zero(f->v, cpt_model_buffer_bytes(m));
    }
    int rc = gather_buf(c, m, shard->m, f ? f->m : NULL, err);
    if (!rc) rc = gather_buf(c, m, shard->v, f ? f->v : NULL, err);
    if (rc) {
        cpt_zero_state_free(f);
        return cpt_err_wrap(err, "ZeRO-1: gathering the optimizer shards on rank 0");
    }
    *full = f;
    return CPT_OK;
}

int cpt_zero_load_state(const char *dir, cpt_model *m, cpt_adamw *shard, cpt_ckpt_state *st, cpt_err *err) {
    /* cpt_ckpt_load reads a slice from either format, one tensor or shard at a time */
    return cpt_ckpt_load(dir, m, shard, st, err);
}

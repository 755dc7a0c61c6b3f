/* dp.c: data parallelism (cpt/dp.h): gradient and statistics reduction and the split
 * evaluation, all through the communication layer. Gradients are host memory here (the
 * CPU backends); a device backend hands its communicator device buffers (NCCL). */
#include "cpt/dp.h"

#include <math.h>

int cpt_dp_reduce_stats(cpt_comm *c, double *v, int n, cpt_err *err) {
    if (!c || c->size == 1 || n <= 0) return CPT_OK;
    int rc = c->allreduce_sum_f64(c, v, (size_t)n, err);
    return rc ? cpt_err_wrap(err, "data parallel: reducing step statistics") : CPT_OK;
}

int cpt_dp_reduce_grads(cpt_comm *c, const cpt_model *m, float *grads, double *stats, int n_stats, cpt_err *err) {
    if (!c || c->size == 1) return CPT_OK;
    int rc = c->allreduce_sum_f32(c, grads, m->n_params, err);
    if (rc) return cpt_err_wrap(err, "data parallel: all-reduce of %zu gradients", m->n_params);
    return cpt_dp_reduce_stats(c, stats, n_stats, err);
}

typedef struct {
    const cpt_data_iface *d;
    long long first;
} shifted;

static int shifted_seq(void *ctx, long long g, int T, int32_t *ids, int32_t *targets, int32_t *pos, int32_t *seg, int *source,
                       cpt_err *err) {
    const shifted *s = ctx;
    return s->d->sequence(s->d->ctx, s->first + g, T, ids, targets, pos, seg, source, err);
}

int cpt_dp_eval_loss(cpt_comm *c, cpt_model *m, const cpt_data_iface *d, long long n, int T, int B, int block_causal,
                     int reset_positions, double *loss, long long *tokens, cpt_err *err) {
    if (!c || c->size == 1) return cpt_eval_loss(m, d, n, T, B, block_causal, reset_positions, loss, tokens, err);
    long long lo = n * c->rank / c->size, hi = n * (c->rank + 1) / c->size;
    shifted s = {d, lo};
    cpt_data_iface di = {&s, shifted_seq, d->n_sources, d->source_names};
    double ls = 0;
    long long nt = 0;
    int rc = hi > lo ? cpt_eval_loss(m, &di, hi - lo, T, B, block_causal, reset_positions, &ls, &nt, err) : CPT_OK;
    double v[2] = {nt ? ls * (double)nt : 0.0, (double)nt};
    if (rc) return rc; /* the caller aborts the job: the others are stopped by it */
    if ((rc = cpt_dp_reduce_stats(c, v, 2, err))) return rc;
    *loss = v[1] > 0 ? v[0] / v[1] : NAN;
    if (tokens) *tokens = (long long)v[1];
    return CPT_OK;
}

int cpt_dp_check_resume(long long saved_ranks, long long saved_global, int W, int B, int A, cpt_err *err) {
    long long G = (long long)B * A * W;
    if (saved_global > 0) {
        if (saved_global == G) return CPT_OK;
        long long per = (long long)B * W;
        if (saved_global % per == 0)
            return cpt_err_set(err, CPT_ESTATE,
                               "checkpoint trainer state: global batch %lld sequences per step (saved by %lld ranks), now %d x %d x %d "
                               "= %lld; the data position (step x global batch) would change. HINT: set training.grad_accum: %lld "
                               "to keep the global batch with %d rank%s of micro_batch %d",
                               saved_global, saved_ranks, B, A, W, G, saved_global / per, W, W == 1 ? "" : "s", B);
        return cpt_err_set(err, CPT_ESTATE,
                           "checkpoint trainer state: global batch %lld sequences per step (saved by %lld ranks), now %d x %d x %d = "
                           "%lld; no grad_accum gives %lld with %d rank%s of micro_batch %d. HINT: choose micro_batch x grad_accum "
                           "x ranks = %lld (e.g. mpirun -np %lld)",
                           saved_global, saved_ranks, B, A, W, G, saved_global, W, W == 1 ? "" : "s", B, saved_global,
                           saved_ranks > 0 ? saved_ranks : 1);
    }
    /* an older checkpoint without the global batch: only the same number of ranks */
    if (saved_ranks > 0 && saved_ranks != W)
        return cpt_err_set(err, CPT_ESTATE,
                           "checkpoint trainer state: saved by %lld data-parallel ranks without its global batch, resumed with %d. "
                           "HINT: resume with mpirun -np %lld",
                           saved_ranks, W, saved_ranks);
    return CPT_OK;
}

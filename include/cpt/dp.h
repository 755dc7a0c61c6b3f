/* cpt/dp.h: data parallelism over the communication layer (cpt/comm.h). The trainer
 * calls these at fixed points of every step; all ranks call them in the same order.
 * With a single-process communicator every call is a no-op, so a run without MPI is
 * bit-identical to one before data parallelism existed. */
#ifndef CPT_DP_H
#define CPT_DP_H

#include "cpt/comm.h"
#include "cpt/train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Sum small decision inputs (valid-target counts, loss sums, per-source counts) over
 * ranks, in place, identically on every rank. */
int cpt_dp_reduce_stats(cpt_comm *c, double *v, int n, cpt_err *err);

/* After the backward of the step's last micro-batch, before penalty, clipping and the
 * optimizer: sum the gradients (one flat buffer, bucketed inside the communicator) and
 * the step's stats over ranks. The result is bit-identical on every rank, so the grad
 * norm, the clip factor and the spike decision are too. */
int cpt_dp_reduce_grads(cpt_comm *c, const cpt_model *m, float *grads, double *stats, int n_stats, cpt_err *err);

/* cpt_eval_loss split over ranks: rank r scores sequences [n r / N, n (r+1) / N) and the
 * loss sums and token counts are reduced; every rank returns the same mean. */
int cpt_dp_eval_loss(cpt_comm *c, cpt_model *m, const cpt_data_iface *d, long long n, int T, int B, int block_causal,
                     int reset_positions, double *loss, long long *tokens, cpt_err *err);

/* May a checkpoint saved by `saved_ranks` ranks with global batch `saved_global`
 * (sequences per step; 0: not recorded, older checkpoints) resume with W ranks of
 * micro_batch B and grad_accum A? The data position is step x global batch, so any
 * number of ranks is fine when B A W equals the saved global batch; otherwise
 * CPT_ESTATE with a HINT naming the grad_accum that keeps it. */
int cpt_dp_check_resume(long long saved_ranks, long long saved_global, int W, int B, int A, cpt_err *err);

#ifdef __cplusplus
}
#endif
#endif

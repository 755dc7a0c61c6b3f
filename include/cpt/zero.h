/* cpt/zero.h: ZeRO stage 1 over the communication layer (methods.md 14.3): the AdamW
 * moments are sharded over the ranks by the fixed flat partition cpt_comm_shard of the
 * parameter buffer; every rank owns one contiguous slice [off, off + len).
 *
 * One step: reduce-scatter the gradients (the same rank-order sum as the all-reduce, so
 * a shard's reduced gradient is bit-identical to zero = 0's), the caller adds the
 * anchor penalty, the global norm is the all-reduce of the per-shard sums of squares
 * (every rank gets the same value, so the same clip and skip decisions), the shard is
 * clipped and updated by AdamW over its (offset, count) view (cpt_adamw_create_range),
 * and the parameters are all-gathered.
 *
 * Checkpoints: by default every rank writes its own shard of the optimizer state in
 * parallel (cpt_ckpt_save_sharded: optim-RRRRR-of-NNNNN.safetensors plus the flat layout
 * in trainer_state.json); with checkpoint.sharded_optim false rank 0 gathers the shards
 * (cpt_zero_gather_state) and writes one consolidated optim.safetensors, per HF parameter
 * name. Either way the atomic directory rename is unchanged (a kill during the save
 * leaves the previous checkpoint as the latest), and at load every rank reads just its
 * slice, so a checkpoint resumes with any number of ranks and with zero = 0 or 1 alike;
 * `cpt ckpt consolidate DIR` turns shards into the single file. */
#ifndef CPT_ZERO_H
#define CPT_ZERO_H

#include "cpt/checkpoint.h"
#include "cpt/comm.h"
#include "cpt/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cpt_zero {
    cpt_comm *comm;
    size_t off, len; /* this rank's shard of the parameter buffer */
    const struct cpt_backend *be;
    double t_comm; /* seconds in the step's collectives (reduce-scatter, norm, all-gather) */
} cpt_zero;

/* The shard of c's rank and the AdamW state of that shard
 * (*opt, freed by the caller with cpt_adamw_free). c NULL: the single process. */
int cpt_zero_create(cpt_zero **out, cpt_comm *c, const cpt_model *m, cpt_adamw **opt, cpt_err *err);
void cpt_zero_free(cpt_zero *z);

/* Reduce-scatter grads[n_params] in place: on return grads[off, off + len) holds the
 * reduced gradient of this rank's shard (the rest of grads holds partial sums, which the
 * step does not use). */
int cpt_zero_reduce_grads(cpt_zero *z, const cpt_model *m, float *grads, cpt_err *err);

/* The global gradient norm, sqrt of the all-reduced shard sums of squares, and the step's
 * stats[n_stats] (loss sum, per-source counts; at most 1 + CPT_CKPT_MAX_SOURCES) summed over ranks in the same
 * float64 all-reduce: one collective for both. */
int cpt_zero_grad_norm(cpt_zero *z, const cpt_model *m, const float *grads, double *stats, int n_stats, double *norm,
                       cpt_err *err);

/* Clip the shard by the global `norm` (clip_grad_norm_ with max_norm `clip`, <= 0 off),
 * one AdamW step on the shard (opt from cpt_zero_create), all-gather the parameters. */
int cpt_zero_update(cpt_zero *z, cpt_adamw *opt, cpt_model *m, float *grads, const cpt_adamw_cfg *cfg, double lr,
                    const float *lr_mult, const uint8_t *frozen, double clip, double norm, cpt_err *err);

/* Collective: rank 0 receives the whole optimizer state in *full, the other ranks send
 * their shard and get *full = NULL. The first moments land in `scratch` (n_params floats
 * the caller does not need meanwhile: the trainer passes its gradient buffer, idle at a
 * save), so the transient is one buffer, the second moments. Release with
 * cpt_zero_state_free (frees v and the struct, never scratch). */
int cpt_zero_gather_state(cpt_zero *z, const cpt_model *m, const cpt_adamw *shard, float *scratch, cpt_adamw **full,
                          cpt_err *err);
void cpt_zero_state_free(cpt_adamw *full);

/* cpt_ckpt_load for a shard: reads only the slice of `shard`, from the consolidated
 * optim.safetensors (tensor by tensor) or from the optimizer shards of any earlier
 * number of ranks (cpt_ckpt_save_sharded). */
int cpt_zero_load_state(const char *dir, cpt_model *m, cpt_adamw *shard, cpt_ckpt_state *st, cpt_err *err);

#ifdef __cplusplus
}
#endif
#endif

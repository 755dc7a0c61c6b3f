/* cpt/cp.h: context parallelism: one sequence split over K ranks, attention by ring
 * (methods.md 14.2). Written against the backend table (the attention kernels, the merge)
 * and the communication layer (sendrecv), never against MPI or a kernel directly.
 *
 * Split ("zigzag", as Megatron-Core's context parallelism): a sequence of T tokens is cut
 * into 2K chunks of c = T / 2K; rank r of the group holds chunks r and 2K-1-r, so every
 * rank has the same causal work. Its local rows are [chunk r ; chunk 2K-1-r] (Tl = 2c per
 * sequence) and carry their global positions (RoPE) and document ids.
 *
 * Everything outside attention is per token, so a rank runs the whole model on its Tl
 * rows; the weights' gradients of the K ranks are summed with the data-parallel ones
 * (the trainer's all-reduce covers all ranks), and the loss normaliser is the global
 * count. Attention: the K/V block of each rank travels the ring (K-1 sendrecv per layer
 * forward); after each block the partial results are merged by their log-sum-exp. The
 * backward sends K/V around again with dK/dV accumulators, which arrive back at their
 * owner after K steps; dQ stays local. The merged out / lse of the forward feed each
 * block's backward (cpt_attn_bwd's contract), so the result equals single-process
 * attention up to fp32 rounding (tests/train/test_cp.py).
 *
 * Groups: with N ranks and K | N, ranks [gK, gK + K) form context group g (data-parallel
 * index g, N / K of them); the ring runs inside the group. */
#ifndef CPT_CP_H
#define CPT_CP_H

#include <stdint.h>

#include "cpt/backend.h"
#include "cpt/comm.h"
#include "cpt/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cpt_cp cpt_cp;

/* A ring of `size` ranks of comm (comm->size % size == 0) for micro-batches of B local
 * rows of Tl tokens (Tl even) with KV heads of head_dim hd and H query heads; buffers
 * from be->alloc. size 1 is refused (no ring to run). */
int cpt_cp_create(cpt_cp **out, cpt_comm *comm, int size, const cpt_backend *be, int B, int Tl, int H, int KV, int hd,
                  cpt_err *err);
void cpt_cp_free(cpt_cp *cp);
int cpt_cp_size(const cpt_cp *cp);
int cpt_cp_rank(const cpt_cp *cp);        /* position in the group, 0..size-1 */
size_t cpt_cp_bytes(const cpt_cp *cp);    /* its buffers (the memory plan) */
double cpt_cp_comm_seconds(const cpt_cp *cp); /* time in sendrecv so far */
/* The error of the last failed ring call (forward.c reports it). */
const cpt_err *cpt_cp_error(const cpt_cp *cp);
/* The bytes cpt_cp_create allocates for these sizes. */
size_t cpt_cp_plan_bytes(int B, int Tl, int H, int KV, int hd);

/* Global position of local row i (0 <= i < 2c) of group rank r, K ranks, sequence T. */
static inline int cpt_cp_global_pos(int T, int K, int r, int i) {
    int c = T / (2 * K);
    return i < c ? r * c + i : (2 * K - 1 - r) * c + (i - c);
}
/* dst[B][T/K] = this rank's rows of src[B][T] (row stride T), in local order. */
void cpt_cp_take(int32_t *dst, const int32_t *src, int B, int T, int K, int r);

/* Ring attention. q[B,Tl,H,hd], k,v[B,Tl,KV,hd] local rows (after RoPE); seg[B,Tl] local
 * document ids or NULL; out[B,Tl,H,hd]; lse[B,2,H,c] (per sequence and local chunk, the
 * layout the per-chunk kernels use; the same size as the non-parallel [B,H,Tl]). ws: the
 * attention workspace for (c, c). Every rank of the group calls it together. */
int cpt_cp_attn_fwd(cpt_cp *cp, float *out, float *lse, const float *q, const float *k, const float *v,
                    const int32_t *seg, int B, int Tl, int H, int KV, int hd, float scale, void *ws, size_t ws_bytes);
/* dq, dk, dv overwritten; out and lse from cpt_cp_attn_fwd. */
int cpt_cp_attn_bwd(cpt_cp *cp, float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                    const float *q, const float *k, const float *v, const int32_t *seg, int B, int Tl, int H, int KV,
                    int hd, float scale, void *ws, size_t ws_bytes);

#ifdef __cplusplus
}
#endif
#endif

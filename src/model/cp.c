/* cp.c: context parallelism, ring attention over the zigzag split (cpt/cp.h, methods.md
 * 14.2). Compute goes through the backend table (attn_fwd / attn_bwd on one c x c chunk
 * pair at a time, attn_merge, add_inplace, copy, zero); the ring through comm->sendrecv.
 *
 * Chunk pairs. Local chunk a (0: global chunk r, 1: global chunk 2K-1-r) against chunk bb
 * of the K/V block of group rank s (global chunk s or 2K-1-s): the global chunk of the
 * key must not be after the query's; equal is the causal diagonal (q_pos0 0), earlier is
 * fully visible (q_pos0 c), and the kernel still applies the document mask. Step 0 (the
 * own block) has the two diagonals and one full pair; every other step exactly two full
 * pairs, whichever rank sent the block: that is the load balance of the zigzag split.
 *
 * Ring buffer, one per direction of the swap: [dk | dv | k | v | seg], so the forward
 * sends k, v, seg and the backward's last hop sends only the dk, dv accumulators home.
 * The sendrecv calls are blocking (no overlap with the chunk kernels yet: the measured
 * share is in the run summary). */
#include <stdlib.h>
#include <string.h>

#include "cpt/cp.h"

struct cpt_cp {
    cpt_comm *comm;
    const cpt_backend *be;
    int K, r, next, prev; /* group size, rank in it, world ranks of the neighbours */
    int B, Tl, H, KV, hd;
    size_t nkv, nseg;     /* floats of one k (or v, dk, dv) block, int32 of its seg */
    float *ring[2];       /* [dk | dv | k | v | seg] */
    float *part_o, *part_l, *dq_p, *dk_p, *dv_p;
    size_t bytes;
    double t_comm;
    cpt_err err;
};

static size_t ring_floats(size_t nkv, size_t nseg) { return 4 * nkv + nseg; }

size_t cpt_cp_plan_bytes(int B, int Tl, int H, int KV, int hd) {
    size_t c = (size_t)Tl / 2, nkv = (size_t)B * Tl * KV * hd, nseg = (size_t)B * Tl;
    size_t f = 2 * ring_floats(nkv, nseg) + c * H * hd + (size_t)H * c + c * H * hd + 2 * c * KV * hd;
    return f * sizeof(float);
}

int cpt_cp_create(cpt_cp **out, cpt_comm *comm, int size, const cpt_backend *be, int B, int Tl, int H, int KV, int hd,
                  cpt_err *err) {
    *out = NULL;
    if (!comm || size < 2 || comm->size % size)
        return cpt_err_set(err, CPT_EINVAL, "context parallelism over %d ranks needs at least 2 and a divisor of the %d ranks. HINT: parallel.context must divide the number of processes (mpirun -np)",
                           size, comm ? comm->size : 1);
    if (B < 1 || Tl < 2 || Tl % 2 || H < 1 || KV < 1 || H % KV || hd < 1)
        return cpt_err_set(err, CPT_EINVAL, "context parallelism: bad sizes (B %d, local tokens %d, heads %d/%d, head_dim %d)", B, Tl, H,
                           KV, hd);
    cpt_cp *cp = calloc(1, sizeof *cp);
    if (!cp) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    cp->comm = comm, cp->be = be, cp->K = size;
    int g = comm->rank / size;
    cp->r = comm->rank % size;
    cp->next = g * size + (cp->r + 1) % size, cp->prev = g * size + (cp->r + size - 1) % size;
    cp->B = B, cp->Tl = Tl, cp->H = H, cp->KV = KV, cp->hd = hd;
    size_t c = (size_t)Tl / 2;
    cp->nkv = (size_t)B * Tl * KV * hd, cp->nseg = (size_t)B * Tl;
    size_t rf = ring_floats(cp->nkv, cp->nseg);
    cp->ring[0] = be->alloc(sizeof(float) * rf);
    cp->ring[1] = be->alloc(sizeof(float) * rf);
    cp->part_o = be->alloc(sizeof(float) * c * H * hd);
    cp->part_l = be->alloc(sizeof(float) * (size_t)H * c);
    cp->dq_p = be->alloc(sizeof(float) * c * H * hd);
    cp->dk_p = be->alloc(sizeof(float) * c * KV * hd);
    cp->dv_p = be->alloc(sizeof(float) * c * KV * hd);
    cp->bytes = cpt_cp_plan_bytes(B, Tl, H, KV, hd);
    if (!cp->ring[0] || !cp->ring[1] || !cp->part_o || !cp->part_l || !cp->dq_p || !cp->dk_p || !cp->dv_p) {
        cpt_cp_free(cp);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory for the ring attention buffers (%.1f MiB)",
                           (double)cpt_cp_plan_bytes(B, Tl, H, KV, hd) / 1048576.0);
    }
    *out = cp;
    return CPT_OK;
}

void cpt_cp_free(cpt_cp *cp) {
    if (!cp) return;
    float *bufs[] = {cp->ring[0], cp->ring[1], cp->part_o, cp->part_l, cp->dq_p, cp->dk_p, cp->dv_p};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        if (bufs[i]) cp->be->free(bufs[i]);
    free(cp);
}

int cpt_cp_size(const cpt_cp *cp) { return cp->K; }
int cpt_cp_rank(const cpt_cp *cp) { return cp->r; }
size_t cpt_cp_bytes(const cpt_cp *cp) { return cp->bytes; }
double cpt_cp_comm_seconds(const cpt_cp *cp) { return cp->t_comm; }
const cpt_err *cpt_cp_error(const cpt_cp *cp) { return &cp->err; }

void cpt_cp_take(int32_t *dst, const int32_t *src, int B, int T, int K, int r) {
    int Tl = T / K;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < Tl; i++) dst[(size_t)b * Tl + i] = src[(size_t)b * T + cpt_cp_global_pos(T, K, r, i)];
}

/* Global chunk of local chunk a of group rank s. */
static int gchunk(int K, int s, int a) { return a ? 2 * K - 1 - s : s; }

/* Swap the first `floats` of ring[cur] with the previous rank's: send to next, receive
 * into ring[!cur] from prev. */
static int ring_pass(cpt_cp *cp, int cur, size_t off, size_t floats) {
    double t0 = cpt_now();
    cp->be->sync(); /* the kernels that wrote the block are done */
    int rc = cp->comm->sendrecv(cp->comm, cp->ring[cur] + off, sizeof(float) * floats, cp->next, cp->ring[!cur] + off,
                                sizeof(float) * floats, cp->prev, &cp->err);
    cp->t_comm += cpt_now() - t0;
    if (rc) cpt_err_wrap(&cp->err, "ring attention (context rank %d of %d)", cp->r, cp->K);
    return rc;
}

static int check(cpt_cp *cp, int B, int Tl, int H, int KV, int hd) {
    memset(&cp->err, 0, sizeof cp->err);
    if (B != cp->B || Tl != cp->Tl || H != cp->H || KV != cp->KV || hd != cp->hd)
        return cpt_err_set(&cp->err, CPT_EINVAL, "ring attention made for %d x %d tokens, %d/%d heads of %d, called with %d x %d, %d/%d of %d",
                           cp->B, cp->Tl, cp->H, cp->KV, cp->hd, B, Tl, H, KV, hd);
    return CPT_OK;
}

/* Load this rank's k, v, seg into ring[0] (dk, dv zeroed when `grads`). */
static void ring_load(cpt_cp *cp, const float *k, const float *v, const int32_t *seg, int grads) {
    float *R = cp->ring[0];
    if (grads) cp->be->zero(R, sizeof(float) * 2 * cp->nkv);
    cp->be->copy(R + 2 * cp->nkv, k, sizeof(float) * cp->nkv);
    cp->be->copy(R + 3 * cp->nkv, v, sizeof(float) * cp->nkv);
    if (seg) cp->be->copy(R + 4 * cp->nkv, seg, sizeof(int32_t) * cp->nseg);
}

int cpt_cp_attn_fwd(cpt_cp *cp, float *out, float *lse, const float *q, const float *k, const float *v,
                    const int32_t *seg, int B, int Tl, int H, int KV, int hd, float scale, void *ws, size_t ws_bytes) {
    int rc = check(cp, B, Tl, H, KV, hd);
    if (rc) return rc;
    const cpt_backend *be = cp->be;
    int K = cp->K, c = Tl / 2;
    size_t qd = (size_t)H * hd, kd = (size_t)KV * hd, nl = (size_t)H * c;
    ring_load(cp, k, v, seg, 0);
    int cur = 0;
    for (int s = 0; s < K; s++) {
        if (s > 0) {
            if ((rc = ring_pass(cp, cur, 2 * cp->nkv, 2 * cp->nkv + cp->nseg))) return rc;
            cur = !cur;
        }
        int src = (cp->r - s + K) % K;
        const float *Rk = cp->ring[cur] + 2 * cp->nkv, *Rv = cp->ring[cur] + 3 * cp->nkv;
        const int32_t *Rs = seg ? (const int32_t *)(cp->ring[cur] + 4 * cp->nkv) : NULL;
        for (int b = 0; b < B; b++)
            for (int a = 0; a < 2; a++)
                for (int t = 0; t < 2; t++) {
                    int bb = a ? 1 - t : t; /* at step 0 each chunk's diagonal comes first */
                    int ga = gchunk(K, cp->r, a), gb = gchunk(K, src, bb);
                    if (gb > ga) continue;
                    size_t qrow = (size_t)b * Tl + (size_t)a * c, krow = (size_t)b * Tl + (size_t)bb * c;
                    float *o = out + qrow * qd, *l = lse + ((size_t)b * 2 + a) * nl;
                    const int32_t *sq = seg ? seg + qrow : NULL, *sk = Rs ? Rs + krow : NULL;
                    /* the diagonal comes first (step 0, bb == a) and writes the result; the
                     * rest are partials merged into it */
                    int diag = gb == ga;
                    rc = be->attn_fwd(diag ? o : cp->part_o, diag ? l : cp->part_l, q + qrow * qd, Rk + krow * kd, Rv + krow * kd,
                                      sq, sk, 1, c, c, diag ? 0 : c, H, KV, hd, scale, ws, ws_bytes);
                    if (rc) return cpt_err_set(&cp->err, rc, "ring attention: the attention kernel refused a %d x %d chunk", c, c);
                    if (!diag) be->attn_merge(o, l, cp->part_o, cp->part_l, c, H, hd, c);
                }
    }
    return CPT_OK;
}

int cpt_cp_attn_bwd(cpt_cp *cp, float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                    const float *q, const float *k, const float *v, const int32_t *seg, int B, int Tl, int H, int KV,
                    int hd, float scale, void *ws, size_t ws_bytes) {
    int rc = check(cp, B, Tl, H, KV, hd);
    if (rc) return rc;
    const cpt_backend *be = cp->be;
    int K = cp->K, c = Tl / 2;
    size_t qd = (size_t)H * hd, kd = (size_t)KV * hd, nl = (size_t)H * c;
    ring_load(cp, k, v, seg, 1);
    be->zero(dq, sizeof(float) * (size_t)B * Tl * qd);
    int cur = 0;
    for (int s = 0; s < K; s++) {
        int src = (cp->r - s + K) % K;
        float *Rdk = cp->ring[cur], *Rdv = cp->ring[cur] + cp->nkv;
        const float *Rk = cp->ring[cur] + 2 * cp->nkv, *Rv = cp->ring[cur] + 3 * cp->nkv;
        const int32_t *Rs = seg ? (const int32_t *)(cp->ring[cur] + 4 * cp->nkv) : NULL;
        for (int b = 0; b < B; b++)
            for (int a = 0; a < 2; a++)
                for (int bb = 0; bb < 2; bb++) {
                    int ga = gchunk(K, cp->r, a), gb = gchunk(K, src, bb);
                    if (gb > ga) continue;
                    size_t qrow = (size_t)b * Tl + (size_t)a * c, krow = (size_t)b * Tl + (size_t)bb * c;
                    const int32_t *sq = seg ? seg + qrow : NULL, *sk = Rs ? Rs + krow : NULL;
                    rc = be->attn_bwd(cp->dq_p, cp->dk_p, cp->dv_p, dout + qrow * qd, out + qrow * qd, lse + ((size_t)b * 2 + a) * nl,
                                      q + qrow * qd, Rk + krow * kd, Rv + krow * kd, sq, sk, 1, c, c, gb == ga ? 0 : c, H, KV, hd,
                                      scale, ws, ws_bytes);
                    if (rc) return cpt_err_set(&cp->err, rc, "ring attention: the attention backward refused a %d x %d chunk", c, c);
                    be->add_inplace(dq + qrow * qd, cp->dq_p, (size_t)c * qd);
                    be->add_inplace(Rdk + krow * kd, cp->dk_p, (size_t)c * kd);
                    be->add_inplace(Rdv + krow * kd, cp->dv_p, (size_t)c * kd);
                }
        /* pass the block on with its accumulators; the last hop takes them home */
        if ((rc = ring_pass(cp, cur, 0, s < K - 1 ? 4 * cp->nkv + cp->nseg : 2 * cp->nkv))) return rc;
        cur = !cur;
    }
    be->copy(dk, cp->ring[cur], sizeof(float) * cp->nkv);
    be->copy(dv, cp->ring[cur] + cp->nkv, sizeof(float) * cp->nkv);
    return CPT_OK;
}

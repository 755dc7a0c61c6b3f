/* attention.c: causal / block-causal GQA attention in O(T) memory (methods.md 14.1,
 * FlashAttention-2 style), forward and backward, and the float64 reference.
 *
 * Forward: one task per (batch, query head, query tile of BQ rows). It walks the key
 * tiles with an online softmax (running max m, running sum l, unnormalised output O)
 * and keeps only out and the row log-sum-exp lse = m + log l. Tile products go through
 * sgemm (OpenBLAS runs single-threaded inside an OpenMP region; a one-off bench of a
 * 64x64x64 QK^T tile here: sgemm 11 us, plain C loops 174 us).
 * Backward: recomputes P = exp(s*q.k - lse) tile by tile. Two passes so that every
 * gradient element is written by exactly one task in a fixed order (no atomics, so the
 * result is bitwise independent of the thread count):
 *   pass 1, one task per (batch, kv head, key tile): loops over the query heads sharing
 *     the kv head (GQA without copies) and the query tiles, dV += P^T dO, dK += s dS^T Q;
 *   pass 2, one task per (batch, query head, query tile): dQ += s dS K.
 * P is recomputed twice; that costs one extra QK^T and dO V^T per tile and saves a
 * [B,H,T,T] buffer (or atomics). D = rowsum(dO * O) is recomputed per tile (BQ*hd).
 * Masks: key j is visible to query i iff j <= q_pos0 + i and (no seg, or seg_q[i] ==
 * seg_k[j]). A tile is skipped when the causal bound empties it or when the query
 * tile's [min,max] seg range and the key tile's do not overlap (sound whatever the
 * order of ids: packing pads with -1 after increasing ids, so the rows are not sorted);
 * other tiles are masked element by element unless they are entirely visible.
 * Scratch: per-thread tile buffers in the caller's workspace (cpt_attn_workspace_bytes). */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/common.h"
#include "cpt/ops.h"
#include "ops/attn_tiles.h"

enum { BQ = CPT_ATTN_BQ, BK = CPT_ATTN_BK };

/* Floats of one thread's scratch: S, dP tiles, D/m/l rows; rounded to 16 floats. */
static size_t slot_floats(void) { return ((size_t)2 * BQ * BK + 3 * BQ + 15) & ~(size_t)15; }

size_t cpt_attn_workspace_bytes(int Tq, int Tk, int hd, int nthreads) {
    (void)Tq, (void)Tk, (void)hd; /* tiles are fixed size; kept for kernels that tile by shape */
    if (nthreads < 1) nthreads = 1;
    return sizeof(float) * slot_floats() * (size_t)nthreads + 64;
}

/* Usable thread slots in a workspace (aligned to 64 bytes inside). */
static int ws_slots(void *ws, size_t bytes, float **base) {
    uintptr_t p = (uintptr_t)ws, a = (p + 63) & ~(uintptr_t)63;
    if (!ws || bytes < (a - p) + sizeof(float) * slot_floats()) return 0;
    *base = (float *)a;
    size_t n = (bytes - (a - p)) / (sizeof(float) * slot_floats());
    return n > 4096 ? 4096 : (int)n;
}

/* S[nq,nk] (ld BK) = scale * Q K^T, masked entries -inf. */
static void scores(float *S, const float *qb, size_t qs, const float *kb, size_t ks, int nq, int nk, int hd,
                   float scale, int kind, const int32_t *sq, const int32_t *sk, int i0, int j0, int q_pos0) {
    cpt_sgemm(0, 1, nq, nk, hd, scale, qb, (int)qs, kb, (int)ks, 0.0f, S, BK);
    if (kind == 2) cpt_attn_mask(S, BK, nq, nk, sq, sk, i0, j0, q_pos0);
}

int cpt_attn_fwd(float *out, float *lse, const float *q, const float *k, const float *v, const int32_t *seg_q,
                 const int32_t *seg_k, int B, int Tq, int Tk, int q_pos0, int H, int KV, int hd, float scale,
                 void *ws, size_t ws_bytes) {
    float *wbase = NULL;
    int slots = ws_slots(ws, ws_bytes, &wbase);
    if (!slots || B < 1 || Tq < 1 || Tk < 1 || KV < 1 || H % KV || hd < 1 || q_pos0 < 0 || !seg_q != !seg_k)
        return CPT_EINVAL;
    int grp = H / KV, nqt = (Tq + BQ - 1) / BQ, nthr = omp_get_max_threads();
    if (nthr > slots) nthr = slots;
    size_t qs = (size_t)H * hd, ks = (size_t)KV * hd;
    long ntask = (long)B * H * nqt;
#pragma omp parallel num_threads(nthr)
    {
        float *S = wbase + slot_floats() * (size_t)omp_get_thread_num();
        float *m = S + (size_t)2 * BQ * BK, *l = m + BQ;
#pragma omp for schedule(dynamic, 1)
        for (long t = 0; t < ntask; t++) {
            /* Largest tiles first (descending query tile index) for the causal load balance. */
            int it = nqt - 1 - (int)(t % nqt), h = (int)(t / nqt % H), b = (int)(t / nqt / H), g = h / grp;
            int i0 = it * BQ, nq = Tq - i0 < BQ ? Tq - i0 : BQ;
            const int32_t *sq = seg_q ? seg_q + (size_t)b * Tq : NULL, *sk = seg_k ? seg_k + (size_t)b * Tk : NULL;
            const float *qb = q + ((size_t)b * Tq + i0) * qs + (size_t)h * hd;
            float *ob = out + ((size_t)b * Tq + i0) * qs + (size_t)h * hd;
            const float *kb = k + (size_t)b * Tk * ks + (size_t)g * hd, *vb = v + (size_t)b * Tk * ks + (size_t)g * hd;
            for (int i = 0; i < nq; i++) {
                m[i] = -INFINITY, l[i] = 0.0f;
                memset(ob + (size_t)i * qs, 0, sizeof(float) * hd);
            }
            int jend = q_pos0 + i0 + nq < Tk ? q_pos0 + i0 + nq : Tk;
            for (int j0 = 0; j0 < jend; j0 += BK) {
                int nk = jend - j0 < BK ? jend - j0 : BK;
                int kind = cpt_attn_tile_kind(sq, sk, i0, nq, j0, nk, q_pos0);
                if (!kind) continue;
                scores(S, qb, qs, kb + (size_t)j0 * ks, ks, nq, nk, hd, scale, kind, sq, sk, i0, j0, q_pos0);
                cpt_attn_online_softmax(S, BK, nq, nk, m, l, ob, qs, hd);
                cpt_sgemm(0, 0, nq, hd, nk, 1.0f, S, BK, vb + (size_t)j0 * ks, (int)ks, 1.0f, ob, (int)qs);
            }
            cpt_attn_finish(ob, qs, lse + ((size_t)b * H + h) * Tq + i0, m, l, nq, hd);
        }
    }
    return CPT_OK;
}

/* P = exp(S - lse) in place over a scores tile; D[i] = rowsum(dO_i * O_i). Then
 * dP = dO V^T into dS, and dS = P * (dP - D). */
static void probs_and_ds(float *S, float *dS, float *Drow, const float *lb, const float *dob, const float *ob,
                         size_t qs, const float *vb, size_t ks, int nq, int nk, int hd) {
    for (int i = 0; i < nq; i++) {
        const float *a = dob + (size_t)i * qs, *o = ob + (size_t)i * qs;
        float D = 0.0f;
#pragma omp simd reduction(+ : D)
        for (int d = 0; d < hd; d++) D += a[d] * o[d];
        Drow[i] = D;
        float *r = S + (size_t)i * BK, L = lb[i];
        if (L == -INFINITY) {
            for (int j = 0; j < nk; j++) r[j] = 0.0f;
        } else {
#pragma omp simd
            for (int j = 0; j < nk; j++) r[j] = cpt_expf(r[j] - L); /* -inf -> 0 */
        }
    }
    cpt_sgemm(0, 1, nq, nk, hd, 1.0f, dob, (int)qs, vb, (int)ks, 0.0f, dS, BK);
    for (int i = 0; i < nq; i++) {
        const float *p = S + (size_t)i * BK;
        float *r = dS + (size_t)i * BK;
        for (int j = 0; j < nk; j++) r[j] = p[j] * (r[j] - Drow[i]);
    }
}

int cpt_attn_bwd(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                 const float *q, const float *k, const float *v, const int32_t *seg_q, const int32_t *seg_k, int B,
                 int Tq, int Tk, int q_pos0, int H, int KV, int hd, float scale, void *ws, size_t ws_bytes) {
    float *wbase = NULL;
    int slots = ws_slots(ws, ws_bytes, &wbase);
    if (!slots || B < 1 || Tq < 1 || Tk < 1 || KV < 1 || H % KV || hd < 1 || q_pos0 < 0 || !seg_q != !seg_k)
        return CPT_EINVAL;
    int grp = H / KV, nqt = (Tq + BQ - 1) / BQ, nkt = (Tk + BK - 1) / BK, nthr = omp_get_max_threads();
    if (nthr > slots) nthr = slots;
    size_t qs = (size_t)H * hd, ks = (size_t)KV * hd;
    long nt1 = (long)B * KV * nkt, nt2 = (long)B * H * nqt;
#pragma omp parallel num_threads(nthr)
    {
        float *S = wbase + slot_floats() * (size_t)omp_get_thread_num();
        float *dS = S + (size_t)BQ * BK, *Drow = dS + (size_t)BQ * BK;
        /* pass 1: dK, dV per key tile; query heads of the group, then query tiles, in order */
#pragma omp for schedule(dynamic, 1)
        for (long t = 0; t < nt1; t++) {
            int jt = (int)(t % nkt), g = (int)(t / nkt % KV), b = (int)(t / nkt / KV);
            int j0 = jt * BK, nk = Tk - j0 < BK ? Tk - j0 : BK;
            const int32_t *sq = seg_q ? seg_q + (size_t)b * Tq : NULL, *sk = seg_k ? seg_k + (size_t)b * Tk : NULL;
            size_t koff = ((size_t)b * Tk + j0) * ks + (size_t)g * hd;
            const float *kb = k + koff, *vb = v + koff;
            float *dkb = dk + koff, *dvb = dv + koff;
            for (int j = 0; j < nk; j++) {
                memset(dkb + (size_t)j * ks, 0, sizeof(float) * hd);
                memset(dvb + (size_t)j * ks, 0, sizeof(float) * hd);
            }
            /* first query row that can see key j0: q_pos0 + i >= j0 */
            int ifirst = j0 - q_pos0 < 0 ? 0 : j0 - q_pos0;
            for (int hh = 0; hh < grp; hh++) {
                int h = g * grp + hh;
                for (int i0 = ifirst / BQ * BQ; i0 < Tq; i0 += BQ) {
                    int nq = Tq - i0 < BQ ? Tq - i0 : BQ;
                    int kind = cpt_attn_tile_kind(sq, sk, i0, nq, j0, nk, q_pos0);
                    if (!kind) continue;
                    size_t qoff = ((size_t)b * Tq + i0) * qs + (size_t)h * hd;
                    scores(S, q + qoff, qs, kb, ks, nq, nk, hd, scale, kind, sq, sk, i0, j0, q_pos0);
                    probs_and_ds(S, dS, Drow, lse + ((size_t)b * H + h) * Tq + i0, dout + qoff, out + qoff, qs, vb, ks,
                                 nq, nk, hd);
                    cpt_sgemm(1, 0, nk, hd, nq, 1.0f, S, BK, dout + qoff, (int)qs, 1.0f, dvb, (int)ks);
                    cpt_sgemm(1, 0, nk, hd, nq, scale, dS, BK, q + qoff, (int)qs, 1.0f, dkb, (int)ks);
                }
            }
        }
        /* pass 2: dQ per query tile, key tiles in order */
#pragma omp for schedule(dynamic, 1)
        for (long t = 0; t < nt2; t++) {
            int it = nqt - 1 - (int)(t % nqt), h = (int)(t / nqt % H), b = (int)(t / nqt / H), g = h / grp;
            int i0 = it * BQ, nq = Tq - i0 < BQ ? Tq - i0 : BQ;
            const int32_t *sq = seg_q ? seg_q + (size_t)b * Tq : NULL, *sk = seg_k ? seg_k + (size_t)b * Tk : NULL;
            size_t qoff = ((size_t)b * Tq + i0) * qs + (size_t)h * hd;
            float *dqb = dq + qoff;
            const float *kb = k + (size_t)b * Tk * ks + (size_t)g * hd, *vb = v + (size_t)b * Tk * ks + (size_t)g * hd;
            for (int i = 0; i < nq; i++) memset(dqb + (size_t)i * qs, 0, sizeof(float) * hd);
            int jend = q_pos0 + i0 + nq < Tk ? q_pos0 + i0 + nq : Tk;
            for (int j0 = 0; j0 < jend; j0 += BK) {
                int nk = jend - j0 < BK ? jend - j0 : BK;
                int kind = cpt_attn_tile_kind(sq, sk, i0, nq, j0, nk, q_pos0);
                if (!kind) continue;
                scores(S, q + qoff, qs, kb + (size_t)j0 * ks, ks, nq, nk, hd, scale, kind, sq, sk, i0, j0, q_pos0);
                probs_and_ds(S, dS, Drow, lse + ((size_t)b * H + h) * Tq + i0, dout + qoff, out + qoff, qs,
                             vb + (size_t)j0 * ks, ks, nq, nk, hd);
                cpt_sgemm(0, 0, nq, hd, nk, scale, dS, BK, kb + (size_t)j0 * ks, (int)ks, 1.0f, dqb, (int)qs);
            }
        }
    }
    return CPT_OK;
}

/* ---------------- float64 reference: recomputes everything per (b, h, i) ---------------- */
static inline int ref_visible(const int32_t *sq, const int32_t *sk, int b, int Tq, int Tk, int q_pos0, int i, int j) {
    return j <= q_pos0 + i && (!sq || sk[(size_t)b * Tk + j] == sq[(size_t)b * Tq + i]);
}

/* p[Tk] = probabilities of row i; returns the row's log-sum-exp (-inf if none visible). */
static double ref_probs(double *p, const double *q, const double *k, const int32_t *sq, const int32_t *sk, int b,
                        int h, int i, int Tq, int Tk, int q_pos0, int H, int KV, int hd, double scale) {
    int g = h / (H / KV);
    double mx = -INFINITY;
    for (int j = 0; j < Tk; j++) {
        if (!ref_visible(sq, sk, b, Tq, Tk, q_pos0, i, j)) { p[j] = -INFINITY; continue; }
        double s = 0;
        for (int d = 0; d < hd; d++)
            s += q[(((size_t)b * Tq + i) * H + h) * hd + d] * k[(((size_t)b * Tk + j) * KV + g) * hd + d];
        p[j] = s * scale;
        if (p[j] > mx) mx = p[j];
    }
    if (mx == -INFINITY) {
        for (int j = 0; j < Tk; j++) p[j] = 0;
        return -INFINITY;
    }
    double sum = 0;
    for (int j = 0; j < Tk; j++) {
        p[j] = p[j] == -INFINITY ? 0.0 : exp(p[j] - mx);
        sum += p[j];
    }
    for (int j = 0; j < Tk; j++) p[j] /= sum;
    return mx + log(sum);
}

void cpt_ref_attn_fwd(double *out, double *lse, const double *q, const double *k, const double *v,
                      const int32_t *seg_q, const int32_t *seg_k, int B, int Tq, int Tk, int q_pos0, int H, int KV,
                      int hd, double scale) {
    double *p = malloc(sizeof(double) * (size_t)Tk);
    if (!p) return; /* reference (tests only): outputs left untouched, the comparison fails */
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < Tq; i++) {
                double L = ref_probs(p, q, k, seg_q, seg_k, b, h, i, Tq, Tk, q_pos0, H, KV, hd, scale);
                if (lse) lse[((size_t)b * H + h) * Tq + i] = L;
                int g = h / (H / KV);
                for (int d = 0; d < hd; d++) {
                    double s = 0;
                    for (int j = 0; j < Tk; j++) s += p[j] * v[(((size_t)b * Tk + j) * KV + g) * hd + d];
                    out[(((size_t)b * Tq + i) * H + h) * hd + d] = s;
                }
            }
    free(p);
}

void cpt_ref_attn_bwd(double *dq, double *dk, double *dv, const double *dout, const double *q, const double *k,
                      const double *v, const int32_t *seg_q, const int32_t *seg_k, int B, int Tq, int Tk, int q_pos0,
                      int H, int KV, int hd, double scale) {
    size_t nq = (size_t)B * Tq * H * hd, nk = (size_t)B * Tk * KV * hd;
    for (size_t i = 0; i < nq; i++) dq[i] = 0;
    for (size_t i = 0; i < nk; i++) dk[i] = dv[i] = 0;
    double *p = malloc(sizeof(double) * (size_t)Tk), *dp = malloc(sizeof(double) * (size_t)Tk);
    if (!p || !dp) {
        free(p), free(dp);
        return;
    }
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            int g = h / (H / KV);
            for (int i = 0; i < Tq; i++) {
                ref_probs(p, q, k, seg_q, seg_k, b, h, i, Tq, Tk, q_pos0, H, KV, hd, scale);
                const double *doi = dout + (((size_t)b * Tq + i) * H + h) * hd;
                double D = 0;
                for (int j = 0; j < Tk; j++) {
                    double s = 0;
                    for (int d = 0; d < hd; d++) s += doi[d] * v[(((size_t)b * Tk + j) * KV + g) * hd + d];
                    dp[j] = s;
                    D += p[j] * s;
                }
                for (int j = 0; j < Tk; j++) {
                    if (p[j] == 0) continue;
                    double ds = p[j] * (dp[j] - D) * scale;
                    for (int d = 0; d < hd; d++) {
                        dq[(((size_t)b * Tq + i) * H + h) * hd + d] += ds * k[(((size_t)b * Tk + j) * KV + g) * hd + d];
                        dk[(((size_t)b * Tk + j) * KV + g) * hd + d] += ds * q[(((size_t)b * Tq + i) * H + h) * hd + d];
                        dv[(((size_t)b * Tk + j) * KV + g) * hd + d] += p[j] * doi[d];
                    }
                }
            }
        }
    free(p);
    free(dp);
}

void cpt_ref_attn_bwd_saved(double *dq, double *dk, double *dv, const double *dout, const double *out,
                            const double *lse, const double *q, const double *k, const double *v, const int32_t *seg_q,
                            const int32_t *seg_k, int B, int Tq, int Tk, int q_pos0, int H, int KV, int hd,
                            double scale) {
    size_t nq = (size_t)B * Tq * H * hd, nk = (size_t)B * Tk * KV * hd;
    for (size_t i = 0; i < nq; i++) dq[i] = 0;
    for (size_t i = 0; i < nk; i++) dk[i] = dv[i] = 0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            int g = h / (H / KV);
            for (int i = 0; i < Tq; i++) {
                double L = lse[((size_t)b * H + h) * Tq + i];
                if (L == -INFINITY) continue;
                const double *qi = q + (((size_t)b * Tq + i) * H + h) * hd;
                const double *doi = dout + (((size_t)b * Tq + i) * H + h) * hd, *oi = out + (((size_t)b * Tq + i) * H + h) * hd;
                double D = 0;
                for (int d = 0; d < hd; d++) D += doi[d] * oi[d];
                for (int j = 0; j < Tk; j++) {
                    if (!ref_visible(seg_q, seg_k, b, Tq, Tk, q_pos0, i, j)) continue;
                    const double *kj = k + (((size_t)b * Tk + j) * KV + g) * hd, *vj = v + (((size_t)b * Tk + j) * KV + g) * hd;
                    double s = 0, dp = 0;
                    for (int d = 0; d < hd; d++) s += qi[d] * kj[d], dp += doi[d] * vj[d];
                    double p = exp(s * scale - L), ds = p * (dp - D) * scale;
                    double *dqi = dq + (((size_t)b * Tq + i) * H + h) * hd;
                    double *dkj = dk + (((size_t)b * Tk + j) * KV + g) * hd, *dvj = dv + (((size_t)b * Tk + j) * KV + g) * hd;
                    for (int d = 0; d < hd; d++) dqi[d] += ds * kj[d], dkj[d] += ds * qi[d], dvj[d] += p * doi[d];
                }
            }
        }
}

/* attn_tiles.h: what the fp32 (attention.c) and bf16 (attention_bf16.c) attention kernels
 * share: the tile sizes, the mask classification of a (query tile, key tile) pair and the
 * element mask, so that both skip and mask exactly the same entries. */
#ifndef CPT_OPS_ATTN_TILES_H
#define CPT_OPS_ATTN_TILES_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "vexp.h"

enum { CPT_ATTN_BQ = 64, CPT_ATTN_BK = 64 };

static inline void cpt_attn_seg_range(const int32_t *s, int n, int32_t *lo, int32_t *hi) {
    int32_t a = s[0], b = s[0];
    for (int i = 1; i < n; i++) {
        if (s[i] < a) a = s[i];
        if (s[i] > b) b = s[i];
    }
    *lo = a, *hi = b;
}

/* Tile classification: 0 empty (skip), 1 fully visible, 2 needs the element mask. A tile
 * is skipped when the causal bound empties it or when the query tile's [min,max] seg range
 * and the key tile's do not overlap (sound whatever the order of ids). */
static inline int cpt_attn_tile_kind(const int32_t *sq, const int32_t *sk, int i0, int nq, int j0, int nk, int q_pos0) {
    if (j0 > q_pos0 + i0 + nq - 1) return 0;
    int full = j0 + nk - 1 <= q_pos0 + i0;
    if (!sq) return full ? 1 : 2;
    int32_t ql, qh, kl, kh;
    cpt_attn_seg_range(sq + i0, nq, &ql, &qh);
    cpt_attn_seg_range(sk + j0, nk, &kl, &kh);
    if (kh < ql || kl > qh) return 0;
    return full && ql == qh && kl == kh ? 1 : 2;
}

/* Masked entries of a scores tile S[nq, nk] (row stride lds) set to -inf. */
static inline void cpt_attn_mask(float *S, int lds, int nq, int nk, const int32_t *sq, const int32_t *sk, int i0, int j0,
                                 int q_pos0) {
    for (int i = 0; i < nq; i++) {
        float *r = S + (size_t)i * lds;
        int lim = q_pos0 + i0 + i - j0; /* last visible column */
        for (int j = 0; j < nk; j++)
            if (j > lim || (sq && sq[i0 + i] != sk[j0 + j])) r[j] = -INFINITY;
    }
}

/* The online softmax over one scores tile S[nq, nk] (row stride lds): per row the running
 * max m and sum l are updated, S becomes exp(S - m) (0 for a row that sees nothing yet) and
 * the row's unnormalised output o (row stride os, hd values) is rescaled by exp(m_old - m). */
static inline void cpt_attn_online_softmax(float *S, int lds, int nq, int nk, float *m, float *l, float *ob, size_t os, int hd) {
    for (int i = 0; i < nq; i++) {
        float *r = S + (size_t)i * lds, mx = m[i];
#pragma omp simd reduction(max : mx)
        for (int j = 0; j < nk; j++) mx = r[j] > mx ? r[j] : mx;
        if (mx == -INFINITY) { /* nothing visible yet in this row */
            for (int j = 0; j < nk; j++) r[j] = 0.0f;
            continue;
        }
        /* The simd sum's order is fixed by the code, not by the thread count. */
        float alpha = cpt_expf(m[i] - mx), sum = 0.0f; /* m = -inf -> 0 */
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < nk; j++) {
            float e = cpt_expf(r[j] - mx);
            r[j] = e;
            sum += e;
        }
        l[i] = alpha * l[i] + sum, m[i] = mx;
        if (alpha != 1.0f) {
            float *o = ob + (size_t)i * os;
            for (int d = 0; d < hd; d++) o[d] *= alpha;
        }
    }
}

/* The end of a query tile: o /= l and lse = m + log l; a row that saw no key keeps o = 0
 * and gets lse = -inf (methods.md 14.1). */
static inline void cpt_attn_finish(float *ob, size_t os, float *lb, const float *m, const float *l, int nq, int hd) {
    for (int i = 0; i < nq; i++) {
        float *o = ob + (size_t)i * os;
        if (l[i] > 0.0f) {
            float inv = 1.0f / l[i];
            for (int d = 0; d < hd; d++) o[d] *= inv;
            lb[i] = m[i] + logf(l[i]);
        } else {
            lb[i] = -INFINITY;
        }
    }
}

#endif

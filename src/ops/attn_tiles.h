/* attn_tiles.h: what the fp32 (attention.c) and bf16 (attention_bf16.c) attention kernels
 * share: the tile sizes, the mask classification of a (query tile, key tile) pair and the
 * element mask, so that both skip and mask exactly the same entries. */
#ifndef CPT_OPS_ATTN_TILES_H
#define CPT_OPS_ATTN_TILES_H

#include <math.h>
#include <stdint.h>

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

#endif

/* attention_bf16.c: the attention of cpt's bf16 mode -- the same tiled online-softmax
 * algorithm, tasks, masks and accumulation order as attention.c (which see), with the tile
 * products on AVX512-BF16 (vdpbf16ps: bf16 pairs, fp32 accumulation) instead of fp32 sgemm.
 *
 * What is bf16: the operands of the five tile products -- q, k, v and dout (rounded once
 * per call), the probabilities P before P V and before dV, and dS before dQ and dK, as
 * FlashAttention does on GPUs. What stays fp32: the scores and their softmax (max, exp,
 * sum, lse), D = rowsum(dout * out), dP - D, every accumulator and every output.
 *
 * Why own kernels rather than oneDNN's gemm (gemm_bf16.c): a tile product is 64 x 64 x hd,
 * too small for a packing gemm call per tile; here each operand is packed once per call
 * into the layout the microkernel reads (vdpbf16ps takes a pair of bf16 along the inner
 * dimension, so B is stored [K/2][N][2]), and the per-tile operands (P, dS) are packed from
 * registers-sized rows. The microkernel keeps a 6 x 64 block of C in 24 zmm accumulators.
 *
 * Layouts (uint16 bf16), all zero-padded so no pair reads past a row's end:
 *   qr, dor  [B*Tq*H][hd2]        rows, hd2 = hd rounded up to even (A of S = q k^T, dP = do v^T)
 *   kd, vd   per (b, kv head, key tile) [hd2/2][BK][2]     (B of S and dP: k^T, v^T)
 *   vr, kr   per (b, kv head, key tile) [BK/2][hdp][2]     (B of O += P v, dQ += dS k), hdp = hd
 *            rounded up to 16
 *   qt, dot  per (b, head, query tile) [hd][BQ]             (A of dK^T += q^T dS, dV^T += do^T P)
 * dK and dV are accumulated transposed (dV^T = do^T P needs no transpose of P) in a
 * per-thread [hd][BK] tile and written once per key tile.
 * The result is bitwise independent of the thread count, as attention.c's. On a CPU without
 * AVX512-BF16 (or with CPT_BF16_ISA below avx512_bf16) the fp32 kernels run. */
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "cpt/common.h"
#include "cpt/ops.h"
#include "ops/attn_tiles.h"

enum { BQ = CPT_ATTN_BQ, BK = CPT_ATTN_BK, MR = 6, HD_MAX = 512 };

typedef struct {
    int B, Tq, Tk, H, KV, hd, hd2, hdp, nqt, nkt;
    size_t n_qr, n_kd, n_kr, n_qt; /* uint16 elements of one pack of each layout */
    size_t n_D;                    /* floats of D = rowsum(dout * out), [B][Tq][H] */
    size_t slot;                   /* bytes of one thread's scratch */
} geo;

static size_t up64(size_t b) { return (b + 63) & ~(size_t)63; }

static geo geometry(int B, int Tq, int Tk, int H, int KV, int hd) {
    geo g = {B, Tq, Tk, H, KV, hd, (hd + 1) & ~1, (hd + 15) & ~15, (Tq + BQ - 1) / BQ, (Tk + BK - 1) / BK, 0, 0, 0, 0, 0, 0};
    g.n_qr = (size_t)B * Tq * H * g.hd2;
    g.n_kd = (size_t)B * KV * g.nkt * BK * g.hd2;
    g.n_kr = (size_t)B * KV * g.nkt * BK * g.hdp;
    g.n_qt = (size_t)B * H * g.nqt * BQ * hd;
    g.n_D = (size_t)B * Tq * H;
    /* fp32: S, dS [BQ][BK], D / m / l rows, dV^T and dK^T [hd][BK]; bf16: P and dS tiles, two
     * staging rows of max(hdp, BK) */
    g.slot = up64(sizeof(float) * ((size_t)2 * BQ * BK + 3 * BQ + (size_t)2 * hd * BK)) +
             up64(sizeof(uint16_t) * ((size_t)2 * BQ * BK + 2 * (size_t)(g.hdp > BK ? g.hdp : BK)));
    return g;
}

static int use_bf16(int hd) { return hd <= HD_MAX && cpt_cpu_bf16_isa() >= CPT_BF16_ISA_AVX512_BF16; }

size_t cpt_attn_workspace_bytes_bf16(int B, int Tq, int Tk, int H, int KV, int hd, int nthreads) {
    if (nthreads < 1) nthreads = 1;
    size_t f32 = cpt_attn_workspace_bytes(Tq, Tk, hd, nthreads);
    if (B < 1 || Tq < 1 || Tk < 1 || H < 1 || KV < 1 || hd < 1 || hd > HD_MAX) return f32;
    geo g = geometry(B, Tq, Tk, H, KV, hd);
    /* the backward's packs (the forward uses the first three) and the thread slots */
    size_t b = 64 + 2 * up64(2 * g.n_qr) + 2 * up64(2 * g.n_kd) + 2 * up64(2 * g.n_kr) + 2 * up64(2 * g.n_qt) +
               up64(sizeof(float) * g.n_D) + g.slot * (size_t)nthreads;
    return b > f32 ? b : f32;
}

#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

/* ---- the microkernel: C[m, n] = alpha * A B (+ C when acc) ----
 * A: m rows of 2*k2 bf16 (row stride lda), pairs along the inner dimension; B: [k2][nb][2]
 * bf16 (nb a multiple of 16, n <= nb); C fp32, row stride ldc; only columns < n are written. */
static inline BF16_TARGET __attribute__((always_inline)) void mk_block(const int mr, const int nz, int k2, const uint16_t *A,
                                                                        int lda, const uint16_t *Bp, int nb, float *C, int ldc,
                                                                        float alpha, int acc, int ncols) {
    __m512 c[MR][4];
    for (int r = 0; r < mr; r++)
        for (int z = 0; z < nz; z++) c[r][z] = _mm512_setzero_ps();
    for (int kp = 0; kp < k2; kp++) {
        const uint16_t *b = Bp + (size_t)kp * nb * 2;
        __m512bh bz[4];
        for (int z = 0; z < nz; z++) bz[z] = (__m512bh)_mm512_loadu_si512((const void *)(b + z * 32));
        for (int r = 0; r < mr; r++) {
            int32_t w;
            memcpy(&w, A + (size_t)r * lda + 2 * kp, sizeof w);
            __m512bh a = (__m512bh)_mm512_set1_epi32(w);
            for (int z = 0; z < nz; z++) c[r][z] = _mm512_dpbf16_ps(c[r][z], a, bz[z]);
        }
    }
    __m512 al = _mm512_set1_ps(alpha);
    for (int r = 0; r < mr; r++)
        for (int z = 0; z < nz; z++) {
            int left = ncols - z * 16;
            __mmask16 k = left >= 16 ? (__mmask16)0xffff : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1);
            float *cp = C + (size_t)r * ldc + z * 16;
            __m512 v = _mm512_mul_ps(c[r][z], al);
            if (acc) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, cp));
            _mm512_mask_storeu_ps(cp, k, v);
        }
}

static BF16_TARGET void mk(int m, int n, int k2, const uint16_t *A, int lda, const uint16_t *Bp, int nb, float *C, int ldc,
                           float alpha, int acc) {
    for (int c0 = 0; c0 < n; c0 += 64) {
        int nz = (n - c0 + 15) / 16;
        nz = nz > 4 ? 4 : nz;
        const uint16_t *bp = Bp + (size_t)c0 * 2;
        for (int i = 0; i < m; i += MR) {
            int mr = m - i < MR ? m - i : MR;
            const uint16_t *a = A + (size_t)i * lda;
            float *c = C + (size_t)i * ldc + c0;
#define MKC(R, Z)                                                                                                   \
    case R * 8 + Z: mk_block(R, Z, k2, a, lda, bp, nb, c, ldc, alpha, acc, n - c0); break;
#define MKR(R) MKC(R, 1) MKC(R, 2) MKC(R, 3) MKC(R, 4)
            switch (mr * 8 + nz) { MKR(1) MKR(2) MKR(3) MKR(4) MKR(5) MKR(6) default: break; }
#undef MKR
#undef MKC
        }
    }
}

/* ---- packing ---- */

/* dst[0, hd) = bf16(src), dst[hd, npad) = 0 */
static void row16(uint16_t *dst, const float *src, int hd, int npad) {
    if (src) cpt_f32_to_bf16_n(dst, src, (size_t)hd);
    else memset(dst, 0, sizeof(uint16_t) * (size_t)hd);
    if (npad > hd) memset(dst + hd, 0, sizeof(uint16_t) * (size_t)(npad - hd));
}

/* Two bf16 rows a, c of n (a multiple of 16) -> n pairs (a[d], c[d]) */
static BF16_TARGET void interleave(uint16_t *dst, const uint16_t *a, const uint16_t *c, int n) {
    for (int d = 0; d < n; d += 16) {
        __m512i x = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(a + d)));
        __m512i y = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(c + d)));
        _mm512_storeu_si512((void *)(dst + (size_t)d * 2), _mm512_or_si512(x, _mm512_slli_epi32(y, 16)));
    }
}

/* Rows r0 .. r0 + nr of x (row p at x + p * rs, hd floats; rows >= T are zero) as
 * [nr/2][hdp][2] pairs of consecutive rows. stage: 2 * hdp uint16. */
static void pack_rowpair(uint16_t *dst, const float *x, size_t rs, int r0, int nr, int T, int hd, int hdp, uint16_t *stage) {
    for (int p = 0; p < nr; p += 2) {
        row16(stage, r0 + p < T ? x + (size_t)(r0 + p) * rs : NULL, hd, hdp);
        row16(stage + hdp, r0 + p + 1 < T ? x + (size_t)(r0 + p + 1) * rs : NULL, hd, hdp);
        interleave(dst + (size_t)p * hdp, stage, stage + hdp, hdp);
    }
}

/* Rows r0 .. r0 + BK of x as [hd2/2][BK][2]: row j's pair p at (p * BK + j) * 2. */
static void pack_dpair(uint16_t *dst, const float *x, size_t rs, int r0, int T, int hd, int hd2, uint16_t *stage) {
    uint32_t *d32 = (uint32_t *)(void *)dst;
    for (int j = 0; j < BK; j++) {
        row16(stage, r0 + j < T ? x + (size_t)(r0 + j) * rs : NULL, hd, hd2);
        const uint32_t *s32 = (const uint32_t *)(const void *)stage;
        for (int p = 0; p < hd2 / 2; p++) d32[(size_t)p * BK + j] = s32[p];
    }
}

/* Rows r0 .. r0 + BQ of x transposed: [hd][BQ], column i = row r0 + i (zero past T). */
static void pack_trans(uint16_t *dst, const float *x, size_t rs, int r0, int T, int hd, uint16_t *stage) {
    for (int i = 0; i < BQ; i++) {
        row16(stage, r0 + i < T ? x + (size_t)(r0 + i) * rs : NULL, hd, hd);
        for (int d = 0; d < hd; d++) dst[(size_t)d * BQ + i] = stage[d];
    }
}

/* A tile of fp32 rows (stride BK, nc columns) -> bf16 rows (stride BK), zero-padded to even nc. */
static void tile16(uint16_t *dst, const float *src, int nr, int nc) {
    for (int i = 0; i < nr; i++) {
        cpt_f32_to_bf16_n(dst + (size_t)i * BK, src + (size_t)i * BK, (size_t)nc);
        if (nc & 1) dst[(size_t)i * BK + nc] = 0;
    }
}

/* A tile of fp32 rows (stride BK, nr rows) -> [BQ/2][BK][2] pairs of consecutive rows (rows
 * >= nr zero), the B operand of dV^T += do^T P and dK^T += q^T dS. stage: 2 * BK uint16. */
static void tile_rowpair(uint16_t *dst, const float *src, int nr, uint16_t *stage) {
    int ne = (nr + 1) & ~1;
    for (int p = 0; p < ne; p += 2) {
        cpt_f32_to_bf16_n(stage, src + (size_t)p * BK, BK);
        if (p + 1 < nr) cpt_f32_to_bf16_n(stage + BK, src + (size_t)(p + 1) * BK, BK);
        else memset(stage + BK, 0, sizeof(uint16_t) * BK);
        interleave(dst + (size_t)p * BK, stage, stage + BK, BK);
    }
}

typedef struct {
    uint16_t *qr, *kd, *vr, *dor, *vd, *kr, *qt, *dot;
    float *D; /* backward: rowsum(dout * out) per (b, i, h) */
    char *slots;
    int nslots;
} packs;

static int carve(packs *p, const geo *g, void *ws, size_t ws_bytes, int bwd) {
    uintptr_t a = ((uintptr_t)ws + 63) & ~(uintptr_t)63;
    char *c = (char *)a, *end = (char *)ws + ws_bytes;
    if (!ws || c > end) return 0;
    p->qr = (uint16_t *)(void *)c, c += up64(2 * g->n_qr);
    p->kd = (uint16_t *)(void *)c, c += up64(2 * g->n_kd);
    p->vr = (uint16_t *)(void *)c, c += up64(2 * g->n_kr);
    if (bwd) {
        p->dor = (uint16_t *)(void *)c, c += up64(2 * g->n_qr);
        p->vd = (uint16_t *)(void *)c, c += up64(2 * g->n_kd);
        p->kr = (uint16_t *)(void *)c, c += up64(2 * g->n_kr);
        p->qt = (uint16_t *)(void *)c, c += up64(2 * g->n_qt);
        p->dot = (uint16_t *)(void *)c, c += up64(2 * g->n_qt);
        p->D = (float *)(void *)c, c += up64(sizeof(float) * g->n_D);
    }
    if (c > end || (size_t)(end - c) < g->slot) return 0;
    p->slots = c;
    size_t n = (size_t)(end - c) / g->slot;
    p->nslots = n > 4096 ? 4096 : (int)n;
    return 1;
}

/* Inside a parallel region: the packs of q, k, v (and dout for the backward). */
static void pack_all(const packs *p, const geo *g, const float *q, const float *k, const float *v, const float *dout,
                     const float *out, uint16_t *stage) {
    size_t qs = (size_t)g->H * g->hd, ks = (size_t)g->KV * g->hd;
    long nrow = (long)g->B * g->Tq * g->H;
#pragma omp for schedule(static)
    for (long r = 0; r < nrow; r++) {
        row16(p->qr + (size_t)r * g->hd2, q + (size_t)r * g->hd, g->hd, g->hd2);
        if (dout) {
            row16(p->dor + (size_t)r * g->hd2, dout + (size_t)r * g->hd, g->hd, g->hd2);
            const float *a = dout + (size_t)r * g->hd, *o = out + (size_t)r * g->hd;
            float D = 0.0f;
#pragma omp simd reduction(+ : D)
            for (int d = 0; d < g->hd; d++) D += a[d] * o[d];
            p->D[r] = D;
        }
    }
    long nkt = (long)g->B * g->KV * g->nkt; /* (b, kv head, key tile), the packs' order */
#pragma omp for schedule(static)
    for (long t = 0; t < nkt; t++) {
        int jt = (int)(t % g->nkt), h = (int)(t / g->nkt % g->KV), b = (int)(t / g->nkt / g->KV);
        const float *kx = k + (size_t)b * g->Tk * ks + (size_t)h * g->hd, *vx = v + (size_t)b * g->Tk * ks + (size_t)h * g->hd;
        pack_dpair(p->kd + (size_t)t * BK * g->hd2, kx, ks, jt * BK, g->Tk, g->hd, g->hd2, stage);
        pack_rowpair(p->vr + (size_t)t * BK * g->hdp, vx, ks, jt * BK, BK, g->Tk, g->hd, g->hdp, stage);
        if (dout) {
            pack_dpair(p->vd + (size_t)t * BK * g->hd2, vx, ks, jt * BK, g->Tk, g->hd, g->hd2, stage);
            pack_rowpair(p->kr + (size_t)t * BK * g->hdp, kx, ks, jt * BK, BK, g->Tk, g->hd, g->hdp, stage);
        }
    }
    if (!dout) return;
    long nqt = (long)g->B * g->H * g->nqt; /* (b, head, query tile) */
#pragma omp for schedule(static)
    for (long t = 0; t < nqt; t++) {
        int it = (int)(t % g->nqt), h = (int)(t / g->nqt % g->H), b = (int)(t / g->nqt / g->H);
        size_t off = (size_t)b * g->Tq * qs + (size_t)h * g->hd;
        pack_trans(p->qt + (size_t)t * BQ * g->hd, q + off, qs, it * BQ, g->Tq, g->hd, stage);
        pack_trans(p->dot + (size_t)t * BQ * g->hd, dout + off, qs, it * BQ, g->Tq, g->hd, stage);
    }
}

/* One thread's scratch. */
typedef struct {
    float *S, *dS, *m, *l, *D, *dvT, *dkT;
    uint16_t *P16, *dS16, *stage;
} slot;

static slot slot_at(const packs *p, const geo *g, int t) {
    char *c = p->slots + g->slot * (size_t)t;
    slot s;
    s.S = (float *)(void *)c, s.dS = s.S + BQ * BK, s.m = s.dS + BQ * BK, s.l = s.m + BQ, s.D = s.l + BQ;
    s.dvT = s.D + BQ, s.dkT = s.dvT + (size_t)g->hd * BK;
    s.P16 = (uint16_t *)(void *)(c + up64(sizeof(float) * ((size_t)2 * BQ * BK + 3 * BQ + (size_t)2 * g->hd * BK)));
    s.dS16 = s.P16 + BQ * BK, s.stage = s.dS16 + BQ * BK;
    return s;
}

/* S = scale q k^T for query rows i0.. of head h and key tile jt of kv head kvh, masked. */
static void scores16(const slot *s, const packs *p, const geo *g, int b, int h, int kvh, int i0, int nq, int jt, int nk,
                     float scale, int kind, const int32_t *sq, const int32_t *sk, int q_pos0) {
    const uint16_t *qa = p->qr + (((size_t)b * g->Tq + i0) * g->H + h) * g->hd2;
    const uint16_t *kb = p->kd + (((size_t)b * g->KV + kvh) * g->nkt + jt) * BK * g->hd2;
    mk(nq, nk, g->hd2 / 2, qa, g->H * g->hd2, kb, BK, s->S, BK, scale, 0);
    if (kind == 2) cpt_attn_mask(s->S, BK, nq, nk, sq, sk, i0, jt * BK, q_pos0);
}

int cpt_attn_fwd_bf16(float *out, float *lse, const float *q, const float *k, const float *v, const int32_t *seg_q,
                      const int32_t *seg_k, int B, int Tq, int Tk, int q_pos0, int H, int KV, int hd, float scale, void *ws,
                      size_t ws_bytes) {
    if (!use_bf16(hd)) return cpt_attn_fwd(out, lse, q, k, v, seg_q, seg_k, B, Tq, Tk, q_pos0, H, KV, hd, scale, ws, ws_bytes);
    if (B < 1 || Tq < 1 || Tk < 1 || KV < 1 || H % KV || hd < 1 || q_pos0 < 0 || !seg_q != !seg_k) return CPT_EINVAL;
    geo g = geometry(B, Tq, Tk, H, KV, hd);
    packs p;
    if (!carve(&p, &g, ws, ws_bytes, 0)) return CPT_EINVAL;
    int grp = H / KV, nqt = g.nqt, nthr = omp_get_max_threads();
    if (nthr > p.nslots) nthr = p.nslots;
    size_t qs = (size_t)H * hd;
    long ntask = (long)B * H * nqt;
#pragma omp parallel num_threads(nthr)
    {
        slot s = slot_at(&p, &g, omp_get_thread_num());
        pack_all(&p, &g, q, k, v, NULL, NULL, s.stage);
#pragma omp for schedule(dynamic, 1)
        for (long t = 0; t < ntask; t++) {
            int it = nqt - 1 - (int)(t % nqt), h = (int)(t / nqt % H), b = (int)(t / nqt / H), kvh = h / grp;
            int i0 = it * BQ, nq = Tq - i0 < BQ ? Tq - i0 : BQ;
            const int32_t *sq = seg_q ? seg_q + (size_t)b * Tq : NULL, *sk = seg_k ? seg_k + (size_t)b * Tk : NULL;
            float *ob = out + ((size_t)b * Tq + i0) * qs + (size_t)h * hd;
            for (int i = 0; i < nq; i++) {
                s.m[i] = -INFINITY, s.l[i] = 0.0f;
                memset(ob + (size_t)i * qs, 0, sizeof(float) * hd);
            }
            int jend = q_pos0 + i0 + nq < Tk ? q_pos0 + i0 + nq : Tk;
            for (int j0 = 0; j0 < jend; j0 += BK) {
                int nk = jend - j0 < BK ? jend - j0 : BK;
                int kind = cpt_attn_tile_kind(sq, sk, i0, nq, j0, nk, q_pos0);
                if (!kind) continue;
                scores16(&s, &p, &g, b, h, kvh, i0, nq, j0 / BK, nk, scale, kind, sq, sk, q_pos0);
                cpt_attn_online_softmax(s.S, BK, nq, nk, s.m, s.l, ob, qs, hd);
                tile16(s.P16, s.S, nq, nk);
                const uint16_t *vb = p.vr + (((size_t)b * KV + kvh) * g.nkt + j0 / BK) * BK * g.hdp;
                mk(nq, hd, (nk + 1) / 2, s.P16, BK, vb, g.hdp, ob, (int)qs, 1.0f, 1);
            }
            cpt_attn_finish(ob, qs, lse + ((size_t)b * H + h) * Tq + i0, s.m, s.l, nq, hd);
        }
    }
    return CPT_OK;
}

/* P = exp(S - lse) in place, dP = do v^T into dS, then dS = P * (dP - D) with D =
 * rowsum(dout * out) from the packs (fp32, once per row and call). */
static void probs_ds16(const slot *s, const packs *p, const geo *g, int b, int h, int kvh, int i0, int nq, int jt, int nk,
                       const float *lb) {
    for (int i = 0; i < nq; i++) {
        s->D[i] = p->D[((size_t)b * g->Tq + i0 + i) * g->H + h];
        float *r = s->S + (size_t)i * BK, L = lb[i];
        if (L == -INFINITY) {
            for (int j = 0; j < nk; j++) r[j] = 0.0f;
        } else {
#pragma omp simd
            for (int j = 0; j < nk; j++) r[j] = cpt_expf(r[j] - L);
        }
    }
    const uint16_t *da = p->dor + (((size_t)b * g->Tq + i0) * g->H + h) * g->hd2;
    const uint16_t *vb = p->vd + (((size_t)b * g->KV + kvh) * g->nkt + jt) * BK * g->hd2;
    mk(nq, nk, g->hd2 / 2, da, g->H * g->hd2, vb, BK, s->dS, BK, 1.0f, 0);
    for (int i = 0; i < nq; i++) {
        const float *pr = s->S + (size_t)i * BK;
        float *r = s->dS + (size_t)i * BK;
        for (int j = 0; j < nk; j++) r[j] = pr[j] * (r[j] - s->D[i]);
    }
}

int cpt_attn_bwd_bf16(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse, const float *q,
                      const float *k, const float *v, const int32_t *seg_q, const int32_t *seg_k, int B, int Tq, int Tk,
                      int q_pos0, int H, int KV, int hd, float scale, void *ws, size_t ws_bytes) {
    if (!use_bf16(hd))
        return cpt_attn_bwd(dq, dk, dv, dout, out, lse, q, k, v, seg_q, seg_k, B, Tq, Tk, q_pos0, H, KV, hd, scale, ws, ws_bytes);
    if (B < 1 || Tq < 1 || Tk < 1 || KV < 1 || H % KV || hd < 1 || q_pos0 < 0 || !seg_q != !seg_k) return CPT_EINVAL;
    geo g = geometry(B, Tq, Tk, H, KV, hd);
    packs p;
    if (!carve(&p, &g, ws, ws_bytes, 1)) return CPT_EINVAL;
    int grp = H / KV, nqt = g.nqt, nkt = g.nkt, nthr = omp_get_max_threads();
    if (nthr > p.nslots) nthr = p.nslots;
    size_t qs = (size_t)H * hd, ks = (size_t)KV * hd;
    long nt1 = (long)B * KV * nkt, nt2 = (long)B * H * nqt;
#pragma omp parallel num_threads(nthr)
    {
        slot s = slot_at(&p, &g, omp_get_thread_num());
        pack_all(&p, &g, q, k, v, dout, out, s.stage);
        /* pass 1: dK, dV per key tile (as dK^T, dV^T); query heads of the group, then query tiles */
#pragma omp for schedule(dynamic, 1)
        for (long t = 0; t < nt1; t++) {
            int jt = (int)(t % nkt), kvh = (int)(t / nkt % KV), b = (int)(t / nkt / KV);
            int j0 = jt * BK, nk = Tk - j0 < BK ? Tk - j0 : BK;
            const int32_t *sq = seg_q ? seg_q + (size_t)b * Tq : NULL, *sk = seg_k ? seg_k + (size_t)b * Tk : NULL;
            memset(s.dvT, 0, sizeof(float) * (size_t)hd * BK);
            memset(s.dkT, 0, sizeof(float) * (size_t)hd * BK);
            int ifirst = j0 - q_pos0 < 0 ? 0 : j0 - q_pos0;
            for (int hh = 0; hh < grp; hh++) {
                int h = kvh * grp + hh;
                for (int i0 = ifirst / BQ * BQ; i0 < Tq; i0 += BQ) {
                    int nq = Tq - i0 < BQ ? Tq - i0 : BQ;
                    int kind = cpt_attn_tile_kind(sq, sk, i0, nq, j0, nk, q_pos0);
                    if (!kind) continue;
                    scores16(&s, &p, &g, b, h, kvh, i0, nq, jt, nk, scale, kind, sq, sk, q_pos0);
                    probs_ds16(&s, &p, &g, b, h, kvh, i0, nq, jt, nk, lse + ((size_t)b * H + h) * Tq + i0);
                    size_t qt = (((size_t)b * H + h) * nqt + i0 / BQ) * BQ * hd;
                    tile_rowpair(s.P16, s.S, nq, s.stage);
                    mk(hd, nk, (nq + 1) / 2, p.dot + qt, BQ, s.P16, BK, s.dvT, BK, 1.0f, 1);
                    tile_rowpair(s.dS16, s.dS, nq, s.stage);
                    mk(hd, nk, (nq + 1) / 2, p.qt + qt, BQ, s.dS16, BK, s.dkT, BK, scale, 1);
                }
            }
            size_t koff = ((size_t)b * Tk + j0) * ks + (size_t)kvh * hd;
            for (int j = 0; j < nk; j++)
                for (int d = 0; d < hd; d++) {
                    dk[koff + (size_t)j * ks + d] = s.dkT[(size_t)d * BK + j];
                    dv[koff + (size_t)j * ks + d] = s.dvT[(size_t)d * BK + j];
                }
        }
        /* pass 2: dQ per query tile, key tiles in order */
#pragma omp for schedule(dynamic, 1)
        for (long t = 0; t < nt2; t++) {
            int it = nqt - 1 - (int)(t % nqt), h = (int)(t / nqt % H), b = (int)(t / nqt / H), kvh = h / grp;
            int i0 = it * BQ, nq = Tq - i0 < BQ ? Tq - i0 : BQ;
            const int32_t *sq = seg_q ? seg_q + (size_t)b * Tq : NULL, *sk = seg_k ? seg_k + (size_t)b * Tk : NULL;
            size_t qoff = ((size_t)b * Tq + i0) * qs + (size_t)h * hd;
            float *dqb = dq + qoff;
            for (int i = 0; i < nq; i++) memset(dqb + (size_t)i * qs, 0, sizeof(float) * hd);
            int jend = q_pos0 + i0 + nq < Tk ? q_pos0 + i0 + nq : Tk;
            for (int j0 = 0; j0 < jend; j0 += BK) {
                int nk = jend - j0 < BK ? jend - j0 : BK;
                int kind = cpt_attn_tile_kind(sq, sk, i0, nq, j0, nk, q_pos0);
                if (!kind) continue;
                scores16(&s, &p, &g, b, h, kvh, i0, nq, j0 / BK, nk, scale, kind, sq, sk, q_pos0);
                probs_ds16(&s, &p, &g, b, h, kvh, i0, nq, j0 / BK, nk, lse + ((size_t)b * H + h) * Tq + i0);
                tile16(s.dS16, s.dS, nq, nk);
                const uint16_t *kb = p.kr + (((size_t)b * KV + kvh) * nkt + j0 / BK) * BK * g.hdp;
                mk(nq, hd, (nk + 1) / 2, s.dS16, BK, kb, g.hdp, dqb, (int)qs, scale, 1);
            }
        }
    }
    return CPT_OK;
}

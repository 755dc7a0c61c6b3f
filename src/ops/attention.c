/* attention.c: causal / block-causal GQA softmax attention, forward and backward, and
 * the float64 reference. One (batch, head) is one task: its T x T score block is made
 * with sgemm (OpenBLAS runs single-threaded inside an OpenMP region), masked, soft-maxed
 * in fp32 and kept in P for the backward (methods.md 2.2.6):
 *   dV = P^T dO, dP = dO V^T, dS = P * (dP - rowsum(P*dP)), dQ = s dS K, dK = s dS^T Q.
 * The backward runs one task per (batch, kv head) and loops over the query heads that
 * share it, so GQA's dK/dV sums need no atomics and are deterministic.
 * Not memory-efficient: P is B*H*T*T floats per layer (the long-context issue replaces
 * this with a tiled kernel). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>

#include "cpt/ops.h"

static inline int visible(const int32_t *seg, int b, int T, int i, int j) {
    return j <= i && (!seg || seg[(size_t)b * T + j] == seg[(size_t)b * T + i]);
}

void cpt_attn_fwd(float *out, float *P, const float *q, const float *k, const float *v,
                  const int32_t *seg, int B, int T, int H, int KV, int hd, float scale) {
    int grp = H / KV;
    size_t qs = (size_t)H * hd, ks = (size_t)KV * hd;
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H, g = h / grp;
        const float *qb = q + (size_t)b * T * qs + (size_t)h * hd;
        const float *kb = k + (size_t)b * T * ks + (size_t)g * hd;
        const float *vb = v + (size_t)b * T * ks + (size_t)g * hd;
        float *Pb = P + (size_t)bh * T * T;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, scale, qb, (int)qs, kb, (int)ks,
                    0.0f, Pb, T);
        for (int i = 0; i < T; i++) {
            float *row = Pb + (size_t)i * T;
            float mx = -INFINITY;
            for (int j = 0; j <= i; j++)
                if (visible(seg, b, T, i, j) && row[j] > mx) mx = row[j];
            float sum = 0.0f;
            for (int j = 0; j < T; j++) {
                float e = visible(seg, b, T, i, j) ? expf(row[j] - mx) : 0.0f;
                row[j] = e;
                sum += e;
            }
            float inv = 1.0f / sum;
            for (int j = 0; j <= i; j++) row[j] *= inv;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, Pb, T, vb, (int)ks, 0.0f,
                    out + (size_t)b * T * qs + (size_t)h * hd, (int)qs);
    }
}

void cpt_attn_bwd(float *dq, float *dk, float *dv, const float *dout, const float *P, const float *q,
                  const float *k, const float *v, int B, int T, int H, int KV, int hd, float scale) {
    int grp = H / KV;
    size_t qs = (size_t)H * hd, ks = (size_t)KV * hd;
#pragma omp parallel
    {
        float *dS = malloc(sizeof(float) * (size_t)T * T);
#pragma omp for schedule(static)
        for (int bg = 0; bg < B * KV; bg++) {
            int b = bg / KV, g = bg % KV;
            const float *kb = k + (size_t)b * T * ks + (size_t)g * hd;
            const float *vb = v + (size_t)b * T * ks + (size_t)g * hd;
            float *dkb = dk + (size_t)b * T * ks + (size_t)g * hd;
            float *dvb = dv + (size_t)b * T * ks + (size_t)g * hd;
            for (int hh = 0; hh < grp; hh++) {
                int h = g * grp + hh;
                const float *Pb = P + ((size_t)b * H + h) * T * T;
                const float *qb = q + (size_t)b * T * qs + (size_t)h * hd;
                const float *dob = dout + (size_t)b * T * qs + (size_t)h * hd;
                float *dqb = dq + (size_t)b * T * qs + (size_t)h * hd;
                float beta = hh == 0 ? 0.0f : 1.0f;
                /* dV += P^T dO */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f, Pb, T, dob, (int)qs, beta,
                            dvb, (int)ks);
                /* dP = dO V^T, then dS = P (dP - D) */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, 1.0f, dob, (int)qs, vb, (int)ks,
                            0.0f, dS, T);
                for (int i = 0; i < T; i++) {
                    const float *pr = Pb + (size_t)i * T;
                    float *sr = dS + (size_t)i * T;
                    float D = 0.0f;
                    for (int j = 0; j <= i; j++) D += pr[j] * sr[j];
                    for (int j = 0; j <= i; j++) sr[j] = pr[j] * (sr[j] - D);
                    for (int j = i + 1; j < T; j++) sr[j] = 0.0f;
                }
                /* dQ = s dS K ; dK += s dS^T Q */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, scale, dS, T, kb, (int)ks, 0.0f,
                            dqb, (int)qs);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, scale, dS, T, qb, (int)qs, beta,
                            dkb, (int)ks);
            }
        }
        free(dS);
    }
}

/* Reference: recomputes everything per (b, h, i) in float64. */
static void ref_probs(double *p, const double *q, const double *k, const int32_t *seg, int b, int h, int i,
                      int T, int H, int KV, int hd, double scale) {
    int g = h / (H / KV);
    double mx = -INFINITY;
    for (int j = 0; j < T; j++) {
        if (!visible(seg, b, T, i, j)) { p[j] = -INFINITY; continue; }
        double s = 0;
        for (int d = 0; d < hd; d++)
            s += q[(((size_t)b * T + i) * H + h) * hd + d] * k[(((size_t)b * T + j) * KV + g) * hd + d];
        p[j] = s * scale;
        if (p[j] > mx) mx = p[j];
    }
    double sum = 0;
    for (int j = 0; j < T; j++) {
        p[j] = p[j] == -INFINITY ? 0.0 : exp(p[j] - mx);
        sum += p[j];
    }
    for (int j = 0; j < T; j++) p[j] /= sum;
}

void cpt_ref_attn_fwd(double *out, const double *q, const double *k, const double *v, const int32_t *seg,
                      int B, int T, int H, int KV, int hd, double scale) {
    double *p = malloc(sizeof(double) * (size_t)T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++) {
                ref_probs(p, q, k, seg, b, h, i, T, H, KV, hd, scale);
                int g = h / (H / KV);
                for (int d = 0; d < hd; d++) {
                    double s = 0;
                    for (int j = 0; j < T; j++) s += p[j] * v[(((size_t)b * T + j) * KV + g) * hd + d];
                    out[(((size_t)b * T + i) * H + h) * hd + d] = s;
                }
            }
    free(p);
}

void cpt_ref_attn_bwd(double *dq, double *dk, double *dv, const double *dout, const double *q,
                      const double *k, const double *v, const int32_t *seg, int B, int T, int H, int KV,
                      int hd, double scale) {
    size_t nq = (size_t)B * T * H * hd, nk = (size_t)B * T * KV * hd;
    for (size_t i = 0; i < nq; i++) dq[i] = 0;
    for (size_t i = 0; i < nk; i++) dk[i] = dv[i] = 0;
    double *p = malloc(sizeof(double) * (size_t)T), *dp = malloc(sizeof(double) * (size_t)T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            int g = h / (H / KV);
            for (int i = 0; i < T; i++) {
                ref_probs(p, q, k, seg, b, h, i, T, H, KV, hd, scale);
                const double *doi = dout + (((size_t)b * T + i) * H + h) * hd;
                double D = 0;
                for (int j = 0; j < T; j++) {
                    double s = 0;
                    for (int d = 0; d < hd; d++) s += doi[d] * v[(((size_t)b * T + j) * KV + g) * hd + d];
                    dp[j] = s;
                    D += p[j] * s;
                }
                for (int j = 0; j < T; j++) {
                    double ds = p[j] * (dp[j] - D) * scale;
                    for (int d = 0; d < hd; d++) {
                        dq[(((size_t)b * T + i) * H + h) * hd + d] += ds * k[(((size_t)b * T + j) * KV + g) * hd + d];
                        dk[(((size_t)b * T + j) * KV + g) * hd + d] += ds * q[(((size_t)b * T + i) * H + h) * hd + d];
                        dv[(((size_t)b * T + j) * KV + g) * hd + d] += p[j] * doi[d];
                    }
                }
            }
        }
    free(p);
    free(dp);
}

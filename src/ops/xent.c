/* xent.c: the LM head fused with cross-entropy (methods.md 2.2.8), processed in row
 * chunks so the [N, V] logits never exist at once during training; plus the reference.
 * Logsumexp subtracts the row max; the exp-sum is accumulated in float64. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/common.h"
#include "cpt/ops.h"
#include "vexp.h"

/* Rows per chunk: ~16 MB of logits, at least one row, at most N. */
static int xent_chunk_rows(int N, int V) {
    int C = V > 0 ? (int)((4u << 20) / (unsigned)V) : 1;
    if (C < 1) C = 1;
    if (C > N) C = N;
    return C < 1 ? 1 : C;
}

/* Workspace layout: per-row losses rl[C] (double) at offset 0, then the C*V float
 * block (logits chunk, or the gradient chunk when the caller keeps the logits) at
 * round_up(C*8, 64). nthreads is unused: rows are split across threads in place. */
size_t cpt_xent_workspace_bytes(int N, int V, int nthreads) {
    (void)nthreads;
    if (N <= 0 || V <= 0) return 64;
    size_t C = (size_t)xent_chunk_rows(N, V);
    return ((C * sizeof(double) + 63) & ~(size_t)63) + C * (size_t)V * sizeof(float);
}

/* bf16: after the fp32 workspace, the chunk's hf [C, D] and dz [C, V] rounded to bf16. */
size_t cpt_xent_workspace_bytes_bf16(int N, int D, int V, int nthreads) {
    size_t base = cpt_xent_workspace_bytes(N, V, nthreads);
    if (N <= 0 || V <= 0 || D <= 0) return base;
    size_t C = (size_t)xent_chunk_rows(N, V);
    return base + ((C * (size_t)D * 2 + 63) & ~(size_t)63) + C * (size_t)V * 2;
}

/* Wb NULL: fp32 products with W; else bf16 products with Wb and the bf16 scratch after the
 * fp32 workspace (W is then not read). */
static double xent_impl(float *dhf, float *dW, float *logits_out, float *losses_out, const float *hf, const float *W,
                        const uint16_t *Wb, const int32_t *targets, int N, int D, int V, float grad_scale, long long *n_valid,
                        void *ws, size_t ws_bytes) {
    int backward = dhf || dW;
    int C = xent_chunk_rows(N, V);
    size_t need = Wb ? cpt_xent_workspace_bytes_bf16(N, D, V, 1) : cpt_xent_workspace_bytes(N, V, 1);
    if (!ws || ws_bytes < need) {
        /* No allocation on the step path: the caller plans this scratch. */
        if (n_valid) *n_valid = -(long long)need;
        return NAN;
    }
    double *rl = ws;
    float *blk = (float *)((char *)ws + (((size_t)C * sizeof(double) + 63) & ~(size_t)63));
    uint16_t *hs = Wb ? (uint16_t *)((char *)ws + cpt_xent_workspace_bytes(N, V, 1)) : NULL;
    uint16_t *dzs = Wb ? hs + (((size_t)C * D * 2 + 63) & ~(size_t)63) / 2 : NULL;
    int bad = 0;
    float *z = logits_out ? NULL : blk;
    double total = 0.0;
    long long valid = 0;
    for (int r0 = 0; r0 < N; r0 += C) {
        int rows = r0 + C <= N ? C : N - r0;
        float *zc = logits_out ? logits_out + (size_t)r0 * V : z;
        if (Wb) {
            cpt_f32_to_bf16_n(hs, hf + (size_t)r0 * D, (size_t)rows * D);
            bad |= cpt_gemm_bf16(0, 1, rows, V, D, 1.0f, hs, D, Wb, D, 0.0f, zc, V);
        } else {
            cpt_sgemm(0, 1, rows, V, D, 1.0f, hf + (size_t)r0 * D, D, W, D, 0.0f, zc, V);
        }
        double chunk_loss = 0.0;
        long long chunk_valid = 0;
        /* Per-row losses go to a small array so the sum order is fixed. */
#pragma omp parallel for schedule(static)
        for (int r = 0; r < rows; r++) {
            float *zr = zc + (size_t)r * V;
            int t = targets ? targets[r0 + r] : -1;
            rl[r] = 0.0;
            if (t < 0) {
                if (losses_out) losses_out[r0 + r] = 0.0f;
                if (backward && !logits_out) memset(zr, 0, sizeof(float) * (size_t)V);
                continue;
            }
            float mx = zr[0];
#pragma omp simd reduction(max : mx)
            for (int j = 1; j < V; j++) mx = zr[j] > mx ? zr[j] : mx;
            float zt = zr[t];
            double s = 0.0;
            if (backward && !logits_out) {
                /* One exp pass: keep e_j = exp(z_j - max) in place, then scale it into
                 * the gradient (softmax - onehot) * grad_scale. */
#pragma omp simd reduction(+ : s)
                for (int j = 0; j < V; j++) {
                    float e = cpt_expf(zr[j] - mx);
                    zr[j] = e;
                    s += (double)e;
                }
                float gs = (float)((double)grad_scale / s);
                for (int j = 0; j < V; j++) zr[j] *= gs;
                zr[t] -= grad_scale;
            } else {
#pragma omp simd reduction(+ : s)
                for (int j = 0; j < V; j++) s += (double)cpt_expf(zr[j] - mx);
            }
            double loss = (double)mx + log(s) - (double)zt;
            rl[r] = loss;
            if (losses_out) losses_out[r0 + r] = (float)loss;
        }
        for (int r = 0; r < rows; r++)
            if (targets && targets[r0 + r] >= 0) {
                chunk_loss += rl[r];
                chunk_valid++;
            }
        total += chunk_loss;
        valid += chunk_valid;
        if (backward) {
            /* With logits_out the caller keeps the logits, so the gradient needs its own buffer. */
            float *dz = zc;
            if (logits_out) {
                float *tmp = blk;
                for (int r = 0; r < rows; r++) {
                    const float *zr = zc + (size_t)r * V;
                    float *dr = tmp + (size_t)r * V;
                    int t = targets ? targets[r0 + r] : -1;
                    if (t < 0) { memset(dr, 0, sizeof(float) * (size_t)V); continue; }
                    float mx = zr[0];
#pragma omp simd reduction(max : mx)
                    for (int j = 1; j < V; j++) mx = zr[j] > mx ? zr[j] : mx;
                    double s = 0.0;
#pragma omp simd reduction(+ : s)
                    for (int j = 0; j < V; j++) {
                        dr[j] = cpt_expf(zr[j] - mx);
                        s += (double)dr[j];
                    }
                    float gs = (float)((double)grad_scale / s);
                    for (int j = 0; j < V; j++) dr[j] *= gs;
                    dr[t] -= grad_scale;
                }
                dz = tmp;
            }
            if (Wb) { /* dz rounded to bf16; hs still holds this chunk's hf */
                cpt_f32_to_bf16_n(dzs, dz, (size_t)rows * V);
                if (dhf) bad |= cpt_gemm_bf16(0, 0, rows, D, V, 1.0f, dzs, V, Wb, D, 0.0f, dhf + (size_t)r0 * D, D);
                if (dW) bad |= cpt_gemm_bf16(1, 0, V, D, rows, 1.0f, dzs, V, hs, D, 1.0f, dW, D);
            } else {
                if (dhf) cpt_sgemm(0, 0, rows, D, V, 1.0f, dz, V, W, D, 0.0f, dhf + (size_t)r0 * D, D);
                if (dW) cpt_sgemm(1, 0, V, D, rows, 1.0f, dz, V, hf + (size_t)r0 * D, D, 1.0f, dW, D);
            }
        }
    }
    if (n_valid) *n_valid = valid;
    return bad ? NAN : total; /* a failed bf16 product (no kernel) surfaces as a NaN loss */
}

double cpt_xent_fwd_bwd(float *dhf, float *dW, float *logits_out, float *losses_out, const float *hf, const float *W,
                        const int32_t *targets, int N, int D, int V, float grad_scale, long long *n_valid, void *ws,
                        size_t ws_bytes) {
    return xent_impl(dhf, dW, logits_out, losses_out, hf, W, NULL, targets, N, D, V, grad_scale, n_valid, ws, ws_bytes);
}

double cpt_xent_fwd_bwd_bf16(float *dhf, float *dW, float *logits_out, float *losses_out, const float *hf, const uint16_t *Wb,
                             const int32_t *targets, int N, int D, int V, float grad_scale, long long *n_valid, void *ws,
                             size_t ws_bytes) {
    return xent_impl(dhf, dW, logits_out, losses_out, hf, NULL, Wb, targets, N, D, V, grad_scale, n_valid, ws, ws_bytes);
}

double cpt_ref_xent(double *dhf, double *dW, const double *hf, const double *W, const int32_t *targets,
                    int N, int D, int V, double grad_scale) {
    double *z = malloc(sizeof(double) * (size_t)V);
    double total = 0;
    if (dW) memset(dW, 0, sizeof(double) * (size_t)V * D);
    for (int n = 0; n < N; n++) {
        int t = targets[n];
        if (dhf) memset(dhf + (size_t)n * D, 0, sizeof(double) * (size_t)D);
        if (t < 0) continue;
        double mx = -INFINITY, s = 0;
        for (int v = 0; v < V; v++) {
            double acc = 0;
            for (int d = 0; d < D; d++) acc += hf[(size_t)n * D + d] * W[(size_t)v * D + d];
            z[v] = acc;
            if (acc > mx) mx = acc;
        }
        for (int v = 0; v < V; v++) s += exp(z[v] - mx);
        total += mx + log(s) - z[t];
        for (int v = 0; v < V; v++) {
            double dz = grad_scale * (exp(z[v] - mx) / s - (v == t));
            for (int d = 0; d < D; d++) {
                if (dhf) dhf[(size_t)n * D + d] += dz * W[(size_t)v * D + d];
                if (dW) dW[(size_t)v * D + d] += dz * hf[(size_t)n * D + d];
            }
        }
    }
    free(z);
    return total;
}

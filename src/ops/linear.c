/* linear.c: y = x W^T + b and its backward on BLAS (sgemm), plus the float64 reference.
 * BLAS choice: OpenBLAS (OpenMP build). bench/blas_pick.c measured on this machine's
 * AVX-512 EPYC: OpenBLAS ~200 GFLOP/s on the training shapes with 2 threads (the FMA
 * peak), BLIS 0.9.0 only ~45 GFLOP/s when B is transposed (our forward) — and with
 * OPENBLAS_CORETYPE=SkylakeX OpenBLAS also wins the LM-head and per-head attention
 * shapes (200 vs 120 and 137 vs 35 GFLOP/s), which is why cpt_backend_cpu_select_core
 * (src/backend/cpu.c, called from src/cli/main.c) sets it and re-executes the binary.
 * Every product goes through cpt_sgemm (gemm.c), which splits the threads' work by shape
 * so the result does not depend on the thread count. */

#include <math.h>

#include "cpt/ops.h"

void cpt_linear_fwd(float *y, const float *x, const float *W, const float *b, int N, int K, int O) {
    cpt_sgemm(0, 1, N, O, K, 1.0f, x, K, W, K, 0.0f, y, O);
    if (b) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) {
            float *yr = y + (size_t)n * O;
            for (int o = 0; o < O; o++) yr[o] += b[o];
        }
    }
}

void cpt_linear_bwd(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W,
                    int N, int K, int O, int accum_dx) {
    if (dx)
        cpt_sgemm(0, 0, N, K, O, 1.0f, dy, O, W, K, accum_dx ? 1.0f : 0.0f, dx, K);
    if (dW) cpt_sgemm(1, 0, O, K, N, 1.0f, dy, O, x, K, 1.0f, dW, K);
    if (db) {
        /* Column sums, parallel over columns so the sum order never depends on threads. */
#pragma omp parallel for schedule(static)
        for (int o0 = 0; o0 < O; o0 += 16) {
            int o1 = o0 + 16 < O ? o0 + 16 : O;
            float acc[16] = {0};
            for (int n = 0; n < N; n++)
                for (int o = o0; o < o1; o++) acc[o - o0] += dy[(size_t)n * O + o];
            for (int o = o0; o < o1; o++) db[o] += acc[o - o0];
        }
    }
}

static void nan_out(float *p, size_t n) {
    if (p)
        for (size_t i = 0; i < n; i++) p[i] = NAN;
}

void cpt_linear_fwd_bf16(float *y, const float *x, const uint16_t *Wb, const float *b, int N, int K, int O, uint16_t *xs) {
    cpt_f32_to_bf16_n(xs, x, (size_t)N * K);
    if (cpt_gemm_bf16(0, 1, N, O, K, 1.0f, xs, K, Wb, K, 0.0f, y, O)) {
        nan_out(y, (size_t)N * O);
        return;
    }
    if (b) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) {
            float *yr = y + (size_t)n * O;
            for (int o = 0; o < O; o++) yr[o] += b[o];
        }
    }
}

void cpt_linear_bwd_bf16(float *dx, float *dW, float *db, const float *dy, const float *x, const uint16_t *Wb, int N, int K, int O,
                         int accum_dx, uint16_t *xs, uint16_t *dys) {
    if (dx || dW) cpt_f32_to_bf16_n(dys, dy, (size_t)N * O);
    if (dx && cpt_gemm_bf16(0, 0, N, K, O, 1.0f, dys, O, Wb, K, accum_dx ? 1.0f : 0.0f, dx, K)) nan_out(dx, (size_t)N * K);
    if (dW) {
        cpt_f32_to_bf16_n(xs, x, (size_t)N * K);
        if (cpt_gemm_bf16(1, 0, O, K, N, 1.0f, dys, O, xs, K, 1.0f, dW, K)) nan_out(dW, (size_t)O * K);
    }
    if (db) cpt_linear_bwd(NULL, NULL, db, dy, NULL, NULL, N, K, O, 0); /* the fp32 column sums */
}

void cpt_ref_linear_fwd(double *y, const double *x, const double *W, const double *b, int N, int K, int O) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++) {
            double s = b ? b[o] : 0.0;
            for (int i = 0; i < K; i++) s += x[(size_t)n * K + i] * W[(size_t)o * K + i];
            y[(size_t)n * O + o] = s;
        }
}

void cpt_ref_linear_bwd(double *dx, double *dW, double *db, const double *dy, const double *x,
                        const double *W, int N, int K, int O) {
    for (int n = 0; n < N; n++)
        for (int i = 0; i < K; i++) {
            double s = 0;
            for (int o = 0; o < O; o++) s += dy[(size_t)n * O + o] * W[(size_t)o * K + i];
            dx[(size_t)n * K + i] = s;
        }
    for (int o = 0; o < O; o++) {
        for (int i = 0; i < K; i++) {
            double s = 0;
            for (int n = 0; n < N; n++) s += dy[(size_t)n * O + o] * x[(size_t)n * K + i];
            dW[(size_t)o * K + i] = s;
        }
        if (db) {
            double s = 0;
            for (int n = 0; n < N; n++) s += dy[(size_t)n * O + o];
            db[o] = s;
        }
    }
}

/* gemm_bf16_bench.c: cpt_gemm_bf16 (src/ops/gemm_bf16.c: oneDNN's bf16 gemm, bf16 inputs,
 * fp32 accumulation) against cpt_sgemm (fp32) on a SmolLM2 training step's shapes, both with
 * the same thread-count-independent tiling, alternating, median of 5 rounds; and the
 * conversion of activations to bf16 a bf16 step adds per product; and decoding's shapes (1 or
 * 8 rows: bound by reading the weights, which bf16 halves). Prints the bf16 path the
 * CPU has. Usage: gemm_bf16_bench [seconds-per-measurement, default 0.3] (OMP_NUM_THREADS) */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cpt/common.h"
#include "cpt/ops.h"

static int cmpd(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 0.3;
    int isa = cpt_cpu_bf16_isa();
    printf("bf16 path: %s (kernel %s), threads %d, %.2f s per measurement\n", cpt_bf16_isa_name(isa),
           cpt_bf16_gemm_available() ? "oneDNN gemm_bf16bf16f32" : "none", omp_get_max_threads(), secs);
    if (!cpt_bf16_gemm_available()) return 0;
    struct { int m, n, k, ta, tb; const char *what; } shapes[] = {
        {2048, 1536, 576, 0, 1, "fwd x W^T (ffn up, 2048 tokens)"},
        {2048, 576, 1536, 0, 0, "bwd dx = dy W (ffn down)"},
        {1536, 576, 2048, 1, 0, "bwd dW = dy^T x"},
        {2048, 576, 576, 0, 1, "fwd q/o projection"},
        {2048, 192, 576, 0, 1, "fwd k/v projection (3 kv heads)"},
        {1024, 4096, 576, 0, 1, "lm head chunk (1024 rows x 4096 vocab)"},
        {1, 1536, 576, 0, 1, "decode: one token, ffn up"},
        {1, 576, 1536, 0, 1, "decode: one token, ffn down"},
        {1, 49152, 576, 0, 1, "decode: one token, lm head"},
        {8, 1536, 576, 0, 1, "decode: 8 prompts together, ffn up"},
        {8, 49152, 576, 0, 1, "decode: 8 prompts together, lm head"},
    };
    printf("%-42s %9s %9s %7s %10s\n", "shape", "fp32", "bf16", "ratio", "cvt GB/s");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int m = shapes[s].m, n = shapes[s].n, k = shapes[s].k, ta = shapes[s].ta, tb = shapes[s].tb;
        size_t na = (size_t)m * k, nb = (size_t)n * k;
        float *a = malloc(4 * na), *b = malloc(4 * nb), *c = malloc(4 * (size_t)m * n);
        uint16_t *ah = malloc(2 * na), *bh = malloc(2 * nb);
        for (size_t i = 0; i < na; i++) a[i] = (float)(i % 7) * 0.1f - 0.3f;
        for (size_t i = 0; i < nb; i++) b[i] = (float)(i % 5) * 0.1f - 0.2f;
        cpt_f32_to_bf16_n(ah, a, na);
        cpt_f32_to_bf16_n(bh, b, nb);
        int lda = ta ? m : k, ldb = tb ? k : n;
        double r[3][5];
        for (int round = 0; round < 5; round++)
            for (int w = 0; w < 3; w++) {
                int reps = 0;
                double t0 = cpt_now(), t;
                do {
                    if (w == 0) cpt_sgemm(ta, tb, m, n, k, 1.f, a, lda, b, ldb, 0.f, c, n);
                    else if (w == 1) cpt_gemm_bf16(ta, tb, m, n, k, 1.f, ah, lda, bh, ldb, 0.f, c, n);
                    else cpt_f32_to_bf16_n(ah, a, na);
                    reps++;
                    t = cpt_now() - t0;
                } while (t < secs);
                r[w][round] = w < 2 ? 2.0 * m * n * k * reps / t / 1e9 : 6.0 * (double)na * reps / t / 1e9;
            }
        for (int w = 0; w < 3; w++) qsort(r[w], 5, sizeof(double), cmpd);
        printf("%-42s %9.1f %9.1f %6.2fx %10.1f\n", shapes[s].what, r[0][2], r[1][2], r[1][2] / r[0][2], r[2][2]);
        free(a), free(b), free(c), free(ah), free(bh);
    }
    return 0;
}

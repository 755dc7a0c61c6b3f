/* gemm_bench.c: what the thread-count-independent tiling of cpt_sgemm (src/ops/gemm.c)
 * costs against OpenBLAS threading the same product itself, on a training step's shapes.
 * The two run alternately, several rounds, and the median of each is printed with the
 * ratio, so a noisy shared machine moves both alike.
 * Usage: gemm_bench [seconds-per-measurement, default 0.3]   (threads: OMP_NUM_THREADS) */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "cpt/common.h"
#include "cpt/ops.h"

static double gflops(int lib, int ta, int tb, int m, int n, int k, const float *a, const float *b, float *c,
                     double secs) {
    int lda = ta ? m : k, ldb = tb ? k : n, reps = 0;
    double t0 = cpt_now(), t;
    do {
        if (lib)
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, 1.f,
                        a, lda, b, ldb, 0.f, c, n);
        else
            cpt_sgemm(ta, tb, m, n, k, 1.f, a, lda, b, ldb, 0.f, c, n);
        reps++;
        t = cpt_now() - t0;
    } while (t < secs);
    return 2.0 * m * n * k * reps / t / 1e9;
}

static int cmpd(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 0.3;
    struct { int m, n, k, ta, tb; const char *what; } shapes[] = {
        {4096, 1536, 576, 0, 1, "smollm2 fwd x W^T (ffn up, 4096 tokens)"},
        {4096, 576, 1536, 0, 0, "smollm2 bwd dx = dy W (ffn down)"},
        {1536, 576, 4096, 1, 0, "smollm2 bwd dW = dy^T x"},
        {4096, 192, 576, 0, 1, "smollm2 fwd k/v projection (3 kv heads)"},
        {1024, 4096, 576, 0, 1, "smollm2 lm head chunk (1024 rows x 4096 vocab)"},
        {1, 576, 576, 0, 1, "decode: one token x W^T"},
        {1, 49152, 576, 0, 1, "decode: lm head"},
        {64, 64, 64, 0, 1, "attention tile QK^T (64x64, hd 64)"},
    };
    printf("threads %d, %.2f s per measurement, 5 rounds, median GFLOP/s\n", omp_get_max_threads(), secs);
    printf("%-48s %10s %10s %7s\n", "shape", "openblas", "cpt_sgemm", "ratio");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int m = shapes[s].m, n = shapes[s].n, k = shapes[s].k;
        float *a = malloc(sizeof(float) * (size_t)m * k), *b = malloc(sizeof(float) * (size_t)n * k),
              *c = malloc(sizeof(float) * (size_t)m * n);
        for (size_t i = 0; i < (size_t)m * k; i++) a[i] = (float)(i % 7) * 0.1f;
        for (size_t i = 0; i < (size_t)n * k; i++) b[i] = (float)(i % 5) * 0.1f;
        double r[2][5];
        for (int round = 0; round < 5; round++)
            for (int lib = 0; lib < 2; lib++)
                r[lib][round] = gflops(lib, shapes[s].ta, shapes[s].tb, m, n, k, a, b, c, secs);
        qsort(r[0], 5, sizeof(double), cmpd);
        qsort(r[1], 5, sizeof(double), cmpd);
        printf("%-48s %10.1f %10.1f %7.2f\n", shapes[s].what, r[1][2], r[0][2], r[0][2] / r[1][2]);
        free(a), free(b), free(c);
    }
    return 0;
}

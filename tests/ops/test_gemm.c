/* test_gemm.c: cpt_sgemm (src/ops/gemm.c), the one entry to sgemm of every kernel.
 *
 * 1. Values: all four transpose cases, with leading dimensions wider than the
 *    matrices, alpha/beta other than 1/0, at shapes that are one tile, many tiles with
 *    ragged edges (M, N not multiples of the tile) and degenerate (M or N = 1, K = 1),
 *    against the plain triple-loop definition in float64. Tolerance: max error over max
 *    |C| below 1e-5 (fp32 accumulation of K <= 600 products of |x| < 1; observed
 *    ~1e-7). The columns of C past N (inside ldc) must be left untouched, and beta = 0
 *    must overwrite a C that holds NaN (BLAS semantics: C is not read).
 * 2. Thread invariance: the same product on 1, 2 and 3 OpenMP threads, and called
 *    from inside a parallel region, is bit-identical. This is the property the kernel
 *    exists for (a resume on another thread count is exact); on OpenBLAS's AVX2
 *    kernels a plain threaded cblas_sgemm fails it.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "cpt/ops.h"
#include "opsutil.h"
#include "testutil.h"

typedef struct {
    int ta, tb, M, N, K;
} shape;

/* op(A)[i,k], op(B)[k,j] of row-major storage */
static double at(const float *A, int lda, int t, int i, int k) { return t ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]; }

static void run(const shape *s, float alpha, float beta, int threads, int nested, float *C, const float *A, int lda,
                const float *B, int ldb, int ldc) {
    omp_set_num_threads(threads);
    if (nested) {
#pragma omp parallel num_threads(2)
        {
#pragma omp single
            cpt_sgemm(s->ta, s->tb, s->M, s->N, s->K, alpha, A, lda, B, ldb, beta, C, ldc);
        }
    } else {
        cpt_sgemm(s->ta, s->tb, s->M, s->N, s->K, alpha, A, lda, B, ldb, beta, C, ldc);
    }
}

static void test_shape(const shape *s) {
    int M = s->M, N = s->N, K = s->K;
    /* stored shapes: A is [M,K] or [K,M], B is [K,N] or [N,K]; leading dims padded */
    int arows = s->ta ? K : M, acols = s->ta ? M : K;
    int brows = s->tb ? N : K, bcols = s->tb ? K : N;
    int lda = acols + 3, ldb = bcols + 5, ldc = N + 2;
    float *A = OU_ALLOC(float, (size_t)arows * lda), *B = OU_ALLOC(float, (size_t)brows * ldb);
    float *C0 = OU_ALLOC(float, (size_t)M * ldc), *C = OU_ALLOC(float, (size_t)M * ldc);
    double *ref = OU_ALLOC(double, (size_t)M * N);
    float *got = OU_ALLOC(float, (size_t)M * N);
    ou_fill_f(A, (size_t)arows * lda, 1.0f);
    ou_fill_f(B, (size_t)brows * ldb, 1.0f);
    ou_fill_f(C0, (size_t)M * ldc, 1.0f);
    const float alpha = 0.75f, betas[2] = {0.5f, 0.0f};
    for (int bi = 0; bi < 2; bi++) {
        float beta = betas[bi];
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double acc = 0;
                for (int k = 0; k < K; k++) acc += at(A, lda, s->ta, i, k) * at(B, ldb, !s->tb, j, k);
                ref[(size_t)i * N + j] = alpha * acc + (beta ? beta * (double)C0[(size_t)i * ldc + j] : 0.0);
            }
        float *first = OU_ALLOC(float, (size_t)M * ldc);
        int cfg[4][2] = {{1, 0}, {2, 0}, {3, 0}, {2, 1}};
        for (int c = 0; c < 4; c++) {
            memcpy(C, C0, sizeof(float) * (size_t)M * ldc);
            if (beta == 0)
                for (int i = 0; i < M; i++) ou_fill_nan(C + (size_t)i * ldc, (size_t)N);
            run(s, alpha, beta, cfg[c][0], cfg[c][1], C, A, lda, B, ldb, ldc);
            for (int i = 0; i < M; i++) {
                memcpy(got + (size_t)i * N, C + (size_t)i * ldc, sizeof(float) * (size_t)N);
                for (int j = N; j < ldc; j++)
                    CHECKF(memcmp(&C[(size_t)i * ldc + j], &C0[(size_t)i * ldc + j], sizeof(float)) == 0,
                           "ta=%d tb=%d %dx%dx%d: C[%d,%d] past N was written", s->ta, s->tb, M, N, K, i, j);
            }
            double err = ou_relerr_fd(got, ref, (size_t)M * N);
            CHECKF(err < 1e-5 && ou_all_finite(got, (size_t)M * N),
                   "ta=%d tb=%d %dx%dx%d beta=%g threads=%d nested=%d: rel err %.3e (tol 1e-5)", s->ta, s->tb, M, N,
                   K, beta, cfg[c][0], cfg[c][1], err);
            if (c == 0) {
                memcpy(first, C, sizeof(float) * (size_t)M * ldc);
                fprintf(stderr, "  ta=%d tb=%d %4dx%4dx%4d beta=%.1f err=%.2e\n", s->ta, s->tb, M, N, K, beta, err);
            } else {
                CHECKF(memcmp(first, C, sizeof(float) * (size_t)M * ldc) == 0,
                       "ta=%d tb=%d %dx%dx%d beta=%g: %d threads (nested %d) not bit-identical to 1 thread", s->ta,
                       s->tb, M, N, K, beta, cfg[c][0], cfg[c][1]);
            }
        }
        free(first);
    }
    free(A);
    free(B);
    free(C0);
    free(C);
    free(ref);
    free(got);
}

int main(void) {
    ou_seed(11);
    /* 600 x 530: 3 x 3 tiles of 208/192 (ragged last ones); 257 just past one tile;
     * 1 x N is decoding's x W^T; K = 1 is an outer product */
    const int dims[][3] = {{600, 530, 97}, {257, 33, 600}, {16, 16, 16}, {1, 700, 64}, {700, 1, 5}, {45, 300, 1}};
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                shape s = {ta, tb, dims[d][0], dims[d][1], dims[d][2]};
                test_shape(&s);
            }
    /* M or N of 0 is a no-op that touches nothing */
    float C[4] = {1, 2, 3, 4}, A[4] = {0}, B[4] = {0};
    cpt_sgemm(0, 0, 0, 2, 2, 1.0f, A, 2, B, 2, 0.0f, C, 2);
    cpt_sgemm(0, 1, 2, 0, 2, 1.0f, A, 2, B, 2, 0.0f, C, 2);
    CHECK(C[0] == 1 && C[1] == 2 && C[2] == 3 && C[3] == 4);
    TEST_END();
}

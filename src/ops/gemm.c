/* gemm.c: the one entry to sgemm. C[M,N] = alpha op(A) op(B) + beta C,
 * row-major.
 *
 * Why not call cblas_sgemm directly: OpenBLAS splits a product between its
 * threads by the thread count, and on the AVX2 kernels (Haswell, Zen) the edge
 * of each thread's block goes through narrower micro-kernels that round
 * differently (measured: with 2 threads 20 to 40 of 40 products differed in
 * some bit from 1 thread). That made a run on 2 threads differ from the same
 * run on 1 thread, and a resume on another thread count not exact
 * (tests/cli/test_train_cli.py, section 8).
 *
 * So the split is ours and depends on the shape only: C is cut into tiles of
 * about TILE x TILE (equal parts, rounded up to 16), each tile is one
 * single-threaded sgemm (OpenBLAS's OpenMP build runs one thread inside an
 * active parallel region), and the tiles are shared out dynamically. A tile's
 * arithmetic is the same whoever runs it, so the result is bit-identical for
 * every thread count. Inside an enclosing parallel region (attention's per-tile
 * products) the same tiles run in turn on the caller's thread. The K dimension
 * is never split, so no sum is reassociated. bench/gemm_bench.c measures what
 * this costs against OpenBLAS's own threading. */
#include <cblas.h>
#include <omp.h>

#include "cpt/ops.h"
#include "ops/gemm_tiles.h"


static void tile(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                 int ldb, float beta, float *C, int ldc, int mp, int np, long t, int nn) {
    int i0 = (int)(t / nn) * mp, j0 = (int)(t % nn) * np;
    int m = M - i0 < mp ? M - i0 : mp, n = N - j0 < np ? N - j0 : np;
    /* row i of op(A): A + i*lda (NoTrans) or column i, A + i (Trans); likewise op(B)'s
     * column j */
    const float *a = ta ? A + i0 : A + (size_t)i0 * lda;
    const float *b = tb ? B + (size_t)j0 * ldb : B + j0;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, K, alpha, a,
                lda, b, ldb, beta, C + (size_t)i0 * ldc + j0, ldc);
}

void cpt_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
               float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    int mp = cpt_gemm_part_size(M), np = cpt_gemm_part_size(N);
    int nm = (M + mp - 1) / mp, nn = (N + np - 1) / np;
    long ntiles = (long)nm * nn;
    if (omp_in_parallel() || omp_get_max_threads() == 1) {
        for (long t = 0; t < ntiles; t++)
            tile(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, mp, np, t, nn);
        return;
    }
    /* An active region even for one tile: outside one, OpenBLAS would thread by itself. */
#pragma omp parallel for schedule(dynamic, 1)
    for (long t = 0; t < ntiles; t++)
        tile(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, mp, np, t, nn);
}

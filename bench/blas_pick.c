/* blas_pick.c: measures sgemm GFLOP/s of the candidate BLAS libraries on the matrix
 * shapes of a training step, so the choice in CMakeLists.txt rests on numbers.
 * Each library is dlopen'ed (RTLD_LOCAL) so two can be compared in one process.
 * Usage: blas_pick [libpath ...]   (OPENBLAS_CORETYPE is read by OpenBLAS at load) */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "cpt/common.h"

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *,
                         int, float, float *, int);
enum { RowMajor = 101, NoTrans = 111, Trans = 112 };

int main(int argc, char **argv) {
    const char *def[] = {"/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0",
                         "/usr/lib/x86_64-linux-gnu/blis-openmp/libblis.so.4"};
    const char **libs = argc > 1 ? (const char **)argv + 1 : def;
    int nlibs = argc > 1 ? argc - 1 : 2;
    /* (M, N, K, transB): activations [tokens, in] x W^T, and the two backward products. */
    struct { int m, n, k, tb; const char *what; } shapes[] = {
        {2048, 1536, 576, 1, "smollm fwd x W^T (ffn up)"},
        {2048, 576, 1536, 0, "smollm bwd dy W (ffn down dx)"},
        {1536, 576, 2048, 0, "smollm bwd dW = dy^T x"},
        {1024, 768, 288, 1, "stories15m fwd ffn"},
        {1024, 32000, 288, 1, "stories15m lm head"},
        {512, 512, 64, 1, "attention QK^T (one head)"},
    };
    for (int li = 0; li < nlibs; li++) {
        void *h = dlopen(libs[li], RTLD_NOW | RTLD_LOCAL);
        if (!h) { fprintf(stderr, "skip %s: %s\n", libs[li], dlerror()); continue; }
        sgemm_fn f = (sgemm_fn)dlsym(h, "cblas_sgemm");
        if (!f) { fprintf(stderr, "skip %s: no cblas_sgemm\n", libs[li]); continue; }
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int m = shapes[s].m, n = shapes[s].n, k = shapes[s].k, tb = shapes[s].tb;
            int transA = 0;
            if (!tb && s == 2) transA = 1; /* dW = dy^T x : A is [k, m] transposed */
            float *a = malloc(sizeof(float) * (size_t)m * k), *b = malloc(sizeof(float) * (size_t)n * k),
                  *c = malloc(sizeof(float) * (size_t)m * n);
            for (size_t i = 0; i < (size_t)m * k; i++) a[i] = (float)(i % 7) * 0.1f;
            for (size_t i = 0; i < (size_t)n * k; i++) b[i] = (float)(i % 5) * 0.1f;
            int lda = transA ? m : k, ldb = tb ? k : n;
            f(RowMajor, transA ? Trans : NoTrans, tb ? Trans : NoTrans, m, n, k, 1.f, a, lda, b, ldb, 0.f, c, n);
            int reps = 0; double t0 = cpt_now(), t;
            do { f(RowMajor, transA ? Trans : NoTrans, tb ? Trans : NoTrans, m, n, k, 1.f, a, lda, b, ldb, 0.f, c, n); reps++; t = cpt_now() - t0; } while (t < 0.5);
            printf("%-60s %-34s %8.1f GFLOP/s\n", libs[li], shapes[s].what, 2.0 * m * n * k * reps / t / 1e9);
            free(a); free(b); free(c);
        }
    }
    return 0;
}

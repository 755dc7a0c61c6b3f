/* test_gemm_bf16.c: the bf16 products of precision: bf16 (src/ops/gemm_bf16.c).
 *
 * 1. Conversions: fp32 -> bf16 rounds to nearest, ties to even (exact cases written out:
 *    halfway values, the largest finite fp32 to inf, signed zeros, NaN kept a NaN, inf);
 *    bf16 -> fp32 is exact; the array form equals the scalar one on every bit pattern class.
 * 2. Products, on every bf16 path the CPU has, each forced in a child process with
 *    DNNL_MAX_CPU_ISA (AVX512_CORE: bf16 emulated; AVX512_CORE_BF16: vdpbf16ps;
 *    AVX512_CORE_AMX: tiles); a path the CPU lacks is skipped by name: all four transpose
 *    cases with padded leading dimensions, alpha / beta, ragged tiles, M or N = 1, K = 1,
 *    against the float64 triple loop over the bf16-rounded inputs. The products of two bf16
 *    are exact in fp32, so only fp32 accumulation is left: tolerance max |err| / max |C|
 *    < 1e-5 (K <= 600 terms of |x| < 1). Columns past N are untouched, beta = 0 overwrites
 *    a NaN C. Also 1, 2, 3 threads and a call inside a parallel region are bit-identical.
 * 3. Without a kernel (no oneDNN in the build, or no AVX-512) cpt_gemm_bf16 returns -1. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cpt/ops.h"
#include "cpt/safetensors.h"
#include "opsutil.h"
#include "testutil.h"

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_convert(void) {
    static const struct { uint32_t in; uint16_t out; } cases[] = {
        {0x3f800000u, 0x3f80}, /* 1 */
        {0x3f808000u, 0x3f80}, /* 1 + 2^-8: halfway, even stays */
        {0x3f818000u, 0x3f82}, /* 1 + 3 * 2^-8: halfway, odd rounds up */
        {0x3f808001u, 0x3f81}, /* just past halfway */
        {0x3f807fffu, 0x3f80}, /* just below */
        {0x7f7fffffu, 0x7f80}, /* largest finite -> inf */
        {0x80000000u, 0x8000}, /* -0 */
        {0x00000000u, 0x0000},
        {0x7f800000u, 0x7f80}, /* inf */
        {0xff800000u, 0xff80}, /* -inf */
        {0x00000001u, 0x0000}, /* smallest subnormal rounds to 0 */
        {0xbf7fffffu, 0xbf80}, /* -(1 - 2^-24) rounds to -1 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint16_t h = cpt_f32_to_bf16(from_bits(cases[i].in));
        CHECKF(h == cases[i].out, "bf16(%08x) = %04x, want %04x", cases[i].in, h, cases[i].out);
    }
    uint16_t qn = cpt_f32_to_bf16(from_bits(0x7fc00001u)), sn = cpt_f32_to_bf16(from_bits(0x7f800001u));
    CHECKF(isnan(cpt_bf16_to_f32(qn)) && isnan(cpt_bf16_to_f32(sn)), "NaN stays NaN (%04x %04x)", qn, sn);
    for (uint32_t h = 0; h < 65536; h += 7) {
        float f = cpt_bf16_to_f32((uint16_t)h);
        if (!isnan(f)) CHECKF(cpt_f32_to_bf16(f) == h, "bf16 -> fp32 -> bf16 not the identity at %04x", h);
    }
    enum { N = 100003 };
    float *x = OU_ALLOC(float, N);
    uint16_t *a = OU_ALLOC(uint16_t, N);
    uint64_t s = 99;
    for (int i = 0; i < N; i++) x[i] = from_bits((uint32_t)cpt_splitmix64(&s));
    cpt_f32_to_bf16_n(a, x, N);
    int same = 1;
    for (int i = 0; i < N; i++) same &= a[i] == cpt_f32_to_bf16(x[i]);
    CHECKF(same, "the array conversion differs from the scalar one");
    free(x), free(a);
}

typedef struct { int ta, tb, M, N, K; } shape;

static double at(const uint16_t *A, int lda, int t, int i, int k) {
    return cpt_bf16_to_f32(t ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]);
}

static int run(const shape *s, float alpha, float beta, int threads, int nested, float *C, const uint16_t *A, int lda,
               const uint16_t *B, int ldb, int ldc) {
    omp_set_num_threads(threads);
    int rc = 0;
    if (nested) {
#pragma omp parallel num_threads(2)
        {
#pragma omp single
            rc = cpt_gemm_bf16(s->ta, s->tb, s->M, s->N, s->K, alpha, A, lda, B, ldb, beta, C, ldc);
        }
    } else {
        rc = cpt_gemm_bf16(s->ta, s->tb, s->M, s->N, s->K, alpha, A, lda, B, ldb, beta, C, ldc);
    }
    return rc;
}

static void test_shape(const shape *s, const char *path) {
    int M = s->M, N = s->N, K = s->K;
    int arows = s->ta ? K : M, acols = s->ta ? M : K, brows = s->tb ? N : K, bcols = s->tb ? K : N;
    int lda = acols + 3, ldb = bcols + 5, ldc = N + 2;
    float *Af = OU_ALLOC(float, (size_t)arows * lda), *Bf = OU_ALLOC(float, (size_t)brows * ldb);
    uint16_t *A = OU_ALLOC(uint16_t, (size_t)arows * lda), *B = OU_ALLOC(uint16_t, (size_t)brows * ldb);
    float *C0 = OU_ALLOC(float, (size_t)M * ldc), *C = OU_ALLOC(float, (size_t)M * ldc), *got = OU_ALLOC(float, (size_t)M * N);
    double *ref = OU_ALLOC(double, (size_t)M * N);
    ou_fill_f(Af, (size_t)arows * lda, 1.0f);
    ou_fill_f(Bf, (size_t)brows * ldb, 1.0f);
    ou_fill_f(C0, (size_t)M * ldc, 1.0f);
    cpt_f32_to_bf16_n(A, Af, (size_t)arows * lda);
    cpt_f32_to_bf16_n(B, Bf, (size_t)brows * ldb);
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
            int rc = run(s, alpha, beta, cfg[c][0], cfg[c][1], C, A, lda, B, ldb, ldc);
            CHECKF(rc == 0, "[%s] ta=%d tb=%d %dx%dx%d: cpt_gemm_bf16 failed", path, s->ta, s->tb, M, N, K);
            for (int i = 0; i < M; i++) {
                memcpy(got + (size_t)i * N, C + (size_t)i * ldc, sizeof(float) * (size_t)N);
                for (int j = N; j < ldc; j++)
                    CHECKF(memcmp(&C[(size_t)i * ldc + j], &C0[(size_t)i * ldc + j], sizeof(float)) == 0,
                           "[%s] ta=%d tb=%d %dx%dx%d: C[%d,%d] past N was written", path, s->ta, s->tb, M, N, K, i, j);
            }
            double err = ou_relerr_fd(got, ref, (size_t)M * N);
            CHECKF(err < 1e-5 && ou_all_finite(got, (size_t)M * N),
                   "[%s] ta=%d tb=%d %dx%dx%d beta=%g threads=%d nested=%d: rel err %.3e (tol 1e-5)", path, s->ta, s->tb, M, N, K,
                   beta, cfg[c][0], cfg[c][1], err);
            if (c == 0) {
                memcpy(first, C, sizeof(float) * (size_t)M * ldc);
                fprintf(stderr, "  [%s] ta=%d tb=%d %4dx%4dx%4d beta=%.1f err=%.2e\n", path, s->ta, s->tb, M, N, K, beta, err);
            } else {
                CHECKF(memcmp(first, C, sizeof(float) * (size_t)M * ldc) == 0,
                       "[%s] ta=%d tb=%d %dx%dx%d beta=%g: %d threads (nested %d) not bit-identical to 1 thread", path, s->ta, s->tb, M,
                       N, K, beta, cfg[c][0], cfg[c][1]);
            }
        }
        free(first);
    }
    free(Af), free(Bf), free(A), free(B), free(C0), free(C), free(got), free(ref);
}

static void test_products(const char *path) {
    ou_seed(11);
    const int dims[][3] = {{600, 530, 97}, {257, 33, 600}, {16, 16, 16}, {1, 700, 64}, {700, 1, 5}, {45, 300, 1}, {33, 17, 2}};
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                shape s = {ta, tb, dims[d][0], dims[d][1], dims[d][2]};
                test_shape(&s, path);
            }
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--path")) { /* child: one forced path */
        test_products(argv[2]);
        TEST_END();
    }
    test_convert();
    int isa = cpt_cpu_bf16_isa();
    fprintf(stderr, "CPU bf16 path: %s; kernel: %s\n", cpt_bf16_isa_name(isa), cpt_bf16_gemm_available() ? "oneDNN" : "none");
    if (!cpt_bf16_gemm_available()) {
        uint16_t a[4] = {0}, b[4] = {0};
        float c[4] = {0};
        CHECK(cpt_gemm_bf16(0, 0, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2) == -1);
        fprintf(stderr, "skip: every bf16 product path (%s)\n",
#ifdef CPT_HAVE_DNNL
                "the CPU has no AVX-512"
#else
                "cpt built without oneDNN"
#endif
        );
        TEST_END();
    }
    static const struct { const char *isa_env; int need; } paths[] = {
        {"AVX512_CORE", CPT_BF16_ISA_AVX512},
        {"AVX512_CORE_BF16", CPT_BF16_ISA_AVX512_BF16},
        {"AVX512_CORE_AMX", CPT_BF16_ISA_AMX},
    };
    for (size_t p = 0; p < sizeof paths / sizeof *paths; p++) {
        if (isa < paths[p].need) {
            fprintf(stderr, "skip path %s: this CPU lacks it (has %s)\n", paths[p].isa_env, cpt_bf16_isa_name(isa));
            continue;
        }
        pid_t pid = fork();
        if (pid == 0) {
            setenv("DNNL_MAX_CPU_ISA", paths[p].isa_env, 1);
            execl(argv[0], argv[0], "--path", paths[p].isa_env, (char *)NULL);
            _exit(127);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "path %s: the products failed (exit %d)", paths[p].isa_env,
               WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
    float C[4] = {1, 2, 3, 4};
    uint16_t A[4] = {0}, B[4] = {0};
    CHECK(cpt_gemm_bf16(0, 0, 0, 2, 2, 1.0f, A, 2, B, 2, 0.0f, C, 2) == 0);
    CHECK(C[0] == 1 && C[1] == 2 && C[2] == 3 && C[3] == 4);
    TEST_END();
}

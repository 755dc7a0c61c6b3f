/* gemm_bf16.c: the products of cpt's bf16 mode. C[M,N] = alpha op(A) op(B) + beta C, row-major,
 * A and B in bf16 (the upper half of an fp32), fp32 accumulation, C in fp32.
 *
 * The kernel is oneDNN's dnnl_gemm_bf16bf16f32 (Debian's libdnnl 2.6): it dispatches at run
 * time to AMX tiles (_tile_dpbf16ps), AVX512-BF16 (vdpbf16ps) or AVX-512 emulation, which is
 * what the bf16 mode needs on the CPUs these machines have. Why not our own packed kernels:
 * measured here (bench/gemm_bench --bf16, AMD Zen 4 with AVX512-BF16, 2 threads) oneDNN's
 * gemm reaches the share of the dot-product peak that an own microkernel would have to match
 * first, and it covers AMX, which no machine of ours could test. Why not its matmul
 * primitive with the weights reordered once per optimizer step into its blocked layout
 * (brgemm), which would move the packing of W out of every call: measured here in one run
 * (Zen 4, 2 threads, the same shape-only tiles, GFLOP/s, gemm per call vs matmul on
 * pre-packed weights): ffn up 2048x1536x576 423 vs 410, ffn down 2048x576x1536 429 vs 441,
 * its dx 429 vs 438, LM head 2048x49152x576 391 vs 401 -- within the noise, for a second
 * bf16 copy of every weight per orientation (forward and dx use W and W^T). On AMX, where
 * the products are several times faster and packing weighs more, this is to be measured
 * again. The gemm call needs no descriptors per shape.
 * oneDNN 2.6 exports dnnl_gemm_bf16bf16f32 but declares it only in an internal header, so
 * it is declared here with its definition's signature (src/cpu/gemm/gemm.cpp).
 *
 * Determinism as cpt_sgemm (gemm.c): C is cut into tiles by shape only, each tile is one
 * call made inside our OpenMP region (where oneDNN runs single-threaded), K is never
 * split, so the result does not depend on the thread count. The path is chosen by oneDNN;
 * DNNL_MAX_CPU_ISA (e.g. AVX512_CORE_BF16, AVX512_CORE_AMX, AVX512_CORE) caps it, which is
 * how the tests force each path. */
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cpt/ops.h"
#include "cpt/safetensors.h" /* cpt_f32_to_bf16 (src/io/half.c) */
#include "ops/gemm_tiles.h"

#ifdef CPT_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
extern dnnl_status_t dnnl_gemm_bf16bf16f32(char transa, char transb, dnnl_dim_t M, dnnl_dim_t N, dnnl_dim_t K, float alpha,
                                           const uint16_t *A, dnnl_dim_t lda, const uint16_t *B, dnnl_dim_t ldb, float beta,
                                           float *C, dnnl_dim_t ldc);
#endif

/* ---- what the CPU has (cpuid) ---- */

static void cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

/* The OS saves the ZMM (and, for AMX, the tile) state: XCR0 bits 5-7 (and 17-18). */
static unsigned long long xcr0(void) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

static int detect_isa(void) {
    unsigned r[4];
    cpuid(0, 0, r);
    if (r[0] < 7) return CPT_BF16_ISA_NONE;
    cpuid(1, 0, r);
    if (!(r[2] & (1u << 27))) return CPT_BF16_ISA_NONE; /* OSXSAVE */
    unsigned long long x = xcr0();
    if ((x & 0xe6) != 0xe6) return CPT_BF16_ISA_NONE;   /* SSE, AVX, opmask, ZMM state */
    unsigned l7[4], l71[4];
    cpuid(7, 0, l7);
    cpuid(7, 1, l71);
    int avx512f = (l7[1] >> 16) & 1, avx512bw = (l7[1] >> 30) & 1, avx512vl = (l7[1] >> 31) & 1;
    if (!avx512f || !avx512bw || !avx512vl) return CPT_BF16_ISA_NONE;
    int amx = ((l7[3] >> 22) & 1) && ((l7[3] >> 24) & 1) && (x & 0x60000ull) == 0x60000ull; /* AMX-BF16, AMX-TILE */
    /* Linux hands out the tile state on request only (kernel 5.16+): ask once, as oneDNN
     * does; refused (older kernel, seccomp) means no AMX for this process. */
    if (amx && syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) != 0) amx = 0;
    if (amx) return CPT_BF16_ISA_AMX;
    if ((l71[0] >> 5) & 1) return CPT_BF16_ISA_AVX512_BF16;
    return CPT_BF16_ISA_AVX512;
}

/* CPT_BF16_ISA (none | avx512 | avx512_bf16 | amx) caps what the CPU has: the tests force
 * each path with it (and with DNNL_MAX_CPU_ISA for oneDNN's own dispatch). */
int cpt_cpu_bf16_isa(void) {
    static int detected = -1;
    if (detected < 0) detected = detect_isa();
    int isa = detected;
    const char *cap = getenv("CPT_BF16_ISA");
    if (cap && *cap) {
        int c = !strcmp(cap, "none") ? CPT_BF16_ISA_NONE : !strcmp(cap, "avx512") ? CPT_BF16_ISA_AVX512
                : !strcmp(cap, "avx512_bf16") ? CPT_BF16_ISA_AVX512_BF16 : CPT_BF16_ISA_AMX;
        if (c < isa) isa = c;
    }
    return isa;
}

const char *cpt_bf16_isa_name(int isa) {
    switch (isa) {
    case CPT_BF16_ISA_AMX: return "amx-bf16";
    case CPT_BF16_ISA_AVX512_BF16: return "avx512-bf16";
    case CPT_BF16_ISA_AVX512: return "avx512 (bf16 emulated)";
    default: return "none";
    }
}

int cpt_bf16_gemm_available(void) {
#ifdef CPT_HAVE_DNNL
    return cpt_cpu_bf16_isa() != CPT_BF16_ISA_NONE;
#else
    return 0;
#endif
}

/* ---- conversions ---- */

/* The same rounding 16 at a time (AVX-512 F + BW integer ops, so denormals and NaNs come out
 * exactly as cpt_f32_to_bf16's; the hardware's vcvtneps2bf16 would flush denormals). */
__attribute__((target("avx512f,avx512bw"))) static void to_bf16_avx512(uint16_t *dst, const float *src, size_t n) {
    const __m512i abs = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000), bias = _mm512_set1_epi32(0x7fff),
                  one = _mm512_set1_epi32(1), quiet = _mm512_set1_epi32(0x40);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i u = _mm512_loadu_si512((const void *)(src + i));
        __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs), inf);
        __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(bias, _mm512_and_si512(_mm512_srli_epi32(u, 16), one))), 16);
        r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), quiet);
        _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtepi32_epi16(r));
    }
    for (; i < n; i++) dst[i] = cpt_f32_to_bf16(src[i]);
}

void cpt_f32_to_bf16_n(uint16_t *dst, const float *src, size_t n) {
    static int avx512 = -1;
    if (avx512 < 0) avx512 = detect_isa() >= CPT_BF16_ISA_AVX512;
    if (avx512) {
        /* blocks of 64K values over the threads (outside a parallel region); a short array or a
         * call inside a parallel region (the attention's rows) runs here without entering the
         * OpenMP runtime at all: an if(0) parallel still costs a team setup per call */
        size_t nb = (n + 65535) / 65536;
        if (nb <= 1 || omp_in_parallel()) {
            to_bf16_avx512(dst, src, n);
            return;
        }
#pragma omp parallel for schedule(static)
        for (size_t b = 0; b < nb; b++) {
            size_t a = b * 65536, e = a + 65536 < n ? a + 65536 : n;
            to_bf16_avx512(dst + a, src + a, e - a);
        }
        return;
    }
#pragma omp parallel for simd schedule(static) if (n > 65536 && !omp_in_parallel())
    for (size_t i = 0; i < n; i++) dst[i] = cpt_f32_to_bf16(src[i]);
}

/* ---- the product ---- */


#ifdef CPT_HAVE_DNNL
static int tile(int ta, int tb, int M, int N, int K, float alpha, const uint16_t *A, int lda, const uint16_t *B, int ldb,
                float beta, float *C, int ldc, int mp, int np, long t, int nn) {
    int i0 = (int)(t / nn) * mp, j0 = (int)(t % nn) * np;
    int m = M - i0 < mp ? M - i0 : mp, n = N - j0 < np ? N - j0 : np;
    const uint16_t *a = ta ? A + i0 : A + (size_t)i0 * lda;
    const uint16_t *b = tb ? B + (size_t)j0 * ldb : B + j0;
    return dnnl_gemm_bf16bf16f32(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, K, alpha, a, lda, b, ldb, beta, C + (size_t)i0 * ldc + j0,
                                 ldc) == dnnl_success
               ? 0
               : -1;
}
#endif

int cpt_gemm_bf16(int ta, int tb, int M, int N, int K, float alpha, const uint16_t *A, int lda, const uint16_t *B, int ldb,
                  float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return 0;
#ifdef CPT_HAVE_DNNL
    int mp = cpt_gemm_part_size(M), np = cpt_gemm_part_size(N);
    int nm = (M + mp - 1) / mp, nn = (N + np - 1) / np;
    long ntiles = (long)nm * nn;
    int bad = 0;
    if (omp_in_parallel() || omp_get_max_threads() == 1) {
        for (long t = 0; t < ntiles; t++) bad |= tile(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, mp, np, t, nn);
        return bad;
    }
#pragma omp parallel for schedule(dynamic, 1) reduction(| : bad)
    for (long t = 0; t < ntiles; t++) bad |= tile(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, mp, np, t, nn);
    return bad;
#else
    (void)ta, (void)tb, (void)K, (void)alpha, (void)A, (void)lda, (void)B, (void)ldb, (void)beta, (void)C, (void)ldc;
    return -1;
#endif
}

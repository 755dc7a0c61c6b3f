/* bench_util.h: shared by the benchmarks: measured fp32 FMA peak and peak RSS. */
#ifndef CPT_BENCH_UTIL_H
#define CPT_BENCH_UTIL_H

#include <omp.h>
#include <sys/resource.h>
#include <immintrin.h> /* x86: the bf16 loop is compiled for AVX512-BF16 by a target attribute */

#include "cpt/common.h"
#include "cpt/ops.h"

/* GFLOP/s of fp32 FMAs (2 flops each) with `threads` threads, best of 3 runs. */
static inline double cpt_bench_fma_peak_impl(int threads) {
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        long long iters = 20000000;
        double t0 = cpt_now();
        double sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
        {
#if defined(__AVX512F__)
            __m512 a[12], x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
            for (int i = 0; i < 12; i++) a[i] = _mm512_set1_ps((float)i);
            for (long long it = 0; it < iters; it++)
                for (int i = 0; i < 12; i++) a[i] = _mm512_fmadd_ps(a[i], x, y);
            for (int i = 0; i < 12; i++) sink += _mm512_reduce_add_ps(a[i]);
#define FLOPS_PER_ITER (12.0 * 16 * 2)
#elif defined(__AVX2__)
            __m256 a[12], x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
            for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps((float)i);
            for (long long it = 0; it < iters; it++)
                for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], x, y);
            float tmp[8];
            for (int i = 0; i < 12; i++) {
                _mm256_storeu_ps(tmp, a[i]);
                for (int k = 0; k < 8; k++) sink += tmp[k];
            }
#define FLOPS_PER_ITER (12.0 * 8 * 2)
#else
            float a[12];
            for (int i = 0; i < 12; i++) a[i] = (float)i;
            for (long long it = 0; it < iters; it++)
                for (int i = 0; i < 12; i++) a[i] = a[i] * 0.999999f + 1e-7f;
            for (int i = 0; i < 12; i++) sink += a[i];
#define FLOPS_PER_ITER (12.0 * 2)
#endif
        }
        double dt = cpt_now() - t0;
        double g = FLOPS_PER_ITER * (double)iters * threads / dt / 1e9;
        if (sink == 1234.5) g += 0; /* keep the result alive */
        if (g > best) best = g;
    }
    return best;
}

/* bf16 dot-product peak (GFLOP/s, a multiply-add = 2): independent vdpbf16ps chains in
 * registers (each: 16 fp32 lanes += 2 bf16 products), the instruction AVX512-BF16 adds; 0
 * when the CPU lacks it. AMX tiles are not measured (no machine here has them to check a
 * tile loop on). The bf16 MFU denominator of bench/train_bench.c --precision bf16. */
__attribute__((target("avx512f,avx512bf16"))) static double cpt_bench_dpbf16_chains(long long iters) {
    __m512 a[12];
    __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), y = (__m512bh)_mm512_set1_epi16(0x3400); /* 1, 2^-23 */
    for (int i = 0; i < 12; i++) a[i] = _mm512_set1_ps((float)i);
    for (long long it = 0; it < iters; it++)
        for (int i = 0; i < 12; i++) a[i] = _mm512_dpbf16_ps(a[i], x, y);
    double sink = 0;
    for (int i = 0; i < 12; i++) sink += _mm512_reduce_add_ps(a[i]);
    return sink;
}

/* (the parallel region calls the target function: an outlined region would not inherit
 * its target attribute) */
static double cpt_bench_dpbf16_loop(int threads, long long iters) {
    double sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    sink += cpt_bench_dpbf16_chains(iters);
    return sink;
}

static inline double cpt_bench_bf16_peak_impl(int threads) {
    if (cpt_cpu_bf16_isa() < CPT_BF16_ISA_AVX512_BF16) return 0.0;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        long long iters = 20000000;
        double t0 = cpt_now();
        double sink = cpt_bench_dpbf16_loop(threads, iters);
        double dt = cpt_now() - t0;
        double g = 12.0 * 16 * 2 * 2 * (double)iters * threads / dt / 1e9;
        if (sink == 1234.5) g += 0;
        if (g > best) best = g;
    }
    return best;
}

static inline double cpt_bench_peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

#endif

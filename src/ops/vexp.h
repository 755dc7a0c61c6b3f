/* vexp.h: an expf the compiler can vectorise (internal to src/ops).
 *
 * glibc's expf is a scalar call, so a loop of expf runs at one element per call; in the
 * attention tiles that was the largest single cost (4096 exps per 64x64 tile against two
 * 64x64x64 sgemms). This one is branch-free straight-line float/int arithmetic, so a loop
 * under "#pragma omp simd" becomes AVX-512 / AVX2 code on -march=native builds.
 *
 * Method (methods.md 14.1 uses exp only on x <= 0 after the max shift, but the function is
 * valid on the whole float range): x = n ln2 + r with n = rint(x log2 e), |r| <= ln2/2,
 * r computed with a two-part ln2 (Cody-Waite) so the reduction is exact to float rounding;
 * exp(r) by its Taylor polynomial to degree 7 (truncation error < 1.3e-9 relative, below
 * half an ulp), evaluated by Horner; times 2^n built in the exponent bits.
 * Edges: x < -104 (below half the least subnormal) and -inf give 0, x above
 * log(FLT_MAX) gives +inf, NaN gives NaN; subnormal results are rounded once.
 * Accuracy against float64 exp: tests/ops/test_vexp.c (<= 2 ulp for normal results).
 * The result is a pure function of x: no dependence on the vector width or the thread count. */
#ifndef CPT_OPS_VEXP_H
#define CPT_OPS_VEXP_H

#include <stdint.h>
#include <string.h>

static inline float cpt_expf(float x) {
    const float log2e = 1.44269504088896341f, ln2_hi = 0.693145751953125f, ln2_lo = 1.42860682030941723e-6f;
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer in the low bits */
    const float lo = -104.0f, hi = 88.72283935546875f; /* exp(lo) < half the least subnormal; hi: FLT_MAX */
    float xc = x < lo ? lo : x > hi ? hi : x;
    float t = xc * log2e + shifter;
    float n = t - shifter;
    float r = (xc - n * ln2_hi) - n * ln2_lo;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t ti;
    memcpy(&ti, &t, sizeof ti);
    /* 2^n as two normal factors 2^n1 * 2^n2 (n in [-150, 128]): the first product is exact,
     * the second rounds once, also into the subnormal range. */
    int32_t ni = ti - 0x4B400000, n1 = ni >> 1, n2 = ni - n1;
    /* unsigned shifts: for a NaN x the (discarded) exponent is garbage, and a signed shift
     * of it would be undefined */
    uint32_t b1 = (uint32_t)(n1 + 127) << 23, b2 = (uint32_t)(n2 + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, sizeof s1);
    memcpy(&s2, &b2, sizeof s2);
    float y = (p * s1) * s2;
    y = x < lo ? 0.0f : y;
    y = x > hi ? __builtin_inff() : y;
    return x != x ? x : y;
}

#endif

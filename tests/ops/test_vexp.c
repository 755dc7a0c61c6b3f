/* test_vexp.c: cpt_expf (src/ops/vexp.h) against float64 exp from libm.
 * Oracle: exp() of the C library in double, rounded once to float; the error is counted in
 * ulps of the correctly rounded float result.
 * Tolerance: <= 2 ulp where the result is a normal float (x in [-87.33, 88.72]); where it
 * is subnormal (x in [-104, -87.33)), an absolute error <= 1 least subnormal (2^-149);
 * exact 0 below -104 and for -inf, +inf above log(FLT_MAX), NaN for NaN.
 * Sweep: every float in [-1, 1] with step 2^-14 around 0 plus 4M uniformly spaced points
 * over [-110, 90], and all exact integers in [-104, 88]. Also checks that the loop form the
 * kernels use (omp simd) gives the same bits as the scalar call. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../../src/ops/vexp.h"
#include "testutil.h"

static double max_ulp = 0, max_sub = 0;
static long n_bad = 0;

static double ulp_of(float y) { /* spacing of floats at |y| */
    float a = fabsf(y);
    return (double)nextafterf(a, INFINITY) - (double)a;
}

static void check_one(float x) {
    float got = cpt_expf(x);
    double ref = exp((double)x);
    float reff = (float)ref;
    if (x > 88.72283935546875f) {
        if (!(isinf(got) && got > 0)) n_bad++;
        return;
    }
    if (x < -104.0f) {
        if (got != 0.0f) n_bad++;
        return;
    }
    if (reff >= FLT_MIN) {
        double e = fabs((double)got - ref) / ulp_of(reff);
        if (e > max_ulp) max_ulp = e;
        if (e > 2.0 && n_bad++ < 5) fprintf(stderr, "x=%.9g got %.9g ref %.17g (%.2f ulp)\n", x, got, ref, e);
    } else {
        double e = fabs((double)got - ref) / 0x1p-149;
        if (e > max_sub) max_sub = e;
        if (e > 1.0 && n_bad++ < 5) fprintf(stderr, "x=%.9g got %a ref %a (%.2f subnormal ulps)\n", x, got, ref, e);
    }
}

int main(void) {
    for (float x = -1.0f; x <= 1.0f; x += 0x1p-14f) check_one(x);
    const long N = 4000000;
    for (long i = 0; i <= N; i++) check_one((float)(-110.0 + 200.0 * (double)i / (double)N));
    for (int i = -104; i <= 88; i++) check_one((float)i);
    check_one(-87.33f), check_one(-87.34f), check_one(88.72f), check_one(88.7228f), check_one(-103.97f);
    printf("max error %.3f ulp (normal results), %.3f least-subnormal units (subnormal results)\n", max_ulp,
           max_sub);
    CHECKF(n_bad == 0, "%ld points out of tolerance", n_bad);
    CHECK(max_ulp <= 2.0);

    CHECK(cpt_expf(-INFINITY) == 0.0f);
    CHECK(isinf(cpt_expf(INFINITY)) && cpt_expf(INFINITY) > 0);
    CHECK(isnan(cpt_expf(NAN)));
    CHECK(cpt_expf(0.0f) == 1.0f);
    CHECK(cpt_expf(-0.0f) == 1.0f);
    CHECK(cpt_expf(-200.0f) == 0.0f);
    CHECK(cpt_expf(1000.0f) > FLT_MAX);

    /* The vectorised loop gives the same bits as the scalar call. */
    enum { M = 1027 };
    static float xs[M], ys[M];
    for (int i = 0; i < M; i++) xs[i] = -100.0f + 190.0f * (float)i / (float)M;
    xs[3] = -INFINITY, xs[700] = NAN;
#pragma omp simd
    for (int i = 0; i < M; i++) ys[i] = cpt_expf(xs[i]);
    int same = 1;
    for (int i = 0; i < M; i++) {
        float s = cpt_expf(xs[i]);
        if (memcmp(&s, &ys[i], sizeof s)) same = 0;
    }
    CHECK(same);
    TEST_END();
}

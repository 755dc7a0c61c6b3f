/* swiglu.c: h = silu(g) * u and its backward (methods.md 2.2.7), plus the reference.
 * silu'(a) = sigma(a) * (1 + a * (1 - sigma(a))). */
#include <math.h>

#include "cpt/ops.h"
#include "vexp.h"

void cpt_swiglu_fwd(float *h, const float *g, const float *u, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + cpt_expf(-g[i]));
        h[i] = g[i] * s * u[i];
    }
}

void cpt_swiglu_bwd(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + cpt_expf(-g[i]));
        float silu = g[i] * s;
        dg[i] = dh[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
        du[i] = dh[i] * silu;
    }
}

void cpt_ref_swiglu_fwd(double *h, const double *g, const double *u, size_t n) {
    for (size_t i = 0; i < n; i++) h[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
}

void cpt_ref_swiglu_bwd(double *dg, double *du, const double *dh, const double *g, const double *u, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double s = 1.0 / (1.0 + exp(-g[i]));
        dg[i] = dh[i] * u[i] * s * (1.0 + g[i] * (1.0 - s));
        du[i] = dh[i] * g[i] * s;
    }
}

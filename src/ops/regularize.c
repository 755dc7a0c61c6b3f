/* regularize.c: the elementwise kernels behind the forgetting regularizers (L2-SP, EWC,
 * cpt/regularize.h): the weighted quadratic pull and the Fisher's squared-gradient
 * accumulation, fp32 and their float64 references. The penalty sum uses fixed blocks of
 * CPT_REDUCE_BLOCK elements added in index order (as cpt_sumsq), so the logged penalty is
 * bitwise the same at any OpenMP thread count. */
#include "cpt/backend.h"
#include "cpt/ops.h"

double cpt_quad_penalty(const float *theta, const float *center, const float *weight, float *grad, size_t n,
                        double coef) {
    enum { BLK = CPT_REDUCE_BLOCK, GROUP = 256 };
    size_t nb = (n + BLK - 1) / BLK;
    double total = 0.0, part[GROUP];
    for (size_t b0 = 0; b0 < nb; b0 += GROUP) {
        size_t b1 = b0 + GROUP < nb ? b0 + GROUP : nb;
        /* Tiny tensors (norms, biases) stay on the calling thread: a parallel region per
         * 64-float tensor costs more than the work. */
#pragma omp parallel for schedule(static) if (n >= 65536)
        for (size_t b = b0; b < b1; b++) {
            size_t i0 = b * BLK, i1 = i0 + BLK < n ? i0 + BLK : n;
            double s = 0.0;
            for (size_t i = i0; i < i1; i++) {
                double d = (double)theta[i] - (double)center[i], w = weight ? (double)weight[i] : 1.0;
                s += w * d * d;
                if (grad) grad[i] = (float)((double)grad[i] + coef * w * d);
            }
            part[b - b0] = s;
        }
        for (size_t b = b0; b < b1; b++) total += part[b - b0];
    }
    return 0.5 * coef * total;
}

void cpt_sq_accum(float *acc, const float *g, size_t n) {
#pragma omp parallel for simd schedule(static) if (n >= 65536)
    for (size_t i = 0; i < n; i++) acc[i] += g[i] * g[i];
}

double cpt_ref_quad_penalty(const double *theta, const double *center, const double *weight, double *grad,
                            size_t n, double coef) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = theta[i] - center[i], w = weight ? weight[i] : 1.0;
        s += w * d * d;
        if (grad) grad[i] += coef * w * d;
    }
    return 0.5 * coef * s;
}

void cpt_ref_sq_accum(double *acc, const double *g, size_t n) {
    for (size_t i = 0; i < n; i++) acc[i] += g[i] * g[i];
}

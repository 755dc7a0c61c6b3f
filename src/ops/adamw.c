/* adamw.c: one AdamW update over a flat tensor, in the same operation order as
 * torch.optim.AdamW's single-tensor path (methods.md 3.1), and vector helpers. */
#include <math.h>

#include "cpt/ops.h"

void cpt_adamw_update(float *p, const float *g, float *m, float *v, size_t n, float lr, double b1,
                      double b2, float eps, float wd, double bc1, double bc2) {
    /* torch: param.mul_(1 - lr*wd); exp_avg.lerp_(grad, 1-b1);
     * exp_avg_sq.mul_(b2).addcmul_(grad, grad, value=1-b2);
     * denom = exp_avg_sq.sqrt() / sqrt(bc2) + eps; param.addcdiv_(exp_avg, denom, -lr/bc1).
     * Python-float scalars (1-b1, 1-b2, lr*wd, lr/bc1) are computed in double and applied
     * as fp32; b1, b2 therefore arrive as double: fp32(1 - 0.999) != 1 - fp32(0.999). */
    float decay = (float)(1.0 - (double)lr * (double)wd);
    float w1 = (float)(1.0 - (double)b1);
    float w2 = (float)(1.0 - (double)b2);
    float bc2s = (float)sqrt(bc2);
    float b2f = (float)b2;
    float step = (float)(-(double)lr / bc1);
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float pi = p[i] * decay;
        float mi = m[i] + w1 * (gi - m[i]);
        float vi = v[i] * b2f + w2 * gi * gi;
        float denom = sqrtf(vi) / bc2s + eps;
        p[i] = pi + step * (mi / denom);
        m[i] = mi;
        v[i] = vi;
    }
}

double cpt_sumsq(const float *x, size_t n) {
    /* Fixed-size blocks summed in order: the result does not depend on the thread count. */
    enum { BLK = 4096 };
    size_t nb = (n + BLK - 1) / BLK;
    double total = 0.0;
    if (nb == 0) return 0.0;
    double part[256];
    for (size_t b0 = 0; b0 < nb; b0 += 256) {
        size_t b1 = b0 + 256 < nb ? b0 + 256 : nb;
#pragma omp parallel for schedule(static)
        for (size_t b = b0; b < b1; b++) {
            size_t i0 = b * BLK, i1 = i0 + BLK < n ? i0 + BLK : n;
            double s = 0.0;
            for (size_t i = i0; i < i1; i++) s += (double)x[i] * (double)x[i];
            part[b - b0] = s;
        }
        for (size_t b = b0; b < b1; b++) total += part[b - b0];
    }
    return total;
}

void cpt_scale(float *x, size_t n, float s) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

void cpt_add_inplace(float *y, const float *x, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

/* float64 AdamW (methods.md 3.1 written as the formula, not torch's fp32 operation
 * order): the oracle of the adamw_update entry in tests/backend/test_backend_ops.c
 * and the kernel of the reference backend. */
void cpt_ref_adamw_update(double *p, const double *g, double *m, double *v, size_t n, double lr, double b1,
                          double b2, double eps, double wd, double bc1, double bc2) {
    for (size_t i = 0; i < n; i++) {
        p[i] *= 1.0 - lr * wd;
        m[i] = b1 * m[i] + (1.0 - b1) * g[i];
        v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
        p[i] -= (lr / bc1) * m[i] / (sqrt(v[i]) / sqrt(bc2) + eps);
    }
}

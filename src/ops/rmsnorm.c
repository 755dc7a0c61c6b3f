/* rmsnorm.c: RMSNorm forward/backward (fp32 statistics, as LlamaRMSNorm), and the
 * float64 reference. Backward (methods.md 2.2.4): u = dy*w,
 * dx = rstd * (u - xhat * mean(u*xhat)), dw += sum_rows dy*xhat. */
#include <math.h>

#include "cpt/ops.h"

void cpt_rmsnorm_fwd(float *y, float *rstd, const float *x, const float *w, int N, int D, float eps) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * D;
        float *yr = y + (size_t)n * D;
        float ss = 0.0f;
        for (int d = 0; d < D; d++) ss += xr[d] * xr[d];
        float r = 1.0f / sqrtf(ss / (float)D + eps);
        if (rstd) rstd[n] = r;
        for (int d = 0; d < D; d++) yr[d] = w[d] * (xr[d] * r);
    }
}

void cpt_rmsnorm_bwd(float *dx, float *dw, const float *dy, const float *x, const float *w,
                     const float *rstd, int N, int D, int accum_dx) {
    if (dx) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) {
            const float *xr = x + (size_t)n * D, *dyr = dy + (size_t)n * D;
            float *dxr = dx + (size_t)n * D;
            float r = rstd[n], dot = 0.0f;
            for (int d = 0; d < D; d++) dot += dyr[d] * w[d] * (xr[d] * r);
            float mean = dot / (float)D;
            for (int d = 0; d < D; d++) {
                float g = r * (dyr[d] * w[d] - (xr[d] * r) * mean);
                dxr[d] = accum_dx ? dxr[d] + g : g;
            }
        }
    }
    if (dw) {
        /* Parallel over columns: the row-sum order is fixed, so results are bitwise
         * independent of the thread count. */
#pragma omp parallel for schedule(static)
        for (int d0 = 0; d0 < D; d0 += 16) {
            int d1 = d0 + 16 < D ? d0 + 16 : D;
            float acc[16] = {0};
            for (int n = 0; n < N; n++) {
                const float *xr = x + (size_t)n * D, *dyr = dy + (size_t)n * D;
                float r = rstd[n];
                for (int d = d0; d < d1; d++) acc[d - d0] += dyr[d] * (xr[d] * r);
            }
            for (int d = d0; d < d1; d++) dw[d] += acc[d - d0];
        }
    }
}

void cpt_ref_rmsnorm_fwd(double *y, const double *x, const double *w, int N, int D, double eps) {
    for (int n = 0; n < N; n++) {
        double ss = 0;
        for (int d = 0; d < D; d++) ss += x[(size_t)n * D + d] * x[(size_t)n * D + d];
        double r = 1.0 / sqrt(ss / D + eps);
        for (int d = 0; d < D; d++) y[(size_t)n * D + d] = w[d] * x[(size_t)n * D + d] * r;
    }
}

void cpt_ref_rmsnorm_bwd(double *dx, double *dw, const double *dy, const double *x, const double *w,
                         int N, int D, double eps) {
    for (int d = 0; d < D; d++) dw[d] = 0;
    for (int n = 0; n < N; n++) {
        const double *xr = x + (size_t)n * D, *dyr = dy + (size_t)n * D;
        double ss = 0;
        for (int d = 0; d < D; d++) ss += xr[d] * xr[d];
        double r = 1.0 / sqrt(ss / D + eps), dot = 0;
        for (int d = 0; d < D; d++) {
            dot += dyr[d] * w[d] * xr[d] * r;
            dw[d] += dyr[d] * xr[d] * r;
        }
        for (int d = 0; d < D; d++) dx[(size_t)n * D + d] = r * (dyr[d] * w[d] - xr[d] * r * dot / D);
    }
}

/* The same backward from a saved rstd (what the forward pass keeps), for the float64
 * reference backend, whose rmsnorm_bwd entry gets rstd and not eps. Checked against
 * cpt_ref_rmsnorm_bwd (itself checked by finite differences) in tests/ops/test_ops_fd.c. */
void cpt_ref_rmsnorm_bwd_rstd(double *dx, double *dw, const double *dy, const double *x, const double *w,
                              const double *rstd, int N, int D) {
    if (dw)
        for (int d = 0; d < D; d++) dw[d] = 0;
    for (int n = 0; n < N; n++) {
        const double *xr = x + (size_t)n * D, *dyr = dy + (size_t)n * D;
        double r = rstd[n], dot = 0;
        for (int d = 0; d < D; d++) {
            dot += dyr[d] * w[d] * xr[d] * r;
            if (dw) dw[d] += dyr[d] * xr[d] * r;
        }
        if (dx)
            for (int d = 0; d < D; d++) dx[(size_t)n * D + d] = r * (dyr[d] * w[d] - xr[d] * r * dot / D);
    }
}

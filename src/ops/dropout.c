/* dropout.c: inverted dropout with a counter-based mask (cpt/ops.h): element i of a call
 * with `seed` is kept when cpt_dropout_keep(seed, i, p) holds, so the mask is a pure function
 * of (seed, i): the backward and an activation recompute rebuild it instead of storing it,
 * and it does not depend on the thread count. */
#include "cpt/ops.h"

void cpt_dropout(float *y, const float *x, size_t n, float p, uint64_t seed) {
    const uint64_t thr = cpt_dropout_threshold(p);
    const float inv = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) y[i] = cpt_dropout_keep(seed, i, thr) ? x[i] * inv : 0.0f;
}

void cpt_ref_dropout(double *y, const double *x, size_t n, double p, uint64_t seed, size_t first) {
    const uint64_t thr = cpt_dropout_threshold((float)p);
    for (size_t i = 0; i < n; i++) y[i] = cpt_dropout_keep(seed, first + i, thr) ? x[i] / (1.0 - p) : 0.0;
}

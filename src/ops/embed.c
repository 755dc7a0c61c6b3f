/* embed.c: token embedding lookup and its scatter-add backward, plus the reference.
 * The backward is parallel over embedding columns, so rows that share a token id are
 * summed in a fixed order (deterministic for any thread count). */
#include <string.h>

#include "cpt/ops.h"

void cpt_embed_fwd(float *x, const float *E, const int32_t *ids, int N, int D) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) memcpy(x + (size_t)n * D, E + (size_t)ids[n] * D, sizeof(float) * (size_t)D);
}

void cpt_embed_bwd(float *dE, const float *dx, const int32_t *ids, int N, int D, int V) {
    (void)V;
#pragma omp parallel for schedule(static)
    for (int d0 = 0; d0 < D; d0 += 32) {
        int d1 = d0 + 32 < D ? d0 + 32 : D;
        for (int n = 0; n < N; n++) {
            float *row = dE + (size_t)ids[n] * D;
            const float *src = dx + (size_t)n * D;
            for (int d = d0; d < d1; d++) row[d] += src[d];
        }
    }
}

void cpt_ref_embed_fwd(double *x, const double *E, const int32_t *ids, int N, int D) {
    for (int n = 0; n < N; n++)
        for (int d = 0; d < D; d++) x[(size_t)n * D + d] = E[(size_t)ids[n] * D + d];
}

void cpt_ref_embed_bwd(double *dE, const double *dx, const int32_t *ids, int N, int D) {
    for (int n = 0; n < N; n++)
        for (int d = 0; d < D; d++) dE[(size_t)ids[n] * D + d] += dx[(size_t)n * D + d];
}

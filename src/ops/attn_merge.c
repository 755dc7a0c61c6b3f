/* attn_merge.c: merging two partial attention results over disjoint key sets (methods.md
 * 14.2), the step ring attention takes after each K/V block (src/model/context_parallel.c).
 *
 * Each partial is normalised over its own keys and carries its row log-sum-exp L. The
 * merged row is L = log(exp La + exp Lb) = max + log1p(exp(-|La - Lb|)) and
 * O = exp(La - L) Oa + exp(Lb - L) Ob. A row that saw no key has L = -inf and O = 0
 * (cpt_attn_fwd's convention), so merging it is the identity. The weights are formed in
 * float64 per row (H x Tq of them, cheap); the vectors are blended in fp32. */
#include <math.h>
#include <stddef.h>

#include "cpt/ops.h"

void cpt_attn_merge(float *out, float *lse, const float *out_p, const float *lse_p, int Tq, int H, int hd, int lse_ld) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < Tq; i++)
        for (int h = 0; h < H; h++) {
            float *o = out + ((size_t)i * H + h) * hd;
            const float *op = out_p + ((size_t)i * H + h) * hd;
            float *la = lse + (size_t)h * lse_ld + i;
            double a = *la, b = lse_p[(size_t)h * Tq + i];
            if (b == -INFINITY) continue;
            if (a == -INFINITY) {
                for (int d = 0; d < hd; d++) o[d] = op[d];
                *la = (float)b;
                continue;
            }
            double L = (a > b ? a : b) + log1p(exp(-fabs(a - b)));
            float wa = (float)exp(a - L), wb = (float)exp(b - L);
            for (int d = 0; d < hd; d++) o[d] = wa * o[d] + wb * op[d];
            *la = (float)L;
        }
}

void cpt_ref_attn_merge(double *out, double *lse, const double *out_p, const double *lse_p, int Tq, int H, int hd,
                        int lse_ld) {
    for (int i = 0; i < Tq; i++)
        for (int h = 0; h < H; h++) {
            double *o = out + ((size_t)i * H + h) * hd;
            const double *op = out_p + ((size_t)i * H + h) * hd;
            double *la = lse + (size_t)h * lse_ld + i, a = *la, b = lse_p[(size_t)h * Tq + i];
            /* the definition, directly: weights exp(L_x) / (exp La + exp Lb), shifted by
             * the larger for range */
            if (b == -INFINITY) continue;
            double mx = a > b ? a : b, ea = a == -INFINITY ? 0.0 : exp(a - mx), eb = exp(b - mx), s = ea + eb;
            for (int d = 0; d < hd; d++) o[d] = (ea * o[d] + eb * op[d]) / s;
            *la = mx + log(s);
        }
}

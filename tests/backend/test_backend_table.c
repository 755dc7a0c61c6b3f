/* test_backend_table.c: the CPU backend table is complete and its new entries (memory,
 * regularizers) match their float64 references. The entry count is pinned: adding an
 * entry to cpt_backend without extending this test (and tests/ops) fails here. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/backend.h"
#include "testutil.h"

int main(void) {
    const cpt_backend *be = cpt_backend_default();
    /* 29 entries: alloc free copy_to_device copy_to_host copy (tested in
     * tests/backend/test_backend_ops.c t_memory) zero sync supports, 19 ops
     * (xent_workspace_bytes is tested in tests/ops/test_ops_cpu.c),
     * reg_quad sq_accum, ... the bf16 entries (linears, LM head, attention: test_backend_ops).
     * Update together with a test of the new entry. */
    CHECKF(CPT_BACKEND_N_ENTRIES == 39, "cpt_backend has %zu entries; a new entry needs a test",
           (size_t)CPT_BACKEND_N_ENTRIES);
    void (*const *fp)(void) = (void (*const *)(void))((const char *)be + sizeof(const char *));
    for (size_t i = 0; i < CPT_BACKEND_N_ENTRIES; i++) CHECKF(fp[i] != NULL, "entry %zu of '%s' is NULL", i, be->name);

    /* Memory entries: zeroed alloc, copies round-trip, zero clears. */
    const size_t n = 4099;
    float *h = malloc(sizeof(float) * n), *back = malloc(sizeof(float) * n), *d = be->alloc(sizeof(float) * n);
    CHECK(d != NULL);
    int zero = 1;
    for (size_t i = 0; i < n; i++) zero &= d[i] == 0.0f, h[i] = (float)i * 0.5f - 7.0f;
    CHECK(zero);
    be->copy_to_device(d, h, sizeof(float) * n);
    be->copy_to_host(back, d, sizeof(float) * n);
    be->sync();
    CHECK(!memcmp(h, back, sizeof(float) * n));
    be->zero(d, sizeof(float) * n);
    zero = 1;
    for (size_t i = 0; i < n; i++) zero &= d[i] == 0.0f;
    CHECK(zero);

    /* reg_quad and sq_accum against the float64 references at odd sizes (1, 4097, 70001:
     * one element, one block plus one, the threaded path). Tolerance: penalty 1e-12
     * relative (float64 sums in another order); gradient 1 fp32 ulp (one rounding of the
     * same float64 value, then compared to the float64 reference); sq_accum 2 ulp. */
    const size_t sizes[] = {1, 4097, 70001};
    for (int si = 0; si < 3; si++) {
        size_t m = sizes[si];
        float *t = malloc(sizeof(float) * m), *c = malloc(sizeof(float) * m), *w = malloc(sizeof(float) * m);
        float *g = malloc(sizeof(float) * m), *acc = malloc(sizeof(float) * m);
        double *td = malloc(sizeof(double) * m), *cd = malloc(sizeof(double) * m), *wd = malloc(sizeof(double) * m);
        double *gd = malloc(sizeof(double) * m), *ad = malloc(sizeof(double) * m);
        for (size_t i = 0; i < m; i++) {
            t[i] = sinf((float)i * 0.37f), c[i] = cosf((float)i * 0.11f), w[i] = 1.0f + (float)(i % 7);
            g[i] = acc[i] = 0.25f;
            td[i] = t[i], cd[i] = c[i], wd[i] = w[i], gd[i] = ad[i] = 0.25;
        }
        double got = be->reg_quad(t, c, w, g, m, 0.7), want = cpt_ref_quad_penalty(td, cd, wd, gd, m, 0.7);
        CHECKF(fabs(got - want) <= 1e-12 * fabs(want), "reg_quad n=%zu: %.17g vs %.17g", m, got, want);
        double maxg = 0, maxa = 0;
        be->sq_accum(acc, t, m);
        cpt_ref_sq_accum(ad, td, m);
        for (size_t i = 0; i < m; i++) {
            double eg = fabs(g[i] - gd[i]) / (fabs(gd[i]) * 5.96e-8 + 1e-30);
            double ea = fabs(acc[i] - ad[i]) / (fabs(ad[i]) * 5.96e-8 + 1e-30);
            if (eg > maxg) maxg = eg;
            if (ea > maxa) maxa = ea;
        }
        CHECKF(maxg <= 1.0, "reg_quad grad n=%zu: %.3g half-ulps", m, maxg);
        CHECKF(maxa <= 4.0, "sq_accum n=%zu: %.3g half-ulps", m, maxa);
        double pen0 = be->reg_quad(t, c, NULL, NULL, m, 2.0), ref0 = cpt_ref_quad_penalty(td, cd, NULL, NULL, m, 2.0);
        CHECKF(fabs(pen0 - ref0) <= 1e-12 * fabs(ref0), "reg_quad unweighted n=%zu", m);
        free(t), free(c), free(w), free(g), free(acc), free(td), free(cd), free(wd), free(gd), free(ad);
    }
    be->free(d);
    free(h), free(back);
    TEST_END();
}

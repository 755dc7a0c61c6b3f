/* test_ops_adamw.c: cpt_adamw_update against the torch.optim.AdamW test vector of
 * methods.md 3.1 and against that section's formula in float64 over many entries and
 * steps. Kept apart from test_ops_cpu.c so an optimizer parity failure does not hide
 * the kernel comparisons (and vice versa). Not a test of the optimizer driver.
 *
 * What "exact torch" means for fp32 tensors: torch receives lr, betas, eps, wd as Python
 * floats, forms 1-beta1, 1-beta2, 1-lr*wd, lr/bc1, sqrt(bc2) in float64 and rounds each
 * to fp32 when the tensor op uses it. torch 2.5.1 (CPU, foreach=False) gives for the
 * vector below p = 0.9988999963, 0.9985337853, 0.9981186390, m = 0.027999999, v =
 * 3.2193775e-4: within 1 ulp of the float64 values, hence the 2-ulp tolerances.
 *
 * (betas are passed as double so 1-beta is formed as torch forms it.)
 */
#include <math.h>
#include <stdio.h>

#include "cpt/ops.h"
#include "opsutil.h"
#include "testutil.h"

static void chk(const char *op, const char *what, const float *got, const double *ref, size_t n, double tol) {
    double e = ou_relerr_fd(got, ref, n);
    int fin = ou_all_finite(got, n);
    CHECKF(e < tol && fin, "%s %s: rel err %.3e (tol %.0e)%s", op, what, e, tol, fin ? "" : ", NaN/Inf in output");
    fprintf(stderr, "  %-24s %-3s n=%-6zu err=%.2e\n", op, what, n, e);
}

/* ------------------------------------------------------------------ adamw */
static void test_adamw_vector(void) {
    /* methods.md 3.1 [CMP]: lr=1e-3, betas (0.9, 0.999), eps=1e-8, wd=0.1, p0=1,
     * grads 0.5, -0.25, 0.1. Values in float64; fp32 must be within 2 ulp near 1. */
    static const double want_p[3] = {0.998900000020, 0.998533772987, 0.998118676053};
    static const float gs[3] = {0.5f, -0.25f, 0.1f};
    float p = 1.0f, m = 0.0f, v = 0.0f;
    for (int t = 1; t <= 3; t++) {
        double bc1 = 1.0 - pow(0.9, t), bc2 = 1.0 - pow(0.999, t);
        cpt_adamw_update(&p, &gs[t - 1], &m, &v, 1, 1e-3f, 0.9, 0.999, 1e-8f, 0.1f, bc1, bc2);
        CHECKF(fabs(p - want_p[t - 1]) <= 2 * 0x1p-24, "adamw step %d: p %.12f, want %.12f", t, p, want_p[t - 1]);
    }
    CHECKF(fabs(m - 0.028) <= 2e-7 * 0.028, "adamw m after 3 steps: %.9g, want 0.028", m);
    CHECKF(fabs(v - 3.2193775e-4) <= 2e-7 * 3.2193775e-4, "adamw v after 3 steps: %.9g, want 3.2193775e-4", v);
    fprintf(stderr, "  adamw test vector: p=%.12f m=%.9g v=%.9g\n", p, m, v);
}

static void test_adamw_random(size_t n) {
    /* Five steps on n odd entries against the methods.md 3.1 formula evaluated in
     * float64 with the hyper-parameters as the user wrote them (Python floats, as
     * torch receives them), so fp32 rounding of any derived scalar shows up. */
    float *p = ou_galloc(n), *m = ou_galloc(n), *v = ou_galloc(n), *g = OU_ALLOC(float, n);
    ou_fill_f(p, n, 1);
    memset(m, 0, sizeof(float) * n), memset(v, 0, sizeof(float) * n);
    double *pd = OU_ALLOC(double, n), *md = OU_ALLOC(double, n), *vd = OU_ALLOC(double, n);
    ou_f2d(pd, p, n);
    memset(md, 0, sizeof(double) * n), memset(vd, 0, sizeof(double) * n);
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
    for (int t = 1; t <= 5; t++) {
        double lr = 3e-4 * t, bc1 = 1 - pow(b1, t), bc2 = 1 - pow(b2, t);
        ou_fill_f(g, n, 0.01f);
        cpt_adamw_update(p, g, m, v, n, (float)lr, b1, b2, (float)eps, (float)wd, bc1, bc2);
        for (size_t i = 0; i < n; i++) {
            double gi = g[i];
            pd[i] *= 1 - lr * wd;
            md[i] = b1 * md[i] + (1 - b1) * gi;
            vd[i] = b2 * vd[i] + (1 - b2) * gi * gi;
            pd[i] -= (lr / bc1) * md[i] / (sqrt(vd[i]) / sqrt(bc2) + eps);
        }
    }
    /* p moves ~1e-3 per step from O(1): 1e-6 of max|p| is ~10 fp32 ulps. */
    chk("adamw n1001 5 steps", "p", p, pd, n, 1e-6);
    chk("adamw n1001 5 steps", "m", m, md, n, 1e-6);
    chk("adamw n1001 5 steps", "v", v, vd, n, 1e-6);
    CHECKF(ou_guard_ok(p, n) && ou_guard_ok(m, n) && ou_guard_ok(v, n), "adamw wrote outside p/m/v");
    ou_gfree(p), ou_gfree(m), ou_gfree(v), free(g), free(pd), free(md), free(vd);
}

int main(void) {
    ou_seed(0xADA3);
    test_adamw_vector();
    test_adamw_random(1001);
    TEST_END();
}

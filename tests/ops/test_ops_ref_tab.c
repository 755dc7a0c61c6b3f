/* test_ops_ref_tab.c: the float64 reference kernels added for the reference backend
 * (src/backend/ref.c), each against an independent check:
 *   cpt_ref_rmsnorm_bwd_rstd  vs cpt_ref_rmsnorm_bwd (from eps) and central differences
 *   cpt_ref_rope_tab_fwd      vs cpt_ref_rope_fwd (from the frequencies)
 *   cpt_ref_rope_tab_bwd      vs central differences of <dy, fwd(x)> (the transpose)
 *   cpt_ref_adamw_update      vs Adam's first step, which moves each weight by exactly
 *                             lr * sign(g) when eps = wd = 0 (m/sqrt(v) = g/|g| after
 *                             bias correction)
 * Tolerances: same formula in another form 1e-12 relative; central differences with
 * h = 1e-5 on O(1) inputs: truncation O(h^2) = 1e-10, rounding 1e-16/h = 1e-11 -> 1e-8. */
#include <math.h>

#include "cpt/ops.h"
#include "ops/opsutil.h"
#include "testutil.h"

static double dot(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static void t_rmsnorm(int N, int D, double eps) {
    size_t n = (size_t)N * D;
    double *x = OU_ALLOC(double, n), *w = OU_ALLOC(double, D), *dy = OU_ALLOC(double, n), *y = OU_ALLOC(double, n);
    double *r = OU_ALLOC(double, N), *dx1 = OU_ALLOC(double, n), *dw1 = OU_ALLOC(double, D), *dx2 = OU_ALLOC(double, n),
           *dw2 = OU_ALLOC(double, D), *fd = OU_ALLOC(double, n), *fdw = OU_ALLOC(double, D);
    ou_fill_d(x, n, 1), ou_fill_d(w, D, 1), ou_fill_d(dy, n, 1);
    for (int i = 0; i < N; i++) {
        double ss = 0;
        for (int d = 0; d < D; d++) ss += x[(size_t)i * D + d] * x[(size_t)i * D + d];
        r[i] = 1.0 / sqrt(ss / D + eps);
    }
    cpt_ref_rmsnorm_bwd_rstd(dx1, dw1, dy, x, w, r, N, D);
    cpt_ref_rmsnorm_bwd(dx2, dw2, dy, x, w, N, D, eps);
    CHECKF(ou_relerr_dd(dx1, dx2, n) < 1e-12, "rmsnorm_bwd_rstd dx vs eps form: %.3e", ou_relerr_dd(dx1, dx2, n));
    CHECKF(ou_relerr_dd(dw1, dw2, D) < 1e-12, "rmsnorm_bwd_rstd dw vs eps form: %.3e", ou_relerr_dd(dw1, dw2, D));
    const double h = 1e-5;
    for (size_t i = 0; i < n; i++) {
        double s = x[i], lp, lm;
        x[i] = s + h, cpt_ref_rmsnorm_fwd(y, x, w, N, D, eps), lp = dot(y, dy, n);
        x[i] = s - h, cpt_ref_rmsnorm_fwd(y, x, w, N, D, eps), lm = dot(y, dy, n);
        x[i] = s, fd[i] = (lp - lm) / (2 * h);
    }
    for (int d = 0; d < D; d++) {
        double s = w[d], lp, lm;
        w[d] = s + h, cpt_ref_rmsnorm_fwd(y, x, w, N, D, eps), lp = dot(y, dy, n);
        w[d] = s - h, cpt_ref_rmsnorm_fwd(y, x, w, N, D, eps), lm = dot(y, dy, n);
        w[d] = s, fdw[d] = (lp - lm) / (2 * h);
    }
    double ex = ou_relerr_dd(dx1, fd, n), ew = ou_relerr_dd(dw1, fdw, D);
    CHECKF(ex < 1e-8 && ew < 1e-8, "rmsnorm_bwd_rstd vs finite differences N%d D%d: dx %.3e dw %.3e", N, D, ex, ew);
    fprintf(stderr, "  rmsnorm_bwd_rstd N%-3d D%-4d fd: dx %.2e dw %.2e\n", N, D, ex, ew);
    free(x), free(w), free(dy), free(y), free(r), free(dx1), free(dw1), free(dx2), free(dw2), free(fd), free(fdw);
}

static void t_rope(int N, int nh, int hd, int rot, double af) {
    int half = rot / 2, npos = 19;
    size_t n = (size_t)N * nh * hd, nt = (size_t)npos * half;
    double *inv = OU_ALLOC(double, half), *ct = OU_ALLOC(double, nt), *st = OU_ALLOC(double, nt);
    for (int i = 0; i < half; i++) inv[i] = pow(10000.0, -2.0 * i / rot);
    for (int p = 0; p < npos; p++)
        for (int i = 0; i < half; i++) ct[p * half + i] = af * cos(p * inv[i]), st[p * half + i] = af * sin(p * inv[i]);
    int32_t *pos = OU_ALLOC(int32_t, N);
    for (int i = 0; i < N; i++) pos[i] = (i * 5 + 2) % npos;
    double *x = OU_ALLOC(double, n), *a = OU_ALLOC(double, n), *b = OU_ALLOC(double, n), *dy = OU_ALLOC(double, n),
           *g = OU_ALLOC(double, n), *fd = OU_ALLOC(double, n);
    ou_fill_d(x, n, 1), ou_fill_d(dy, n, 1);
    memcpy(a, x, sizeof(double) * n), memcpy(b, x, sizeof(double) * n);
    cpt_ref_rope_tab_fwd(a, ct, st, pos, N, nh, hd, rot);
    cpt_ref_rope_fwd(b, inv, af, pos, N, nh, hd, rot);
    double e = ou_relerr_dd(a, b, n);
    CHECKF(e < 1e-12, "rope_tab_fwd vs rope_fwd N%d hd%d rot%d: %.3e", N, hd, rot, e);
    memcpy(g, dy, sizeof(double) * n);
    cpt_ref_rope_tab_bwd(g, ct, st, pos, N, nh, hd, rot);
    const double h = 1e-5;
    for (size_t i = 0; i < n; i++) {
        double s = x[i], lp, lm;
        memcpy(a, x, sizeof(double) * n), a[i] = s + h, cpt_ref_rope_tab_fwd(a, ct, st, pos, N, nh, hd, rot), lp = dot(a, dy, n);
        memcpy(a, x, sizeof(double) * n), a[i] = s - h, cpt_ref_rope_tab_fwd(a, ct, st, pos, N, nh, hd, rot), lm = dot(a, dy, n);
        fd[i] = (lp - lm) / (2 * h);
    }
    double eb = ou_relerr_dd(g, fd, n);
    CHECKF(eb < 1e-8, "rope_tab_bwd vs finite differences N%d hd%d rot%d: %.3e", N, hd, rot, eb);
    fprintf(stderr, "  rope_tab N%-3d hd%-3d rot%-3d fwd vs freq %.2e, bwd fd %.2e\n", N, hd, rot, e, eb);
    free(inv), free(ct), free(st), free(pos), free(x), free(a), free(b), free(dy), free(g), free(fd);
}

static void t_adamw(void) {
    enum { n = 5 };
    double p[n] = {1, -2, 0.5, 3, -0.25}, g[n] = {0.5, -1e-3, 7, -2, 1e-6}, m[n] = {0}, v[n] = {0};
    const double lr = 0.1, b1 = 0.9, b2 = 0.999;
    double p0[n];
    memcpy(p0, p, sizeof p);
    cpt_ref_adamw_update(p, g, m, v, n, lr, b1, b2, 0.0, 0.0, 1 - b1, 1 - b2);
    for (int i = 0; i < n; i++) {
        double want = p0[i] - lr * (g[i] > 0 ? 1 : -1);
        CHECKF(fabs(p[i] - want) < 1e-12, "adamw step 1, element %d: %.17g vs %.17g", i, p[i], want);
        CHECKF(fabs(m[i] - 0.1 * g[i]) < 1e-15 && fabs(v[i] - 1e-3 * g[i] * g[i]) < 1e-15 * (1 + g[i] * g[i]),
               "adamw moments, element %d", i);
    }
    /* decoupled weight decay: with g = 0 the weight only shrinks by (1 - lr wd) */
    double q[1] = {2}, z[1] = {0}, mm[1] = {0}, vv[1] = {0};
    cpt_ref_adamw_update(q, z, mm, vv, 1, 0.1, b1, b2, 1e-8, 0.5, 1 - b1, 1 - b2);
    CHECKF(fabs(q[0] - 2 * (1 - 0.05)) < 1e-15, "adamw decay: %.17g", q[0]);
}

int main(void) {
    ou_seed(0x5EED);
    t_rmsnorm(1, 33, 1e-5);
    t_rmsnorm(5, 20, 1e-6);
    t_rope(1, 1, 20, 20, 1.0);
    t_rope(7, 3, 20, 10, 1.0); /* partial rotary */
    t_rope(9, 2, 24, 24, 1.3); /* attention factor */
    t_adamw();
    TEST_END();
}

/* test_ops_fd.c: checks every float64 reference backward (cpt_ref_*_bwd, cpt_ref_xent)
 * against central finite differences of its own reference forward, and the reference
 * forwards against hand-computed values. It does not test the fp32 kernels
 * (test_ops_cpu.c compares those with these references).
 *
 * Recipe (methods.md 2.3): float64, odd tiny sizes, loss = sum(R (.) output) with random
 * R, central differences with h = 1e-6. Metric per tensor:
 *   err = max_i |num_i - ana_i| / max(max_i |num_i|, max_i |ana_i|)  <  FD_TOL
 * i.e. the methods.md relative error, measured against the tensor's largest entry so
 * that entries that are near zero (whose element-wise relative error is meaningless)
 * still count with their absolute error. The finite-difference error with h = 1e-6 in
 * float64 is ~1e-10 of the largest gradient here, so 1e-7 leaves room but still fails on
 * any wrong term (a missing term is O(1) relative; see checker_selftest()). */
#include <math.h>
#include <stdio.h>

#include "cpt/ops.h"
#include "opsutil.h"
#include "testutil.h"

#define FD_H 1e-6
#define FD_TOL 1e-7

typedef double (*loss_fn)(void *ctx);

/* num[i] = d loss / d p[i] by central differences; p lives inside ctx's inputs. The
 * divisor is the step actually taken ((p+h) - (p-h) after rounding), not 2h. */
static void fd_grad(double *num, double *p, size_t n, loss_fn f, void *ctx) {
    for (size_t i = 0; i < n; i++) {
        double s = p[i];
        double up = s + FD_H, dn = s - FD_H;
        p[i] = up;
        double lp = f(ctx);
        p[i] = dn;
        double lm = f(ctx);
        p[i] = s;
        num[i] = (lp - lm) / (up - dn);
    }
}

static double fd_metric(const double *ana, const double *num, size_t n) {
    double md = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(num[i] - ana[i]);
        if (!(d <= md)) md = isnan(d) ? INFINITY : d;
        if (fabs(num[i]) > mx) mx = fabs(num[i]);
        if (fabs(ana[i]) > mx) mx = fabs(ana[i]);
    }
    return md / (mx > 1e-12 ? mx : 1e-12);
}

/* Compares one gradient tensor; also requires it to be non-trivial (a gradient that is
 * zero everywhere would make the comparison vacuous). */
static void fd_check(const char *what, const double *ana, double *p, size_t n, loss_fn f, void *ctx) {
    double *num = calloc(n, sizeof(double));
    if (!num) abort();
    fd_grad(num, p, n, f, ctx);
    double err = fd_metric(ana, num, n), mx = ou_maxabs_d(num, n);
    CHECKF(err < FD_TOL, "%s: FD rel err %.3e (tol %.0e)", what, err, FD_TOL);
    CHECKF(mx > 1e-3, "%s: gradient is ~0 (max %.3e): the check would be vacuous", what, mx);
    fprintf(stderr, "  %-34s n=%-5zu max|g|=%.3f err=%.2e\n", what, n, mx, err);
    free(num);
}

/* The metric must flag a 1e-6 relative error in a single entry and a sign flip. */
static void checker_selftest(void) {
    double ana[5] = {1.0, -0.5, 0.25, 1e-9, 0.0}, num[5];
    memcpy(num, ana, sizeof ana);
    CHECK(fd_metric(ana, num, 5) == 0.0);
    num[2] += 1e-6;
    CHECK(fd_metric(ana, num, 5) >= FD_TOL);
    memcpy(num, ana, sizeof ana);
    num[3] = -num[3] + 2e-7; /* a near-zero entry that is wrong by 2e-7 absolute */
    CHECK(fd_metric(ana, num, 5) >= FD_TOL);
}

static double dot(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* ------------------------------------------------------------------ linear */
typedef struct {
    double *x, *W, *b, *R, *y;
    int N, K, O;
} lin_ctx;
static double lin_loss(void *c_) {
    lin_ctx *c = c_;
    cpt_ref_linear_fwd(c->y, c->x, c->W, c->b, c->N, c->K, c->O);
    return dot(c->R, c->y, (size_t)c->N * c->O);
}
static void test_linear(int N, int K, int O, int with_bias) {
    lin_ctx c = {OU_ALLOC(double, N * K), OU_ALLOC(double, O * K), with_bias ? OU_ALLOC(double, O) : NULL,
                 OU_ALLOC(double, N * O), OU_ALLOC(double, N * O), N, K, O};
    ou_fill_d(c.x, (size_t)N * K, 1);
    ou_fill_d(c.W, (size_t)O * K, 1);
    if (c.b) ou_fill_d(c.b, O, 1);
    ou_fill_d(c.R, (size_t)N * O, 1);
    double *dx = OU_ALLOC(double, N * K), *dW = OU_ALLOC(double, O * K), *db = OU_ALLOC(double, O);
    cpt_ref_linear_bwd(dx, dW, c.b ? db : NULL, c.R, c.x, c.W, N, K, O);
    char name[96];
    snprintf(name, sizeof name, "linear dx N%d K%d O%d%s", N, K, O, with_bias ? " +b" : "");
    fd_check(name, dx, c.x, (size_t)N * K, lin_loss, &c);
    snprintf(name, sizeof name, "linear dW N%d K%d O%d%s", N, K, O, with_bias ? " +b" : "");
    fd_check(name, dW, c.W, (size_t)O * K, lin_loss, &c);
    if (c.b) fd_check("linear db", db, c.b, O, lin_loss, &c);
    free(c.x), free(c.W), free(c.b), free(c.R), free(c.y), free(dx), free(dW), free(db);
}
static void test_linear_hand(void) {
    /* x = [1, 2], W = [[1,0],[0,1],[1,1]], b = [0.5, 0, -1] -> y = [1.5, 2, 2]. */
    double x[2] = {1, 2}, W[6] = {1, 0, 0, 1, 1, 1}, b[3] = {0.5, 0, -1}, y[3];
    cpt_ref_linear_fwd(y, x, W, b, 1, 2, 3);
    CHECK(y[0] == 1.5 && y[1] == 2.0 && y[2] == 2.0);
    cpt_ref_linear_fwd(y, x, W, NULL, 1, 2, 3);
    CHECK(y[0] == 1.0 && y[1] == 2.0 && y[2] == 3.0);
}

/* ------------------------------------------------------------------ rmsnorm */
typedef struct {
    double *x, *w, *R, *y;
    int N, D;
    double eps;
} rms_ctx;
static double rms_loss(void *c_) {
    rms_ctx *c = c_;
    cpt_ref_rmsnorm_fwd(c->y, c->x, c->w, c->N, c->D, c->eps);
    return dot(c->R, c->y, (size_t)c->N * c->D);
}
static void test_rmsnorm(int N, int D, double eps) {
    rms_ctx c = {OU_ALLOC(double, N * D), OU_ALLOC(double, D), OU_ALLOC(double, N * D), OU_ALLOC(double, N * D),
                 N, D, eps};
    ou_fill_d(c.x, (size_t)N * D, 1);
    for (int d = 0; d < D; d++) c.w[d] = 1.0 + 0.5 * ou_unif();
    ou_fill_d(c.R, (size_t)N * D, 1);
    double *dx = OU_ALLOC(double, N * D), *dw = OU_ALLOC(double, D);
    cpt_ref_rmsnorm_bwd(dx, dw, c.R, c.x, c.w, N, D, eps);
    fd_check("rmsnorm dx", dx, c.x, (size_t)N * D, rms_loss, &c);
    fd_check("rmsnorm dw", dw, c.w, D, rms_loss, &c);
    free(c.x), free(c.w), free(c.R), free(c.y), free(dx), free(dw);
}
static void test_rmsnorm_hand(void) {
    /* A constant row x = c: mean(x^2) = c^2, so y_d = w_d * c / sqrt(c^2 + eps). */
    enum { D = 13 };
    double x[2 * D], w[D], y[2 * D], eps = 1e-5;
    for (int d = 0; d < D; d++) x[d] = 3.0, x[D + d] = -0.25, w[d] = 0.5 + d;
    cpt_ref_rmsnorm_fwd(y, x, w, 2, D, eps);
    double e0 = 0, e1 = 0;
    for (int d = 0; d < D; d++) {
        e0 = fmax(e0, fabs(y[d] - w[d] * 3.0 / sqrt(9.0 + eps)));
        e1 = fmax(e1, fabs(y[D + d] - w[d] * -0.25 / sqrt(0.0625 + eps)));
    }
    CHECKF(e0 < 1e-14 && e1 < 1e-14, "rmsnorm constant row: err %.3e %.3e", e0, e1);
}

/* ------------------------------------------------------------------ rope */
typedef struct {
    double *x, *R, *tmp, *inv_freq, af;
    const int32_t *pos;
    int N, nh, hd, rot;
} rope_ctx;
static double rope_loss(void *c_) {
    rope_ctx *c = c_;
    size_t n = (size_t)c->N * c->nh * c->hd;
    memcpy(c->tmp, c->x, sizeof(double) * n);
    cpt_ref_rope_fwd(c->tmp, c->inv_freq, c->af, c->pos, c->N, c->nh, c->hd, c->rot);
    return dot(c->R, c->tmp, n);
}
static void test_rope(int N, int nh, int hd, int rot, double af) {
    size_t n = (size_t)N * nh * hd;
    int32_t *pos = OU_ALLOC(int32_t, N);
    for (int i = 0; i < N; i++) pos[i] = (int32_t)((i * 7 + 3) % 23); /* not sorted, with a gap */
    double *inv_freq = OU_ALLOC(double, rot / 2);
    for (int i = 0; i < rot / 2; i++) inv_freq[i] = 1.0 / pow(10000.0, 2.0 * i / rot);
    rope_ctx c = {OU_ALLOC(double, n), OU_ALLOC(double, n), OU_ALLOC(double, n), inv_freq, af, pos, N, nh, hd, rot};
    ou_fill_d(c.x, n, 1);
    ou_fill_d(c.R, n, 1);

    /* Adjoint: <fwd(x), y> == <x, bwd(y)> (the backward is the transpose). */
    double *fx = OU_ALLOC(double, n), *by = OU_ALLOC(double, n);
    memcpy(fx, c.x, sizeof(double) * n);
    memcpy(by, c.R, sizeof(double) * n);
    cpt_ref_rope_fwd(fx, inv_freq, af, pos, N, nh, hd, rot);
    cpt_ref_rope_bwd(by, inv_freq, af, pos, N, nh, hd, rot);
    double l = dot(fx, c.R, n), r = dot(c.x, by, n);
    CHECKF(fabs(l - r) <= 1e-13 * (fabs(l) + fabs(r) + 1), "rope adjoint: %.17g vs %.17g", l, r);
    /* Norm: rotation times af on the rotated dims, identity on the rest. */
    for (int t = 0; t < N * nh; t++) {
        double n_in_r = 0, n_out_r = 0, pass_err = 0;
        for (int d = 0; d < hd; d++) {
            double a = c.x[(size_t)t * hd + d], b = fx[(size_t)t * hd + d];
            if (d < rot) n_in_r += a * a, n_out_r += b * b;
            else pass_err = fmax(pass_err, fabs(a - b));
        }
        CHECKF(fabs(n_out_r - af * af * n_in_r) < 1e-13 && pass_err == 0.0, "rope norm row %d", t);
    }
    /* FD: loss = <R, fwd(x)>, so d loss/dx = bwd(R). */
    char name[96];
    snprintf(name, sizeof name, "rope dx N%d nh%d hd%d rot%d af%.2f", N, nh, hd, rot, af);
    fd_check(name, by, c.x, n, rope_loss, &c);
    free(c.x), free(c.R), free(c.tmp), free(inv_freq), free(pos), free(fx), free(by);
}
static void test_rope_hand(void) {
    /* pos 0: identity times af. Quarter turn (angle pi/2): (a, b) -> af * (-b, a). */
    double inv_freq[1] = {M_PI / 2}, x[4] = {0.3, -0.7, 0.3, -0.7};
    int32_t pos[2] = {0, 1};
    cpt_ref_rope_fwd(x, inv_freq, 1.5, pos, 2, 1, 2, 2);
    CHECK(fabs(x[0] - 0.45) < 1e-15 && fabs(x[1] + 1.05) < 1e-15);
    CHECKF(fabs(x[2] - 1.05) < 1e-15 && fabs(x[3] - 0.45) < 1e-15, "quarter turn: %g %g", x[2], x[3]);
}

/* ------------------------------------------------------------------ attention */
typedef struct {
    double *q, *k, *v, *R, *out;
    const int32_t *seg;
    int B, T, H, KV, hd;
    double scale;
} attn_ctx;
static double attn_loss(void *c_) {
    attn_ctx *c = c_;
    cpt_ref_attn_fwd(c->out, NULL, c->q, c->k, c->v, c->seg, c->seg, c->B, c->T, c->T, 0, c->H, c->KV, c->hd, c->scale);
    return dot(c->R, c->out, (size_t)c->B * c->T * c->H * c->hd);
}
static void test_attn(int B, int T, int H, int KV, int hd, const int32_t *seg) {
    size_t nq = (size_t)B * T * H * hd, nk = (size_t)B * T * KV * hd;
    attn_ctx c = {OU_ALLOC(double, nq), OU_ALLOC(double, nk), OU_ALLOC(double, nk), OU_ALLOC(double, nq),
                  OU_ALLOC(double, nq), seg, B, T, H, KV, hd, 1.0 / sqrt((double)hd)};
    /* Scores of a few units so softmax is neither uniform nor one-hot. */
    ou_fill_d(c.q, nq, 1.5);
    ou_fill_d(c.k, nk, 1.5);
    ou_fill_d(c.v, nk, 1);
    ou_fill_d(c.R, nq, 1);
    double *dq = OU_ALLOC(double, nq), *dk = OU_ALLOC(double, nk), *dv = OU_ALLOC(double, nk);
    cpt_ref_attn_bwd(dq, dk, dv, c.R, c.q, c.k, c.v, seg, seg, B, T, T, 0, H, KV, hd, c.scale);
    char name[96];
    const char *kind = seg ? "block" : "causal";
    snprintf(name, sizeof name, "attn dq B%d T%d H%d KV%d hd%d %s", B, T, H, KV, hd, kind);
    fd_check(name, dq, c.q, nq, attn_loss, &c);
    snprintf(name, sizeof name, "attn dk B%d T%d H%d KV%d hd%d %s", B, T, H, KV, hd, kind);
    fd_check(name, dk, c.k, nk, attn_loss, &c);
    snprintf(name, sizeof name, "attn dv B%d T%d H%d KV%d hd%d %s", B, T, H, KV, hd, kind);
    fd_check(name, dv, c.v, nk, attn_loss, &c);
    free(c.q), free(c.k), free(c.v), free(c.R), free(c.out), free(dq), free(dk), free(dv);
}
static void test_attn_hand(void) {
    enum { B = 2, T = 5, H = 6, KV = 2, hd = 6 };
    size_t nq = (size_t)B * T * H * hd, nk = (size_t)B * T * KV * hd;
    double *q = OU_ALLOC(double, nq), *k = OU_ALLOC(double, nk), *v = OU_ALLOC(double, nk);
    double *out = OU_ALLOC(double, nq);
    ou_fill_d(q, nq, 2), ou_fill_d(k, nk, 2), ou_fill_d(v, nk, 1);
    const int grp = H / KV;

    /* T = 1: the only visible key is itself, so out = v of the head's kv group. */
    cpt_ref_attn_fwd(out, NULL, q, k, v, NULL, NULL, 1, 1, 1, 0, H, KV, hd, 0.4);
    double e = 0;
    for (int h = 0; h < H; h++)
        for (int d = 0; d < hd; d++) e = fmax(e, fabs(out[h * hd + d] - v[(h / grp) * hd + d]));
    CHECKF(e < 1e-15, "attn T=1 must return v: err %.3e", e);

    /* Every token its own document: out = v everywhere. */
    int32_t seg_own[B * T];
    for (int i = 0; i < B * T; i++) seg_own[i] = i;
    cpt_ref_attn_fwd(out, NULL, q, k, v, seg_own, seg_own, B, T, T, 0, H, KV, hd, 0.4);
    e = 0;
    for (int bt = 0; bt < B * T; bt++)
        for (int h = 0; h < H; h++)
            for (int d = 0; d < hd; d++)
                e = fmax(e, fabs(out[((size_t)bt * H + h) * hd + d] - v[((size_t)bt * KV + h / grp) * hd + d]));
    CHECKF(e < 1e-15, "attn one-token documents must return v: err %.3e", e);

    /* scale = 0: uniform weights, out_i = mean of v_j over the visible j (same document,
     * j <= i). Documents: {0,1}, {2,3,4} in batch 0; {0..4} in batch 1 (ids reused). */
    int32_t seg[B * T] = {7, 7, 9, 9, 9, 7, 7, 7, 7, 7};
    cpt_ref_attn_fwd(out, NULL, q, k, v, seg, seg, B, T, T, 0, H, KV, hd, 0.0);
    e = 0;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < T; i++)
            for (int h = 0; h < H; h++)
                for (int d = 0; d < hd; d++) {
                    double s = 0;
                    int cnt = 0;
                    for (int j = 0; j <= i; j++)
                        if (seg[b * T + j] == seg[b * T + i]) s += v[(((size_t)b * T + j) * KV + h / grp) * hd + d], cnt++;
                    e = fmax(e, fabs(out[(((size_t)b * T + i) * H + h) * hd + d] - s / cnt));
                }
    CHECKF(e < 1e-14, "attn scale=0 must average the visible v: err %.3e", e);
    /* Query offset (decode / chunked queries): rows 2..4 of batch 0 asked as Tq = 3 queries at
     * q_pos0 = 2 over the same 5 keys equal rows 2..4 of the full square call, lse included;
     * and with scale 0 every visible score is 0, so lse of row i is log(i + 1). */
    {
        double out3[3 * H * hd], lse_full[B * H * T], lse3[H * 3];
        cpt_ref_attn_fwd(out, lse_full, q, k, v, NULL, NULL, 1, T, T, 0, H, KV, hd, 0.4);
        cpt_ref_attn_fwd(out3, lse3, q + (size_t)2 * H * hd, k, v, NULL, NULL, 1, 3, T, 2, H, KV, hd, 0.4);
        e = 0;
        for (size_t i = 0; i < (size_t)3 * H * hd; i++) e = fmax(e, fabs(out3[i] - out[(size_t)2 * H * hd + i]));
        for (int h = 0; h < H; h++)
            for (int i = 0; i < 3; i++) e = fmax(e, fabs(lse3[h * 3 + i] - lse_full[h * T + 2 + i]));
        CHECKF(e < 1e-14, "attn with a query offset must equal the square call's rows: err %.3e", e);
        cpt_ref_attn_fwd(out, lse_full, q, k, v, NULL, NULL, 1, T, T, 0, H, KV, hd, 0.0);
        e = 0;
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++) e = fmax(e, fabs(lse_full[h * T + i] - log((double)(i + 1))));
        CHECKF(e < 1e-14, "attn lse at scale 0 must be log(number of visible keys): err %.3e", e);
    }
    free(q), free(k), free(v), free(out);
}

/* ------------------------------------------------------------------ swiglu */
typedef struct {
    double *g, *u, *R, *h;
    size_t n;
} swi_ctx;
static double swi_loss(void *c_) {
    swi_ctx *c = c_;
    cpt_ref_swiglu_fwd(c->h, c->g, c->u, c->n);
    return dot(c->R, c->h, c->n);
}
static void test_swiglu(size_t n) {
    swi_ctx c = {OU_ALLOC(double, n), OU_ALLOC(double, n), OU_ALLOC(double, n), OU_ALLOC(double, n), n};
    ou_fill_d(c.g, n, 4); /* covers the bend of silu and both tails */
    ou_fill_d(c.u, n, 1);
    ou_fill_d(c.R, n, 1);
    double *dg = OU_ALLOC(double, n), *du = OU_ALLOC(double, n);
    cpt_ref_swiglu_bwd(dg, du, c.R, c.g, c.u, n);
    fd_check("swiglu dg", dg, c.g, n, swi_loss, &c);
    fd_check("swiglu du", du, c.u, n, swi_loss, &c);
    free(c.g), free(c.u), free(c.R), free(c.h), free(dg), free(du);
}
static void test_swiglu_hand(void) {
    double g[3] = {0.0, 1.0, -2.0}, u[3] = {5.0, 2.0, 1.0}, h[3];
    cpt_ref_swiglu_fwd(h, g, u, 3);
    /* silu(1) = 1/(1+e^-1) = 0.7310585786300049; silu(-2) = -2/(1+e^2) = -0.2384058440442351 */
    CHECK(h[0] == 0.0);
    CHECKF(fabs(h[1] - 1.4621171572600098) < 1e-15, "%.17g", h[1]);
    CHECKF(fabs(h[2] + 0.2384058440442351) < 1e-15, "%.17g", h[2]);
}

/* ------------------------------------------------------------------ embedding */
typedef struct {
    double *E, *R, *x;
    const int32_t *ids;
    int N, D;
} emb_ctx;
static double emb_loss(void *c_) {
    emb_ctx *c = c_;
    cpt_ref_embed_fwd(c->x, c->E, c->ids, c->N, c->D);
    return dot(c->R, c->x, (size_t)c->N * c->D);
}
static void test_embed(void) {
    enum { N = 7, D = 13, V = 11 };
    static const int32_t ids[N] = {3, 1, 3, 10, 0, 3, 1}; /* 3 three times, 1 twice, 2 unused */
    emb_ctx c = {OU_ALLOC(double, V * D), OU_ALLOC(double, N * D), OU_ALLOC(double, N * D), ids, N, D};
    ou_fill_d(c.E, (size_t)V * D, 1);
    ou_fill_d(c.R, (size_t)N * D, 1);
    /* The forward copies rows exactly. */
    cpt_ref_embed_fwd(c.x, c.E, ids, N, D);
    CHECK(memcmp(c.x + 3 * D, c.E + 10 * D, sizeof(double) * D) == 0);
    double *dE = OU_ALLOC(double, V * D);
    memset(dE, 0, sizeof(double) * V * D);
    cpt_ref_embed_bwd(dE, c.R, ids, N, D);
    fd_check("embed dE (repeated ids)", dE, c.E, (size_t)V * D, emb_loss, &c);
    /* Contract: dE +=. Into a buffer holding 0.5: 0.5 + dE; unused row 2 stays 0.5. */
    double *dE2 = OU_ALLOC(double, V * D);
    for (int i = 0; i < V * D; i++) dE2[i] = 0.5;
    cpt_ref_embed_bwd(dE2, c.R, ids, N, D);
    double e = 0, unused = 0;
    for (int i = 0; i < V * D; i++) e = fmax(e, fabs(dE2[i] - (0.5 + dE[i])));
    for (int d = 0; d < D; d++) unused = fmax(unused, fabs(dE2[2 * D + d] - 0.5));
    CHECKF(e < 1e-14 && unused == 0.0, "embed accumulate: err %.3e, unused row %.3e", e, unused);
    free(c.E), free(c.R), free(c.x), free(dE), free(dE2);
}

/* ------------------------------------------------------------------ xent */
typedef struct {
    double *hf, *W;
    const int32_t *tg;
    int N, D, V;
    double gs;
} xent_ctx;
static double xent_loss(void *c_) {
    xent_ctx *c = c_; /* the gradient the kernel returns is that of grad_scale * sum(loss_t) */
    return c->gs * cpt_ref_xent(NULL, NULL, c->hf, c->W, c->tg, c->N, c->D, c->V, c->gs);
}
static void test_xent(void) {
    enum { N = 7, D = 13, V = 11 };
    static const int32_t tg[N] = {3, -1, 10, 0, -100, 5, 5};
    xent_ctx c = {OU_ALLOC(double, N * D), OU_ALLOC(double, V * D), tg, N, D, V, 0.37};
    ou_fill_d(c.hf, (size_t)N * D, 1);
    ou_fill_d(c.W, (size_t)V * D, 1);
    double *dhf = OU_ALLOC(double, N * D), *dW = OU_ALLOC(double, V * D);
    ou_fill_d(dhf, (size_t)N * D, 1); /* contract "=": junk must be overwritten */
    ou_fill_d(dW, (size_t)V * D, 1);
    double loss = cpt_ref_xent(dhf, dW, c.hf, c.W, tg, N, D, V, c.gs);
    CHECK(isfinite(loss) && loss > 0);
    fd_check("xent dhf (ignored rows, gs=0.37)", dhf, c.hf, (size_t)N * D, xent_loss, &c);
    fd_check("xent dW  (ignored rows, gs=0.37)", dW, c.W, (size_t)V * D, xent_loss, &c);
    int zero = 1;
    for (int d = 0; d < D; d++) zero &= dhf[1 * D + d] == 0.0 && dhf[4 * D + d] == 0.0;
    CHECKF(zero, "xent: dhf of ignored rows must be exactly 0");
    free(c.hf), free(c.W), free(dhf), free(dW);
}
static void test_xent_hand(void) {
    enum { N = 5, D = 3, V = 11 };
    int32_t tg[N] = {0, 10, -1, 4, 4};
    double hf[N * D], W[V * D];
    ou_fill_d(hf, N * D, 1);
    memset(W, 0, sizeof W);
    /* All logits 0 (uniform): every valid row costs log V. */
    double loss = cpt_ref_xent(NULL, NULL, hf, W, tg, N, D, V, 1.0);
    CHECKF(fabs(loss - 4 * log(11.0)) < 1e-14, "uniform logits: %.17g vs %.17g", loss, 4 * log(11.0));
    /* Two classes, z = (a, b): loss = log(1 + exp(b - a)) for target 0. */
    double h1[1] = {1.0}, W2[2] = {0.75, -1.25};
    int32_t t1[1] = {0};
    loss = cpt_ref_xent(NULL, NULL, h1, W2, t1, 1, 1, 2, 1.0);
    CHECKF(fabs(loss - log1p(exp(-2.0))) < 1e-15, "two-class: %.17g", loss);
}

int main(void) {
    ou_seed(20240611);
    checker_selftest();
    test_linear_hand();
    test_rmsnorm_hand();
    test_rope_hand();
    test_attn_hand();
    test_swiglu_hand();
    test_xent_hand();

    test_linear(7, 13, 5, 1);
    test_linear(5, 6, 11, 0);
    test_rmsnorm(7, 13, 1e-5);
    test_rmsnorm(3, 6, 1e-2); /* large eps: its term in rstd matters */
    test_rope(5, 3, 6, 6, 1.0);
    test_rope(7, 2, 6, 4, 1.3); /* partial rotary and an attention factor */
    test_attn(2, 5, 6, 2, 6, NULL); /* GQA, causal */
    test_attn(1, 7, 3, 3, 5, NULL); /* MHA, causal */
    static const int32_t seg[2 * 7] = {0, 0, 0, 1, 1, 2, 2, 4, 5, 5, 5, 5, 6, 6};
    test_attn(2, 7, 6, 2, 6, seg); /* GQA, block-causal */
    test_attn(2, 7, 3, 3, 5, seg); /* MHA, block-causal */
    test_swiglu(31);
    test_embed();
    test_xent();
    TEST_END();
}

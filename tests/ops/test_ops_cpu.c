/* test_ops_cpu.c: every shipped fp32 CPU kernel (cpt_<op>_*) against its float64
 * reference (cpt_ref_*, itself checked by test_ops_fd.c) at odd sizes, forward and
 * backward, with NaN sentinels around every output, plus cpt_sumsq against a double
 * loop, and bitwise determinism across thread counts for the kernels that promise it.
 * AdamW has its own file (test_ops_adamw.c). Not a performance test.
 *
 * Tolerances (per tensor: max_i |got_i - ref_i| / max_i |ref_i|):
 *   forward  FWD_TOL = 1e-5   (fp32 accumulation over K <= 260 and expf: ~1e-6 seen)
 *   backward BWD_TOL = 1e-4   (two chained fp32 reductions, e.g. attention dS then dQ)
 *   attention at T = 4096 (hd 64, packed documents): 1e-4 forward, 1e-3 backward, since the
 *   fp32 sums run over up to 4096 keys (measured: out 9.9e-07, dq 4.4e-07, dk 4.6e-07)
 * Outputs documented as "=" are pre-filled with NaN (so a kernel that reads them fails);
 * "+=" outputs are pre-filled with random values and compared with prefill + ref. */
#include <math.h>
#include <omp.h>
#include <stdio.h>

#include "cpt/ops.h"
#include "opsutil.h"
#include "testutil.h"

#define FWD_TOL 1e-5
#define BWD_TOL 1e-4

static void chk(const char *op, const char *what, const float *got, const double *ref, size_t n, double tol) {
    double e = ou_relerr_fd(got, ref, n);
    int fin = ou_all_finite(got, n);
    CHECKF(e < tol && fin, "%s %s: rel err %.3e (tol %.0e)%s", op, what, e, tol, fin ? "" : ", NaN/Inf in output");
    fprintf(stderr, "  %-36s %-10s n=%-7zu err=%.2e\n", op, what, n, e);
}
static void chk_guard(const char *op, const char *what, const float *p, size_t n) {
    CHECKF(ou_guard_ok(p, n), "%s %s: wrote outside its [%zu] buffer (sentinel clobbered)", op, what, n);
}
static double *to_d(const float *f, size_t n) {
    double *d = OU_ALLOC(double, n);
    ou_f2d(d, f, n);
    return d;
}
/* out = a + b (double), for "+=" expectations. */
static double *plus(const float *a, const double *b, size_t n) {
    double *d = OU_ALLOC(double, n);
    for (size_t i = 0; i < n; i++) d[i] = (double)a[i] + b[i];
    return d;
}
static float *grand(size_t n, float scale) {
    float *p = ou_galloc(n);
    ou_fill_f(p, n, scale);
    return p;
}

/* ------------------------------------------------------------------ linear */
static void test_linear(int N, int K, int O) {
    char op[64];
    snprintf(op, sizeof op, "linear N%d K%d O%d", N, K, O);
    size_t nx = (size_t)N * K, nw = (size_t)O * K, ny = (size_t)N * O;
    float *x = grand(nx, 1), *W = grand(nw, 1), *b = grand(O, 1), *dy = grand(ny, 1);
    double *xd = to_d(x, nx), *Wd = to_d(W, nw), *bd = to_d(b, O), *dyd = to_d(dy, ny);
    double *yr = OU_ALLOC(double, ny), *dxr = OU_ALLOC(double, nx), *dWr = OU_ALLOC(double, nw),
           *dbr = OU_ALLOC(double, O);

    float *y = ou_galloc(ny);
    for (int with_b = 0; with_b < 2; with_b++) {
        ou_fill_nan(y, ny);
        cpt_linear_fwd(y, x, W, with_b ? b : NULL, N, K, O);
        cpt_ref_linear_fwd(yr, xd, Wd, with_b ? bd : NULL, N, K, O);
        chk(op, with_b ? "y (+b)" : "y", y, yr, ny, FWD_TOL);
        chk_guard(op, "y", y, ny);
    }
    cpt_ref_linear_bwd(dxr, dWr, dbr, dyd, xd, Wd, N, K, O);

    /* dx "=" (NaN prefill), dW and db "+=" into random buffers. */
    float *dx = ou_galloc(nx), *dW = grand(nw, 1), *db = grand(O, 1);
    ou_fill_nan(dx, nx);
    double *eW = plus(dW, dWr, nw), *eb = plus(db, dbr, O);
    cpt_linear_bwd(dx, dW, db, dy, x, W, N, K, O, 0);
    chk(op, "dx (=)", dx, dxr, nx, BWD_TOL);
    chk(op, "dW (+=)", dW, eW, nw, BWD_TOL);
    chk(op, "db (+=)", db, eb, O, BWD_TOL);
    chk_guard(op, "dx", dx, nx), chk_guard(op, "dW", dW, nw), chk_guard(op, "db", db, O);

    /* accum_dx = 1, frozen weights (dW = db = NULL). */
    ou_fill_f(dx, nx, 1);
    double *ex = plus(dx, dxr, nx);
    cpt_linear_bwd(dx, NULL, NULL, dy, x, W, N, K, O, 1);
    chk(op, "dx (+=)", dx, ex, nx, BWD_TOL);
    chk_guard(op, "dx", dx, nx);

    /* dx = NULL (first layer), dW into zeros, db NULL. */
    memset(dW, 0, sizeof(float) * nw);
    cpt_linear_bwd(NULL, dW, NULL, dy, x, W, N, K, O, 0);
    chk(op, "dW (only)", dW, dWr, nw, BWD_TOL);
    chk_guard(op, "dW", dW, nw);

    ou_gfree(x), ou_gfree(W), ou_gfree(b), ou_gfree(dy), ou_gfree(y), ou_gfree(dx), ou_gfree(dW), ou_gfree(db);
    free(xd), free(Wd), free(bd), free(dyd), free(yr), free(dxr), free(dWr), free(dbr), free(eW), free(eb), free(ex);
}

/* ------------------------------------------------------------------ rmsnorm */
static void test_rmsnorm(int N, int D, float eps) {
    char op[64];
    snprintf(op, sizeof op, "rmsnorm N%d D%d", N, D);
    size_t n = (size_t)N * D;
    float *x = grand(n, 1), *w = grand(D, 1), *dy = grand(n, 1);
    /* Rows of very different scale (1e-3 .. 1e2), so rstd and eps matter. */
    for (int r = 0; r < N; r++)
        for (int d = 0; d < D; d++) x[(size_t)r * D + d] *= powf(10.0f, (float)(r % 6) - 3.0f);
    double *xd = to_d(x, n), *wd = to_d(w, D), *dyd = to_d(dy, n);
    double *yr = OU_ALLOC(double, n), *dxr = OU_ALLOC(double, n), *dwr = OU_ALLOC(double, D),
           *rr = OU_ALLOC(double, N);
    cpt_ref_rmsnorm_fwd(yr, xd, wd, N, D, (double)eps);
    cpt_ref_rmsnorm_bwd(dxr, dwr, dyd, xd, wd, N, D, (double)eps);
    for (int r = 0; r < N; r++) { /* rstd oracle: 1/sqrt(mean(x^2) + eps), float64 */
        double ss = 0;
        for (int d = 0; d < D; d++) ss += xd[(size_t)r * D + d] * xd[(size_t)r * D + d];
        rr[r] = 1.0 / sqrt(ss / D + (double)eps);
    }
    /* Per-row scale differs by 1e5, so compare rstd row by row (relative). */
    float *y = ou_galloc(n), *rstd = ou_galloc(N);
    ou_fill_nan(y, n), ou_fill_nan(rstd, N);
    cpt_rmsnorm_fwd(y, rstd, x, w, N, D, eps);
    double erstd = 0;
    for (int r = 0; r < N; r++) erstd = fmax(erstd, fabs(rstd[r] - rr[r]) / rr[r]);
    CHECKF(erstd < FWD_TOL, "%s rstd: rel err %.3e", op, erstd);
    /* y rows are all O(|w|) since xhat is normalised, so the per-tensor metric is fair. */
    chk(op, "y", y, yr, n, FWD_TOL);
    chk_guard(op, "y", y, n), chk_guard(op, "rstd", rstd, N);

    /* dx scales like rstd per row: compare row-normalised (each row against its own max). */
    float *dx = ou_galloc(n), *dw = grand(D, 1);
    double *ew = plus(dw, dwr, D);
    for (int accum = 0; accum < 2; accum++) {
        double *ex;
        if (accum) {
            ou_fill_f(dx, n, 1);
            for (int r = 0; r < N; r++) /* prefill of the row's own scale */
                for (int d = 0; d < D; d++) dx[(size_t)r * D + d] *= (float)rr[r];
            ex = plus(dx, dxr, n);
            cpt_rmsnorm_bwd(dx, NULL, dy, x, w, rstd, N, D, 1);
        } else {
            ou_fill_nan(dx, n);
            ex = OU_ALLOC(double, n);
            memcpy(ex, dxr, sizeof(double) * n);
            cpt_rmsnorm_bwd(dx, dw, dy, x, w, rstd, N, D, 0);
            chk(op, "dw (+=)", dw, ew, D, BWD_TOL);
            chk_guard(op, "dw", dw, D);
        }
        double worst = 0;
        for (int r = 0; r < N; r++)
            worst = fmax(worst, ou_relerr_fd(dx + (size_t)r * D, ex + (size_t)r * D, D));
        CHECKF(worst < BWD_TOL && ou_all_finite(dx, n), "%s dx accum=%d: worst row rel err %.3e", op, accum, worst);
        fprintf(stderr, "  %-36s dx acc=%d  n=%-7zu err=%.2e (per row)\n", op, accum, n, worst);
        chk_guard(op, "dx", dx, n);
        free(ex);
    }
    /* dx = NULL: only dw, into zeros. */
    memset(dw, 0, sizeof(float) * D);
    cpt_rmsnorm_bwd(NULL, dw, dy, x, w, rstd, N, D, 0);
    chk(op, "dw (only)", dw, dwr, D, BWD_TOL);
    chk_guard(op, "dw", dw, D);

    ou_gfree(x), ou_gfree(w), ou_gfree(dy), ou_gfree(y), ou_gfree(rstd), ou_gfree(dx), ou_gfree(dw);
    free(xd), free(wd), free(dyd), free(yr), free(dxr), free(dwr), free(rr), free(ew);
}

/* ------------------------------------------------------------------ rope */
static void test_rope_tables(void) {
    /* Oracle: transformers computes angle = pos * inv_freq in fp32, then cos/sin, then
     * multiplies by attention_scaling. Emulate the fp32 angle exactly, take cos in double. */
    enum { NP = 300, ROT = 132 };
    float inv[ROT / 2], *c = ou_galloc(NP * ROT / 2), *s = ou_galloc(NP * ROT / 2);
    for (int i = 0; i < ROT / 2; i++) inv[i] = (float)(1.0 / pow(500000.0, 2.0 * i / ROT));
    double *ec = OU_ALLOC(double, NP * ROT / 2), *es = OU_ALLOC(double, NP * ROT / 2);
    const float af = 1.25f;
    for (int p = 0; p < NP; p++)
        for (int i = 0; i < ROT / 2; i++) {
            float a = (float)p * inv[i];
            ec[p * ROT / 2 + i] = cos((double)a) * af;
            es[p * ROT / 2 + i] = sin((double)a) * af;
        }
    cpt_rope_tables(c, s, inv, af, NP, ROT);
    chk("rope_tables np300 rot132", "cos", c, ec, NP * ROT / 2, 1e-6);
    chk("rope_tables np300 rot132", "sin", s, es, NP * ROT / 2, 1e-6);
    chk_guard("rope_tables", "cos", c, NP * ROT / 2), chk_guard("rope_tables", "sin", s, NP * ROT / 2);
    ou_gfree(c), ou_gfree(s), free(ec), free(es);
}

static void test_rope(int N, int nh, int hd, int rot, double af) {
    char op[64];
    snprintf(op, sizeof op, "rope N%d nh%d hd%d rot%d", N, nh, hd, rot);
    enum { NP = 509 };
    int half = rot / 2;
    size_t n = (size_t)N * nh * hd;
    double *inv = OU_ALLOC(double, half);
    for (int i = 0; i < half; i++) inv[i] = 1.0 / pow(10000.0, 2.0 * i / rot);
    /* Tables from float64 angles, so this compares the rotation kernel, not fp32 angles
     * (test_rope_tables covers those). */
    float *ct = OU_ALLOC(float, NP * half), *st = OU_ALLOC(float, NP * half);
    for (int p = 0; p < NP; p++)
        for (int i = 0; i < half; i++)
            ct[p * half + i] = (float)(af * cos(p * inv[i])), st[p * half + i] = (float)(af * sin(p * inv[i]));
    int32_t *pos = OU_ALLOC(int32_t, N);
    for (int r = 0; r < N; r++) pos[r] = (int32_t)(ou_next() % NP);
    float *x = grand(n, 1), *x0 = OU_ALLOC(float, n);
    memcpy(x0, x, sizeof(float) * n);
    double *xr = to_d(x, n);

    cpt_rope_fwd(x, ct, st, pos, N, nh, hd, rot);
    cpt_ref_rope_fwd(xr, inv, af, pos, N, nh, hd, rot);
    chk(op, "fwd", x, xr, n, FWD_TOL);
    chk_guard(op, "x", x, n);
    int pass = 1; /* dims >= rot are not rotated: bitwise unchanged */
    for (size_t t = 0; t < (size_t)N * nh; t++)
        for (int d = rot; d < hd; d++) pass &= memcmp(&x[t * hd + d], &x0[t * hd + d], sizeof(float)) == 0;
    CHECKF(pass, "%s: dims beyond rot were modified", op);

    float *g = grand(n, 1);
    double *gr = to_d(g, n);
    cpt_rope_bwd(g, ct, st, pos, N, nh, hd, rot);
    cpt_ref_rope_bwd(gr, inv, af, pos, N, nh, hd, rot);
    chk(op, "bwd", g, gr, n, BWD_TOL);
    chk_guard(op, "dx", g, n);

    free(inv), free(ct), free(st), free(pos), free(x0), free(xr), free(gr);
    ou_gfree(x), ou_gfree(g);
}

/* ------------------------------------------------------------------ attention */
static void *attn_ws(int Tq, int Tk, int hd, size_t *bytes) {
    *bytes = cpt_attn_workspace_bytes(Tq, Tk, hd, omp_get_max_threads());
    return OU_ALLOC(char, *bytes);
}
/* Tq queries at positions q_pos0.. against Tk keys (Tq == Tk, q_pos0 = 0 in training). */
/* Where the reference is exactly 0 (T = 1: dq = dk = 0 since dS = P (dP - D) with P = 1),
 * the relative metric is undefined; the tiled kernel forms D = rowsum(dO*O) and dP by
 * different sums, so it gets rounding-level values: there, max |got| < tol (absolute). */
static void chk_a(const char *op, const char *what, const float *got, const double *ref, size_t n, double tol) {
    double mr = 0, mg = 0;
    for (size_t i = 0; i < n; i++) mr = fmax(mr, fabs(ref[i])), mg = fmax(mg, fabs((double)got[i]));
    if (mr > 0) {
        chk(op, what, got, ref, n, tol);
        return;
    }
    CHECKF(mg < tol && ou_all_finite(got, n), "%s %s: reference is 0, got max |x| %.3e", op, what, mg);
    fprintf(stderr, "  %-36s %-10s n=%-7zu abs=%.2e (reference all 0)\n", op, what, n, mg);
}
static void test_attn_g(int B, int Tq, int Tk, int q_pos0, int H, int KV, int hd, int use_seg, double tol_f,
                        double tol_b) {
    char op[96];
    snprintf(op, sizeof op, "attn B%d Tq%d Tk%d p%d H%d KV%d hd%d %s", B, Tq, Tk, q_pos0, H, KV, hd,
             use_seg ? "seg" : "causal");
    size_t nq = (size_t)B * Tq * H * hd, nk = (size_t)B * Tk * KV * hd, nl = (size_t)B * H * Tq;
    float scale = 1.0f / sqrtf((float)hd);
    int32_t *segk = NULL, *segq = NULL;
    if (use_seg) { /* documents of random lengths 1..12 (1..300 for long rows), ids restart per row, -1 pad */
        segk = OU_ALLOC(int32_t, B * Tk), segq = OU_ALLOC(int32_t, B * Tq);
        int maxlen = Tk > 1000 ? 300 : 12;
        for (int b = 0; b < B; b++) {
            int id = 0, left = 0;
            for (int t = 0; t < Tk; t++) {
                if (left == 0) left = 1 + (int)(ou_next() % (uint64_t)maxlen), id++;
                segk[b * Tk + t] = t >= Tk - Tk / 10 ? -1 : id, left--;
            }
            for (int i = 0; i < Tq; i++) segq[b * Tq + i] = segk[b * Tk + q_pos0 + i];
        }
    }
    float *q = grand(nq, 2), *k = grand(nk, 2), *v = grand(nk, 1), *dout = grand(nq, 1);
    double *qd = to_d(q, nq), *kd = to_d(k, nk), *vd = to_d(v, nk), *dod = to_d(dout, nq);
    double *outr = OU_ALLOC(double, nq), *lser = OU_ALLOC(double, nl), *dqr = OU_ALLOC(double, nq),
           *dkr = OU_ALLOC(double, nk), *dvr = OU_ALLOC(double, nk);
    cpt_ref_attn_fwd(outr, lser, qd, kd, vd, segq, segk, B, Tq, Tk, q_pos0, H, KV, hd, (double)scale);
    cpt_ref_attn_bwd(dqr, dkr, dvr, dod, qd, kd, vd, segq, segk, B, Tq, Tk, q_pos0, H, KV, hd, (double)scale);
    size_t wsb;
    void *ws = attn_ws(Tq, Tk, hd, &wsb);
    float *out = ou_galloc(nq), *lse = ou_galloc(nl);
    ou_fill_nan(out, nq), ou_fill_nan(lse, nl);
    CHECK(cpt_attn_fwd(out, lse, q, k, v, segq, segk, B, Tq, Tk, q_pos0, H, KV, hd, scale, ws, wsb) == 0);
    chk(op, "out", out, outr, nq, tol_f);
    chk(op, "lse", lse, lser, nl, tol_f);
    chk_guard(op, "out", out, nq), chk_guard(op, "lse", lse, nl);
    float *dq = ou_galloc(nq), *dk = ou_galloc(nk), *dv = ou_galloc(nk);
    ou_fill_nan(dq, nq), ou_fill_nan(dk, nk), ou_fill_nan(dv, nk); /* contract: overwritten */
    CHECK(cpt_attn_bwd(dq, dk, dv, dout, out, lse, q, k, v, segq, segk, B, Tq, Tk, q_pos0, H, KV, hd, scale, ws,
                       wsb) == 0);
    chk_a(op, "dq", dq, dqr, nq, tol_b);
    chk_a(op, "dk", dk, dkr, nk, tol_b);
    chk(op, "dv", dv, dvr, nk, tol_b);
    chk_guard(op, "dq", dq, nq), chk_guard(op, "dk", dk, nk), chk_guard(op, "dv", dv, nk);
    /* a workspace too small is refused, not overrun */
    CHECK(cpt_attn_fwd(out, lse, q, k, v, segq, segk, B, Tq, Tk, q_pos0, H, KV, hd, scale, ws, 16) != 0);
    ou_gfree(q), ou_gfree(k), ou_gfree(v), ou_gfree(dout), ou_gfree(out), ou_gfree(lse);
    ou_gfree(dq), ou_gfree(dk), ou_gfree(dv);
    free(ws), free(segk), free(segq), free(qd), free(kd), free(vd), free(dod), free(outr), free(lser), free(dqr),
        free(dkr), free(dvr);
}
static void test_attn(int B, int T, int H, int KV, int hd, int use_seg) {
    test_attn_g(B, T, T, 0, H, KV, hd, use_seg, FWD_TOL, BWD_TOL);
}

/* ------------------------------------------------------------------ swiglu */
static void test_swiglu(size_t n) {
    char op[64];
    snprintf(op, sizeof op, "swiglu n%zu", n);
    float *g = grand(n, 6), *u = grand(n, 1), *dh = grand(n, 1);
    /* Saturated tails: expf(-g) overflows to inf for g < -88; results must stay finite. */
    static const float ext[] = {-100.f, -88.5f, -30.f, 30.f, 88.5f, 100.f, 0.f};
    for (size_t i = 0; i < sizeof ext / sizeof ext[0] && i < n; i++) g[i * (n / 7)] = ext[i];
    double *gd = to_d(g, n), *ud = to_d(u, n), *dhd = to_d(dh, n);
    double *hr = OU_ALLOC(double, n), *dgr = OU_ALLOC(double, n), *dur = OU_ALLOC(double, n);
    cpt_ref_swiglu_fwd(hr, gd, ud, n);
    cpt_ref_swiglu_bwd(dgr, dur, dhd, gd, ud, n);
    float *h = ou_galloc(n), *dg = ou_galloc(n), *du = ou_galloc(n);
    ou_fill_nan(h, n), ou_fill_nan(dg, n), ou_fill_nan(du, n);
    cpt_swiglu_fwd(h, g, u, n);
    cpt_swiglu_bwd(dg, du, dh, g, u, n);
    chk(op, "h", h, hr, n, FWD_TOL);
    chk(op, "dg", dg, dgr, n, BWD_TOL);
    chk(op, "du", du, dur, n, BWD_TOL);
    chk_guard(op, "h", h, n), chk_guard(op, "dg", dg, n), chk_guard(op, "du", du, n);
    ou_gfree(g), ou_gfree(u), ou_gfree(dh), ou_gfree(h), ou_gfree(dg), ou_gfree(du);
    free(gd), free(ud), free(dhd), free(hr), free(dgr), free(dur);
}

/* ------------------------------------------------------------------ embedding */
static void test_embed(int N, int D, int V) {
    char op[64];
    snprintf(op, sizeof op, "embed N%d D%d V%d", N, D, V);
    int32_t *ids = OU_ALLOC(int32_t, N);
    for (int i = 0; i < N; i++) ids[i] = (int32_t)(ou_next() % (uint64_t)(V < 8 ? V : 8)); /* many repeats */
    ids[N - 1] = V - 1;                                                                   /* last row */
    float *E = grand((size_t)V * D, 1), *x = ou_galloc((size_t)N * D), *dx = grand((size_t)N * D, 1);
    cpt_embed_fwd(x, E, ids, N, D);
    int same = 1;
    for (int i = 0; i < N; i++) same &= memcmp(x + (size_t)i * D, E + (size_t)ids[i] * D, sizeof(float) * D) == 0;
    CHECKF(same, "%s: forward is not an exact row copy", op);
    chk_guard(op, "x", x, (size_t)N * D);

    float *dE = grand((size_t)V * D, 1); /* "+=" into non-zero */
    double *er = to_d(dE, (size_t)V * D), *dxd = to_d(dx, (size_t)N * D);
    cpt_ref_embed_bwd(er, dxd, ids, N, D);
    cpt_embed_bwd(dE, dx, ids, N, D, V);
    chk(op, "dE (+=)", dE, er, (size_t)V * D, BWD_TOL);
    chk_guard(op, "dE", dE, (size_t)V * D);
    ou_gfree(E), ou_gfree(x), ou_gfree(dx), ou_gfree(dE);
    free(ids), free(er), free(dxd);
}

/* ------------------------------------------------------------------ xent */
static void test_xent(int N, int D, int V, int ignore_every) {
    char op[64];
    snprintf(op, sizeof op, "xent N%d D%d V%d", N, D, V);
    size_t nh = (size_t)N * D, nw = (size_t)V * D, nz = (size_t)N * V;
    int32_t *tg = OU_ALLOC(int32_t, N);
    for (int i = 0; i < N; i++) /* ignore_every == 1: every target ignored */
        tg[i] = ignore_every && i % ignore_every == (ignore_every > 1) ? -100 : (int32_t)(ou_next() % (uint64_t)V);
    if (ignore_every != 1) tg[0] = V - 1; /* the last class */
    long long valid = 0;
    for (int i = 0; i < N; i++) valid += tg[i] >= 0;
    float gs = valid ? 1.0f / (float)valid : 1.0f;
    float *hf = grand(nh, 1), *W = grand(nw, 1);
    double *hfd = to_d(hf, nh), *Wd = to_d(W, nw);
    double *dhr = OU_ALLOC(double, nh), *dWr = OU_ALLOC(double, nw), *zr = OU_ALLOC(double, nz),
           *lr = OU_ALLOC(double, N);
    double loss_r = cpt_ref_xent(dhr, dWr, hfd, Wd, tg, N, D, V, (double)gs);
    cpt_ref_linear_fwd(zr, hfd, Wd, NULL, N, D, V);
    for (int i = 0; i < N; i++) /* per-row losses: the reference on that row alone */
        lr[i] = tg[i] < 0 ? 0.0 : cpt_ref_xent(NULL, NULL, hfd + (size_t)i * D, Wd, tg + i, 1, D, V, 1.0);

    float *dhf = ou_galloc(nh), *dW = ou_galloc(nw), *z = ou_galloc(nz), *ls = ou_galloc(N);
    float *W0 = OU_ALLOC(float, nw);
    ou_fill_f(W0, nw, 1);
    double *eW = plus(W0, dWr, nw);
    long long nv;
    double loss;
    char what[48];
    /* The caller's scratch, exactly the size asked for (guard-checked below). */
    size_t xws_bytes = cpt_xent_workspace_bytes(N, V, 4);
    float *xws = ou_galloc((xws_bytes + 3) / 4);
    /* Too small by one byte (and missing): refused with the size, nothing written. */
    ou_fill_nan(dhf, nh), memcpy(dW, W0, sizeof(float) * nw);
    for (int miss = 0; miss < 2; miss++) {
        nv = 7;
        loss = cpt_xent_fwd_bwd(dhf, dW, NULL, NULL, hf, W, tg, N, D, V, gs, &nv, miss ? NULL : xws,
                                miss ? 0 : xws_bytes - 1);
        CHECKF(isnan(loss) && nv == -(long long)xws_bytes, "%s: short workspace must be refused (loss %g, n_valid %lld, need %zu)",
               op, loss, nv, xws_bytes);
        CHECKF(memcmp(dW, W0, sizeof(float) * nw) == 0, "%s: refused call touched dW", op);
    }
    /* Variant bits: 1 = logits_out, 2 = losses_out, 4 = dhf, 8 = dW. */
    for (int var = 0; var < 16; var++) {
        int has_z = var & 1, has_l = var & 2, has_dh = var & 4, has_dw = var & 8;
        ou_fill_nan(z, nz), ou_fill_nan(ls, N), ou_fill_nan(dhf, nh);
        memcpy(dW, W0, sizeof(float) * nw);
        nv = -7;
        loss = cpt_xent_fwd_bwd(has_dh ? dhf : NULL, has_dw ? dW : NULL, has_z ? z : NULL, has_l ? ls : NULL, hf, W,
                                tg, N, D, V, gs, &nv, xws, xws_bytes);
        snprintf(what, sizeof what, "var z%d l%d dh%d dW%d", !!has_z, !!has_l, !!has_dh, !!has_dw);
        CHECKF(nv == valid, "%s %s: n_valid %lld, expected %lld", op, what, nv, valid);
        double le = fabs(loss - loss_r) / fmax(fabs(loss_r), 1e-30);
        CHECKF(valid ? le < FWD_TOL : loss == 0.0, "%s %s: loss %.9g vs ref %.9g", op, what, loss, loss_r);
        if (has_z) chk(op, "logits", z, zr, nz, FWD_TOL);
        if (has_l) chk(op, "losses", ls, lr, N, FWD_TOL);
        if (has_dh) chk(op, "dhf (=)", dhf, dhr, nh, BWD_TOL);
        if (has_dw) {
            chk(op, "dW (+=)", dW, eW, nw, BWD_TOL);
        } else {
            CHECKF(memcmp(dW, W0, sizeof(float) * nw) == 0, "%s %s: dW buffer touched", op, what);
        }
        chk_guard(op, "logits", z, nz), chk_guard(op, "losses", ls, N);
        chk_guard(op, "dhf", dhf, nh), chk_guard(op, "dW", dW, nw);
        chk_guard(op, "xent workspace", xws, (xws_bytes + 3) / 4);
    }
    ou_gfree(xws);
    /* Ignored rows: dhf exactly 0 and per-row loss exactly 0. */
    int zero = 1;
    for (int i = 0; i < N; i++)
        if (tg[i] < 0) {
            zero &= ls[i] == 0.0f;
            for (int d = 0; d < D; d++) zero &= dhf[(size_t)i * D + d] == 0.0f;
        }
    CHECKF(zero, "%s: ignored rows must have zero loss and zero dhf", op);
    ou_gfree(hf), ou_gfree(W), ou_gfree(dhf), ou_gfree(dW), ou_gfree(z), ou_gfree(ls);
    free(tg), free(hfd), free(Wd), free(dhr), free(dWr), free(zr), free(lr), free(W0), free(eW);
}

/* ------------------------------------------------------------------ helpers */
static void test_vec_helpers(void) {
    static const size_t sizes[] = {0, 1, 4097, (size_t)256 * 4096 + 4099}; /* last: >256 blocks */
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t n = sizes[si];
        float *x = grand(n, 3);
        double want = 0;
        for (size_t i = 0; i < n; i++) want += (double)x[i] * x[i];
        double got = cpt_sumsq(x, n);
        CHECKF(n ? fabs(got - want) <= 1e-12 * want : got == 0.0, "sumsq n=%zu: %.17g vs %.17g", n, got, want);
        ou_gfree(x);
    }
    /* scale and add: fp32 ops are correctly rounded, and rounding the exact double result
     * to fp32 gives the same float, so these must match bitwise. */
    size_t n = 4099;
    float *x = grand(n, 10), *y = grand(n, 10), *x0 = OU_ALLOC(float, n), *y0 = OU_ALLOC(float, n);
    memcpy(x0, x, sizeof(float) * n), memcpy(y0, y, sizeof(float) * n);
    cpt_scale(x, n, 0.3f);
    cpt_add_inplace(y, x0, n);
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        ok &= x[i] == (float)((double)x0[i] * (double)0.3f);
        ok &= y[i] == (float)((double)y0[i] + (double)x0[i]);
    }
    CHECKF(ok, "cpt_scale / cpt_add_inplace differ from correctly rounded results");
    chk_guard("scale", "x", x, n), chk_guard("add_inplace", "y", y, n);
    ou_gfree(x), ou_gfree(y), free(x0), free(y0);
}

/* ------------------------------------------------------------------ determinism */
/* Runs fn(out) under 1, 2 and 3 threads, twice each, and requires every result to be
 * bitwise identical to the first (the kernels below promise thread-count independence). */
typedef void (*det_fn)(float *out, void *ctx);
static void det_check(const char *what, det_fn fn, void *ctx, size_t n) {
    float *first = OU_ALLOC(float, n), *cur = OU_ALLOC(float, n);
    int ok = 1, saved = omp_get_max_threads();
    for (int run = 0; run < 6; run++) {
        omp_set_num_threads(1 + run / 2);
        fn(run ? cur : first, ctx);
        if (run) ok &= memcmp(first, cur, sizeof(float) * n) == 0;
    }
    omp_set_num_threads(saved);
    CHECKF(ok, "%s: results differ between runs / thread counts (1, 2, 3)", what);
    fprintf(stderr, "  determinism %-24s %s\n", what, ok ? "bitwise identical" : "DIFFERS");
    free(first), free(cur);
}

typedef struct {
    float *x, *w, *dy, *rstd, *W;
    int32_t *ids, *seg;
    int N, D, O, V;
} det_ctx;
static void det_rms_dw(float *out, void *c_) {
    det_ctx *c = c_;
    memset(out, 0, sizeof(float) * c->D);
    cpt_rmsnorm_bwd(NULL, out, c->dy, c->x, c->w, c->rstd, c->N, c->D, 0);
}
static void det_lin_db(float *out, void *c_) {
    det_ctx *c = c_;
    memset(out, 0, sizeof(float) * c->O);
    cpt_linear_bwd(NULL, NULL, out, c->dy, c->x, c->W, c->N, c->D, c->O, 0);
}
static void det_embed(float *out, void *c_) {
    det_ctx *c = c_;
    memset(out, 0, sizeof(float) * (size_t)c->V * c->D);
    cpt_embed_bwd(out, c->dy, c->ids, c->N, c->D, c->V);
}
static void det_sumsq(float *out, void *c_) {
    det_ctx *c = c_;
    double s = cpt_sumsq(c->dy, (size_t)c->N * c->D);
    memcpy(out, &s, sizeof s);
}
enum { AB = 2, AT = 137, AH = 9, AKV = 3, AHD = 7 }; /* 3 tiles of 64 */
static void det_attn(float *out, void *c_) {
    det_ctx *c = c_;
    size_t nq = (size_t)AB * AT * AH * AHD, nk = (size_t)AB * AT * AKV * AHD, wsb;
    float *lse = OU_ALLOC(float, (size_t)AB * AH * AT);
    void *ws = attn_ws(AT, AT, AHD, &wsb);
    const float *q = c->x, *k = c->x + nq, *v = c->x + nq + nk, *dout = c->dy;
    float sc = 1.0f / sqrtf((float)AHD);
    cpt_attn_fwd(out, lse, q, k, v, c->seg, c->seg, AB, AT, AT, 0, AH, AKV, AHD, sc, ws, wsb); /* out[0:nq] */
    cpt_attn_bwd(out + nq, out + 2 * nq, out + 2 * nq + nk, dout, out, lse, q, k, v, c->seg, c->seg, AB, AT, AT, 0,
                 AH, AKV, AHD, sc, ws, wsb);
    free(lse), free(ws);
}
static void test_determinism(void) {
    enum { N = 37, D = 260, O = 133, V = 29 };
    det_ctx c = {0};
    c.N = N, c.D = D, c.O = O, c.V = V;
    size_t big = (size_t)256 * 4096 + 4099;
    c.x = OU_ALLOC(float, big), c.dy = OU_ALLOC(float, big), c.w = OU_ALLOC(float, D),
    c.rstd = OU_ALLOC(float, N), c.W = OU_ALLOC(float, (size_t)O * D), c.ids = OU_ALLOC(int32_t, N),
    c.seg = OU_ALLOC(int32_t, AB * AT);
    ou_fill_f(c.x, big, 1), ou_fill_f(c.dy, big, 1), ou_fill_f(c.w, D, 1), ou_fill_f(c.W, (size_t)O * D, 1);
    float *y = OU_ALLOC(float, (size_t)N * D);
    cpt_rmsnorm_fwd(y, c.rstd, c.x, c.w, N, D, 1e-5f);
    for (int i = 0; i < N; i++) c.ids[i] = (int32_t)(ou_next() % 5); /* heavy repeats */
    for (int i = 0; i < AB * AT; i++) c.seg[i] = i / 10;
    det_check("rmsnorm dw", det_rms_dw, &c, D);
    det_check("linear db", det_lin_db, &c, O);
    det_check("embed bwd", det_embed, &c, (size_t)V * D);
    c.N = 1, c.D = (int)big; /* sumsq over all of dy: > 256 blocks of 4096 */
    det_check("sumsq", det_sumsq, &c, 2);
    det_check("attention fwd+bwd (seg)", det_attn, &c,
              (size_t)2 * AB * AT * AH * AHD + (size_t)2 * AB * AT * AKV * AHD);
    free(c.x), free(c.dy), free(c.w), free(c.rstd), free(c.W), free(c.ids), free(c.seg), free(y);
}

int main(void) {
    ou_seed(0xC0FFEE);
    fprintf(stderr, "tolerances: forward %.0e, backward %.0e (max abs diff / max abs ref)\n", FWD_TOL, BWD_TOL);
    test_linear(1, 33, 7);     /* N = 1 */
    test_linear(33, 132, 260); /* ggml-style odd sizes */
    test_linear(37, 260, 33);
    test_linear(132, 7, 131); /* O not a multiple of 16 for the db column blocks */

    test_rmsnorm(1, 33, 1e-5f);
    test_rmsnorm(37, 132, 1e-6f);
    test_rmsnorm(33, 260, 1e-5f);
    test_rmsnorm(7, 4099, 1e-5f);

    test_rope_tables();
    test_rope(1, 1, 6, 4, 1.0);    /* T = 1, partial rotary */
    test_rope(37, 9, 7, 6, 1.0);   /* odd head dim: last dim passes through */
    test_rope(33, 3, 132, 132, 1.3); /* attention factor folded into the tables */
    test_rope(37, 4, 64, 32, 0.9);

    test_attn(3, 1, 9, 3, 7, 0); /* T = 1 */
    test_attn(2, 37, 9, 3, 7, 0);
    test_attn(2, 37, 9, 3, 7, 1);
    test_attn(1, 33, 4, 4, 16, 0); /* MHA */
    test_attn(2, 132, 6, 2, 33, 1);
    test_attn(1, 200, 4, 2, 80, 0);  /* several tiles, ragged last tile */
    test_attn(2, 131, 6, 3, 96, 1);
    test_attn(1, 129, 2, 1, 120, 1);
    test_attn(1, 70, 3, 3, 7, 1);
    test_attn_g(1, 1, 150, 149, 9, 3, 64, 0, FWD_TOL, BWD_TOL); /* decode: one row at p = 149 */
    test_attn_g(2, 50, 130, 80, 4, 2, 16, 1, FWD_TOL, BWD_TOL); /* chunk of queries after a prefix */
    /* T = 4096, hd 64: fp32 online softmax over 4096 keys; tolerances 1e-4 fwd, 1e-3 bwd */
    test_attn_g(1, 4096, 4096, 0, 2, 1, 64, 1, 1e-4, 1e-3);

    test_swiglu(7);
    test_swiglu(4099);
    test_swiglu(33 * 260);

    test_embed(1, 33, 11);
    test_embed(37, 132, 260);
    test_embed(133, 33, 7);

    test_xent(1, 7, 11, 0);         /* N = 1 */
    test_xent(37, 33, 260, 3);      /* every third target ignored */
    test_xent(7, 13, 11, 1);        /* every target ignored */
    test_xent(131, 7, 32771, 5);    /* V > 32k: two row chunks (127 + 4) */

    test_vec_helpers();
    test_determinism();
    TEST_END();
}

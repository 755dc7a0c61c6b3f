/* test_backend_ops.c: every entry of every backend in cpt_backend_list() against the
 * float64 reference kernels (cpt_ref_*), in the spirit of ggml's test-backend-ops: odd
 * shapes (N = 1, T = 1, head_dim 20/24/80, GQA and MHA, causal, block-causal and decoding
 * masks, odd vocabularies, partial rotary, repeated token ids), inputs and outputs in the
 * backend's own memory (be->alloc, copy_to_device / copy_to_host, sync), NaN sentinels
 * around every output, "=" outputs pre-filled with NaN and "+=" outputs with random values.
 * Every entry of the table must be marked as tested (a new entry without a test fails),
 * and a deliberately broken copy of the CPU table per entry must be caught (the mutants at
 * the end), so the comparison can fail. Not a performance test.
 *
 * Tolerances (per tensor: max_i |got_i - ref_i| / max_i |ref_i|; absolute where the
 * reference is all zeros), two columns:
 *   fp32 backends (cpu): forward 1e-5, backward 1e-4 (fp32 sums over <= 260 terms, expf),
 *     AdamW 1e-6 (one fp32 update of O(1) values), sumsq / reg_quad value 1e-12 (float64
 *     block sums in another order), scale / add / sq_accum 2e-7 (one or two fp32 roundings);
 *   float64-inside backends (ref): 1e-6 everywhere but the sums (1e-12): each output is the
 *     reference rounded once to fp32 (6e-8), except rmsnorm_bwd, which gets the fp32 rstd
 *     the forward saved (another 6e-8 per factor), and xent, whose losses are summed. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cpt/backend.h"
#include "cpt/safetensors.h"
#include "ops/opsutil.h"
#include "testutil.h"

typedef struct { double fwd, bwd, adamw, sum, elem; } tols;
static const tols TOL_FP32 = {1e-5, 1e-4, 1e-6, 1e-12, 2e-7};
static const tols TOL_F64 = {1e-6, 1e-6, 1e-6, 1e-12, 2e-7};

static const cpt_backend *BE; /* backend under test */
static tols TOL;
static int g_bad;    /* mismatches in this backend's run */
static int g_quiet;  /* mutant runs: count, do not print */
static unsigned char g_covered[64];

#define COVER(entry) (g_covered[(offsetof(cpt_backend, entry) - offsetof(cpt_backend, alloc)) / sizeof(void (*)(void))] = 1)

static void bad(const char *a, const char *b, double e, double tol) {
    g_bad++;
    if (!g_quiet) fprintf(stderr, "MISMATCH [%s] %s %s: err %.3e (tol %.0e)\n", BE->name, a, b, e, tol);
}
/* A reference that is exactly zero (T = 1 attention: one key, so dq = dk = 0) is compared
 * absolutely (the inputs are O(1)): fp32 rounding noise of 1e-8 passes, a wrong O(1) fails. */
static void cmp(const char *op, const char *what, const float *got, const double *ref, size_t n, double tol) {
    double e = ou_maxabs_d(ref, n) > 0 ? ou_relerr_fd(got, ref, n) : ou_relerr_fd(got, ref, n) * 1e-300;
    if (!(e <= tol) || !ou_all_finite(got, n)) bad(op, what, e, tol);
    else if (!g_quiet) fprintf(stderr, "  [%s] %-34s %-10s n=%-6zu err=%.2e\n", BE->name, op, what, n, e);
}
/* Row by row (rows of very different scale, as rmsnorm's dx, where one row's error would
 * vanish next to another row's magnitude): the worst row's relative error. */
static void cmp_rows(const char *op, const char *what, const float *got, const double *ref, int N, int D, double tol) {
    double worst = 0;
    for (int r = 0; r < N; r++) {
        double e = ou_relerr_fd(got + (size_t)r * D, ref + (size_t)r * D, (size_t)D);
        if (!(e <= worst)) worst = e;
    }
    if (!(worst <= tol) || !ou_all_finite(got, (size_t)N * D)) bad(op, what, worst, tol);
    else if (!g_quiet) fprintf(stderr, "  [%s] %-34s %-10s rows=%-3d  err=%.2e\n", BE->name, op, what, N, worst);
}
static void cmp_scalar(const char *op, const char *what, double got, double ref, double tol) {
    double e = fabs(got - ref) / (fabs(ref) > 1e-300 ? fabs(ref) : 1e-300);
    if (!(e <= tol)) bad(op, what, e, tol);
    else if (!g_quiet) fprintf(stderr, "  [%s] %-34s %-10s        err=%.2e\n", BE->name, op, what, e);
}

/* ---- backend memory with sentinels: [G sentinels][n payload][G sentinels] ---- */
static float *dput(const float *host, size_t n) { /* host == NULL: NaN payload ("=" outputs) */
    float *img = ou_galloc(n);
    if (host) memcpy(img, host, sizeof(float) * n);
    else ou_fill_nan(img, n);
    float *d = BE->alloc(sizeof(float) * (n + 2 * OU_GUARD));
    if (!d) abort();
    BE->copy_to_device(d, img - OU_GUARD, sizeof(float) * (n + 2 * OU_GUARD));
    BE->sync();
    ou_gfree(img);
    return d + OU_GUARD;
}
/* Copy the payload back into host[n]; a clobbered sentinel is a mismatch. */
static void dget(float *host, const float *d, size_t n, const char *op, const char *what) {
    float *img = ou_galloc(n);
    BE->sync();
    BE->copy_to_host(img - OU_GUARD, d - OU_GUARD, sizeof(float) * (n + 2 * OU_GUARD));
    BE->sync();
    if (!ou_guard_ok(img, n)) bad(op, what, INFINITY, 0);
    memcpy(host, img, sizeof(float) * n);
    ou_gfree(img);
}
static void dfree(float *d) {
    if (d) BE->free(d - OU_GUARD);
}
static int32_t *iput(const int32_t *h, size_t n) {
    int32_t *d = BE->alloc(sizeof(int32_t) * (n ? n : 1));
    if (!d) abort();
    BE->copy_to_device(d, h, sizeof(int32_t) * n);
    return d;
}
static float *hrand(size_t n, double scale) {
    float *p = OU_ALLOC(float, n);
    ou_fill_f(p, n, (float)scale);
    return p;
}
static double *hd(const float *f, size_t n) {
    double *d = OU_ALLOC(double, n);
    ou_f2d(d, f, n);
    return d;
}
static double *plus(const float *a, const double *b, size_t n) {
    double *d = OU_ALLOC(double, n);
    for (size_t i = 0; i < n; i++) d[i] = (double)a[i] + b[i];
    return d;
}

/* ------------------------------------------------------------------ linear */
static void t_linear(int N, int K, int O) {
    char op[64];
    snprintf(op, sizeof op, "linear N%d K%d O%d", N, K, O);
    COVER(linear_fwd), COVER(linear_bwd);
    size_t nx = (size_t)N * K, nw = (size_t)O * K, ny = (size_t)N * O;
    float *x = hrand(nx, 1), *W = hrand(nw, 1), *b = hrand(O, 1), *dy = hrand(ny, 1), *y = OU_ALLOC(float, ny);
    double *xd = hd(x, nx), *Wd = hd(W, nw), *bd = hd(b, O), *dyd = hd(dy, ny);
    double *yr = OU_ALLOC(double, ny), *dxr = OU_ALLOC(double, nx), *dWr = OU_ALLOC(double, nw), *dbr = OU_ALLOC(double, O);
    float *dx_ = dput(x, nx), *dW_ = dput(W, nw), *db_ = dput(b, O), *ddy = dput(dy, ny);
    for (int wb = 0; wb < 2; wb++) {
        float *dyo = dput(NULL, ny);
        BE->linear_fwd(dyo, dx_, dW_, wb ? db_ : NULL, N, K, O);
        dget(y, dyo, ny, op, "y");
        cpt_ref_linear_fwd(yr, xd, Wd, wb ? bd : NULL, N, K, O);
        cmp(op, wb ? "y (+b)" : "y", y, yr, ny, TOL.fwd);
        dfree(dyo);
    }
    cpt_ref_linear_bwd(dxr, dWr, dbr, dyd, xd, Wd, N, K, O);
    float *gx0 = hrand(nx, 1), *gW0 = hrand(nw, 1), *gb0 = hrand(O, 1), *out = OU_ALLOC(float, nx > nw ? nx : nw);
    for (int acc = 0; acc < 2; acc++) {
        float *gx = dput(acc ? gx0 : NULL, nx), *gW = dput(gW0, nw), *gb = dput(gb0, O);
        BE->linear_bwd(gx, gW, gb, ddy, dx_, dW_, N, K, O, acc);
        double *ex = acc ? plus(gx0, dxr, nx) : NULL, *eW = plus(gW0, dWr, nw), *eb = plus(gb0, dbr, O);
        dget(out, gx, nx, op, "dx"), cmp(op, acc ? "dx (+=)" : "dx (=)", out, acc ? ex : dxr, nx, TOL.bwd);
        dget(out, gW, nw, op, "dW"), cmp(op, "dW (+=)", out, eW, nw, TOL.bwd);
        dget(out, gb, O, op, "db"), cmp(op, "db (+=)", out, eb, O, TOL.bwd);
        free(ex), free(eW), free(eb), dfree(gx), dfree(gW), dfree(gb);
    }
    /* frozen weight: no dW, no db */
    float *gx = dput(NULL, nx);
    BE->linear_bwd(gx, NULL, NULL, ddy, dx_, dW_, N, K, O, 0);
    dget(out, gx, nx, op, "dx"), cmp(op, "dx (frozen)", out, dxr, nx, TOL.bwd);
    dfree(gx), dfree(dx_), dfree(dW_), dfree(db_), dfree(ddy);
    free(x), free(W), free(b), free(dy), free(y), free(xd), free(Wd), free(bd), free(dyd), free(yr), free(dxr), free(dWr),
        free(dbr), free(gx0), free(gW0), free(gb0), free(out);
}

/* ------------------------------------------------------------------ bf16 linears */
/* The references are the float64 products of the bf16-rounded operands (x, W, dy rounded
 * to nearest even; db from the fp32 dy): only the fp32 accumulation differs, so the fp32
 * tolerances apply. The backend's own bf16 copy of W comes from its to_bf16 entry, which
 * must round exactly as cpt_f32_to_bf16. A backend without a bf16 kernel on this CPU
 * (supports("linear_bf16") == 0) is skipped by name. */
static double *hd_bf16(const float *f, size_t n) {
    double *d = OU_ALLOC(double, n);
    for (size_t i = 0; i < n; i++) d[i] = cpt_bf16_to_f32(cpt_f32_to_bf16(f[i]));
    return d;
}

static void t_linear_bf16(int N, int K, int O) {
    char op[64];
    snprintf(op, sizeof op, "linear_bf16 N%d K%d O%d", N, K, O);
    COVER(linear_fwd_bf16), COVER(linear_bwd_bf16), COVER(to_bf16);
    if (!BE->supports("linear_bf16")) {
        if (!g_quiet) fprintf(stderr, "  [%s] %s: skipped, no bf16 kernel on this CPU\n", BE->name, op);
        return;
    }
    size_t nx = (size_t)N * K, nw = (size_t)O * K, ny = (size_t)N * O, mx = nx > ny ? nx : ny;
    float *x = hrand(nx, 1), *W = hrand(nw, 1), *b = hrand(O, 1), *dy = hrand(ny, 1), *y = OU_ALLOC(float, ny);
    double *xd = hd_bf16(x, nx), *Wd = hd_bf16(W, nw), *bd = hd(b, O), *dyd = hd_bf16(dy, ny), *dy32 = hd(dy, ny);
    double *yr = OU_ALLOC(double, ny), *dxr = OU_ALLOC(double, nx), *dWr = OU_ALLOC(double, nw), *dbr = OU_ALLOC(double, O);
    double *t1 = OU_ALLOC(double, nx), *t2 = OU_ALLOC(double, nw);
    float *dx_ = dput(x, nx), *dW_ = dput(W, nw), *db_ = dput(b, O), *ddy = dput(dy, ny);
    /* the weight copy, through the backend */
    uint16_t *Wb = BE->alloc(sizeof(uint16_t) * nw), *xs = BE->alloc(sizeof(uint16_t) * mx), *dys = BE->alloc(sizeof(uint16_t) * mx);
    uint16_t *hb = OU_ALLOC(uint16_t, nw);
    BE->to_bf16(Wb, dW_, nw);
    BE->copy_to_host(hb, Wb, sizeof(uint16_t) * nw);
    BE->sync();
    size_t wrong = 0;
    for (size_t i = 0; i < nw; i++) wrong += hb[i] != cpt_f32_to_bf16(W[i]);
    if (wrong) bad(op, "to_bf16 rounding", (double)wrong, 0);
    for (int wb = 0; wb < 2; wb++) {
        float *dyo = dput(NULL, ny);
        BE->linear_fwd_bf16(dyo, dx_, Wb, wb ? db_ : NULL, N, K, O, xs);
        dget(y, dyo, ny, op, "y");
        cpt_ref_linear_fwd(yr, xd, Wd, wb ? bd : NULL, N, K, O);
        cmp(op, wb ? "y (+b)" : "y", y, yr, ny, TOL.fwd);
        dfree(dyo);
    }
    cpt_ref_linear_bwd(dxr, dWr, dbr, dyd, xd, Wd, N, K, O);
    cpt_ref_linear_bwd(t1, t2, dbr, dy32, xd, Wd, N, K, O); /* db: the fp32 dy */
    float *gx0 = hrand(nx, 1), *gW0 = hrand(nw, 1), *gb0 = hrand(O, 1), *out = OU_ALLOC(float, nx > nw ? nx : nw);
    for (int acc = 0; acc < 2; acc++) {
        float *gx = dput(acc ? gx0 : NULL, nx), *gW = dput(gW0, nw), *gb = dput(gb0, O);
        BE->linear_bwd_bf16(gx, gW, gb, ddy, dx_, Wb, N, K, O, acc, xs, dys);
        double *ex = acc ? plus(gx0, dxr, nx) : NULL, *eW = plus(gW0, dWr, nw), *eb = plus(gb0, dbr, O);
        dget(out, gx, nx, op, "dx"), cmp(op, acc ? "dx (+=)" : "dx (=)", out, acc ? ex : dxr, nx, TOL.bwd);
        dget(out, gW, nw, op, "dW"), cmp(op, "dW (+=)", out, eW, nw, TOL.bwd);
        dget(out, gb, O, op, "db"), cmp(op, "db (+=)", out, eb, O, TOL.bwd);
        free(ex), free(eW), free(eb), dfree(gx), dfree(gW), dfree(gb);
    }
    float *gx = dput(NULL, nx); /* frozen weight */
    BE->linear_bwd_bf16(gx, NULL, NULL, ddy, dx_, Wb, N, K, O, 0, xs, dys);
    dget(out, gx, nx, op, "dx"), cmp(op, "dx (frozen)", out, dxr, nx, TOL.bwd);
    dfree(gx), dfree(dx_), dfree(dW_), dfree(db_), dfree(ddy);
    BE->free(Wb), BE->free(xs), BE->free(dys);
    free(hb), free(x), free(W), free(b), free(dy), free(y), free(xd), free(Wd), free(bd), free(dyd), free(dy32), free(yr), free(dxr),
        free(dWr), free(dbr), free(t1), free(t2), free(gx0), free(gW0), free(gb0), free(out);
}

/* ------------------------------------------------------------------ rmsnorm */
static void t_rmsnorm(int N, int D, float eps) {
    char op[64];
    snprintf(op, sizeof op, "rmsnorm N%d D%d", N, D);
    COVER(rmsnorm_fwd), COVER(rmsnorm_bwd);
    size_t n = (size_t)N * D;
    float *x = hrand(n, 1), *w = hrand(D, 1), *dy = hrand(n, 1), *out = OU_ALLOC(float, n), *rs = OU_ALLOC(float, N);
    for (int r = 0; r < N; r++) /* rows of very different scale, so eps matters */
        for (int d = 0; d < D; d++) x[(size_t)r * D + d] *= (float)pow(10.0, (r % 5) - 3);
    double *xd = hd(x, n), *wd = hd(w, D), *dyd = hd(dy, n), *yr = OU_ALLOC(double, n), *rr = OU_ALLOC(double, N);
    double *dxr = OU_ALLOC(double, n), *dwr = OU_ALLOC(double, D);
    cpt_ref_rmsnorm_fwd(yr, xd, wd, N, D, (double)eps);
    for (int r = 0; r < N; r++) {
        double ss = 0;
        for (int d = 0; d < D; d++) ss += xd[(size_t)r * D + d] * xd[(size_t)r * D + d];
        rr[r] = 1.0 / sqrt(ss / D + (double)eps);
    }
    float *dx_ = dput(x, n), *dw_ = dput(w, D), *dy_ = dput(NULL, n), *dr_ = dput(NULL, N);
    BE->rmsnorm_fwd(dy_, dr_, dx_, dw_, N, D, eps);
    dget(out, dy_, n, op, "y"), cmp(op, "y", out, yr, n, TOL.fwd);
    dget(rs, dr_, N, op, "rstd"), cmp(op, "rstd", rs, rr, N, TOL.fwd);
    cpt_ref_rmsnorm_bwd(dxr, dwr, dyd, xd, wd, N, D, (double)eps);
    float *g0 = hrand(n, 1), *gw0 = hrand(D, 1), *ddy = dput(dy, n);
    for (int acc = 0; acc < 2; acc++) {
        float *gx = dput(acc ? g0 : NULL, n), *gw = dput(gw0, D);
        BE->rmsnorm_bwd(gx, gw, ddy, dx_, dw_, dr_, N, D, acc);
        double *ex = acc ? plus(g0, dxr, n) : NULL, *ew = plus(gw0, dwr, D);
        dget(out, gx, n, op, "dx"), cmp_rows(op, acc ? "dx (+=)" : "dx (=)", out, acc ? ex : dxr, N, D, TOL.bwd);
        dget(out, gw, D, op, "dw"), cmp(op, "dw (+=)", out, ew, D, TOL.bwd);
        free(ex), free(ew), dfree(gx), dfree(gw);
    }
    dfree(dx_), dfree(dw_), dfree(dy_), dfree(dr_), dfree(ddy);
    free(x), free(w), free(dy), free(out), free(rs), free(xd), free(wd), free(dyd), free(yr), free(rr), free(dxr),
        free(dwr), free(g0), free(gw0);
}

/* ------------------------------------------------------------------ rope */
static void t_rope(int N, int nh, int hd_, int rot, float af) {
    char op[64];
    snprintf(op, sizeof op, "rope N%d nh%d hd%d rot%d", N, nh, hd_, rot);
    COVER(rope_fwd), COVER(rope_bwd);
    int half = rot / 2, npos = 23;
    float *inv = OU_ALLOC(float, half), *ct = OU_ALLOC(float, (size_t)npos * half), *st = OU_ALLOC(float, (size_t)npos * half);
    for (int i = 0; i < half; i++) inv[i] = (float)pow(10000.0, -2.0 * i / rot);
    cpt_rope_tables(ct, st, inv, af, npos, rot);
    int32_t *pos = OU_ALLOC(int32_t, N);
    for (int i = 0; i < N; i++) pos[i] = (i * 7) % npos; /* not monotonic: packed documents restart */
    size_t n = (size_t)N * nh * hd_, nt = (size_t)npos * half;
    float *x = hrand(n, 1), *out = OU_ALLOC(float, n);
    double *cd = hd(ct, nt), *sd = hd(st, nt);
    int32_t *dpos = iput(pos, N);
    float *dct = dput(ct, nt), *dst = dput(st, nt);
    for (int bwd = 0; bwd < 2; bwd++) {
        double *r = hd(x, n);
        if (bwd) cpt_ref_rope_tab_bwd(r, cd, sd, pos, N, nh, hd_, rot);
        else cpt_ref_rope_tab_fwd(r, cd, sd, pos, N, nh, hd_, rot);
        float *dx = dput(x, n);
        if (bwd) BE->rope_bwd(dx, dct, dst, dpos, N, nh, hd_, rot);
        else BE->rope_fwd(dx, dct, dst, dpos, N, nh, hd_, rot);
        dget(out, dx, n, op, "x"), cmp(op, bwd ? "dx (bwd)" : "x (fwd)", out, r, n, TOL.fwd);
        free(r), dfree(dx);
    }
    BE->free(dpos), dfree(dct), dfree(dst);
    free(inv), free(ct), free(st), free(pos), free(x), free(out), free(cd), free(sd);
}

/* ------------------------------------------------------------------ attention */
/* bf16 = 1: the bf16 entries, against the float64 attention of the bf16-rounded q, k, v and
 * dout; tolerances 4e-3 forward, 1e-2 backward (the kernel also rounds P and dS to bf16:
 * tests/ops/test_attn_bf16.c measures it). Without bf16 dot products the entries are the fp32
 * kernels, which pass the same check. */
static void t_attn_x(int B, int Tq, int Tk, int q0, int H, int KV, int hd_, int seg, int bf16) {
    char op[80];
    snprintf(op, sizeof op, "attn%s B%d Tq%d Tk%d p0 %d H%d KV%d hd%d%s", bf16 ? "_bf16" : "", B, Tq, Tk, q0, H, KV, hd_,
             seg ? " seg" : "");
    if (bf16) COVER(attn_workspace_bytes_bf16), COVER(attn_fwd_bf16), COVER(attn_bwd_bf16);
    else COVER(attn_workspace_bytes), COVER(attn_fwd), COVER(attn_bwd);
    double tf = bf16 ? 4e-3 : TOL.fwd, tb = bf16 ? 1e-2 : TOL.bwd;
    size_t nq = (size_t)B * Tq * H * hd_, nk = (size_t)B * Tk * KV * hd_, nl = (size_t)B * H * Tq;
    float *q = hrand(nq, 1), *k = hrand(nk, 1), *v = hrand(nk, 1), *dout = hrand(nq, 1);
    float *o = OU_ALLOC(float, nq > nk ? nq : nk), *l = OU_ALLOC(float, nl);
    int32_t *sq = OU_ALLOC(int32_t, (size_t)B * Tq), *sk = OU_ALLOC(int32_t, (size_t)B * Tk);
    for (int b = 0; b < B; b++) {
        for (int j = 0; j < Tk; j++) sk[b * Tk + j] = (j + b) / 5; /* documents of 5 tokens */
        for (int i = 0; i < Tq; i++) sq[b * Tq + i] = sk[b * Tk + q0 + i];
    }
    double *qd = bf16 ? hd_bf16(q, nq) : hd(q, nq), *kd = bf16 ? hd_bf16(k, nk) : hd(k, nk), *vd = bf16 ? hd_bf16(v, nk) : hd(v, nk),
           *dod = bf16 ? hd_bf16(dout, nq) : hd(dout, nq);
    double *or_ = OU_ALLOC(double, nq), *lr = OU_ALLOC(double, nl), *dqr = OU_ALLOC(double, nq), *dkr = OU_ALLOC(double, nk),
           *dvr = OU_ALLOC(double, nk);
    const int32_t *hsq = seg ? sq : NULL, *hsk = seg ? sk : NULL;
    cpt_ref_attn_fwd(or_, lr, qd, kd, vd, hsq, hsk, B, Tq, Tk, q0, H, KV, hd_, 1.0 / sqrt(hd_));
    cpt_ref_attn_bwd(dqr, dkr, dvr, dod, qd, kd, vd, hsq, hsk, B, Tq, Tk, q0, H, KV, hd_, 1.0 / sqrt(hd_));
    int32_t *dsq = seg ? iput(sq, (size_t)B * Tq) : NULL, *dsk = seg ? iput(sk, (size_t)B * Tk) : NULL;
    float *dq = dput(q, nq), *dk = dput(k, nk), *dv = dput(v, nk), *ddo = dput(dout, nq);
    float *dO = dput(NULL, nq), *dL = dput(NULL, nl), *gq = dput(NULL, nq), *gk = dput(NULL, nk), *gv = dput(NULL, nk);
    size_t wsb = bf16 ? BE->attn_workspace_bytes_bf16(B, Tq, Tk, H, KV, hd_, 2) : BE->attn_workspace_bytes(Tq, Tk, hd_, 2);
    size_t ws1 = bf16 ? BE->attn_workspace_bytes_bf16(B, Tq, Tk, H, KV, hd_, 1) : BE->attn_workspace_bytes(Tq, Tk, hd_, 1);
    void *ws = BE->alloc(wsb ? wsb : 1);
    float sc = 1.0f / sqrtf((float)hd_);
    __typeof__(BE->attn_fwd) fwd = bf16 ? BE->attn_fwd_bf16 : BE->attn_fwd;
    __typeof__(BE->attn_bwd) bwd = bf16 ? BE->attn_bwd_bf16 : BE->attn_bwd;
    /* A backend that needs scratch refuses to run without it (a smaller one only means
     * fewer threads, and the alignment slack makes "one byte short" vary). */
    if (ws1 > 0 && fwd(dO, dL, dq, dk, dv, dsq, dsk, B, Tq, Tk, q0, H, KV, hd_, sc, NULL, 0) != CPT_EINVAL)
        bad(op, "fwd ran without its workspace", INFINITY, 0);
    int rc = fwd(dO, dL, dq, dk, dv, dsq, dsk, B, Tq, Tk, q0, H, KV, hd_, sc, ws, wsb);
    if (rc) bad(op, "fwd refused", rc, 0);
    dget(o, dO, nq, op, "out"), cmp(op, "out", o, or_, nq, tf);
    dget(l, dL, nl, op, "lse"), cmp(op, "lse", l, lr, nl, tf);
    rc = bwd(gq, gk, gv, ddo, dO, dL, dq, dk, dv, dsq, dsk, B, Tq, Tk, q0, H, KV, hd_, sc, ws, wsb);
    if (rc) bad(op, "bwd refused", rc, 0);
    dget(o, gq, nq, op, "dq"), cmp(op, "dq", o, dqr, nq, tb);
    dget(o, gk, nk, op, "dk"), cmp(op, "dk", o, dkr, nk, tb);
    dget(o, gv, nk, op, "dv"), cmp(op, "dv", o, dvr, nk, tb);
    BE->free(ws);
    if (dsq) BE->free(dsq), BE->free(dsk);
    dfree(dq), dfree(dk), dfree(dv), dfree(ddo), dfree(dO), dfree(dL), dfree(gq), dfree(gk), dfree(gv);
    free(q), free(k), free(v), free(dout), free(o), free(l), free(sq), free(sk), free(qd), free(kd), free(vd), free(dod),
        free(or_), free(lr), free(dqr), free(dkr), free(dvr);
}
static void t_attn(int B, int Tq, int Tk, int q0, int H, int KV, int hd_, int seg) {
    t_attn_x(B, Tq, Tk, q0, H, KV, hd_, seg, 0);
    t_attn_x(B, Tq, Tk, q0, H, KV, hd_, seg, 1);
}

/* Ring attention's contract (methods.md 14.2): keys [0, Tk) cut at h into two blocks, each
 * block's partial forward, the partials merged with attn_merge (into a lse of leading
 * dimension Tq + 3, in both orders), must give the forward over all keys; and attn_bwd of
 * each block from the merged out / lse must give that block's dk, dv and, summed, dq. The
 * queries are Tq rows at q0 (after a prefix), block-causal with documents of 7 tokens, so
 * some rows see no key of block A (lse -inf: the merge's identity case). */
static void t_attn_split(int Tq, int Tk, int h, int H, int KV, int hd_) {
    char op[80];
    int q0 = Tk - Tq;
    snprintf(op, sizeof op, "attn split Tq%d Tk%d at %d H%d KV%d hd%d", Tq, Tk, h, H, KV, hd_);
    COVER(attn_merge);
    size_t nq = (size_t)Tq * H * hd_, nk = (size_t)Tk * KV * hd_, nl = (size_t)H * Tq, ka = (size_t)h * KV * hd_;
    int ld = Tq + 3;
    float *q = hrand(nq, 1), *k = hrand(nk, 1), *v = hrand(nk, 1), *dout = hrand(nq, 1);
    int32_t *sq = OU_ALLOC(int32_t, Tq), *sk = OU_ALLOC(int32_t, Tk);
    for (int j = 0; j < Tk; j++) sk[j] = j / 7;
    for (int i = 0; i < Tq; i++) sq[i] = sk[q0 + i];
    double *qd = hd(q, nq), *kd = hd(k, nk), *vd = hd(v, nk), *dod = hd(dout, nq);
    double *or_ = OU_ALLOC(double, nq), *lr = OU_ALLOC(double, nl), *dqr = OU_ALLOC(double, nq), *dkr = OU_ALLOC(double, nk),
           *dvr = OU_ALLOC(double, nk);
    double sc = 1.0 / sqrt(hd_);
    cpt_ref_attn_fwd(or_, lr, qd, kd, vd, sq, sk, 1, Tq, Tk, q0, H, KV, hd_, sc);
    cpt_ref_attn_bwd(dqr, dkr, dvr, dod, qd, kd, vd, sq, sk, 1, Tq, Tk, q0, H, KV, hd_, sc);
    int32_t *dsq = iput(sq, Tq), *dskA = iput(sk, h), *dskB = iput(sk + h, Tk - h);
    float *dq = dput(q, nq), *dkA = dput(k, ka), *dvA = dput(v, ka), *dkB = dput(k + ka, nk - ka), *dvB = dput(v + ka, nk - ka);
    float *ddo = dput(dout, nq);
    float *oA = dput(NULL, nq), *lA = dput(NULL, nl), *oB = dput(NULL, nq), *lB = dput(NULL, nl);
    size_t wsb = BE->attn_workspace_bytes(Tq, Tk, hd_, 2);
    void *ws = BE->alloc(wsb ? wsb : 1);
    float fs = (float)sc;
    if (BE->attn_fwd(oA, lA, dq, dkA, dvA, dsq, dskA, 1, Tq, h, q0, H, KV, hd_, fs, ws, wsb) ||
        BE->attn_fwd(oB, lB, dq, dkB, dvB, dsq, dskB, 1, Tq, Tk - h, q0 - h, H, KV, hd_, fs, ws, wsb))
        bad(op, "partial fwd refused", INFINITY, 0);
    float *o = OU_ALLOC(float, nq > nk ? nq : nk), *l = OU_ALLOC(float, nl), *hA = OU_ALLOC(float, nl), *hB = OU_ALLOC(float, nl);
    float *hld = OU_ALLOC(float, (size_t)H * ld), *oAh = OU_ALLOC(float, nq), *oBh = OU_ALLOC(float, nq);
    dget(hA, lA, nl, op, "lse A"), dget(hB, lB, nl, op, "lse B"), dget(oAh, oA, nq, op, "out A"), dget(oBh, oB, nq, op, "out B");
    int ninf = 0;
    for (size_t i = 0; i < nl; i++) ninf += hA[i] == -INFINITY;
    if (ninf == 0 || ninf == (int)nl) bad(op, "test setup: some but not all rows must see no key of block A", INFINITY, 0);
    float *mO = NULL, *mL = NULL;
    for (int order = 0; order < 2; order++) {
        /* order 0: B merged into A; order 1: A merged into B. lse in a [H, ld] buffer. */
        const float *first = order ? hB : hA;
        for (size_t i = 0; i < (size_t)H * ld; i++) hld[i] = 123.0f; /* the gap columns must stay */
        for (int hh = 0; hh < H; hh++) memcpy(hld + (size_t)hh * ld, first + (size_t)hh * Tq, sizeof(float) * Tq);
        float *acc = dput(order ? oBh : oAh, nq), *accl = dput(hld, (size_t)H * ld);
        BE->attn_merge(acc, accl, order ? oA : oB, order ? lA : lB, Tq, H, hd_, ld);
        dget(o, acc, nq, op, "merged out"), cmp(op, order ? "merge A->B out" : "merge B->A out", o, or_, nq, TOL.fwd);
        dget(hld, accl, (size_t)H * ld, op, "merged lse");
        for (int hh = 0; hh < H; hh++) {
            memcpy(l + (size_t)hh * Tq, hld + (size_t)hh * ld, sizeof(float) * Tq);
            for (int i = Tq; i < ld; i++)
                if (hld[(size_t)hh * ld + i] != 123.0f) bad(op, "merge wrote past Tq in the lse row", INFINITY, 0);
        }
        cmp(op, order ? "merge A->B lse" : "merge B->A lse", l, lr, nl, TOL.fwd);
        if (order == 0) mO = acc, mL = dput(l, nl), dfree(accl);
        else dfree(acc), dfree(accl);
    }
    /* the backward of each block from the merged out / lse */
    float *gqA = dput(NULL, nq), *gqB = dput(NULL, nq), *gkA = dput(NULL, ka), *gvA = dput(NULL, ka);
    float *gkB = dput(NULL, nk - ka), *gvB = dput(NULL, nk - ka);
    if (BE->attn_bwd(gqA, gkA, gvA, ddo, mO, mL, dq, dkA, dvA, dsq, dskA, 1, Tq, h, q0, H, KV, hd_, fs, ws, wsb) ||
        BE->attn_bwd(gqB, gkB, gvB, ddo, mO, mL, dq, dkB, dvB, dsq, dskB, 1, Tq, Tk - h, q0 - h, H, KV, hd_, fs, ws, wsb))
        bad(op, "partial bwd refused", INFINITY, 0);
    BE->add_inplace(gqA, gqB, nq);
    dget(o, gqA, nq, op, "dq"), cmp(op, "dq (A + B)", o, dqr, nq, TOL.bwd);
    dget(o, gkA, ka, op, "dk A"), dget(o + ka, gkB, nk - ka, op, "dk B"), cmp(op, "dk (A ; B)", o, dkr, nk, TOL.bwd);
    dget(o, gvA, ka, op, "dv A"), dget(o + ka, gvB, nk - ka, op, "dv B"), cmp(op, "dv (A ; B)", o, dvr, nk, TOL.bwd);
    BE->free(ws), BE->free(dsq), BE->free(dskA), BE->free(dskB);
    dfree(dq), dfree(dkA), dfree(dvA), dfree(dkB), dfree(dvB), dfree(ddo), dfree(oA), dfree(lA), dfree(oB), dfree(lB);
    dfree(mO), dfree(mL), dfree(gqA), dfree(gqB), dfree(gkA), dfree(gvA), dfree(gkB), dfree(gvB);
    free(q), free(k), free(v), free(dout), free(sq), free(sk), free(qd), free(kd), free(vd), free(dod), free(or_), free(lr);
    free(dqr), free(dkr), free(dvr), free(o), free(l), free(hA), free(hB), free(hld), free(oAh), free(oBh);
}

/* ------------------------------------------------------------------ swiglu */
static void t_swiglu(size_t n) {
    char op[64];
    snprintf(op, sizeof op, "swiglu n%zu", n);
    COVER(swiglu_fwd), COVER(swiglu_bwd);
    float *g = hrand(n, 4), *u = hrand(n, 2), *dh = hrand(n, 1), *out = OU_ALLOC(float, n);
    double *gd = hd(g, n), *ud = hd(u, n), *dhd = hd(dh, n), *hr = OU_ALLOC(double, n), *dgr = OU_ALLOC(double, n),
           *dur = OU_ALLOC(double, n);
    cpt_ref_swiglu_fwd(hr, gd, ud, n);
    cpt_ref_swiglu_bwd(dgr, dur, dhd, gd, ud, n);
    float *dg_ = dput(g, n), *du_ = dput(u, n), *ddh = dput(dh, n), *h = dput(NULL, n), *gg = dput(NULL, n), *gu = dput(NULL, n);
    BE->swiglu_fwd(h, dg_, du_, n);
    dget(out, h, n, op, "h"), cmp(op, "h", out, hr, n, TOL.fwd);
    BE->swiglu_bwd(gg, gu, ddh, dg_, du_, n);
    dget(out, gg, n, op, "dg"), cmp(op, "dg", out, dgr, n, TOL.bwd);
    dget(out, gu, n, op, "du"), cmp(op, "du", out, dur, n, TOL.bwd);
    dfree(dg_), dfree(du_), dfree(ddh), dfree(h), dfree(gg), dfree(gu);
    free(g), free(u), free(dh), free(out), free(gd), free(ud), free(dhd), free(hr), free(dgr), free(dur);
}

/* ------------------------------------------------------------------ embedding */
static void t_embed(int N, int D, int V) {
    char op[64];
    snprintf(op, sizeof op, "embed N%d D%d V%d", N, D, V);
    COVER(embed_fwd), COVER(embed_bwd);
    size_t ne = (size_t)V * D, nx = (size_t)N * D;
    int32_t *ids = OU_ALLOC(int32_t, N);
    for (int i = 0; i < N; i++) ids[i] = (int32_t)((i * 5 + 3) % V); /* repeats once N > V */
    if (N > 2) ids[N - 1] = ids[0];                                   /* and a repeat in any case */
    float *E = hrand(ne, 1), *dx = hrand(nx, 1), *out = OU_ALLOC(float, ne > nx ? ne : nx);
    double *Ed = hd(E, ne), *dxd = hd(dx, nx), *xr = OU_ALLOC(double, nx), *dEr = hd(E, ne); /* dE starts as E */
    cpt_ref_embed_fwd(xr, Ed, ids, N, D);
    cpt_ref_embed_bwd(dEr, dxd, ids, N, D);
    int32_t *did = iput(ids, N);
    float *dE = dput(E, ne), *x = dput(NULL, nx), *ddx = dput(dx, nx), *gE = dput(E, ne);
    BE->embed_fwd(x, dE, did, N, D);
    dget(out, x, nx, op, "x"), cmp(op, "x", out, xr, nx, TOL.fwd);
    BE->embed_bwd(gE, ddx, did, N, D, V);
    dget(out, gE, ne, op, "dE"), cmp(op, "dE (+=)", out, dEr, ne, TOL.bwd);
    BE->free(did), dfree(dE), dfree(x), dfree(ddx), dfree(gE);
    free(ids), free(E), free(dx), free(out), free(Ed), free(dxd), free(xr), free(dEr);
}

/* ------------------------------------------------------------------ LM head + xent */
/* The LM head + cross-entropy in its three modes against cpt_ref_xent. bf16: the kernel on
 * the bf16 weight copy against the reference on the bf16-rounded hf and W: the loss, logits
 * and per-row losses at the forward tolerance (only fp32 accumulation differs); dhf and dW
 * at 1e-2, because the kernel also rounds dz to bf16 (2^-9 relative per element) and the
 * reference does not. Skipped by name without a bf16 kernel. */
static void t_xent_x(int N, int D, int V, int bf16) {
    char op[64];
    snprintf(op, sizeof op, "%s N%d D%d V%d", bf16 ? "xent_bf16" : "xent", N, D, V);
    if (bf16) {
        COVER(xent_fwd_bwd_bf16), COVER(xent_workspace_bytes_bf16);
        if (!BE->supports("linear_bf16")) {
            if (!g_quiet) fprintf(stderr, "  [%s] %s: skipped, no bf16 kernel on this CPU\n", BE->name, op);
            return;
        }
    } else {
        COVER(xent_fwd_bwd), COVER(xent_workspace_bytes);
    }
    size_t nh = (size_t)N * D, nw = (size_t)V * D, nz = (size_t)N * V;
    int32_t *t = OU_ALLOC(int32_t, N);
    long long nvr = 0;
    for (int i = 0; i < N; i++) t[i] = (i % 4 == 3) ? -1 : (int32_t)((i * 11 + 1) % V), nvr += t[i] >= 0;
    float *hf = hrand(nh, 1), *W = hrand(nw, 1), *gW0 = hrand(nw, 1), *out = OU_ALLOC(float, nz > nw ? nz : nw);
    double *hfd = bf16 ? hd_bf16(hf, nh) : hd(hf, nh), *Wd = bf16 ? hd_bf16(W, nw) : hd(W, nw),
           *dhr = OU_ALLOC(double, nh), *dWr = OU_ALLOC(double, nw), *zr = OU_ALLOC(double, nz), *lr = OU_ALLOC(double, N);
    float gs = nvr ? 1.0f / (float)nvr : 1.0f;
    double Lr = cpt_ref_xent(dhr, dWr, hfd, Wd, t, N, D, V, (double)gs);
    cpt_ref_linear_fwd(zr, hfd, Wd, NULL, N, D, V);
    for (int i = 0; i < N; i++) lr[i] = t[i] >= 0 ? cpt_ref_xent(NULL, NULL, hfd + (size_t)i * D, Wd, t + i, 1, D, V, 1.0) : 0.0;
    double *eW = plus(gW0, dWr, nw);
    double gtol = bf16 ? 1e-2 : TOL.bwd;
    int32_t *dt = iput(t, N);
    float *dhf_ = dput(hf, nh), *dW_ = dput(W, nw);
    uint16_t *Wb = NULL;
    if (bf16) {
        Wb = BE->alloc(sizeof(uint16_t) * nw);
        BE->to_bf16(Wb, dW_, nw);
    }
    size_t wsb = bf16 ? BE->xent_workspace_bytes_bf16(N, D, V, 2) : BE->xent_workspace_bytes(N, V, 2);
    void *ws = BE->alloc(wsb ? wsb : 1);
    /* mode 0: training (dhf, dW); 1: scoring (logits, losses); 2: everything at once */
    for (int mode = 0; mode < 3; mode++) {
        float *gh = mode != 1 ? dput(NULL, nh) : NULL, *gW = mode != 1 ? dput(gW0, nw) : NULL;
        float *z = mode ? dput(NULL, nz) : NULL, *ls = mode ? dput(NULL, N) : NULL;
        long long nv = -7;
        for (int shortws = wsb > 0; shortws >= 0; shortws--) { /* first one byte short: refused */
            size_t b = wsb - (size_t)shortws;
            double L = bf16 ? BE->xent_fwd_bwd_bf16(gh, gW, z, ls, dhf_, Wb, dt, N, D, V, gs, &nv, ws, b)
                            : BE->xent_fwd_bwd(gh, gW, z, ls, dhf_, dW_, dt, N, D, V, gs, &nv, ws, b);
            if (shortws) {
                if (!(isnan(L) && nv < 0)) bad(op, "accepted a workspace 1 byte short", INFINITY, 0);
                continue;
            }
            char w[48];
            snprintf(w, sizeof w, "loss (%s)", mode == 0 ? "train" : mode == 1 ? "score" : "both");
            cmp_scalar(op, w, L, Lr, TOL.fwd);
        }
        if (nv != nvr) bad(op, "n_valid", (double)nv, (double)nvr);
        if (gh) dget(out, gh, nh, op, "dhf"), cmp(op, "dhf (=)", out, dhr, nh, gtol);
        if (gW) dget(out, gW, nw, op, "dW"), cmp(op, "dW (+=)", out, eW, nw, gtol);
        if (z) dget(out, z, nz, op, "logits"), cmp(op, "logits", out, zr, nz, TOL.fwd);
        if (ls) dget(out, ls, N, op, "losses"), cmp(op, "losses", out, lr, N, TOL.fwd);
        dfree(gh), dfree(gW), dfree(z), dfree(ls);
    }
    BE->free(ws), BE->free(dt), dfree(dhf_), dfree(dW_);
    if (Wb) BE->free(Wb);
    free(t), free(hf), free(W), free(gW0), free(out), free(hfd), free(Wd), free(dhr), free(dWr), free(zr), free(lr), free(eW);
}
static void t_xent(int N, int D, int V) { t_xent_x(N, D, V, 0); }
static void t_xent_bf16(int N, int D, int V) { t_xent_x(N, D, V, 1); }

/* ------------------------------------------------------------------ AdamW */
static void t_adamw(size_t n) {
    char op[64];
    snprintf(op, sizeof op, "adamw n%zu", n);
    COVER(adamw_update);
    float *p = hrand(n, 1), *g = hrand(n, 0.1), *m = hrand(n, 0.05), *v = hrand(n, 1), *out = OU_ALLOC(float, n);
    for (size_t i = 0; i < n; i++) v[i] = v[i] * v[i] * 1e-3f; /* a second moment is >= 0 */
    double *pd = hd(p, n), *gd = hd(g, n), *md = hd(m, n), *vd = hd(v, n);
    const float lr = 3e-3f, eps = 1e-8f, wd = 0.1f;
    const double b1 = 0.9, b2 = 0.999, bc1 = 1 - pow(b1, 3), bc2 = 1 - pow(b2, 3);
    cpt_ref_adamw_update(pd, gd, md, vd, n, (double)lr, b1, b2, (double)eps, (double)wd, bc1, bc2);
    float *dp = dput(p, n), *dg = dput(g, n), *dm = dput(m, n), *dv = dput(v, n);
    BE->adamw_update(dp, dg, dm, dv, n, lr, b1, b2, eps, wd, bc1, bc2);
    dget(out, dp, n, op, "p"), cmp(op, "p", out, pd, n, TOL.adamw);
    dget(out, dm, n, op, "m"), cmp(op, "m", out, md, n, TOL.adamw);
    dget(out, dv, n, op, "v"), cmp(op, "v", out, vd, n, TOL.adamw);
    dfree(dp), dfree(dg), dfree(dm), dfree(dv);
    free(p), free(g), free(m), free(v), free(out), free(pd), free(gd), free(md), free(vd);
}

/* ------------------------------------------------------------------ vector helpers, regularizers */
static void t_vec(size_t n) {
    char op[64];
    snprintf(op, sizeof op, "vector n%zu", n);
    COVER(sumsq), COVER(scale), COVER(add_inplace), COVER(reg_quad), COVER(sq_accum);
    float *x = hrand(n, 1), *y = hrand(n, 1), *c = hrand(n, 1), *w = hrand(n, 1), *out = OU_ALLOC(float, n);
    for (size_t i = 0; i < n; i++) w[i] = 1.0f + fabsf(w[i]) * 6; /* Fisher-like weights > 0 */
    double *xd = hd(x, n), *yd = hd(y, n), *cd = hd(c, n), *wd = hd(w, n), *r = OU_ALLOC(double, n);
    float *dx = dput(x, n), *dy = dput(y, n), *dc = dput(c, n), *dw = dput(w, n);
    double s = 0;
    for (size_t i = 0; i < n; i++) s += xd[i] * xd[i];
    cmp_scalar(op, "sumsq", BE->sumsq(dx, n), s, TOL.sum);
    float *t = dput(x, n);
    BE->scale(t, n, 0.37f);
    for (size_t i = 0; i < n; i++) r[i] = xd[i] * (double)0.37f;
    dget(out, t, n, op, "scale"), cmp(op, "scale", out, r, n, TOL.elem);
    BE->add_inplace(dy, dx, n);
    for (size_t i = 0; i < n; i++) r[i] = yd[i] + xd[i];
    dget(out, dy, n, op, "add"), cmp(op, "add_inplace", out, r, n, TOL.elem);
    for (int weighted = 0; weighted < 2; weighted++) {
        float *gr = dput(y, n);
        double *gref = hd(y, n);
        double pr = cpt_ref_quad_penalty(xd, cd, weighted ? wd : NULL, gref, n, 0.7);
        double pg = BE->reg_quad(dx, dc, weighted ? dw : NULL, gr, n, 0.7);
        cmp_scalar(op, weighted ? "reg_quad (F)" : "reg_quad", pg, pr, TOL.sum);
        dget(out, gr, n, op, "reg grad"), cmp(op, "reg_quad grad", out, gref, n, TOL.elem);
        cmp_scalar(op, "reg_quad (no grad)", BE->reg_quad(dx, dc, weighted ? dw : NULL, NULL, n, 2.0),
                   cpt_ref_quad_penalty(xd, cd, weighted ? wd : NULL, NULL, n, 2.0), TOL.sum);
        dfree(gr), free(gref);
    }
    float *acc = dput(w, n);
    double *ar = hd(w, n);
    BE->sq_accum(acc, dx, n);
    cpt_ref_sq_accum(ar, xd, n);
    dget(out, acc, n, op, "sq_accum"), cmp(op, "sq_accum", out, ar, n, TOL.elem);
    dfree(acc), free(ar), dfree(t), dfree(dx), dfree(dy), dfree(dc), dfree(dw);
    free(x), free(y), free(c), free(w), free(out), free(xd), free(yd), free(cd), free(wd), free(r);
}

/* ------------------------------------------------------------------ dropout */
/* Against cpt_ref_dropout (the same mask by construction: the mask is part of the op's
 * definition, cpt/ops.h); out of place and in place; the keep rate within 5 sigma of 1 - p
 * and a mask that moves with the seed (a constant mask would pass the reference check). */
static void t_dropout(size_t n, float p) {
    char op[64];
    snprintf(op, sizeof op, "dropout n%zu p%.2f", n, (double)p);
    COVER(dropout);
    float *x = hrand(n, 1), *out = OU_ALLOC(float, n), *out2 = OU_ALLOC(float, n);
    for (size_t i = 0; i < n; i++) x[i] = x[i] == 0.0f ? 1.0f : x[i];
    double *xd = hd(x, n), *r = OU_ALLOC(double, n);
    float *dx = dput(x, n), *dy = dput(x, n);
    cpt_ref_dropout(r, xd, n, (double)p, 0xD509ull, 0);
    BE->dropout(dy, dx, n, p, 0xD509ull);
    dget(out, dy, n, op, "y"), cmp(op, "dropout", out, r, n, TOL.elem);
    BE->dropout(dx, dx, n, p, 0xD509ull); /* in place */
    dget(out2, dx, n, op, "in place"), cmp(op, "dropout in place", out2, r, n, TOL.elem);
    size_t kept = 0, same = 0;
    for (size_t i = 0; i < n; i++) kept += out[i] != 0.0f;
    float *dz = dput(x, n);
    BE->dropout(dz, dz, n, p, 0xD50Aull);
    dget(out2, dz, n, op, "seed 2");
    for (size_t i = 0; i < n; i++) same += (out[i] != 0.0f) == (out2[i] != 0.0f);
    double q = 1.0 - (double)p, sd = sqrt((double)n * q * (double)p);
    if (fabs((double)kept - (double)n * q) > 5 * sd + 1) bad(op, "keep rate", (double)kept / (double)n, q);
    if (p > 0 && n >= 64 && same == n) bad(op, "the mask does not depend on the seed", 1, 0);
    dfree(dx), dfree(dy), dfree(dz);
    free(x), free(out), free(out2), free(xd), free(r);
}

/* ------------------------------------------------------------------ memory entries */
static void t_memory(void) {
    COVER(alloc), COVER(free), COVER(copy_to_device), COVER(copy_to_host), COVER(copy), COVER(zero), COVER(sync), COVER(supports);
    const size_t n = 4099;
    float *h = hrand(n, 1), *back = OU_ALLOC(float, n);
    float *d = BE->alloc(sizeof(float) * n);
    if (!d) {
        bad("memory", "alloc returned NULL", INFINITY, 0);
        return;
    }
    BE->copy_to_host(back, d, sizeof(float) * n);
    BE->sync();
    int z = 1;
    for (size_t i = 0; i < n; i++) z &= back[i] == 0.0f;
    if (!z) bad("memory", "alloc not zeroed", INFINITY, 0);
    BE->copy_to_device(d, h, sizeof(float) * n);
    BE->copy_to_host(back, d, sizeof(float) * n);
    BE->sync();
    if (memcmp(h, back, sizeof(float) * n)) bad("memory", "copy round trip", INFINITY, 0);
    float *d2 = BE->alloc(sizeof(float) * n);
    if (d2) { /* device -> device, bit for bit, NaN payloads included */
        h[7] = NAN;
        BE->copy_to_device(d, h, sizeof(float) * n);
        BE->copy(d2, d, sizeof(float) * n);
        BE->copy_to_host(back, d2, sizeof(float) * n);
        BE->sync();
        if (memcmp(h, back, sizeof(float) * n)) bad("memory", "device-to-device copy", INFINITY, 0);
        BE->free(d2);
    } else {
        bad("memory", "alloc returned NULL", INFINITY, 0);
    }
    BE->zero(d, sizeof(float) * n);
    BE->copy_to_host(back, d, sizeof(float) * n);
    BE->sync();
    z = 1;
    for (size_t i = 0; i < n; i++) z &= back[i] == 0.0f;
    if (!z) bad("memory", "zero left values", INFINITY, 0);
    BE->free(d);
    /* This test needs every op: a backend that declines one fails here (a real backend
     * that declines a shape gets a test of the refusal instead). */
    static const char *ops[] = {"linear_fwd", "linear_bwd", "rmsnorm_fwd", "rmsnorm_bwd", "rope_fwd", "rope_bwd",
                                "attn_fwd",   "attn_bwd",   "attn_merge",   "swiglu_fwd",  "swiglu_bwd",  "embed_fwd", "embed_bwd",
                                "xent_fwd_bwd", "adamw_update", "sumsq", "scale", "add_inplace", "reg_quad", "sq_accum", "dropout"}; /* linear_bf16 may be declined: the bf16 tests skip by name */
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
        if (!BE->supports(ops[i])) bad("supports", ops[i], INFINITY, 0);
    if (!g_quiet) fprintf(stderr, "  [%s] memory entries and supports: ok\n", BE->name);
    free(h), free(back);
}

/* The whole suite on BE; returns the mismatches. */
static int run_all(const cpt_backend *be, int quiet) {
    BE = be, g_bad = 0, g_quiet = quiet;
    TOL = !strcmp(be->name, "ref") ? TOL_F64 : TOL_FP32;
    ou_seed(0xBAC4E11D);
    t_memory();
    t_linear(1, 33, 17); /* N = 1 */
    t_linear(7, 80, 96);
    t_linear(13, 96, 33);
    t_linear_bf16(1, 33, 17);
    t_linear_bf16(7, 80, 96);
    t_linear_bf16(300, 96, 33); /* past one 256-row tile */
    t_rmsnorm(1, 33, 1e-5f);
    t_rmsnorm(7, 96, 1e-6f);
    t_rmsnorm(5, 80, 1e-5f);
    t_rope(1, 1, 20, 20, 1.0f);  /* T = 1 */
    t_rope(7, 3, 20, 10, 1.0f);  /* partial rotary: the last dims pass through */
    t_rope(9, 2, 24, 24, 1.3f);  /* attention factor in the tables */
    t_attn(1, 1, 1, 0, 2, 1, 20, 0);   /* T = 1, GQA */
    t_attn(2, 7, 7, 0, 4, 2, 20, 0);   /* GQA, causal */
    t_attn(2, 11, 11, 0, 6, 2, 24, 1); /* GQA 3:1, block-causal */
    t_attn(1, 9, 9, 0, 3, 3, 80, 1);   /* MHA, head_dim 80 */
    t_attn(1, 1, 12, 11, 4, 2, 24, 0); /* decoding: one row at position 11 */
    t_attn(2, 4, 13, 9, 4, 1, 20, 1);  /* a chunk of queries after a prefix, block-causal */
    t_attn_split(6, 16, 8, 4, 2, 20);  /* ring attention: two key blocks merged */
    t_attn_split(14, 40, 24, 3, 1, 24);
    t_dropout(1, 0.5f);
    t_dropout(4099, 0.1f);
    t_dropout(20000, 0.5f);
    t_dropout(300, 0.0f);
    t_swiglu(1);
    t_swiglu(257);
    t_swiglu(1031);
    t_embed(1, 33, 37);
    t_embed(11, 20, 7); /* N > V: repeated ids accumulate */
    t_xent(1, 33, 37);
    t_xent(7, 20, 101); /* odd vocabulary */
    t_xent(13, 24, 37);
    t_xent_bf16(1, 33, 37);
    t_xent_bf16(7, 20, 101);
    t_xent_bf16(13, 24, 37);
    t_adamw(1);
    t_adamw(257);
    t_adamw(4099);
    t_vec(1);
    t_vec(4097); /* one reduction block plus one */
    t_vec(70001);
    return g_bad;
}

/* ------------------------------------------------------------------ mutants
 * One broken copy of the CPU table per entry: the wrapper calls the real entry and then
 * gets one element (or the result) slightly wrong, as a real bug would. */
static const cpt_backend *CPU;
static void bump(float *p, size_t n) {
    if (p && n) p[n / 2] += 1e-3f * (fabsf(p[n / 2]) + 1.0f);
}
static void *mu_alloc(size_t b) {
    float *p = CPU->alloc(b);
    if (p && b >= 4 * sizeof(float)) p[3] = 1.0f; /* not zeroed */
    return p;
}
static void mu_c2h(void *d, const void *s, size_t b) { CPU->copy_to_host(d, s, b >= 4 ? b - 4 : b); }
static void mu_c2d(void *d, const void *s, size_t b) { CPU->copy_to_device(d, s, b >= 4 ? b - 4 : b); }
static void mu_copy(void *d, const void *s, size_t b) { CPU->copy(d, s, b >= 4 ? b - 4 : b); }
static void mu_zero(void *p, size_t b) { CPU->zero(p, b >= 4 ? b - 4 : b); }
static int mu_supports(const char *op) { return strcmp(op, "rope_bwd") != 0; }
static void mu_lin_f(float *y, const float *x, const float *W, const float *b, int N, int K, int O) {
    CPU->linear_fwd(y, x, W, b, N, K, O), bump(y, (size_t)N * O);
}
static void mu_lin_b(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W, int N, int K, int O,
                     int a) {
    CPU->linear_bwd(dx, dW, db, dy, x, W, N, K, O, a), bump(dW, (size_t)O * K);
}
static void mu_rms_f(float *y, float *r, const float *x, const float *w, int N, int D, float e) {
    CPU->rmsnorm_fwd(y, r, x, w, N, D, e * 1e3f);
}
static void mu_rms_b(float *dx, float *dw, const float *dy, const float *x, const float *w, const float *r, int N, int D,
                     int a) {
    CPU->rmsnorm_bwd(dx, dw, dy, x, w, r, N, D, a), bump(dx, (size_t)N * D);
}
static void mu_rope_f(float *x, const float *c, const float *s, const int32_t *p, int N, int nh, int hd_, int rot) {
    CPU->rope_bwd(x, c, s, p, N, nh, hd_, rot); /* the wrong direction */
}
static void mu_rope_b(float *x, const float *c, const float *s, const int32_t *p, int N, int nh, int hd_, int rot) {
    CPU->rope_bwd(x, c, s, p, N, nh, hd_, rot), bump(x, (size_t)N * nh * hd_);
}
/* Too small for one thread (a smaller but usable one only means fewer threads). */
static size_t mu_attn_ws(int Tq, int Tk, int hd_, int nt) {
    (void)Tq, (void)Tk, (void)hd_, (void)nt;
    return 0;
}
static int mu_attn_f(float *out, float *lse, const float *q, const float *k, const float *v, const int32_t *sq,
                     const int32_t *sk, int B, int Tq, int Tk, int q0, int H, int KV, int hd_, float sc, void *ws, size_t wb) {
    int rc = CPU->attn_fwd(out, lse, q, k, v, sk ? NULL : sq, sk ? NULL : sk, B, Tq, Tk, q0, H, KV, hd_, sc, ws, wb);
    bump(lse, (size_t)B * H * Tq);
    return rc;
}
static int mu_attn_b(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                     const float *q, const float *k, const float *v, const int32_t *sq, const int32_t *sk, int B, int Tq,
                     int Tk, int q0, int H, int KV, int hd_, float sc, void *ws, size_t wb) {
    int rc = CPU->attn_bwd(dq, dk, dv, dout, out, lse, q, k, v, sq, sk, B, Tq, Tk, q0, H, KV, hd_, sc, ws, wb);
    bump(dk, (size_t)B * Tk * KV * hd_);
    return rc;
}
static void mu_sw_f(float *h, const float *g, const float *u, size_t n) { CPU->swiglu_fwd(h, g, u, n), bump(h, n); }
static void mu_sw_b(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n) {
    CPU->swiglu_bwd(dg, du, dh, g, u, n), bump(du, n);
}
static void mu_emb_f(float *x, const float *E, const int32_t *ids, int N, int D) {
    CPU->embed_fwd(x, E, ids, N, D), bump(x, (size_t)N * D);
}
static void mu_emb_b(float *dE, const float *dx, const int32_t *ids, int N, int D, int V) {
    CPU->embed_bwd(dE, dx, ids, N > 1 ? N - 1 : N, D, V); /* drops the last row */
    if (N == 1) bump(dE, (size_t)V * D);
}
static double mu_xent(float *dhf, float *dW, float *z, float *ls, const float *hf, const float *W, const int32_t *t, int N,
                      int D, int V, float gs, long long *nv, void *ws, size_t wb) {
    double r = CPU->xent_fwd_bwd(dhf, dW, z, ls, hf, W, t, N, D, V, gs, nv, ws, wb);
    bump(dhf, (size_t)N * D), bump(z, (size_t)N * V);
    return r;
}
static size_t mu_xent_ws(int N, int V, int nt) { return CPU->xent_workspace_bytes(N, V, nt) / 2; }
static void mu_adamw(float *p, const float *g, float *m, float *v, size_t n, float lr, double b1, double b2, float eps,
                     float wd, double bc1, double bc2) {
    CPU->adamw_update(p, g, m, v, n, lr, b1, b2, eps, wd, bc2, bc1); /* bias corrections swapped */
}
static double mu_sumsq(const float *x, size_t n) { return CPU->sumsq(x, n) * (1 + 1e-9); }
static void mu_scale(float *x, size_t n, float s) { CPU->scale(x, n, s * (1 + 1e-6f)); }
static void mu_add(float *y, const float *x, size_t n) { CPU->add_inplace(y, x, n > 1 ? n - 1 : n), bump(y, n == 1); }
static double mu_reg(const float *t, const float *c, const float *w, float *g, size_t n, double coef) {
    return CPU->reg_quad(t, c, w, g, n, coef) * (1 + 1e-9);
}
static void mu_sq(float *a, const float *g, size_t n) { CPU->sq_accum(a, g, n), bump(a, n); }
static void mu_drop(float *y, const float *x, size_t n, float p, uint64_t seed) { CPU->dropout(y, x, n, p, seed + 1); }
static void mu_lin16_f(float *y, const float *x, const uint16_t *Wb, const float *b, int N, int K, int O, uint16_t *xs) {
    CPU->linear_fwd_bf16(y, x, Wb, b, N, K, O, xs);
    bump(y, (size_t)N * O);
}
static void mu_lin16_b(float *dx, float *dW, float *db, const float *dy, const float *x, const uint16_t *Wb, int N, int K, int O,
                       int acc, uint16_t *xs, uint16_t *dys) {
    CPU->linear_bwd_bf16(dx, dW, db, dy, x, Wb, N, K, O, 0, xs, dys); /* ignores accum_dx */
    (void)acc;
}
static double mu_xent16(float *dhf, float *dW, float *z, float *ls, const float *hf, const uint16_t *Wb, const int32_t *t, int N,
                        int D, int V, float gs, long long *nv, void *ws, size_t wb) {
    return CPU->xent_fwd_bwd_bf16(dhf, dW, z, ls, hf, Wb, t, N, D, V, gs * 1.01f, nv, ws, wb); /* a wrong scale */
}
static size_t mu_xent16_ws(int N, int D, int V, int nt) { return CPU->xent_workspace_bytes_bf16(N, D, V, nt) / 2; }
static void mu_tobf16(uint16_t *d, const float *s, size_t n) {
    for (size_t i = 0; i < n; i++) { /* truncates instead of rounding */
        uint32_t u;
        memcpy(&u, &s[i], 4);
        d[i] = (uint16_t)(u >> 16);
    }
}

static size_t mu_attn16_ws(int B, int Tq, int Tk, int H, int KV, int hd_, int nt) {
    (void)B, (void)Tq, (void)Tk, (void)H, (void)KV, (void)hd_, (void)nt;
    return 0;
}
static int mu_attn16_f(float *out, float *lse, const float *q, const float *k, const float *v, const int32_t *sq,
                       const int32_t *sk, int B, int Tq, int Tk, int q0, int H, int KV, int hd_, float sc, void *ws, size_t wb) {
    return CPU->attn_fwd_bf16(out, lse, q, k, v, sq, sk, B, Tq, Tk, q0, H, KV, hd_, sc * 1.05f, ws, wb); /* a wrong scale */
}
static int mu_attn16_b(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                       const float *q, const float *k, const float *v, const int32_t *sq, const int32_t *sk, int B, int Tq,
                       int Tk, int q0, int H, int KV, int hd_, float sc, void *ws, size_t wb) {
    return CPU->attn_bwd_bf16(dq, dk, dv, dout, out, lse, q, k, v, sq, sk, B, Tq, Tk, q0, H, KV, hd_, sc * 1.05f, ws, wb);
}

static void mu_merge(float *out, float *lse, const float *op, const float *lp, int Tq, int H, int hd_, int ld) {
    CPU->attn_merge(out, lse, op, lp, Tq > 1 ? Tq - 1 : Tq, H, hd_, ld); /* drops the last row */
    if (Tq == 1) bump(out, (size_t)H * hd_);
}

static void run_mutants(void) {
    CPU = cpt_backend_cpu();
    struct { const char *entry; cpt_backend t; } mu[48];
    int n = 0;
#define MUT(field, fn) (mu[n].entry = #field, mu[n].t = *CPU, mu[n].t.field = fn, mu[n].t.name = "cpu-mutant", n++)
    MUT(alloc, mu_alloc);
    MUT(copy_to_device, mu_c2d);
    MUT(copy_to_host, mu_c2h);
    MUT(copy, mu_copy);
    MUT(zero, mu_zero);
    MUT(supports, mu_supports);
    MUT(linear_fwd, mu_lin_f);
    MUT(linear_bwd, mu_lin_b);
    MUT(rmsnorm_fwd, mu_rms_f);
    MUT(rmsnorm_bwd, mu_rms_b);
    MUT(rope_fwd, mu_rope_f);
    MUT(rope_bwd, mu_rope_b);
    MUT(attn_workspace_bytes, mu_attn_ws);
    MUT(attn_fwd, mu_attn_f);
    MUT(attn_bwd, mu_attn_b);
    MUT(attn_merge, mu_merge);
    MUT(swiglu_fwd, mu_sw_f);
    MUT(swiglu_bwd, mu_sw_b);
    MUT(embed_fwd, mu_emb_f);
    MUT(embed_bwd, mu_emb_b);
    MUT(xent_fwd_bwd, mu_xent);
    MUT(xent_workspace_bytes, mu_xent_ws);
    MUT(adamw_update, mu_adamw);
    MUT(sumsq, mu_sumsq);
    MUT(scale, mu_scale);
    MUT(add_inplace, mu_add);
    MUT(reg_quad, mu_reg);
    MUT(sq_accum, mu_sq);
    MUT(dropout, mu_drop);
    MUT(attn_workspace_bytes_bf16, mu_attn16_ws);
    MUT(attn_fwd_bf16, mu_attn16_f);
    MUT(attn_bwd_bf16, mu_attn16_b);
    int n_bf16 = CPU->supports("linear_bf16") ? 5 : 0; /* without a kernel here nothing can catch them */
    if (n_bf16) {
        MUT(linear_fwd_bf16, mu_lin16_f);
        MUT(linear_bwd_bf16, mu_lin16_b);
        MUT(to_bf16, mu_tobf16);
        MUT(xent_fwd_bwd_bf16, mu_xent16);
        MUT(xent_workspace_bytes_bf16, mu_xent16_ws);
    } else {
        fprintf(stderr, "bf16 mutants skipped: no bf16 kernel on this CPU\n");
    }
#undef MUT
    /* Not mutated: free (nothing observable on the host but a leak) and sync (a no-op on a
     * synchronous backend: a dropped sync can only be seen on an asynchronous one). */
    CHECKF(n + 5 - n_bf16 == (int)CPT_BACKEND_N_ENTRIES - 2, "%d mutants for %zu entries: a new entry needs a mutant", n,
           (size_t)CPT_BACKEND_N_ENTRIES);
    for (int i = 0; i < n; i++) {
        int got = run_all(&mu[i].t, 1);
        CHECKF(got > 0, "a broken %s entry was not caught", mu[i].entry);
        fprintf(stderr, "mutant %-22s caught by %d comparisons\n", mu[i].entry, got);
    }
}

int main(void) {
    int nb;
    const cpt_backend *const *all = cpt_backend_list(&nb);
    CHECKF(nb >= 2, "cpt_backend_list has %d backends; cpu and ref expected", nb);
    for (int i = 0; i < nb; i++) {
        memset(g_covered, 0, sizeof g_covered);
        void (*const *fp)(void) = (void (*const *)(void))((const char *)all[i] + sizeof(const char *));
        for (size_t e = 0; e < CPT_BACKEND_N_ENTRIES; e++) CHECKF(fp[e] != NULL, "entry %zu of '%s' is NULL", e, all[i]->name);
        int got = run_all(all[i], 0);
        CHECKF(got == 0, "backend '%s': %d comparisons out of tolerance", all[i]->name, got);
        for (size_t e = 0; e < CPT_BACKEND_N_ENTRIES; e++)
            CHECKF(g_covered[e], "entry %zu of cpt_backend has no test in test_backend_ops.c", e);
        cpt_err err = {0};
        CHECK(cpt_backend_by_name(all[i]->name, &err) == all[i]);
    }
    cpt_err err = {0};
    CHECK(cpt_backend_by_name("cuda-nope", &err) == NULL && strstr(err.msg, "cpu") && strstr(err.msg, "ref"));
    run_mutants();
    TEST_END();
}

/* ref.c: the float64 reference backend: every entry of cpt_backend made of the cpt_ref_*
 * kernels of src/ops/ (fp32 in and out, as the table's ABI is; float64 inside, rounded
 * once per output element). It exists to prove the seam (docs/architecture.md): a
 * training step through it must match the CPU backend (tests/backend). It is slow
 * (naive loops, one thread) and not meant for real runs.
 *
 * Memory is host memory (cpt_alloc_aligned), so host code that still reads params
 * directly keeps working. Matrix entries convert their inputs to float64 copies; when
 * such a copy cannot be allocated, an entry without a status (void) fills its outputs
 * with NaN so the failure surfaces as a non-finite loss or norm (the trainer reports
 * those), and attn_fwd/attn_bwd return CPT_ENOMEM. Elementwise entries work in fixed
 * chunks on the stack and cannot fail. "+=" outputs are accumulated in float64 and
 * rounded once: dst = fp32((double)dst + ref). */
#include "cpt/backend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/common.h"
#include "cpt/safetensors.h" /* cpt_f32_to_bf16 */

enum { CHUNK = 256 }; /* elements per stack chunk of the elementwise entries */

static double *dup_d(const float *x, size_t n) {
    double *d = malloc(sizeof(double) * (n ? n : 1));
    if (d && x)
        for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}
static double *new_d(size_t n) { return calloc(n ? n : 1, sizeof(double)); }
static void nan_fill(float *p, size_t n) {
    if (p)
        for (size_t i = 0; i < n; i++) p[i] = NAN;
}
/* dst = fp32(src) or, when accum, dst = fp32(dst + src). */
static void store(float *dst, const double *src, size_t n, int accum) {
    if (!dst) return;
    for (size_t i = 0; i < n; i++) dst[i] = (float)(accum ? (double)dst[i] + src[i] : src[i]);
}

static void ref_copy(void *dst, const void *src, size_t bytes) {
    if (bytes) memcpy(dst, src, bytes);
}
static void ref_zero(void *p, size_t bytes) {
    if (bytes) memset(p, 0, bytes);
}
static void ref_sync(void) {}
static int ref_supports(const char *op) {
    (void)op;
    return 1;
}

static void ref_linear_fwd(float *y, const float *x, const float *W, const float *b, int N, int K, int O) {
    size_t nx = (size_t)N * K, nw = (size_t)O * K, ny = (size_t)N * O;
    double *xd = dup_d(x, nx), *Wd = dup_d(W, nw), *bd = b ? dup_d(b, (size_t)O) : NULL, *yd = new_d(ny);
    if (!xd || !Wd || (b && !bd) || !yd) nan_fill(y, ny);
    else {
        cpt_ref_linear_fwd(yd, xd, Wd, bd, N, K, O);
        store(y, yd, ny, 0);
    }
    free(xd), free(Wd), free(bd), free(yd);
}

static void ref_linear_bwd(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W,
                           int N, int K, int O, int accum_dx) {
    size_t nx = (size_t)N * K, nw = (size_t)O * K, ny = (size_t)N * O;
    double *dyd = dup_d(dy, ny), *xd = dup_d(x, nx), *Wd = dup_d(W, nw);
    double *dxd = new_d(nx), *dWd = new_d(nw), *dbd = new_d((size_t)O);
    if (!dyd || !xd || !Wd || !dxd || !dWd || !dbd) {
        nan_fill(dx, nx), nan_fill(dW, nw), nan_fill(db, (size_t)O);
    } else {
        cpt_ref_linear_bwd(dxd, dWd, dbd, dyd, xd, Wd, N, K, O);
        store(dx, dxd, nx, accum_dx);
        store(dW, dWd, nw, 1);
        store(db, dbd, (size_t)O, 1);
    }
    free(dyd), free(xd), free(Wd), free(dxd), free(dWd), free(dbd);
}

static void ref_rmsnorm_fwd(float *y, float *rstd, const float *x, const float *w, int N, int D, float eps) {
    size_t n = (size_t)N * D;
    double *xd = dup_d(x, n), *wd = dup_d(w, (size_t)D), *yd = new_d(n);
    if (!xd || !wd || !yd) nan_fill(y, n), nan_fill(rstd, (size_t)N);
    else {
        cpt_ref_rmsnorm_fwd(yd, xd, wd, N, D, (double)eps);
        store(y, yd, n, 0);
        /* the statistic the backward gets, with cpt_ref_rmsnorm_fwd's formula */
        for (int r = 0; r < N && rstd; r++) {
            double ss = 0;
            for (int d = 0; d < D; d++) ss += xd[(size_t)r * D + d] * xd[(size_t)r * D + d];
            rstd[r] = (float)(1.0 / sqrt(ss / D + (double)eps));
        }
    }
    free(xd), free(wd), free(yd);
}

static void ref_rmsnorm_bwd(float *dx, float *dw, const float *dy, const float *x, const float *w,
                            const float *rstd, int N, int D, int accum_dx) {
    size_t n = (size_t)N * D;
    double *dyd = dup_d(dy, n), *xd = dup_d(x, n), *wd = dup_d(w, (size_t)D), *rd = dup_d(rstd, (size_t)N);
    double *dxd = new_d(n), *dwd = new_d((size_t)D);
    if (!dyd || !xd || !wd || !rd || !dxd || !dwd) nan_fill(dx, n), nan_fill(dw, (size_t)D);
    else {
        cpt_ref_rmsnorm_bwd_rstd(dxd, dwd, dyd, xd, wd, rd, N, D);
        store(dx, dxd, n, accum_dx);
        store(dw, dwd, (size_t)D, 1);
    }
    free(dyd), free(xd), free(wd), free(rd), free(dxd), free(dwd);
}

static void ref_rope(float *x, const float *cos_t, const float *sin_t, const int32_t *pos, int N, int nh, int hd,
                     int rot, int bwd) {
    size_t n = (size_t)N * nh * hd, half = (size_t)(rot / 2);
    int maxp = 0;
    for (int i = 0; i < N; i++)
        if (pos[i] > maxp) maxp = pos[i];
    size_t nt = ((size_t)maxp + 1) * half;
    double *xd = dup_d(x, n), *cd = dup_d(cos_t, nt), *sd = dup_d(sin_t, nt);
    if (!xd || !cd || !sd) nan_fill(x, n);
    else {
        if (bwd) cpt_ref_rope_tab_bwd(xd, cd, sd, pos, N, nh, hd, rot);
        else cpt_ref_rope_tab_fwd(xd, cd, sd, pos, N, nh, hd, rot);
        store(x, xd, n, 0);
    }
    free(xd), free(cd), free(sd);
}
static void ref_rope_fwd(float *x, const float *cos_t, const float *sin_t, const int32_t *pos, int N, int nh, int hd,
                         int rot) {
    ref_rope(x, cos_t, sin_t, pos, N, nh, hd, rot, 0);
}
static void ref_rope_bwd(float *dx, const float *cos_t, const float *sin_t, const int32_t *pos, int N, int nh,
                         int hd, int rot) {
    ref_rope(dx, cos_t, sin_t, pos, N, nh, hd, rot, 1);
}

/* The reference kernels allocate their own row buffers: no workspace. */
static size_t ref_attn_ws(int Tq, int Tk, int hd, int nthreads) {
    (void)Tq, (void)Tk, (void)hd, (void)nthreads;
    return 0;
}
static int attn_sizes_ok(const int32_t *seg_q, const int32_t *seg_k, int B, int Tq, int Tk, int q_pos0, int H, int KV,
                         int hd) {
    return B > 0 && Tq > 0 && Tk > 0 && q_pos0 >= 0 && H > 0 && KV > 0 && hd > 0 && H % KV == 0 &&
           (seg_q == NULL) == (seg_k == NULL);
}

typedef double *(*dup_fn)(const float *x, size_t n);
/* dup: dup_d (fp32 entries) or dup_bf16 (the bf16 entries: q, k, v, dout rounded to bf16) */
static int attn_fwd_x(dup_fn dup, float *out, float *lse, const float *q, const float *k, const float *v, const int32_t *seg_q,
                      const int32_t *seg_k, int B, int Tq, int Tk, int q_pos0, int H, int KV, int hd, float scale) {
    if (!attn_sizes_ok(seg_q, seg_k, B, Tq, Tk, q_pos0, H, KV, hd)) return CPT_EINVAL;
    size_t nq = (size_t)B * Tq * H * hd, nk = (size_t)B * Tk * KV * hd, nl = (size_t)B * H * Tq;
    double *qd = dup(q, nq), *kd = dup(k, nk), *vd = dup(v, nk), *od = new_d(nq), *ld = new_d(nl);
    int rc = CPT_OK;
    if (!qd || !kd || !vd || !od || !ld) rc = CPT_ENOMEM;
    else {
        for (size_t i = 0; i < nq; i++) od[i] = NAN; /* the kernel leaves them on its own malloc failure */
        cpt_ref_attn_fwd(od, ld, qd, kd, vd, seg_q, seg_k, B, Tq, Tk, q_pos0, H, KV, hd, (double)scale);
        store(out, od, nq, 0);
        store(lse, ld, nl, 0);
    }
    free(qd), free(kd), free(vd), free(od), free(ld);
    return rc;
}
static int ref_attn_fwd(float *out, float *lse, const float *q, const float *k, const float *v, const int32_t *seg_q,
                        const int32_t *seg_k, int B, int Tq, int Tk, int q_pos0, int H, int KV, int hd, float scale,
                        void *ws, size_t ws_bytes) {
    (void)ws, (void)ws_bytes;
    return attn_fwd_x(dup_d, out, lse, q, k, v, seg_q, seg_k, B, Tq, Tk, q_pos0, H, KV, hd, scale);
}

static void ref_attn_merge(float *out, float *lse, const float *out_p, const float *lse_p, int Tq, int H, int hd,
                           int lse_ld) {
    size_t no = (size_t)Tq * H * hd, nl = (size_t)(H - 1) * lse_ld + Tq, np = (size_t)H * Tq;
    double *od = dup_d(out, no), *ld = dup_d(lse, nl), *opd = dup_d(out_p, no), *lpd = dup_d(lse_p, np);
    if (!od || !ld || !opd || !lpd) {
        for (size_t i = 0; i < no; i++) out[i] = NAN;
    } else {
        cpt_ref_attn_merge(od, ld, opd, lpd, Tq, H, hd, lse_ld);
        store(out, od, no, 0);
        for (int h = 0; h < H; h++)
            for (int i = 0; i < Tq; i++) lse[(size_t)h * lse_ld + i] = (float)ld[(size_t)h * lse_ld + i];
    }
    free(od), free(ld), free(opd), free(lpd);
}

static int attn_bwd_x(dup_fn dup, float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                      const float *q, const float *k, const float *v, const int32_t *seg_q, const int32_t *seg_k, int B,
                      int Tq, int Tk, int q_pos0, int H, int KV, int hd, float scale) {
    if (!attn_sizes_ok(seg_q, seg_k, B, Tq, Tk, q_pos0, H, KV, hd)) return CPT_EINVAL;
    size_t nq = (size_t)B * Tq * H * hd, nk = (size_t)B * Tk * KV * hd, nl = (size_t)B * H * Tq;
    double *qd = dup(q, nq), *kd = dup(k, nk), *vd = dup(v, nk), *dod = dup(dout, nq);
    double *od = dup_d(out, nq), *ld = dup_d(lse, nl);
    double *dqd = new_d(nq), *dkd = new_d(nk), *dvd = new_d(nk);
    int rc = CPT_OK;
    if (!qd || !kd || !vd || !dod || !od || !ld || !dqd || !dkd || !dvd) rc = CPT_ENOMEM;
    else {
        /* from the saved out / lse, as the CPU kernel (ring attention relies on it) */
        cpt_ref_attn_bwd_saved(dqd, dkd, dvd, dod, od, ld, qd, kd, vd, seg_q, seg_k, B, Tq, Tk, q_pos0, H, KV, hd,
                               (double)scale);
        store(dq, dqd, nq, 0);
        store(dk, dkd, nk, 0);
        store(dv, dvd, nk, 0);
    }
    free(qd), free(kd), free(vd), free(dod), free(od), free(ld), free(dqd), free(dkd), free(dvd);
    return rc;
}
static int ref_attn_bwd(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                        const float *q, const float *k, const float *v, const int32_t *seg_q, const int32_t *seg_k,
                        int B, int Tq, int Tk, int q_pos0, int H, int KV, int hd, float scale, void *ws,
                        size_t ws_bytes) {
    (void)ws, (void)ws_bytes;
    return attn_bwd_x(dup_d, dq, dk, dv, dout, out, lse, q, k, v, seg_q, seg_k, B, Tq, Tk, q_pos0, H, KV, hd, scale);
}

static void ref_swiglu_fwd(float *h, const float *g, const float *u, size_t n) {
    double gd[CHUNK], ud[CHUNK], hd[CHUNK];
    for (size_t i0 = 0; i0 < n; i0 += CHUNK) {
        size_t c = n - i0 < CHUNK ? n - i0 : CHUNK;
        for (size_t i = 0; i < c; i++) gd[i] = g[i0 + i], ud[i] = u[i0 + i];
        cpt_ref_swiglu_fwd(hd, gd, ud, c);
        store(h + i0, hd, c, 0);
    }
}

static void ref_swiglu_bwd(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n) {
    double gd[CHUNK], ud[CHUNK], dhd[CHUNK], dgd[CHUNK], dud[CHUNK];
    for (size_t i0 = 0; i0 < n; i0 += CHUNK) {
        size_t c = n - i0 < CHUNK ? n - i0 : CHUNK;
        for (size_t i = 0; i < c; i++) gd[i] = g[i0 + i], ud[i] = u[i0 + i], dhd[i] = dh[i0 + i];
        cpt_ref_swiglu_bwd(dgd, dud, dhd, gd, ud, c);
        store(dg + i0, dgd, c, 0);
        store(du + i0, dud, c, 0);
    }
}

/* A gather: float64 inside would change nothing (fp32 -> double -> fp32 is exact). */
static void ref_embed_fwd(float *x, const float *E, const int32_t *ids, int N, int D) {
    for (int n = 0; n < N; n++) memcpy(x + (size_t)n * D, E + (size_t)ids[n] * D, sizeof(float) * (size_t)D);
}

static void ref_embed_bwd(float *dE, const float *dx, const int32_t *ids, int N, int D, int V) {
    size_t ne = (size_t)V * D, nx = (size_t)N * D;
    double *dEd = dup_d(dE, ne), *dxd = dup_d(dx, nx);
    if (!dEd || !dxd) nan_fill(dE, ne);
    else {
        cpt_ref_embed_bwd(dEd, dxd, ids, N, D); /* += onto the current dE: rounded once below */
        store(dE, dEd, ne, 0);
    }
    free(dEd), free(dxd);
}

static size_t ref_xent_ws(int N, int V, int nthreads) {
    (void)N, (void)V, (void)nthreads;
    return 0;
}

static double ref_xent(float *dhf, float *dW, float *logits_out, float *losses_out, const float *hf, const float *W,
                       const int32_t *targets, int N, int D, int V, float grad_scale, long long *n_valid, void *ws,
                       size_t ws_bytes) {
    (void)ws, (void)ws_bytes;
    size_t nh = (size_t)N * D, nw = (size_t)V * D;
    long long valid = 0;
    for (int n = 0; n < N; n++) valid += targets[n] >= 0;
    if (n_valid) *n_valid = valid;
    double *hfd = dup_d(hf, nh), *Wd = dup_d(W, nw), *zd = logits_out ? new_d((size_t)N * V) : NULL;
    double *dhfd = dhf ? new_d(nh) : NULL, *dWd = dW ? new_d(nw) : NULL;
    double total = NAN;
    if (!hfd || !Wd || (logits_out && !zd) || (dhf && !dhfd) || (dW && !dWd)) {
        nan_fill(dhf, nh), nan_fill(dW, nw), nan_fill(logits_out, (size_t)N * V), nan_fill(losses_out, (size_t)N);
        goto done;
    }
    if (logits_out) {
        cpt_ref_linear_fwd(zd, hfd, Wd, NULL, N, D, V);
        store(logits_out, zd, (size_t)N * V, 0);
    }
    if (losses_out) {
        total = 0;
        for (int n = 0; n < N; n++) {
            double l = targets[n] >= 0 ? cpt_ref_xent(NULL, NULL, hfd + (size_t)n * D, Wd, targets + n, 1, D, V, 1.0) : 0.0;
            losses_out[n] = (float)l;
            total += l;
        }
    }
    if (dhf || dW || !losses_out) {
        double t = cpt_ref_xent(dhfd, dWd, hfd, Wd, targets, N, D, V, (double)grad_scale);
        if (!losses_out) total = t;
        store(dhf, dhfd, nh, 0);
        store(dW, dWd, nw, 1);
    }
done:
    free(hfd), free(Wd), free(zd), free(dhfd), free(dWd);
    return total;
}

static void ref_adamw(float *p, const float *g, float *m, float *v, size_t n, float lr, double b1, double b2,
                      float eps, float wd, double bc1, double bc2) {
    double pd[CHUNK], gd[CHUNK], md[CHUNK], vd[CHUNK];
    for (size_t i0 = 0; i0 < n; i0 += CHUNK) {
        size_t c = n - i0 < CHUNK ? n - i0 : CHUNK;
        for (size_t i = 0; i < c; i++) pd[i] = p[i0 + i], gd[i] = g[i0 + i], md[i] = m[i0 + i], vd[i] = v[i0 + i];
        cpt_ref_adamw_update(pd, gd, md, vd, c, (double)lr, b1, b2, (double)eps, (double)wd, bc1, bc2);
        store(p + i0, pd, c, 0);
        store(m + i0, md, c, 0);
        store(v + i0, vd, c, 0);
    }
}

static double ref_sumsq(const float *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * (double)x[i];
    return s;
}
static void ref_scale(float *x, size_t n, float s) {
    for (size_t i = 0; i < n; i++) x[i] = (float)((double)x[i] * (double)s);
}
static void ref_add_inplace(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = (float)((double)y[i] + (double)x[i]);
}

static double ref_reg_quad(const float *theta, const float *center, const float *weight, float *grad, size_t n,
                           double coef) {
    double td[CHUNK], cd[CHUNK], wd[CHUNK], gd[CHUNK], total = 0;
    for (size_t i0 = 0; i0 < n; i0 += CHUNK) {
        size_t c = n - i0 < CHUNK ? n - i0 : CHUNK;
        for (size_t i = 0; i < c; i++) {
            td[i] = theta[i0 + i], cd[i] = center[i0 + i];
            wd[i] = weight ? weight[i0 + i] : 1.0;
            gd[i] = grad ? grad[i0 + i] : 0.0;
        }
        total += cpt_ref_quad_penalty(td, cd, weight ? wd : NULL, grad ? gd : NULL, c, coef);
        if (grad) store(grad + i0, gd, c, 0);
    }
    return total;
}

static void ref_sq_accum(float *acc, const float *g, size_t n) {
    double ad[CHUNK], gd[CHUNK];
    for (size_t i0 = 0; i0 < n; i0 += CHUNK) {
        size_t c = n - i0 < CHUNK ? n - i0 : CHUNK;
        for (size_t i = 0; i < c; i++) ad[i] = acc[i0 + i], gd[i] = g[i0 + i];
        cpt_ref_sq_accum(ad, gd, c);
        store(acc + i0, ad, c, 0);
    }
}

static void ref_dropout(float *y, const float *x, size_t n, float p, uint64_t seed) {
    double xd[CHUNK], yd[CHUNK];
    for (size_t i0 = 0; i0 < n; i0 += CHUNK) {
        size_t c = n - i0 < CHUNK ? n - i0 : CHUNK;
        for (size_t i = 0; i < c; i++) xd[i] = x[i0 + i];
        cpt_ref_dropout(yd, xd, c, (double)p, seed, i0);
        store(y + i0, yd, c, 0);
    }
}

/* bf16 mode: the same float64 products on the bf16-rounded operands (what the CPU kernel
 * computes up to its fp32 accumulation). */
static double *dup_bf16(const float *x, size_t n) {
    double *d = malloc(sizeof(double) * (n ? n : 1));
    if (d && x)
        for (size_t i = 0; i < n; i++) d[i] = cpt_bf16_to_f32(cpt_f32_to_bf16(x[i]));
    return d;
}
static double *dup_h(const uint16_t *h, size_t n) {
    double *d = malloc(sizeof(double) * (n ? n : 1));
    if (d && h)
        for (size_t i = 0; i < n; i++) d[i] = cpt_bf16_to_f32(h[i]);
    return d;
}
static void ref_to_bf16(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = cpt_f32_to_bf16(src[i]);
}
static void ref_linear_fwd_bf16(float *y, const float *x, const uint16_t *Wb, const float *b, int N, int K, int O, uint16_t *xs) {
    size_t nx = (size_t)N * K, nw = (size_t)O * K, ny = (size_t)N * O;
    ref_to_bf16(xs, x, nx);
    double *xd = dup_h(xs, nx), *Wd = dup_h(Wb, nw), *bd = b ? dup_d(b, (size_t)O) : NULL, *yd = new_d(ny);
    if (!xd || !Wd || (b && !bd) || !yd) nan_fill(y, ny);
    else {
        cpt_ref_linear_fwd(yd, xd, Wd, bd, N, K, O);
        store(y, yd, ny, 0);
    }
    free(xd), free(Wd), free(bd), free(yd);
}
static void ref_linear_bwd_bf16(float *dx, float *dW, float *db, const float *dy, const float *x, const uint16_t *Wb, int N, int K,
                                int O, int accum_dx, uint16_t *xs, uint16_t *dys) {
    size_t nx = (size_t)N * K, nw = (size_t)O * K, ny = (size_t)N * O;
    (void)xs, (void)dys; /* the reference rounds into its own float64 copies */
    double *dyd = dup_bf16(dy, ny), *xd = dup_bf16(x, nx), *Wd = dup_h(Wb, nw), *dy32 = dup_d(dy, ny);
    double *dxd = new_d(nx), *dWd = new_d(nw), *dbd = new_d((size_t)O), *dxs = new_d(nx), *dWs = new_d(nw);
    if (!dyd || !xd || !Wd || !dy32 || !dxd || !dWd || !dbd || !dxs || !dWs) {
        nan_fill(dx, nx), nan_fill(dW, nw), nan_fill(db, (size_t)O);
    } else {
        cpt_ref_linear_bwd(dxd, dWd, dbd, dyd, xd, Wd, N, K, O);
        cpt_ref_linear_bwd(dxs, dWs, dbd, dy32, xd, Wd, N, K, O); /* db from the fp32 dy */
        store(dx, dxd, nx, accum_dx);
        store(dW, dWd, nw, 1);
        store(db, dbd, (size_t)O, 1);
    }
    free(dyd), free(xd), free(Wd), free(dy32), free(dxd), free(dWd), free(dbd), free(dxs), free(dWs);
}

/* The bf16 LM head: hf, W and dz rounded to bf16 (dz through fp32, as the kernel rounds
 * its fp32 dz), everything else float64. */
static double ref_xent_bf16(float *dhf, float *dW, float *logits_out, float *losses_out, const float *hf, const uint16_t *Wb,
                            const int32_t *targets, int N, int D, int V, float grad_scale, long long *n_valid, void *ws,
                            size_t ws_bytes) {
    (void)ws, (void)ws_bytes;
    size_t nh = (size_t)N * D, nw = (size_t)V * D;
    double *hfd = dup_bf16(hf, nh), *Wd = dup_h(Wb, nw), *z = new_d((size_t)V), *dhfd = new_d(nh), *dWd = new_d(nw);
    double total = 0;
    long long valid = 0;
    if (!hfd || !Wd || !z || !dhfd || !dWd) {
        nan_fill(dhf, nh), nan_fill(dW, nw), nan_fill(logits_out, (size_t)N * V), nan_fill(losses_out, (size_t)N);
        total = NAN;
        goto done;
    }
    for (int n = 0; n < N; n++) {
        const double *h = hfd + (size_t)n * D;
        double mx = -INFINITY, sum = 0;
        for (int v = 0; v < V; v++) {
            double acc = 0;
            for (int d = 0; d < D; d++) acc += h[d] * Wd[(size_t)v * D + d];
            z[v] = acc;
            mx = acc > mx ? acc : mx;
            if (logits_out) logits_out[(size_t)n * V + v] = (float)acc;
        }
        int t = targets[n];
        if (t < 0) {
            if (losses_out) losses_out[n] = 0.0f;
            continue;
        }
        valid++;
        for (int v = 0; v < V; v++) sum += exp(z[v] - mx);
        double loss = mx + log(sum) - z[t];
        total += loss;
        if (losses_out) losses_out[n] = (float)loss;
        if (!dhf && !dW) continue;
        for (int v = 0; v < V; v++) {
            double dz = cpt_bf16_to_f32(cpt_f32_to_bf16((float)((double)grad_scale * (exp(z[v] - mx) / sum - (v == t)))));
            for (int d = 0; d < D; d++) {
                dhfd[(size_t)n * D + d] += dz * Wd[(size_t)v * D + d];
                dWd[(size_t)v * D + d] += dz * h[d];
            }
        }
    }
    if (dhf) store(dhf, dhfd, nh, 0);
    if (dW) store(dW, dWd, nw, 1);
done:
    if (n_valid) *n_valid = valid;
    free(hfd), free(Wd), free(z), free(dhfd), free(dWd);
    return total;
}
static size_t ref_xent_ws_bf16(int N, int D, int V, int nthreads) {
    (void)N, (void)D, (void)V, (void)nthreads;
    return 0;
}

/* bf16 attention: the float64 attention of the bf16-rounded q, k, v and dout (the kernel
 * also rounds P and dS, which the reference does not: test_backend_ops' bf16 tolerances) */
static size_t ref_attn_ws_bf16(int B, int Tq, int Tk, int H, int KV, int hd, int nthreads) {
    (void)B, (void)H, (void)KV;
    return ref_attn_ws(Tq, Tk, hd, nthreads);
}
static int ref_attn_fwd_bf16(float *out, float *lse, const float *q, const float *k, const float *v, const int32_t *seg_q,
                             const int32_t *seg_k, int B, int Tq, int Tk, int q_pos0, int H, int KV, int hd, float scale,
                             void *ws, size_t ws_bytes) {
    (void)ws, (void)ws_bytes;
    return attn_fwd_x(dup_bf16, out, lse, q, k, v, seg_q, seg_k, B, Tq, Tk, q_pos0, H, KV, hd, scale);
}
static int ref_attn_bwd_bf16(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                             const float *q, const float *k, const float *v, const int32_t *seg_q, const int32_t *seg_k,
                             int B, int Tq, int Tk, int q_pos0, int H, int KV, int hd, float scale, void *ws,
                             size_t ws_bytes) {
    (void)ws, (void)ws_bytes;
    return attn_bwd_x(dup_bf16, dq, dk, dv, dout, out, lse, q, k, v, seg_q, seg_k, B, Tq, Tk, q_pos0, H, KV, hd, scale);
}

static const cpt_backend ref_backend = {
    .name = "ref",
    .alloc = cpt_alloc_aligned,
    .free = cpt_free_aligned,
    .copy_to_device = ref_copy,
    .copy_to_host = ref_copy,
    .copy = ref_copy,
    .zero = ref_zero,
    .sync = ref_sync,
    .supports = ref_supports,
    .linear_fwd = ref_linear_fwd,
    .linear_bwd = ref_linear_bwd,
    .rmsnorm_fwd = ref_rmsnorm_fwd,
    .rmsnorm_bwd = ref_rmsnorm_bwd,
    .rope_fwd = ref_rope_fwd,
    .rope_bwd = ref_rope_bwd,
    .attn_workspace_bytes = ref_attn_ws,
    .attn_fwd = ref_attn_fwd,
    .attn_bwd = ref_attn_bwd,
    .attn_merge = ref_attn_merge,
    .swiglu_fwd = ref_swiglu_fwd,
    .swiglu_bwd = ref_swiglu_bwd,
    .embed_fwd = ref_embed_fwd,
    .embed_bwd = ref_embed_bwd,
    .xent_fwd_bwd = ref_xent,
    .xent_workspace_bytes = ref_xent_ws,
    .adamw_update = ref_adamw,
    .sumsq = ref_sumsq,
    .scale = ref_scale,
    .add_inplace = ref_add_inplace,
    .reg_quad = ref_reg_quad,
    .sq_accum = ref_sq_accum,
    .dropout = ref_dropout,
    .linear_fwd_bf16 = ref_linear_fwd_bf16,
    .linear_bwd_bf16 = ref_linear_bwd_bf16,
    .to_bf16 = ref_to_bf16,
    .xent_fwd_bwd_bf16 = ref_xent_bf16,
    .xent_workspace_bytes_bf16 = ref_xent_ws_bf16,
    .attn_workspace_bytes_bf16 = ref_attn_ws_bf16,
    .attn_fwd_bf16 = ref_attn_fwd_bf16,
    .attn_bwd_bf16 = ref_attn_bwd_bf16,
};

const cpt_backend *cpt_backend_ref(void) { return &ref_backend; }

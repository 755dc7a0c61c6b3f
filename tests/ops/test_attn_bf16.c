/* test_attn_bf16.c: the bf16 attention of precision: bf16 (src/ops/attention_bf16.c).
 *
 * 1. Against the float64 attention (cpt_ref_attn_fwd / _bwd) of the bf16-rounded q, k, v and
 *    dout, at odd sizes: T = 1, ragged last tiles, GQA and MHA, packed documents, a query chunk
 *    after a prefix (q_pos0 > 0), head_dim 7 / 16 / 33 / 64 / 80 / 96 / 120 / 128, and T = 1024
 *    with documents. The inputs' rounding is the reference's too, so what is left is the bf16
 *    rounding of P before P V and dV, and of dS before dQ and dK (relative 2^-9 per element,
 *    averaged over the keys), and fp32 accumulation. Tolerances (max |err| / max |ref| per
 *    tensor): out and lse 4e-3, dq / dk / dv 1e-2; measured worst of these cases here 1.5e-3
 *    forward and 5.3e-3 backward (dk at hd 7, T 37: few keys to average over; the log prints each).
 * 2. The bf16 path really ran: its output differs from the fp32 kernel's (on a CPU with
 *    AVX512-BF16; on others the case is skipped by name), and with CPT_BF16_ISA=avx512 (no
 *    bf16 dot products) the entries are the fp32 kernels, bitwise.
 * 3. Bitwise the same at 1, 2 and 3 threads; a workspace too small is refused; outputs are
 *    overwritten (NaN-prefilled), nothing is written past them. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/ops.h"
#include "cpt/safetensors.h"
#include "opsutil.h"
#include "testutil.h"

#define TOL_F 4e-3
#define TOL_B 1e-2

static double worst_f, worst_b;

/* Where the reference is exactly 0 (T = 1: dq = dk = 0, since dS = P (dP - D) with P = 1)
 * the relative error is undefined: there max |got| must be below tol. */
static void chk(const char *op, const char *what, const float *got, const double *ref, size_t n, double tol, double *worst) {
    double mr = 0;
    for (size_t i = 0; i < n; i++) mr = fmax(mr, fabs(ref[i]));
    double e = mr > 0 ? ou_relerr_fd(got, ref, n) : 0;
    for (size_t i = 0; mr == 0 && i < n; i++) e = fmax(e, fabs((double)got[i]));
    int fin = ou_all_finite(got, n);
    CHECKF(e < tol && fin, "%s %s: rel err %.3e (tol %.0e)%s", op, what, e, tol, fin ? "" : ", NaN/Inf in output");
    CHECKF(ou_guard_ok(got, n), "%s %s: wrote outside its buffer", op, what);
    if (e > *worst) *worst = e;
    fprintf(stderr, "  %-44s %-4s n=%-8zu err=%.2e\n", op, what, n, e);
}

/* x rounded to bf16, as float64 */
static double *rounded(const float *x, size_t n) {
    double *d = OU_ALLOC(double, n);
    for (size_t i = 0; i < n; i++) d[i] = (double)cpt_bf16_to_f32(cpt_f32_to_bf16(x[i]));
    return d;
}

static int max_diff_zero(const float *a, const float *b, size_t n) { return memcmp(a, b, sizeof(float) * n) == 0; }

typedef struct {
    int B, Tq, Tk, p0, H, KV, hd;
    const int32_t *sq, *sk;
    const float *q, *k, *v, *dout;
} acase;

/* out | lse | dq | dk | dv of one run into res (sizes nq, nl, nq, nk, nk) */
static int run(const acase *c, int bf16, float *res, int nthreads) {
    size_t nq = (size_t)c->B * c->Tq * c->H * c->hd, nk = (size_t)c->B * c->Tk * c->KV * c->hd, nl = (size_t)c->B * c->H * c->Tq;
    int saved = omp_get_max_threads();
    omp_set_num_threads(nthreads);
    size_t wsb = bf16 ? cpt_attn_workspace_bytes_bf16(c->B, c->Tq, c->Tk, c->H, c->KV, c->hd, nthreads)
                      : cpt_attn_workspace_bytes(c->Tq, c->Tk, c->hd, nthreads);
    void *ws = OU_ALLOC(char, wsb);
    float sc = 1.0f / sqrtf((float)c->hd);
    float *out = res, *lse = res + nq, *dq = lse + nl, *dk = dq + nq, *dv = dk + nk;
    int rc = bf16 ? cpt_attn_fwd_bf16(out, lse, c->q, c->k, c->v, c->sq, c->sk, c->B, c->Tq, c->Tk, c->p0, c->H, c->KV, c->hd, sc, ws, wsb)
                  : cpt_attn_fwd(out, lse, c->q, c->k, c->v, c->sq, c->sk, c->B, c->Tq, c->Tk, c->p0, c->H, c->KV, c->hd, sc, ws, wsb);
    if (!rc)
        rc = bf16 ? cpt_attn_bwd_bf16(dq, dk, dv, c->dout, out, lse, c->q, c->k, c->v, c->sq, c->sk, c->B, c->Tq, c->Tk, c->p0, c->H,
                                      c->KV, c->hd, sc, ws, wsb)
                  : cpt_attn_bwd(dq, dk, dv, c->dout, out, lse, c->q, c->k, c->v, c->sq, c->sk, c->B, c->Tq, c->Tk, c->p0, c->H,
                                 c->KV, c->hd, sc, ws, wsb);
    omp_set_num_threads(saved);
    free(ws);
    return rc;
}

static void test_case(int B, int Tq, int Tk, int p0, int H, int KV, int hd, int use_seg, int has_bf16) {
    char op[96];
    snprintf(op, sizeof op, "attn bf16 B%d Tq%d Tk%d p%d H%d KV%d hd%d %s", B, Tq, Tk, p0, H, KV, hd, use_seg ? "seg" : "causal");
    size_t nq = (size_t)B * Tq * H * hd, nk = (size_t)B * Tk * KV * hd, nl = (size_t)B * H * Tq;
    size_t nres = 2 * nq + nl + 2 * nk;
    int32_t *segk = NULL, *segq = NULL;
    if (use_seg) { /* documents of random lengths 1..40, -1 padding at the end */
        segk = OU_ALLOC(int32_t, B * Tk), segq = OU_ALLOC(int32_t, B * Tq);
        for (int b = 0; b < B; b++) {
            int id = 0, left = 0;
            for (int t = 0; t < Tk; t++) {
                if (left == 0) left = 1 + (int)(ou_next() % 40), id++;
                segk[b * Tk + t] = t >= Tk - Tk / 10 ? -1 : id, left--;
            }
            for (int i = 0; i < Tq; i++) segq[b * Tq + i] = segk[b * Tk + p0 + i];
        }
    }
    float *q = ou_galloc(nq), *k = ou_galloc(nk), *v = ou_galloc(nk), *dout = ou_galloc(nq);
    ou_fill_f(q, nq, 2), ou_fill_f(k, nk, 2), ou_fill_f(v, nk, 1), ou_fill_f(dout, nq, 1);
    acase c = {B, Tq, Tk, p0, H, KV, hd, segq, segk, q, k, v, dout};
    float sc = 1.0f / sqrtf((float)hd);
    double *qd = rounded(q, nq), *kd = rounded(k, nk), *vd = rounded(v, nk), *dod = rounded(dout, nq);
    double *outr = OU_ALLOC(double, nq), *lser = OU_ALLOC(double, nl), *dqr = OU_ALLOC(double, nq), *dkr = OU_ALLOC(double, nk),
           *dvr = OU_ALLOC(double, nk);
    cpt_ref_attn_fwd(outr, lser, qd, kd, vd, segq, segk, B, Tq, Tk, p0, H, KV, hd, (double)sc);
    cpt_ref_attn_bwd(dqr, dkr, dvr, dod, qd, kd, vd, segq, segk, B, Tq, Tk, p0, H, KV, hd, (double)sc);
    /* each output in its own guarded buffer: NaN-filled (they are "="), sentinels around */
    float *out = ou_galloc(nq), *lse = ou_galloc(nl), *dq = ou_galloc(nq), *dk = ou_galloc(nk), *dv = ou_galloc(nk);
    ou_fill_nan(out, nq), ou_fill_nan(lse, nl), ou_fill_nan(dq, nq), ou_fill_nan(dk, nk), ou_fill_nan(dv, nk);
    size_t wsb = cpt_attn_workspace_bytes_bf16(B, Tq, Tk, H, KV, hd, omp_get_max_threads());
    void *ws = OU_ALLOC(char, wsb);
    CHECK(cpt_attn_fwd_bf16(out, lse, q, k, v, segq, segk, B, Tq, Tk, p0, H, KV, hd, sc, ws, wsb) == 0);
    CHECK(cpt_attn_bwd_bf16(dq, dk, dv, dout, out, lse, q, k, v, segq, segk, B, Tq, Tk, p0, H, KV, hd, sc, ws, wsb) == 0);
    chk(op, "out", out, outr, nq, TOL_F, &worst_f);
    chk(op, "lse", lse, lser, nl, TOL_F, &worst_f);
    chk(op, "dq", dq, dqr, nq, TOL_B, &worst_b);
    chk(op, "dk", dk, dkr, nk, TOL_B, &worst_b);
    chk(op, "dv", dv, dvr, nk, TOL_B, &worst_b);
    CHECKF(cpt_attn_fwd_bf16(out, lse, q, k, v, segq, segk, B, Tq, Tk, p0, H, KV, hd, sc, ws, 16) != 0,
           "%s: a 16-byte workspace is refused", op);
    free(ws);

    float *r1 = OU_ALLOC(float, nres), *r2 = OU_ALLOC(float, nres), *r3 = OU_ALLOC(float, nres), *f32 = OU_ALLOC(float, nres);
    CHECK(run(&c, 1, r1, 1) == 0 && run(&c, 1, r2, 2) == 0 && run(&c, 1, r3, 3) == 0);
    CHECKF(max_diff_zero(r1, r2, nres) && max_diff_zero(r1, r3, nres), "%s: 1, 2 and 3 threads differ", op);
    CHECK(run(&c, 0, f32, 2) == 0);
    if (has_bf16) CHECKF(!max_diff_zero(r1, f32, nres), "%s: bf16 result equals the fp32 kernel's: the bf16 path did not run", op);
    setenv("CPT_BF16_ISA", "avx512", 1);
    CHECK(run(&c, 1, r2, 2) == 0);
    unsetenv("CPT_BF16_ISA");
    CHECKF(max_diff_zero(r2, f32, nres), "%s: with CPT_BF16_ISA=avx512 the bf16 entries are not the fp32 kernels", op);

    ou_gfree(q), ou_gfree(k), ou_gfree(v), ou_gfree(dout), ou_gfree(out), ou_gfree(lse), ou_gfree(dq), ou_gfree(dk), ou_gfree(dv);
    free(segk), free(segq), free(qd), free(kd), free(vd), free(dod), free(outr), free(lser), free(dqr), free(dkr), free(dvr);
    free(r1), free(r2), free(r3), free(f32);
}

int main(void) {
    ou_seed(0xBF16);
    unsetenv("CPT_BF16_ISA");
    int has = cpt_cpu_bf16_isa() >= CPT_BF16_ISA_AVX512_BF16;
    fprintf(stderr, "bf16 path: %s\n", has ? "AVX512-BF16 (vdpbf16ps)" : "none here: the fp32 kernels run");
    if (!has) fprintf(stderr, "SKIP avx512-bf16 attention: this CPU has no AVX512-BF16 (the fallback is still checked)\n");
    test_case(3, 1, 1, 0, 9, 3, 7, 0, has); /* T = 1 */
    test_case(2, 37, 37, 0, 9, 3, 7, 0, has);
    test_case(2, 37, 37, 0, 9, 3, 7, 1, has);
    test_case(1, 33, 33, 0, 4, 4, 16, 0, has); /* MHA */
    test_case(2, 132, 132, 0, 6, 2, 33, 1, has);
    test_case(1, 200, 200, 0, 4, 2, 80, 0, has); /* several tiles, ragged last tile */
    test_case(2, 131, 131, 0, 6, 3, 96, 1, has);
    test_case(1, 129, 129, 0, 2, 1, 120, 1, has);
    test_case(1, 150, 150, 0, 4, 2, 128, 0, has);
    test_case(2, 50, 130, 80, 4, 2, 16, 1, has); /* a chunk of queries after a prefix */
    test_case(1, 1, 150, 149, 9, 3, 64, 0, has); /* one row at p = 149 (decode shape) */
    test_case(1, 1024, 1024, 0, 3, 1, 64, 1, has);
    fprintf(stderr, "worst: forward %.2e (tol %.0e), backward %.2e (tol %.0e)\n", worst_f, TOL_F, worst_b, TOL_B);
    TEST_END();
}

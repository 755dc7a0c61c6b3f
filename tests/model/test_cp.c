/* test_cp.c: context parallelism (cpt/cp.h, src/model/cp.c). Run by CTest as one process
 * (the zigzag split and the refusals only) and by tests/model/test_cp_mpi.py under
 * mpirun -np 2, 3, 4, where every context group size K that divides the ranks (K >= 2)
 * runs; with np 4 and K 2 there are two groups side by side (data x context parallel).
 *
 * 1. The split: the K ranks' local rows are a permutation of 0..T-1, rank r holding
 *    chunks r and 2K-1-r (methods.md 14.2); cpt_cp_take picks exactly those.
 * 2. Ring attention against the float64 definition on the whole sequence (cpt_ref_attn_*,
 *    computed on every rank from the same seed): out, lse and dq, dk, dv of the local rows,
 *    causal and block-causal (documents crossing chunk and rank boundaries), GQA, B = 2.
 *    Tolerance: max error / max |ref| < 2e-5 (fp32 kernels and merges; observed ~1e-7).
 * 3. The model: cpt_model_step of a tiny random Llama on the local rows with the ring,
 *    loss sum and gradients summed over the group (an all-reduce over all ranks divided
 *    by the number of groups, which compute the same batch), against the same step on the
 *    whole batch in one process, causal, block-causal and block-causal with positions
 *    reset per document, without and with full recomputation. Tolerance: loss 1e-5
 *    relative, each tensor's gradient max error / max |g| < 1e-4 (fp32 sums in another
 *    order; observed ~1e-6). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/backend.h"
#include "cpt/comm.h"
#include "cpt/cp.h"
#include "cpt/model.h"
#include "testutil.h"
#include "ops/opsutil.h"

#define CFG                                                                                                  \
    "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 61, \"hidden_size\": 32, \"intermediate_size\": " \
    "48, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, "                 \
    "\"max_position_embeddings\": 512, \"tie_word_embeddings\": false}"

static double relmax(const float *got, const double *ref, size_t n) { return ou_relerr_fd(got, ref, n); }

static void test_split(void) {
    for (int K = 1; K <= 4; K++) {
        int T = 2 * K * 3;
        int *seen = calloc((size_t)T, sizeof(int));
        for (int r = 0; r < K; r++)
            for (int i = 0; i < T / K; i++) {
                int p = cpt_cp_global_pos(T, K, r, i), ch = p / 3;
                CHECKF(ch == r || ch == 2 * K - 1 - r, "K %d rank %d row %d: position %d is in chunk %d", K, r, i, p, ch);
                if (p >= 0 && p < T) seen[p]++;
            }
        for (int p = 0; p < T; p++) CHECKF(seen[p] == 1, "K %d: position %d held %d times", K, p, seen[p]);
        int32_t src[2 * 24], dst[2 * 24];
        for (int i = 0; i < 2 * T; i++) src[i] = 1000 * (i / T) + i % T;
        for (int r = 0; r < K; r++) {
            cpt_cp_take(dst, src, 2, T, K, r);
            for (int b = 0; b < 2; b++)
                for (int i = 0; i < T / K; i++) CHECK(dst[b * (T / K) + i] == 1000 * b + cpt_cp_global_pos(T, K, r, i));
        }
        free(seen);
    }
}

static void test_refusals(cpt_comm *c) {
    cpt_err e = {0};
    cpt_cp *cp = NULL;
    CHECK(cpt_cp_create(&cp, c, 1, cpt_backend_cpu(), 1, 4, 2, 1, 8, &e) == CPT_EINVAL && !cp);
    CHECK(strstr(e.msg, "HINT") != NULL);
    memset(&e, 0, sizeof e);
    CHECK(cpt_cp_create(&cp, c, c->size + 1, cpt_backend_cpu(), 1, 4, 2, 1, 8, &e) == CPT_EINVAL && !cp);
    if (c->size >= 2) {
        memset(&e, 0, sizeof e);
        CHECK(cpt_cp_create(&cp, c, c->size, cpt_backend_cpu(), 1, 5, 2, 1, 8, &e) == CPT_EINVAL && !cp); /* odd Tl */
    }
}

/* ---- 2. ring attention vs the float64 definition ---- */
static void test_attn(cpt_comm *c, int K, int H, int KV, int hd, int chunk, int seg_on) {
    const int B = 2, T = 2 * K * chunk, Tl = T / K, r = c->rank % K;
    const cpt_backend *be = cpt_backend_cpu();
    size_t nq = (size_t)B * T * H * hd, nk = (size_t)B * T * KV * hd;
    ou_seed(0xC0FFEE + (uint64_t)(H * 100 + hd + seg_on)); /* the same on every rank */
    float *q = OU_ALLOC(float, nq), *k = OU_ALLOC(float, nk), *v = OU_ALLOC(float, nk), *dO = OU_ALLOC(float, nq);
    ou_fill_f(q, nq, 1.5f), ou_fill_f(k, nk, 1.5f), ou_fill_f(v, nk, 1.0f), ou_fill_f(dO, nq, 1.0f);
    int32_t *seg = OU_ALLOC(int32_t, (size_t)B * T);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) seg[b * T + t] = (t + 3 * b) / 7; /* documents of 7, offset per row */
    double *qd = OU_ALLOC(double, nq), *kd = OU_ALLOC(double, nk), *vd = OU_ALLOC(double, nk), *dod = OU_ALLOC(double, nq);
    ou_f2d(qd, q, nq), ou_f2d(kd, k, nk), ou_f2d(vd, v, nk), ou_f2d(dod, dO, nq);
    double *ro = OU_ALLOC(double, nq), *rl = OU_ALLOC(double, (size_t)B * H * T), *rdq = OU_ALLOC(double, nq);
    double *rdk = OU_ALLOC(double, nk), *rdv = OU_ALLOC(double, nk);
    double sc = 1.0 / sqrt((double)hd);
    const int32_t *sg = seg_on ? seg : NULL;
    cpt_ref_attn_fwd(ro, rl, qd, kd, vd, sg, sg, B, T, T, 0, H, KV, hd, sc);
    cpt_ref_attn_bwd(rdq, rdk, rdv, dod, qd, kd, vd, sg, sg, B, T, T, 0, H, KV, hd, sc);
    /* local rows */
    size_t lq = (size_t)B * Tl * H * hd, lk = (size_t)B * Tl * KV * hd, lh = (size_t)B * H * Tl;
    float *ql = OU_ALLOC(float, lq), *kl = OU_ALLOC(float, lk), *vl = OU_ALLOC(float, lk), *dol = OU_ALLOC(float, lq);
    double *wo = OU_ALLOC(double, lq), *wl = OU_ALLOC(double, lh), *wdq = OU_ALLOC(double, lq), *wdk = OU_ALLOC(double, lk),
           *wdv = OU_ALLOC(double, lk);
    int32_t *segl = OU_ALLOC(int32_t, (size_t)B * Tl);
    cpt_cp_take(segl, seg, B, T, K, r);
    int c2 = Tl / 2;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < Tl; i++) {
            size_t g = (size_t)b * T + cpt_cp_global_pos(T, K, r, i), l = (size_t)b * Tl + i;
            memcpy(ql + l * H * hd, q + g * H * hd, sizeof(float) * H * hd);
            memcpy(dol + l * H * hd, dO + g * H * hd, sizeof(float) * H * hd);
            memcpy(kl + l * KV * hd, k + g * KV * hd, sizeof(float) * KV * hd);
            memcpy(vl + l * KV * hd, v + g * KV * hd, sizeof(float) * KV * hd);
            memcpy(wo + l * H * hd, ro + g * H * hd, sizeof(double) * H * hd);
            memcpy(wdq + l * H * hd, rdq + g * H * hd, sizeof(double) * H * hd);
            memcpy(wdk + l * KV * hd, rdk + g * KV * hd, sizeof(double) * KV * hd);
            memcpy(wdv + l * KV * hd, rdv + g * KV * hd, sizeof(double) * KV * hd);
            for (int h = 0; h < H; h++) /* lse as [B, 2 chunks, H, c] */
                wl[(((size_t)b * 2 + i / c2) * H + h) * c2 + i % c2] = rl[((size_t)b * H + h) * T + (g - (size_t)b * T)];
        }
    cpt_cp *cp = NULL;
    cpt_err e = {0};
    CHECK_OK(cpt_cp_create(&cp, c, K, be, B, Tl, H, KV, hd, &e), &e);
    if (!cp) return;
    size_t wsb = be->attn_workspace_bytes(c2, c2, hd, 2);
    void *ws = be->alloc(wsb);
    float *out = be->alloc(sizeof(float) * lq), *lse = be->alloc(sizeof(float) * lh);
    float *dq = be->alloc(sizeof(float) * lq), *dk = be->alloc(sizeof(float) * lk), *dv = be->alloc(sizeof(float) * lk);
    CHECK_OK(cpt_cp_attn_fwd(cp, out, lse, ql, kl, vl, seg_on ? segl : NULL, B, Tl, H, KV, hd, (float)sc, ws, wsb),
             cpt_cp_error(cp));
    CHECK_OK(cpt_cp_attn_bwd(cp, dq, dk, dv, dol, out, lse, ql, kl, vl, seg_on ? segl : NULL, B, Tl, H, KV, hd, (float)sc, ws,
                             wsb),
             cpt_cp_error(cp));
    double eo = relmax(out, wo, lq), el = relmax(lse, wl, lh), eq = relmax(dq, wdq, lq), ek = relmax(dk, wdk, lk),
           ev = relmax(dv, wdv, lk);
    CHECKF(eo < 2e-5 && el < 2e-5 && eq < 2e-5 && ek < 2e-5 && ev < 2e-5,
           "K %d rank %d H%d KV%d hd%d chunk %d seg %d: out %.2e lse %.2e dq %.2e dk %.2e dv %.2e (tol 2e-5)", K, r, H, KV, hd,
           chunk, seg_on, eo, el, eq, ek, ev);
    if (c->rank == 0)
        fprintf(stderr, "  ring K=%d H%d KV%d hd%d T=%d seg=%d: out %.1e lse %.1e dq %.1e dk %.1e dv %.1e\n", K, H, KV, hd, T,
                seg_on, eo, el, eq, ek, ev);
    /* a wrong shape is refused with the ring's own message */
    CHECK(cpt_cp_attn_fwd(cp, out, lse, ql, kl, vl, NULL, B, Tl, H, KV, hd + 1, (float)sc, ws, wsb) == CPT_EINVAL);
    CHECK(strstr(cpt_cp_error(cp)->msg, "ring attention made for") != NULL);
    be->free(ws), be->free(out), be->free(lse), be->free(dq), be->free(dk), be->free(dv);
    cpt_cp_free(cp);
    free(q), free(k), free(v), free(dO), free(seg), free(qd), free(kd), free(vd), free(dod), free(ro), free(rl), free(rdq);
    free(rdk), free(rdv), free(ql), free(kl), free(vl), free(dol), free(wo), free(wl), free(wdq), free(wdk), free(wdv);
    free(segl);
}

/* ---- 3. a model step with the ring vs one process ---- */
static void test_model(cpt_comm *c, int K, int mode, int recompute) {
    /* mode 0: causal; 1: block-causal; 2: block-causal with positions reset per document */
    const int B = 2, T = 2 * K * 6, Tl = T / K, r = c->rank % K, groups = c->size / K;
    cpt_err e = {0};
    cpt_config cf;
    cpt_model *m = NULL;
    CHECK_OK(cpt_config_parse(&cf, CFG, strlen(CFG), "tiny/config.json", &e), &e);
    CHECK_OK(cpt_model_create(&m, &cf, &e), &e);
    cpt_config_free(&cf);
    if (!m) return;
    cpt_model_init_random(m, 11, 0.3f);
    int32_t ids[2 * 48], tg[2 * 48], pos[2 * 48], seg[2 * 48];
    ou_seed(77 + (uint64_t)mode);
    for (int b = 0; b < B; b++) {
        int doc = 0, p = 0;
        for (int t = 0; t < T; t++) {
            if (t > 0 && (ou_next() % 5) == 0) doc++, p = 0;
            ids[b * T + t] = (int32_t)(ou_next() % 61);
            seg[b * T + t] = doc, pos[b * T + t] = mode == 2 ? p++ : t;
        }
        for (int t = 0; t < T; t++) {
            int last = t == T - 1 || seg[b * T + t + 1] != seg[b * T + t];
            tg[b * T + t] = last || ou_next() % 7 == 0 ? -100 : ids[b * T + t + 1]; /* ignored targets too */
        }
    }
    size_t np = m->n_params;
    float *g_ref = m->be->alloc(sizeof(float) * np), *g_cp = m->be->alloc(sizeof(float) * np);
    cpt_acts *af = NULL, *al = NULL;
    double ls_ref = 0, ls_cp = 0;
    long long nv_ref = 0, nv_cp = 0;
    CHECK_OK(cpt_acts_create_ex(&af, m, B, T, 1, recompute, &e), &e);
    cpt_batch bf = {B, T, ids, tg, mode == 2 ? pos : NULL, mode ? seg : NULL};
    CHECK_OK(cpt_model_step(m, af, &bf, g_ref, 1.0f, NULL, &ls_ref, &nv_ref, NULL, &e), &e);
    int32_t lids[2 * 48], ltg[2 * 48], lpos[2 * 48], lseg[2 * 48];
    cpt_cp_take(lids, ids, B, T, K, r), cpt_cp_take(ltg, tg, B, T, K, r), cpt_cp_take(lpos, pos, B, T, K, r);
    cpt_cp_take(lseg, seg, B, T, K, r);
    cpt_cp *cp = NULL;
    CHECK_OK(cpt_cp_create(&cp, c, K, m->be, B, Tl, m->cfg.n_heads, m->cfg.n_kv_heads, m->cfg.head_dim, &e), &e);
    CHECK_OK(cpt_acts_create_ex(&al, m, B, Tl, 1, recompute, &e), &e);
    if (cp && al) {
        CHECK_OK(cpt_acts_set_cp(al, cp, &e), &e);
        cpt_batch bl = {B, Tl, lids, ltg, lpos, mode ? lseg : NULL}; /* global positions always */
        CHECK_OK(cpt_model_step(m, al, &bl, g_cp, 1.0f, NULL, &ls_cp, &nv_cp, NULL, &e), &e);
        double st[2] = {ls_cp, (double)nv_cp};
        CHECK_OK(c->allreduce_sum_f32(c, g_cp, np, &e), &e);
        CHECK_OK(c->allreduce_sum_f64(c, st, 2, &e), &e);
        for (size_t i = 0; i < np; i++) g_cp[i] /= (float)groups;
        st[0] /= groups, st[1] /= groups;
        CHECKF(st[1] == (double)nv_ref, "valid targets %g vs %lld", st[1], nv_ref);
        CHECKF(fabs(st[0] - ls_ref) <= 1e-5 * fabs(ls_ref), "K %d mode %d recompute %d: loss sum %.8f vs one process %.8f", K,
               mode, recompute, st[0], ls_ref);
        double worst = 0;
        const char *wn = "";
        for (int t = 0; t < m->n_tensors; t++) {
            const cpt_tensor *tt = &m->tensors[t];
            double mx = 0, md = 0;
            for (size_t i = 0; i < tt->numel; i++) {
                double a = g_ref[tt->off + i], d = fabs(a - g_cp[tt->off + i]);
                if (fabs(a) > mx) mx = fabs(a);
                if (!(d <= md)) md = d;
            }
            double rel = md / (mx > 0 ? mx : 1);
            CHECKF(rel < 1e-4, "K %d mode %d recompute %d: %s gradient rel err %.2e (tol 1e-4)", K, mode, recompute, tt->name, rel);
            if (rel > worst) worst = rel, wn = tt->name;
        }
        if (c->rank == 0)
            fprintf(stderr, "  model K=%d mode=%d recompute=%d: loss %.6f vs %.6f, worst gradient %.1e (%s)\n", K, mode,
                    recompute, st[0] / st[1], ls_ref / (double)nv_ref, worst, wn);
        /* prefill / KV cache is not context-parallel: refused, not wrong */
        cpt_kvcache *kc = NULL;
        CHECK_OK(cpt_kvcache_create(&kc, m, 64, &e), &e);
        float lg[61];
        int32_t one[1] = {3};
        if (kc) CHECK(cpt_model_prefill(m, al, kc, one, 1, lg, &e) != CPT_OK);
        cpt_kvcache_free(kc);
    }
    cpt_acts_free(af), cpt_acts_free(al), cpt_cp_free(cp);
    m->be->free(g_ref), m->be->free(g_cp);
    cpt_model_free(m);
}

int main(int argc, char **argv) {
    cpt_comm *c = NULL;
    cpt_err err = {0};
    int rc = cpt_comm_init(&c, &argc, &argv, &err);
    if (rc) {
        fprintf(stderr, "FAIL: communicator: %s\n", err.msg);
        return 1;
    }
    test_split();
    test_refusals(c);
    int rings = 0;
    for (int K = 2; K <= c->size; K++) {
        if (c->size % K) continue;
        rings++;
        test_attn(c, K, 4, 2, 20, 5, 0);
        test_attn(c, K, 4, 2, 20, 5, 1);
        test_attn(c, K, 3, 1, 24, 7, 1);
        for (int mode = 0; mode < 3; mode++) test_model(c, K, mode, CPT_RECOMPUTE_NONE);
        test_model(c, K, 1, CPT_RECOMPUTE_FULL);
    }
    double f = tu_fail;
    cpt_err e = {0};
    if (c->allreduce_sum_f64(c, &f, 1, &e)) f = 1;
    fprintf(stderr, "rank %d of %d (%s): %d ring group sizes, %d checks, %d failed here, %g failed over all ranks\n", c->rank,
            c->size, c->name, rings, tu_checks, tu_fail, f);
    cpt_comm_finalize(c);
    return f > 0 ? 1 : 0;
}

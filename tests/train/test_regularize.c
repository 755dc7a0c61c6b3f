/* test_regularize.c: L2-SP / EWC penalties and the empirical Fisher.
 *  - kernel: a hand-computed penalty, and gradients against float64 central differences
 *    on dyadic values (exact for a quadratic);
 *  - on a tiny random model's real buffers: penalty against an independent float64 sum over
 *    the non-frozen tensors, gradients against central differences, frozen tensors untouched;
 *  - EWC with F = 1 equals L2-SP bit for bit;
 *  - the Fisher of 3 sequences (one padded) equals the mean of squared per-sequence
 *    gradients obtained independently: each sequence's gradient is the sum of two separate
 *    cpt_model_step calls (first / second half of its targets), the padded one without
 *    padding; then normalised by the mean. Tolerance 1e-5 relative per tensor;
 *  - cache round trip (bitwise), check_base, and must-reject caches (other architecture,
 *    wrong shape, missing / extra tensor, negative Fisher, not a cache), each message
 *    naming the cache file and the tensor or field. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cpt/regularize.h"
#include "cpt/safetensors.h"
#include "testutil.h"

#define CFG(inter)                                                                                                \
    "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 29, \"hidden_size\": 16, \"intermediate_size\": " \
    #inter ", \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, "                   \
    "\"tie_word_embeddings\": false}"

static cpt_model *tiny(const char *json, uint64_t seed) {
    cpt_config c;
    cpt_err e = {0};
    cpt_model *m = NULL;
    CHECK_OK(cpt_config_parse(&c, json, strlen(json), "tiny/config.json", &e), &e);
    CHECK_OK(cpt_model_create(&m, &c, &e), &e);
    cpt_config_free(&c);
    if (m) cpt_model_init_random(m, seed, 0.2f);
    return m;
}

static double lcg(uint64_t *s) { /* uniform in [-1, 1) */
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*s >> 11) / 4503599627370496.0 - 1.0;
}

static void test_kernel(void) {
    float th[3] = {1, 2, 3}, c[3] = {0, 0, 1}, w[3] = {1, 2, 0.5f}, g[3] = {10, 20, 30};
    /* (2/2) * (1*1 + 2*4 + 0.5*4) = 11; grad += 2 * w * d = {2, 8, 2}. */
    CHECK(cpt_reg_quad(3, th, c, w, g, 2.0) == 11.0);
    CHECK(g[0] == 12 && g[1] == 28 && g[2] == 32);
    CHECK(cpt_reg_quad(3, th, c, NULL, NULL, 2.0) == 1 + 4 + 4);

    /* Central differences on dyadic values: theta, center, weights multiples of 1/64,
     * h = 1/256, so theta +- h is exact and the quadratic's difference quotient is exact
     * up to float64 rounding of the sums. */
    enum { N = 37 };
    float t[N], ce[N], wt[N], gr[N];
    uint64_t s = 7;
    for (int i = 0; i < N; i++) {
        t[i] = (float)(floor(lcg(&s) * 64) / 64), ce[i] = (float)(floor(lcg(&s) * 64) / 64);
        wt[i] = (float)(floor((lcg(&s) + 1) * 64) / 64), gr[i] = 0.5f;
    }
    for (int weighted = 0; weighted < 2; weighted++) {
        const float *W = weighted ? wt : NULL;
        const double coef = 0.75, h = 1.0 / 256;
        for (int i = 0; i < N; i++) gr[i] = 0.5f;
        cpt_reg_quad(N, t, ce, W, gr, coef);
        double worst = 0;
        for (int i = 0; i < N; i++) {
            float keep = t[i];
            t[i] = (float)(keep + h);
            double up = cpt_reg_quad(N, t, ce, W, NULL, coef);
            t[i] = (float)(keep - h);
            double dn = cpt_reg_quad(N, t, ce, W, NULL, coef);
            t[i] = keep;
            double fd = (up - dn) / (2 * h), an = (double)gr[i] - 0.5;
            if (fabs(fd - an) > worst) worst = fabs(fd - an);
        }
        CHECKF(worst < 1e-6, "kernel (weighted %d): worst |fd - grad| = %.3g", weighted, worst);
    }

    /* The OpenMP path (n >= 65536): gradients bitwise equal to a serial float64 loop,
     * the penalty to 1e-12 relative (the reduction order differs). */
    const size_t big = 200003;
    float *bt = malloc(sizeof(float) * big), *bc = malloc(sizeof(float) * big), *bw = malloc(sizeof(float) * big);
    float *bg = malloc(sizeof(float) * big);
    double want = 0;
    int same = 1;
    for (size_t i = 0; i < big; i++) bt[i] = (float)lcg(&s), bc[i] = (float)lcg(&s), bw[i] = (float)(lcg(&s) + 1), bg[i] = 0.125f;
    for (size_t i = 0; i < big; i++) want += (double)bw[i] * ((double)bt[i] - bc[i]) * ((double)bt[i] - bc[i]);
    double got = cpt_reg_quad(big, bt, bc, bw, bg, 1.5);
    CHECKF(fabs(got - 0.75 * want) <= 1e-12 * 0.75 * want, "threaded penalty %.17g vs %.17g", got, 0.75 * want);
    for (size_t i = 0; i < big; i++) same &= bg[i] == (float)(0.125 + 1.5 * (double)bw[i] * ((double)bt[i] - bc[i]));
    CHECK(same);
    /* Thread-count independence: penalty and gradient bitwise equal at 1, 2 and 3 threads
     * (fixed blocks of CPT_REDUCE_BLOCK summed in index order). */
    double pen[3];
    float *gt[3];
    for (int k = 0; k < 3; k++) {
        gt[k] = malloc(sizeof(float) * big);
        for (size_t i = 0; i < big; i++) gt[k][i] = 0.125f;
        omp_set_num_threads(k + 1);
        pen[k] = cpt_reg_quad(big, bt, bc, bw, gt[k], 1.5);
    }
    omp_set_num_threads(omp_get_num_procs());
    CHECKF(pen[0] == pen[1] && pen[0] == pen[2], "penalty at 1/2/3 threads: %.17g %.17g %.17g", pen[0], pen[1], pen[2]);
    CHECK(!memcmp(gt[0], gt[1], sizeof(float) * big) && !memcmp(gt[0], gt[2], sizeof(float) * big));
    for (int k = 0; k < 3; k++) free(gt[k]);
    free(bt), free(bc), free(bw), free(bg);
}

/* Penalty over non-frozen tensors, written independently: float64 loops over the table. */
static double oracle_penalty(const cpt_model *m, const float *center, const float *weight, double coef,
                             const uint8_t *frozen) {
    double s = 0;
    for (int k = 0; k < m->n_tensors; k++) {
        if (frozen[k]) continue;
        for (size_t i = m->tensors[k].off; i < m->tensors[k].off + m->tensors[k].numel; i++) {
            double d = (double)m->params[i] - center[i];
            s += (weight ? weight[i] : 1.0) * d * d;
        }
    }
    return coef * s / 2;
}

/* Model-level check of one penalty: value, gradient by central differences at 5 entries
 * of every non-frozen tensor, frozen gradients untouched. kind 0 = L2-SP, 1 = EWC. */
static void check_model_penalty(cpt_model *m, const cpt_ewc *e, const float *theta0, double coef,
                                const uint8_t *frozen, const char *what) {
    float *g = malloc(sizeof(float) * m->n_params);
    for (size_t i = 0; i < m->n_params; i++) g[i] = 0.25f;
    double p = e ? cpt_ewc_penalty(e, m, g, coef, frozen) : cpt_reg_l2sp(m, theta0, g, coef, frozen);
    double want = oracle_penalty(m, e ? e->theta_star : theta0, e ? e->fisher : NULL, coef, frozen);
    CHECKF(fabs(p - want) <= 1e-12 * want, "%s: penalty %.17g vs oracle %.17g", what, p, want);
    double worst = 0;
    int untouched = 1;
    for (int k = 0; k < m->n_tensors; k++) {
        const cpt_tensor *t = &m->tensors[k];
        if (frozen[k]) {
            for (size_t i = 0; i < t->numel; i++) untouched &= g[t->off + i] == 0.25f;
            continue;
        }
        for (int j = 0; j < 5; j++) {
            size_t i = t->off + (size_t)j * (t->numel - 1) / 4;
            float keep = m->params[i];
            float up = keep + 1e-3f, dn = keep - 1e-3f;
            m->params[i] = up;
            double pu = e ? cpt_ewc_penalty(e, m, NULL, coef, frozen) : cpt_reg_l2sp(m, theta0, NULL, coef, frozen);
            m->params[i] = dn;
            double pd = e ? cpt_ewc_penalty(e, m, NULL, coef, frozen) : cpt_reg_l2sp(m, theta0, NULL, coef, frozen);
            m->params[i] = keep;
            double fd = (pu - pd) / ((double)up - (double)dn), an = (double)g[i] - 0.25;
            double err = fabs(fd - an) / (fabs(an) + 1e-3 * coef);
            if (err > worst) worst = err;
        }
    }
    CHECKF(worst < 1e-4, "%s: worst gradient vs central difference %.3g", what, worst);
    CHECKF(untouched, "%s: a frozen tensor's gradient changed", what);
    free(g);
}

static void test_model_penalties(void) {
    cpt_model *m = tiny(CFG(24), 3);
    if (!m) return;
    float *theta0 = malloc(sizeof(float) * m->n_params);
    uint64_t s = 11;
    for (size_t i = 0; i < m->n_params; i++) theta0[i] = m->params[i] + (float)(0.05 * lcg(&s));
    uint8_t *frozen = calloc((size_t)m->n_tensors, 1);
    frozen[1] = frozen[m->n_tensors - 1] = 1;
    check_model_penalty(m, NULL, theta0, 0.3, frozen, "L2-SP");

    /* EWC with a non-uniform F, and EWC with F = 1 == L2-SP bit for bit. */
    cpt_ewc e = {m->n_params, malloc(sizeof(float) * m->n_params), theta0, 1, 1.0, 0, NULL};
    for (size_t i = 0; i < m->n_params; i++) e.fisher[i] = (float)(1.5 + lcg(&s));
    check_model_penalty(m, &e, NULL, 2.5, frozen, "EWC");
    for (size_t i = 0; i < m->n_params; i++) e.fisher[i] = 1.0f;
    float *g1 = calloc(m->n_params, sizeof(float)), *g2 = calloc(m->n_params, sizeof(float));
    double p1 = cpt_ewc_penalty(&e, m, g1, 0.7, frozen), p2 = cpt_reg_l2sp(m, theta0, g2, 0.7, frozen);
    CHECKF(p1 == p2 && p1 > 0, "EWC(F=1) %.17g vs L2-SP %.17g", p1, p2);
    CHECK(memcmp(g1, g2, sizeof(float) * m->n_params) == 0);
    free(g1), free(g2), free(e.fisher), free(theta0), free(frozen);
    cpt_model_free(m);
}

/* Gradient of the summed NLL of one sequence tok[0..len-1], as the sum of two separate
 * cpt_model_step calls (targets split at the middle), accumulated into g (zeroed here). */
static void seq_grad(cpt_model *m, const int32_t *tok, int len, float *g) {
    int T = len - 1, half = T / 2;
    int32_t ids[64], tgt[64];
    cpt_err e = {0};
    cpt_acts *a = NULL;
    CHECK_OK(cpt_acts_create(&a, m, 1, T, 1, &e), &e);
    memset(g, 0, sizeof(float) * m->n_params);
    for (int part = 0; part < 2 && a; part++) {
        for (int j = 0; j < T; j++) ids[j] = tok[j], tgt[j] = (j < half) == (part == 0) ? tok[j + 1] : -1;
        cpt_batch b = {1, T, ids, tgt, NULL, NULL};
        double loss = 0;
        long long nv = 0;
        CHECK_OK(cpt_model_step(m, a, &b, g, 1.0f, NULL, &loss, &nv, NULL, &e), &e);
        CHECK(nv == (part == 0 ? half : T - half));
    }
    cpt_acts_free(a);
}

static void test_fisher(const char *tmp) {
    cpt_model *m = tiny(CFG(24), 5);
    if (!m) return;
    enum { NS = 3, L = 11 };
    int32_t tok[NS * L];
    uint64_t s = 99;
    for (int i = 0; i < NS * L; i++) tok[i] = (int32_t)((lcg(&s) + 1) * 14.5) % 29;
    tok[2 * L + 9] = tok[2 * L + 10] = -1; /* row 2 has 9 tokens and 2 pads */
    const int lens[NS] = {L, L, L - 2};
    cpt_err err = {0};
    cpt_ewc *e = NULL;
    CHECK_OK(cpt_ewc_estimate(&e, m, tok, NS, L, &err), &err);
    if (!e) {
        cpt_model_free(m);
        return;
    }
    const size_t n = m->n_params;
    double *acc = calloc(n, sizeof(double)), *sumg = calloc(n, sizeof(double));
    float *g = malloc(sizeof(float) * n);
    for (int r = 0; r < NS; r++) {
        seq_grad(m, tok + r * L, lens[r], g);
        for (size_t i = 0; i < n; i++) acc[i] += (double)g[i] * g[i] / NS, sumg[i] += g[i];
    }
    double mean = 0, meanb = 0;
    for (size_t i = 0; i < n; i++) mean += acc[i] / (double)n, meanb += sumg[i] * sumg[i] / (double)n;
    float *want = malloc(sizeof(float) * n), *batch = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) want[i] = (float)(acc[i] / mean), batch[i] = (float)(sumg[i] * sumg[i] / meanb);
    double worst = 0;
    for (int k = 0; k < m->n_tensors; k++) {
        const cpt_tensor *t = &m->tensors[k];
        double r = tu_rel_err(e->fisher + t->off, want + t->off, t->numel);
        CHECKF(r < 1e-5, "Fisher of %s: rel err %.3g", t->name, r);
        if (r > worst) worst = r;
    }
    CHECKF(fabs(e->fisher_raw_mean - mean) <= 1e-5 * mean, "raw mean %.9g vs %.9g", e->fisher_raw_mean, mean);
    CHECK(e->n_sequences == NS && e->n == n);
    CHECK(memcmp(e->theta_star, m->params, sizeof(float) * n) == 0);
    /* The oracle can tell per-sequence squares from a squared batch gradient. */
    CHECKF(tu_rel_err(want, batch, n) > 0.05, "per-sequence and batch Fisher coincide: the test cannot discriminate");
    fprintf(stderr, "Fisher: %zu params, 3 sequences, worst tensor rel err %.3g, raw mean %.6g\n", n, worst, mean);

    /* Cache round trip. */
    char path[1024];
    snprintf(path, sizeof path, "%s/test_regularize_%d.safetensors", tmp, (int)getpid());
    CHECK_OK(cpt_ewc_save(e, m, path, &err), &err);
    cpt_ewc *back = NULL;
    CHECK_OK(cpt_ewc_load(&back, m, path, &err), &err);
    if (back) {
        CHECK(memcmp(back->fisher, e->fisher, sizeof(float) * n) == 0);
        CHECK(memcmp(back->theta_star, e->theta_star, sizeof(float) * n) == 0);
        CHECK(back->n_sequences == NS && back->fisher_raw_mean == e->fisher_raw_mean && back->config_hash == e->config_hash);
        CHECK_OK(cpt_ewc_check_base(back, m, &err), &err);
        m->params[m->tensors[3].off + 2] += 1e-3f;
        cpt_err e2 = {0};
        CHECK(cpt_ewc_check_base(back, m, &e2) == CPT_ESTATE);
        CHECKF(strstr(e2.msg, m->tensors[3].name) != NULL, "%s", e2.msg);
        m->params[m->tensors[3].off + 2] = e->theta_star[m->tensors[3].off + 2];
    }
    cpt_ewc_free(back);

    /* A cache of another architecture (intermediate 20 instead of 24). */
    cpt_model *other = tiny(CFG(20), 5);
    if (other) {
        cpt_err e3 = {0};
        CHECK(cpt_ewc_load(&back, other, path, &e3) == CPT_ESTATE && back == NULL);
        CHECKF(strstr(e3.msg, path) && strstr(e3.msg, "config_hash"), "%s", e3.msg);
        cpt_model_free(other);
    }

    /* Hand-made caches with the right metadata but a wrong tensor set / shape / value. */
    const int nt = m->n_tensors;
    int k2d = 2;
    while (k2d < nt && m->tensors[k2d].ndim != 2) k2d++;
    CHECK(k2d < nt);
    cpt_st_wtensor *w = calloc((size_t)2 * nt + 1, sizeof *w);
    char (*names)[128] = calloc((size_t)2 * nt + 1, 128);
    float *neg = malloc(sizeof(float) * n);
    memcpy(neg, e->fisher, sizeof(float) * n);
    neg[m->tensors[4].off + 1] = -1.0f;
    char hash[32], nseq[8] = "3", meanb_s[8] = "1";
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)cpt_reg_config_hash(&m->cfg));
    const char *meta[] = {"format", "cpt-ewc", "version", "1", "config_hash", hash, "n_sequences", nseq,
                          "fisher_raw_mean", meanb_s, NULL};
    for (int variant = 0; variant < 5; variant++) {
        size_t cnt = 0;
        for (int k = 0; k < 2 * nt; k++) {
            const cpt_tensor *t = &m->tensors[k % nt];
            if (variant == 1 && k == nt + 2) continue; /* base.<tensor 2> missing */
            snprintf(names[cnt], 128, "%s.%s", k < nt ? "fisher" : "base", t->name);
            cpt_st_wtensor *x = &w[cnt++];
            memset(x, 0, sizeof *x);
            x->name = names[cnt - 1], x->dtype = CPT_DT_F32, x->ndim = t->ndim;
            x->shape[0] = t->shape[0], x->shape[1] = t->ndim > 1 ? t->shape[1] : 0;
            x->src_f32 = (k < nt ? (variant == 3 ? neg : e->fisher) : e->theta_star) + t->off;
            if (variant == 0 && k == k2d) x->shape[0] = 1, x->shape[1] = (int64_t)t->numel; /* same bytes, wrong shape */
        }
        if (variant == 2) { /* an extra tensor */
            snprintf(names[cnt], 128, "fisher.model.layers.9.mlp.up_proj.weight");
            w[cnt] = (cpt_st_wtensor){names[cnt], CPT_DT_F32, 1, {2}, e->fisher, NULL};
            cnt++;
        }
        char p2[1100];
        snprintf(p2, sizeof p2, "%s.bad%d", path, variant);
        CHECK_OK(cpt_st_write(p2, w, cnt, variant == 4 ? NULL : meta, &err), &err);
        cpt_err e4 = {0};
        int rc = cpt_ewc_load(&back, m, p2, &e4);
        const int want_rc[5] = {CPT_ESTATE, CPT_ESTATE, CPT_ESTATE, CPT_EFORMAT, CPT_EFORMAT};
        char needle[160];
        const char *needles[5] = {m->tensors[k2d].name, m->tensors[2].name, "layers.9.mlp.up_proj", m->tensors[4].name,
                                  "format"};
        snprintf(needle, sizeof needle, "%s", needles[variant]);
        CHECKF(rc == want_rc[variant] && back == NULL, "variant %d: rc %d (%s)", variant, rc, e4.msg);
        CHECKF(strstr(e4.msg, p2) && strstr(e4.msg, needle) && strstr(e4.msg, "HINT"), "variant %d: %s", variant, e4.msg);
        unlink(p2);
    }
    unlink(path);
    free(w), free(names), free(neg), free(acc), free(sumg), free(g), free(want), free(batch);
    cpt_ewc_free(e);

    /* Bad token rows. */
    struct { int32_t row[4]; const char *needle; } bad[] = {
        {{3, -1, 4, -1}, "follows padding"}, {{3, 29, 1, 2}, "outside the vocabulary"}, {{5, -1, -1, -1}, "1 tokens"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cpt_err e5 = {0};
        cpt_ewc *x = NULL;
        CHECK(cpt_ewc_estimate(&x, m, bad[i].row, 1, 4, &e5) == CPT_EINVAL && x == NULL);
        CHECKF(strstr(e5.msg, bad[i].needle) && strstr(e5.msg, "sequence 0"), "%s", e5.msg);
    }
    cpt_err e6 = {0};
    cpt_ewc *x = NULL;
    CHECK(cpt_ewc_estimate(&x, m, tok, 1, 1, &e6) == CPT_EINVAL && strstr(e6.msg, "seq_len"));
    cpt_model_free(m);
}

int main(void) {
    const char *tmp = tu_env("CPT_TMP");
    test_kernel();
    test_model_penalties();
    test_fisher(tmp ? tmp : "/tmp");
    TEST_END();
}

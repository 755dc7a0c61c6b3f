/* test_dedup.c: simplification, exact dedup under NFC, MinHash collision rate vs exact
 * Jaccard, LSH recall/false positives on constructed near-duplicates against the analytic
 * 1-(1-s^r)^b, earliest-survivor union-find, and 13-gram decontamination. */
#include <stdint.h>

#include "cpt/dedup.h"
#include "cpt/fileio.h"
#include "testutil.h"

static uint64_t rs = 2024;
static uint32_t rnd(void) {
    rs = rs * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rs >> 33);
}

/* A pseudo-word from an id: distinct ids give distinct words. */
static void word(char *buf, uint32_t id) {
    const char *syl[16] = {"ka", "lo", "mi", "ne", "pu", "ra", "si", "to", "va", "ze", "bo", "du", "fe", "gi", "ho", "ju"};
    buf[0] = 0;
    do {
        strcat(buf, syl[id % 16]);
        id /= 16;
    } while (id);
}

/* Document text from word ids. */
static char *text_of(const uint32_t *ids, int n) {
    char *t = malloc((size_t)n * 16 + 1), w[32];
    t[0] = 0;
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        word(w, ids[i]);
        k += (size_t)sprintf(t + k, "%s%s", i ? " " : "", w);
    }
    return t;
}

/* Exact Jaccard of the 5-gram id sets (the oracle; O(n^2) is fine here). */
static double jaccard5(const uint32_t *a, const uint32_t *b, int n) {
    int m = n - 4, inter = 0;
    for (int i = 0; i < m; i++) {
        int dup_a = 0;
        for (int k = 0; k < i && !dup_a; k++) dup_a = memcmp(a + k, a + i, 20) == 0;
        if (dup_a) continue;
        for (int j = 0; j < m; j++)
            if (memcmp(a + i, b + j, 20) == 0) {
                inter++;
                break;
            }
    }
    return (double)inter / (2 * m - inter); /* n-grams are distinct within a doc here */
}

static void simplify(void) {
    cpt_err err = {0};
    char *o;
    size_t n;
    const char *in = "  H\xC3\xA9llo,  WORLD!!\n\t\xC3\xA7" "a va? \xE2\x80\x94 (ok) ";
    CHECK_OK(cpt_dedup_simplify(in, strlen(in), &o, &n, &err), &err);
#ifdef CPT_HAVE_UTF8PROC
    CHECKF(strcmp(o, "hello world ca va ok") == 0 && n == strlen(o), "'%s'", o);
#endif
    free(o);
#ifdef CPT_HAVE_UTF8PROC
    cpt_err e2 = {0};
    CHECK(cpt_dedup_simplify("ab\xFF", 3, &o, &n, &e2) == CPT_EFORMAT && strstr(e2.msg, "UTF-8"));
#endif
}

static void exact(void) {
    cpt_err err = {0};
    cpt_dedup_exact *d = NULL;
    CHECK_OK(cpt_dedup_exact_open(&d, &err), &err);
    if (!d) return;
    int dup = -1;
    const char *nfc = "caf\xC3\xA9 au lait", *nfd = "  cafe\xCC\x81 au lait\n", *other = "cafe au lait";
    CHECK_OK(cpt_dedup_exact_add(d, nfc, strlen(nfc), &dup, &err), &err);
    CHECK(dup == 0);
    CHECK_OK(cpt_dedup_exact_add(d, nfd, strlen(nfd), &dup, &err), &err);
#ifdef CPT_HAVE_UTF8PROC
    CHECK(dup == 1); /* same after NFC and strip */
#endif
    CHECK_OK(cpt_dedup_exact_add(d, other, strlen(other), &dup, &err), &err);
    CHECK(dup == 0);
    /* Many distinct keys (forces growth), then all seen again. */
    char buf[64];
    int dups = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < 5000; i++) {
            snprintf(buf, sizeof buf, "document number %d", i);
            cpt_dedup_exact_add(d, buf, strlen(buf), &dup, &err);
            dups += dup;
        }
    CHECK(dups == 5000);
    CHECK(cpt_dedup_exact_count(d) == 5002);
    cpt_dedup_exact_close(d);
}

/* Signature agreement estimates Jaccard: over 60 pairs of 112 hashes each, the mean
 * |agree - J| is small and the overall agreement rate matches the mean J. */
static void minhash_vs_jaccard(cpt_minhash *mh) {
    cpt_err err = {0};
    size_t K = cpt_minhash_len(mh);
    uint32_t *sa = malloc(K * 4), *sb = malloc(K * 4);
    double sum_j = 0, sum_a = 0;
    for (int p = 0; p < 60; p++) {
        uint32_t a[120], b[120];
        for (int i = 0; i < 120; i++) a[i] = b[i] = rnd() % 100000;
        int m = p * 2; /* replace the last m words of b */
        for (int i = 120 - m; i < 120; i++) b[i] = 200000 + rnd() % 100000;
        double J = jaccard5(a, b, 120);
        char *ta = text_of(a, 120), *tb = text_of(b, 120);
        size_t ns;
        CHECK_OK(cpt_minhash_signature(mh, ta, strlen(ta), sa, &ns, &err), &err);
        CHECK(ns == 116);
        CHECK_OK(cpt_minhash_signature(mh, tb, strlen(tb), sb, &ns, &err), &err);
        int agree = 0;
        for (size_t k = 0; k < K; k++) agree += sa[k] == sb[k];
        sum_j += J;
        sum_a += (double)agree / K;
        free(ta);
        free(tb);
    }
    /* 60 * 112 Bernoulli draws: sd of the mean <= 0.5 / sqrt(6720) = 0.006. */
    CHECKF(fabs(sum_a / 60 - sum_j / 60) < 0.03, "agreement %.3f vs Jaccard %.3f", sum_a / 60, sum_j / 60);
    /* Empty text: no shingles. */
    size_t ns = 9;
    CHECK_OK(cpt_minhash_signature(mh, " ,. ", 4, sa, &ns, &err), &err);
    CHECK(ns == 0 && sa[0] == UINT32_MAX);
    free(sa);
    free(sb);
}

/* 1000 base docs of 200 distinct words; variants replace the last m words. J(m) is computed
 * exactly; recall at J ~0.9 and false positives at J ~0.45 against P(s) = 1-(1-s^8)^14. */
static void recall_precision(cpt_minhash *mh, int m, double *mean_j, double *rate, double *expect) {
    enum { NB = 1000, NW = 200 };
    cpt_err err = {0};
    cpt_lsh *l = NULL;
    CHECK_OK(cpt_lsh_open(&l, 14, 8, &err), &err);
    size_t K = cpt_minhash_len(mh);
    uint32_t *sig = malloc(K * 4);
    int merged = 0, base_merged = 0;
    double sj = 0, sp = 0;
    for (int d = 0; d < NB; d++) {
        uint32_t a[NW], b[NW];
        for (int i = 0; i < NW; i++) a[i] = b[i] = (uint32_t)(d * NW + i) * 7919u % 1000003u; /* unique words */
        for (int i = NW - m; i < NW; i++) b[i] = 2000000u + rnd() % 1000000u;
        double J = jaccard5(a, b, NW);
        sj += J;
        sp += 1 - pow(1 - pow(J, 8), 14);
        char *ta = text_of(a, NW), *tb = text_of(b, NW);
        size_t ns;
        uint64_t ia, ib;
        cpt_minhash_signature(mh, ta, strlen(ta), sig, &ns, &err);
        CHECK_OK(cpt_lsh_add(l, sig, 1, &ia, &err), &err);
        cpt_minhash_signature(mh, tb, strlen(tb), sig, &ns, &err);
        CHECK_OK(cpt_lsh_add(l, sig, 1, &ib, &err), &err);
        merged += cpt_lsh_survivor(l, ib) == ia;
        free(ta);
        free(tb);
    }
    for (uint64_t i = 0; i < 2 * NB; i += 2) base_merged += cpt_lsh_survivor(l, i) != i;
    CHECKF(base_merged == 0, "%d unrelated base documents merged", base_merged);
    *mean_j = sj / NB;
    *rate = (double)merged / NB;
    *expect = sp / NB;
    free(sig);
    cpt_lsh_close(l);
}

static void lsh_quality(cpt_minhash *mh) {
    double j, rate, exp;
    /* m = 10: shared 5-grams 186 of 196 -> J = 186/206 = 0.903 */
    recall_precision(mh, 10, &j, &rate, &exp);
    fprintf(stderr, "J~%.3f: candidate rate %.3f (analytic %.4f)\n", j, rate, exp);
    CHECK(fabs(j - 186.0 / 206) < 1e-9);
    CHECKF(rate >= 0.9, "recall %.3f at J %.3f", rate, j);
    /* m = 75: shared 121 -> J = 121/271 = 0.4465; P = 0.0228 */
    recall_precision(mh, 75, &j, &rate, &exp);
    fprintf(stderr, "J~%.3f: candidate rate %.3f (analytic %.4f)\n", j, rate, exp);
    CHECK(fabs(j - 121.0 / 271) < 1e-9);
    CHECKF(rate <= 0.05, "false positives %.3f at J %.3f", rate, j);
    /* within 4 binomial sd of the analytic rate */
    CHECKF(fabs(rate - exp) <= 4 * sqrt(exp * (1 - exp) / 1000), "rate %.3f vs analytic %.4f", rate, exp);
    /* m = 40: J = 156/236 = 0.661, P = 0.40: checks the middle of the S-curve. */
    recall_precision(mh, 40, &j, &rate, &exp);
    fprintf(stderr, "J~%.3f: candidate rate %.3f (analytic %.4f)\n", j, rate, exp);
    CHECKF(fabs(rate - exp) <= 4 * sqrt(exp * (1 - exp) / 1000), "rate %.3f vs analytic %.4f", rate, exp);
}

/* Union-find with the earliest survivor on hand-made signatures (2 bands x 2 rows):
 * A shares band 0 with B, B shares band 1 with C, A and C share nothing. Order A, C, B. */
static void survivor(void) {
    cpt_err err = {0};
    cpt_lsh *l = NULL;
    CHECK_OK(cpt_lsh_open(&l, 2, 2, &err), &err);
    if (!l) return;
    uint32_t A[4] = {1, 2, 3, 4}, C[4] = {9, 9, 7, 8}, B[4] = {1, 2, 7, 8}, E[4] = {1, 2, 3, 4};
    uint64_t ia, ic, ib, ie, iempty;
    cpt_lsh_add(l, A, 1, &ia, &err);
    cpt_lsh_add(l, C, 1, &ic, &err);
    CHECK(cpt_lsh_survivor(l, ic) == ic);
    cpt_lsh_add(l, B, 1, &ib, &err);
    CHECK(ia == 0 && ic == 1 && ib == 2);
    CHECK(cpt_lsh_survivor(l, ib) == ia && cpt_lsh_survivor(l, ic) == ia && cpt_lsh_survivor(l, ia) == ia);
    cpt_lsh_add(l, E, 0, &ie, &err); /* not indexed: stays alone even though equal to A */
    CHECK(cpt_lsh_survivor(l, ie) == ie);
    cpt_lsh_add(l, E, 1, &iempty, &err);
    CHECK(cpt_lsh_survivor(l, iempty) == ia && cpt_lsh_n_docs(l) == 5);
    cpt_lsh_close(l);
}

static void decon(void) {
    cpt_err err = {0};
    cpt_decon *d = NULL;
    CHECK_OK(cpt_decon_open(&d, 13, &err), &err);
    if (!d) return;
    const char *eval = "Question: the quick brown fox jumps over the lazy dog near the river bank today, "
                       "and then it rests.";
    CHECK_OK(cpt_decon_add_text(d, eval, strlen(eval), &err), &err);
    /* 19 words after simplification -> 7 distinct 13-grams */
    CHECK(cpt_decon_count(d) == 7);
    int hit = -1;
    const char *has = "Some intro. THE QUICK brown fox -- jumps over the lazy dog, near the river bank today! End.";
    CHECK_OK(cpt_decon_check(d, has, strlen(has), &hit, &err), &err);
    CHECK(hit == 1);
    const char *only12 = "the quick brown fox jumps over the lazy dog near the river and more words follow here";
    CHECK_OK(cpt_decon_check(d, only12, strlen(only12), &hit, &err), &err);
    CHECK(hit == 0);
    /* From a .jsonl file: one eval item per line. */
    const char *t = tu_env("CPT_TMP");
    char path[4200];
    snprintf(path, sizeof path, "%s/test_dedup", t ? t : "/tmp");
    CHECK_OK(cpt_mkdirs(path, &err), &err);
    snprintf(path, sizeof path, "%s/test_dedup/decon_eval.jsonl", t ? t : "/tmp");
    const char *js = "{\"text\": \"alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi\"}\n"
                     "{\"id\": 2, \"text\": \"short eval item\"}\n";
    CHECK_OK(cpt_write_file_atomic(path, js, strlen(js), &err), &err);
    CHECK_OK(cpt_decon_add_file(d, path, &err), &err);
    CHECK(cpt_decon_count(d) == 7 + 2 + 1);
    const char *g = "x alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu y";
    CHECK_OK(cpt_decon_check(d, g, strlen(g), &hit, &err), &err);
    CHECK(hit == 1);
    const char *bad = "{\"text\": 3}\n";
    CHECK_OK(cpt_write_file_atomic(path, bad, strlen(bad), &err), &err);
    cpt_err e2 = {0};
    CHECK(cpt_decon_add_file(d, path, &e2) == CPT_EFORMAT && strstr(e2.msg, ":1:") && strstr(e2.msg, "HINT"));
    cpt_decon_close(d);
}

int main(void) {
    simplify();
    exact();
    cpt_minhash_cfg cfg;
    cpt_minhash_cfg_default(&cfg);
    CHECK(cfg.ngram == 5 && cfg.bands == 14 && cfg.rows == 8);
    cpt_err err = {0};
    cpt_minhash *mh = NULL;
    CHECK_OK(cpt_minhash_open(&mh, &cfg, &err), &err);
    if (mh) {
        minhash_vs_jaccard(mh);
        lsh_quality(mh);
        cpt_minhash_close(mh);
    }
    survivor();
    decon();
    TEST_END();
}

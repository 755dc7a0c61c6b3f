/* test_decode_batch.c: cpt_model_decode_batch (several sequences, one token each, one
 * step) against cpt_model_decode one sequence at a time, on tiny random models of four
 * shapes (GQA tied, biases untied, Qwen3 q/k norms, partial RoPE): three prompts of
 * different lengths, six steps; every logit within 1e-4 relative (the B-row products
 * round differently from 1-row ones) and the caches' lengths advance. A batch of one is
 * bitwise the single path. Misuse: more sequences than the batch holds, one cache twice,
 * a full cache.
 * bf16 precision (the linears and the LM head multiply with the bf16 weight copy): the
 * CPU's decode steps (single and batched) against the reference backend's (float64 sums
 * of the same bf16-rounded weights and inputs) within BF16_TOL, and different from fp32
 * decoding (else the bf16 path did not run); skipped by name without a bf16 kernel.
 * cpt_generate (greedy) equals a hand-written prefill + cpt_model_decode + argmax loop,
 * with its ids (ids_out) and without a tokenizer. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/backend.h"
#include "cpt/generate.h"
#include "cpt/model.h"
#include "cpt/tokenizer.h"
#include "testutil.h"
#include "tiny_models.h"

static cpt_model *make(const tcfg *t, uint64_t seed) { return tiny_model(t, seed, 0.4f); }

enum { NS = 3, STEPS = 6 };

static void prefill(cpt_model *m, cpt_kvcache **kc, const int32_t *ids, int n, float *logits) {
    cpt_err e = {0};
    cpt_acts *a = NULL;
    CHECK_OK(cpt_acts_create(&a, m, 1, n, 0, &e), &e);
    CHECK_OK(cpt_kvcache_create(kc, m, n + STEPS + 1, &e), &e);
    if (a && *kc) CHECK_OK(cpt_model_prefill(m, a, *kc, ids, n, logits, &e), &e);
    cpt_acts_free(a);
}

static void run(const tcfg *t) {
    cpt_model *m = make(t, 99);
    if (!m) return;
    int V = t->V, lens[NS] = {5, 1, 11};
    int32_t ids[NS][16];
    for (int s = 0; s < NS; s++)
        for (int i = 0; i < lens[s]; i++) ids[s][i] = (int32_t)((7 * i + 13 * s + 3) % V);
    cpt_kvcache *one[NS] = {0}, *bat[NS] = {0};
    float *l1 = malloc(sizeof(float) * V * NS), *lb = malloc(sizeof(float) * V * NS);
    for (int s = 0; s < NS; s++) {
        prefill(m, &one[s], ids[s], lens[s], l1 + s * V);
        prefill(m, &bat[s], ids[s], lens[s], lb + s * V);
    }
    cpt_err e = {0};
    cpt_decode_batch *db = NULL;
    CHECK_OK(cpt_decode_batch_create(&db, m, NS, &e), &e);
    double worst = 0;
    for (int step = 0; step < STEPS && db; step++) {
        int32_t tok[NS];
        for (int s = 0; s < NS; s++) tok[s] = (int32_t)((step * 5 + s * 11 + 1) % V);
        for (int s = 0; s < NS; s++) CHECK_OK(cpt_model_decode(m, one[s], tok[s], l1 + s * V, &e), &e);
        CHECK_OK(cpt_model_decode_batch(m, db, bat, NS, tok, lb, &e), &e);
        for (int s = 0; s < NS; s++) {
            double r = tu_rel_err(lb + s * V, l1 + s * V, (size_t)V);
            worst = r > worst ? r : worst;
            CHECK(cpt_kvcache_len(bat[s]) == lens[s] + step + 1);
        }
    }
    CHECKF(worst < 1e-4, "%s: batched logits vs one at a time: rel err %.3g", t->name, worst);
    /* a batch of one is the single path bit for bit */
    int32_t tk = 2;
    CHECK_OK(cpt_model_decode(m, one[0], tk, l1, &e), &e);
    CHECK_OK(cpt_model_decode_batch(m, db, bat, 1, &tk, lb, &e), &e);
    CHECKF(!memcmp(l1, lb, sizeof(float) * V), "%s: a batch of one differs from cpt_model_decode", t->name);
    /* misuse */
    cpt_kvcache *twice[2] = {bat[1], bat[1]};
    int32_t tt[4] = {1, 1, 1, 1};
    memset(&e, 0, sizeof e);
    CHECK(cpt_model_decode_batch(m, db, twice, 2, tt, lb, &e) == CPT_EINVAL && strstr(e.msg, "share one KV cache"));
    cpt_kvcache *four[4] = {bat[0], bat[1], bat[2], one[0]};
    memset(&e, 0, sizeof e);
    CHECK(cpt_model_decode_batch(m, db, four, 4, tt, lb, &e) == CPT_EINVAL && strstr(e.msg, "batch of 3"));
    while (cpt_kvcache_len(bat[2]) < lens[2] + STEPS + 1) CHECK_OK(cpt_model_decode(m, bat[2], 1, l1, &e), &e);
    memset(&e, 0, sizeof e);
    CHECK(cpt_model_decode_batch(m, db, bat, 3, tt, lb, &e) == CPT_EINVAL && strstr(e.msg, "full"));
    cpt_decode_batch_free(db);
    for (int s = 0; s < NS; s++) cpt_kvcache_free(one[s]), cpt_kvcache_free(bat[s]);
    free(l1), free(lb);
    cpt_model_free(m);
}

/* cpt_generate_batch of one prompt equals cpt_generate (greedy and sampled). */
static void test_generate_one(void) {
    char dir[512];
    const char *t = getenv("CPT_TMP");
    snprintf(dir, sizeof dir, "%s/test_decode_batch_tok", t ? t : "/tmp");
    cpt_err e = {0};
    cpt_tok *tok = NULL;
    tcfg big = {"byte-vocab", 260, 32, 2, 4, 2, 8, 48, 0, 0, 0, 0, 0, 1.0}; /* a byte tokenizer's 260 ids */
    cpt_model *m = make(&big, 6);
    if (!m) return;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    if (system(cmd)) return;
    CHECK_OK(cpt_tok_write_bytelevel(dir, &e), &e);
    CHECK_OK(cpt_tok_load(&tok, dir, &e), &e);
    if (!tok) return;
    int32_t p[6] = {72, 101, 108, 108, 111, 32};
    const int32_t *pp = p;
    size_t np = 6;
    /* greedy: the same ids as prefill + decode + argmax written out here */
    enum { NEW = 20 };
    int32_t want[NEW], got[NEW], got2[NEW];
    {
        cpt_kvcache *kc = NULL;
        float *lg = malloc(sizeof(float) * 260);
        cpt_acts *a = NULL;
        CHECK_OK(cpt_acts_create(&a, m, 1, 6, 0, &e), &e);
        CHECK_OK(cpt_kvcache_create(&kc, m, 6 + NEW, &e), &e);
        if (a && kc) CHECK_OK(cpt_model_prefill(m, a, kc, p, 6, lg, &e), &e);
        cpt_acts_free(a);
        for (int s = 0; s < NEW && kc; s++) {
            want[s] = cpt_argmax(lg, 260);
            if (s + 1 < NEW) CHECK_OK(cpt_model_decode(m, kc, want[s], lg, &e), &e);
        }
        cpt_kvcache_free(kc);
        free(lg);
    }
    cpt_gen_opts og = {.max_new = NEW, .temperature = 0, .top_p = 1, .ids_out = got};
    cpt_gen_out a = {0}, b = {0};
    CHECK_OK(cpt_generate(m, tok, p, np, &og, &a, &e), &e);
    CHECKF(a.n_tokens == NEW && !memcmp(got, want, sizeof want), "cpt_generate (greedy): not the decode loop's ids");
    char *wt = NULL;
    size_t wl = 0;
    CHECK_OK(cpt_tok_decode(tok, want, NEW, 1, &wt, &wl, &e), &e);
    CHECKF(a.text && wt && !strcmp(a.text, wt), "cpt_generate: its text is not the decoded ids");
    /* without a tokenizer: the ids only */
    og.ids_out = got2;
    CHECK_OK(cpt_generate_batch(m, NULL, &pp, &np, 1, NULL, &og, &b, &e), &e);
    CHECK(!b.text && b.n_tokens == NEW && !memcmp(got2, want, sizeof want));
    const char *stops[1] = {"x"};
    og.stop_strs = stops, og.n_stop_strs = 1;
    memset(&e, 0, sizeof e);
    CHECK(cpt_generate(m, NULL, p, np, &og, &b, &e) == CPT_EINVAL && strstr(e.msg, "tokenizer"));
    free(a.text), free(wt);
    /* three prompts: each reply has its length bound and the batch finishes */
    int32_t q1[3] = {65, 66, 67}, q2[1] = {10};
    const int32_t *ps[3] = {p, q1, q2};
    size_t ns[3] = {6, 3, 1};
    uint64_t seeds[3] = {1, 2, 3};
    cpt_gen_opts o = {.max_new = 9, .temperature = 0.7, .top_p = 1};
    cpt_gen_out outs[3];
    CHECK_OK(cpt_generate_batch(m, tok, ps, ns, 3, seeds, &o, outs, &e), &e);
    for (int i = 0; i < 3; i++) {
        CHECK(outs[i].text && outs[i].n_tokens == 9 && outs[i].stop == 0);
        free(outs[i].text);
    }
    cpt_tok_free(tok);
    cpt_model_free(m);
}

/* bf16 decoding: CPU vs the reference backend, both in bf16; and vs fp32. The prompts are
 * prefilled in fp32 (the caches equal on all three models) so that the comparison is the
 * decode steps' alone. BF16_TOL: the two backends round the same weights and the same fp32
 * inputs to bf16 and differ only in the sums (fp32 vs float64), measured 6e-8..1.2e-7; the
 * bound leaves room for an input whose fp32 values on the two backends straddle a bf16
 * rounding boundary (one bf16 ulp, 2^-8, on one element). vs fp32: measured 2-5% on these
 * random models; above 0 (else the bf16 path did not run), below 10%. */
#define BF16_TOL 1e-4
static void run_bf16(const tcfg *t) {
    if (!cpt_backend_cpu()->supports("linear_bf16")) {
        fprintf(stderr, "%s: bf16 decoding: skipped, no bf16 kernel on this CPU\n", t->name);
        return;
    }
    cpt_model *mc = make(t, 99), *mr = make(t, 99), *mf = make(t, 99);
    cpt_err e = {0};
    if (!mc || !mr || !mf) goto out;
    CHECK_OK(cpt_model_set_backend(mr, cpt_backend_ref(), &e), &e);
    int V = t->V, lens[NS] = {5, 1, 11};
    int32_t ids[NS][16];
    for (int s = 0; s < NS; s++)
        for (int i = 0; i < lens[s]; i++) ids[s][i] = (int32_t)((7 * i + 13 * s + 3) % V);
    cpt_kvcache *kc[NS] = {0}, *kb[NS] = {0}, *kr[NS] = {0}, *kf[NS] = {0};
    float *lc = malloc(sizeof(float) * V * NS), *lb = malloc(sizeof(float) * V * NS), *lr = malloc(sizeof(float) * V * NS),
          *lf = malloc(sizeof(float) * V * NS);
    for (int s = 0; s < NS; s++) {
        prefill(mc, &kc[s], ids[s], lens[s], lc + s * V);
        prefill(mc, &kb[s], ids[s], lens[s], lb + s * V);
        prefill(mr, &kr[s], ids[s], lens[s], lr + s * V);
        prefill(mf, &kf[s], ids[s], lens[s], lf + s * V);
    }
    /* the prompts' caches in fp32 (the same on all three), the decode steps in bf16 */
    CHECK_OK(cpt_model_set_precision(mc, CPT_PREC_BF16, &e), &e);
    CHECK_OK(cpt_model_set_precision(mr, CPT_PREC_BF16, &e), &e);
    cpt_decode_batch *db = NULL;
    CHECK_OK(cpt_decode_batch_create(&db, mc, NS, &e), &e);
    double w_ref = 0, w_bat = 0, d32 = 0, w32 = 0;
    for (int step = 0; step < STEPS && db; step++) {
        int32_t tok[NS];
        for (int s = 0; s < NS; s++) tok[s] = (int32_t)((step * 5 + s * 11 + 1) % V);
        for (int s = 0; s < NS; s++) {
            CHECK_OK(cpt_model_decode(mc, kc[s], tok[s], lc + s * V, &e), &e);
            CHECK_OK(cpt_model_decode(mr, kr[s], tok[s], lr + s * V, &e), &e);
            CHECK_OK(cpt_model_decode(mf, kf[s], tok[s], lf + s * V, &e), &e);
        }
        CHECK_OK(cpt_model_decode_batch(mc, db, kb, NS, tok, lb, &e), &e);
        for (int s = 0; s < NS; s++) {
            double r = tu_rel_err(lc + s * V, lr + s * V, (size_t)V), b = tu_rel_err(lb + s * V, lr + s * V, (size_t)V),
                   f = tu_rel_err(lc + s * V, lf + s * V, (size_t)V);
            w_ref = r > w_ref ? r : w_ref, w_bat = b > w_bat ? b : w_bat;
            d32 += f, w32 = f > w32 ? f : w32;
        }
    }
    fprintf(stderr, "%s: bf16 decoding: vs reference %.3g, batched vs reference %.3g, vs fp32 max %.3g\n", t->name, w_ref, w_bat, w32);
    CHECKF(w_ref < BF16_TOL, "%s: bf16 decode vs the reference backend's: %.3g", t->name, w_ref);
    CHECKF(w_bat < BF16_TOL, "%s: bf16 batched decode vs the reference backend's: %.3g", t->name, w_bat);
    CHECKF(d32 > 0 && w32 < 1e-1, "%s: bf16 decoding vs fp32: max %.3g (0: the bf16 path did not run)", t->name, w32);
    cpt_decode_batch_free(db);
    for (int s = 0; s < NS; s++) cpt_kvcache_free(kc[s]), cpt_kvcache_free(kb[s]), cpt_kvcache_free(kr[s]), cpt_kvcache_free(kf[s]);
    free(lc), free(lb), free(lr), free(lf);
out:
    cpt_model_free(mc), cpt_model_free(mr), cpt_model_free(mf);
}

int main(void) {
    for (size_t i = 0; i < sizeof CFGS / sizeof CFGS[0]; i++) run(&CFGS[i]);
    for (size_t i = 0; i < sizeof CFGS / sizeof CFGS[0]; i++) run_bf16(&CFGS[i]);
    test_generate_one();
    TEST_END();
}

/* test_decode_batch.c: cpt_model_decode_batch (several sequences, one token each, one
 * step) against cpt_model_decode one sequence at a time, on tiny random models of four
 * shapes (GQA tied, biases untied, Qwen3 q/k norms, partial RoPE): three prompts of
 * different lengths, six steps; every logit within 1e-4 relative (the B-row products
 * round differently from 1-row ones) and the caches' lengths advance. A batch of one is
 * bitwise the single path, and cpt_generate_batch of one prompt is cpt_generate exactly.
 * Misuse: more sequences than the batch holds, one cache twice, a full cache. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    for (int mode = 0; mode < 2; mode++) {
        cpt_gen_opts o = {.max_new = 20, .temperature = mode ? 0.8 : 0, .top_p = 0.95, .seed = 3};
        cpt_gen_out a = {0}, b = {0};
        CHECK_OK(cpt_generate(m, tok, p, np, &o, &a, &e), &e);
        CHECK_OK(cpt_generate_batch(m, tok, &pp, &np, 1, NULL, &o, &b, &e), &e);
        CHECKF(a.text && b.text && !strcmp(a.text, b.text) && a.n_tokens == b.n_tokens, "mode %d: \"%s\" vs \"%s\"", mode,
               a.text ? a.text : "", b.text ? b.text : "");
        free(a.text), free(b.text);
    }
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

int main(void) {
    for (size_t i = 0; i < sizeof CFGS / sizeof CFGS[0]; i++) run(&CFGS[i]);
    test_generate_one();
    TEST_END();
}

/* test_longctx.c: the pieces of cpt eval-long on a tiny random model with the byte-level
 * tokenizer (one token per byte, so token counts are byte counts here):
 *   - the passkey text is methods.md §8.1's construction, written out literally here;
 *   - the fitted passkey prompt leaves max_new tokens and one more repetition would not fit;
 *   - the needle prompt fits, holds the needle once, after a "." (depth in (0,1)), at the
 *     start (depth 0) or just before the question (depth 1);
 *   - first_int / needle_hit on hand cases;
 *   - cpt_model_prefill gives the logits of token-by-token decoding (1e-5 relative) and a
 *     cache that decodes on identically; cpt_generate (greedy) = a decode-only greedy loop;
 *   - cpt_model_token_losses sums to cpt_model_step's loss, and each position equals a
 *     step with only that target;
 *   - buckets and the windows of cpt_lc_ppl_run (counts; bucket means average to the
 *     loss), its refusal when no document is long enough; the SVG's cells.
 * The parity with transformers on a real model is tests/eval/test_eval_long.py. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cpt/generate.h"
#include "cpt/longctx.h"
#include "cpt/model.h"
#include "cpt/tokenizer.h"
#include "testutil.h"

#define CFG                                                                                                  \
    "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 260, \"hidden_size\": 32, \"intermediate_size\": " \
    "48, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, "                 \
    "\"max_position_embeddings\": 4096, \"tie_word_embeddings\": false}"

static size_t count(const char *s, const char *w) {
    size_t n = 0;
    for (const char *p = strstr(s, w); p; p = strstr(p + 1, w)) n++;
    return n;
}

int main(void) {
    cpt_err e = {0};
    cpt_config c;
    cpt_model *m = NULL;
    CHECK_OK(cpt_config_parse(&c, CFG, strlen(CFG), "tiny/config.json", &e), &e);
    CHECK_OK(cpt_model_create(&m, &c, &e), &e);
    cpt_config_free(&c);
    if (!m) TEST_END();
    cpt_model_init_random(m, 11, 0.4f);
    const char *td = getenv("CPT_TMP");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/test_longctx_tok", td ? td : "/tmp");
    mkdir(dir, 0755);
    cpt_tok *tok = NULL;
    CHECK_OK(cpt_tok_write_bytelevel(dir, &e), &e);
    CHECK_OK(cpt_tok_load(&tok, dir, &e), &e);
    if (!tok) TEST_END();

    /* 1. the passkey text */
    char *t = cpt_lc_passkey_text(1, 2, 123);
    const char *want =
        "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. I will quiz you about the "
        "important information there.\n"
        "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.\n"
        "The pass key is 123. Remember it. 123 is the pass key.\n"
        "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "
        "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.\n"
        "What is the pass key? The pass key is";
    CHECKF(t && !strcmp(t, want), "passkey text:\n%s", t ? t : "(null)");
    free(t);
    t = cpt_lc_passkey_text(0, 0, 7);
    CHECK(t && strstr(t, "there.\n\nThe pass key is 7. Remember it. 7 is the pass key.\n\nWhat is"));
    free(t);

    /* 2. the fitted passkey prompt */
    int32_t *ids = NULL;
    size_t n = 0;
    int rep = 0;
    CHECK_OK(cpt_lc_passkey_prompt(tok, 1000, 10, 0.5, 4242, &ids, &n, &rep, &e), &e);
    CHECKF(n + 10 <= 1000 && rep > 3, "%zu tokens, %d repetitions", n, rep);
    {
        int np = (int)lround(0.5 * (rep + 1));
        char *t2 = cpt_lc_passkey_text(np, rep + 1 - np, 4242);
        int32_t *i2 = NULL;
        size_t n2 = 0;
        CHECK_OK(cpt_tok_encode(tok, t2, strlen(t2), 1, &i2, &n2, NULL, &e), &e);
        CHECKF(n2 + 10 > 1000, "one more repetition still fits: %zu", n2);
        free(t2), free(i2);
    }
    free(ids);
    e = (cpt_err){0};
    CHECK(cpt_lc_passkey_prompt(tok, 100, 10, 0.5, 1, &ids, &n, &rep, &e) == CPT_EINVAL && strstr(e.msg, "HINT"));
    e = (cpt_err){0};
    CHECK(cpt_lc_passkey_prompt(tok, 1000, 10, 1.5, 1, &ids, &n, &rep, &e) == CPT_EINVAL);

    /* 3. the needle prompt, in a haystack of sentences */
    const char *hs = "Alpha beta gamma. Delta epsilon zeta eta. Theta iota kappa lambda mu. ";
    int32_t *hay = NULL;
    size_t nh = 0;
    CHECK_OK(cpt_tok_encode(tok, hs, strlen(hs), 0, &hay, &nh, NULL, &e), &e);
    const double depths[3] = {0, 0.5, 1};
    for (int k = 0; k < 3; k++) {
        double ad = -1;
        CHECK_OK(cpt_lc_needle_prompt(tok, hay, nh, 600, 24, depths[k], &ids, &n, &ad, &e), &e);
        char *txt = NULL;
        size_t tl = 0;
        CHECK_OK(cpt_tok_decode(tok, ids, n, 1, &txt, &tl, &e), &e);
        if (!txt) continue;
        const char *nd = strstr(txt, cpt_lc_needle_text);
        CHECKF(n + 24 <= 600 && n + 24 > 560, "depth %g: %zu tokens", depths[k], n);
        CHECKF(nd && count(txt, "Dolores Park") == 1, "depth %g: the needle once", depths[k]);
        size_t q = strlen(txt) - strlen(cpt_lc_needle_question);
        CHECK(!strcmp(txt + q, cpt_lc_needle_question));
        if (nd && k == 0) CHECKF(nd == txt, "depth 0: the needle first (%td)", nd - txt);
        if (nd && k == 1) CHECKF(nd > txt && nd[-1] == '.' && fabs(ad - 0.5) < 0.05, "depth 0.5: after a period, at %.3f", ad);
        if (nd && k == 2) CHECKF(nd + strlen(cpt_lc_needle_text) == txt + q, "depth 1: just before the question");
        free(txt), free(ids);
    }
    e = (cpt_err){0};
    CHECK(cpt_lc_needle_prompt(tok, hay, nh, 60, 24, 0.5, &ids, &n, NULL, &e) == CPT_EINVAL && strstr(e.msg, "HINT"));
    e = (cpt_err){0};
    CHECK(cpt_lc_needle_prompt(tok, NULL, 0, 600, 24, 0.5, &ids, &n, NULL, &e) == CPT_EINVAL && strstr(e.msg, "--haystack"));

    /* 4. scoring */
    long long v = 0;
    CHECK(cpt_lc_first_int(" 4242. The pass key", &v) && v == 4242);
    CHECK(cpt_lc_first_int("is the number 07 and 9", &v) && v == 7);
    CHECK(!cpt_lc_first_int(" a magical number", &v));
    CHECK(cpt_lc_needle_hit(" eat a Sandwich and sit in dolores park"));
    CHECK(!cpt_lc_needle_hit(" sit in Dolores Park"));
    CHECK(!cpt_lc_needle_hit(" eat a sandwich"));

    /* 5. prefill = token-by-token decode */
    enum { NP = 45 };
    int32_t p[NP];
    for (int i = 0; i < NP; i++) p[i] = (int32_t)((i * 37 + 11) % 256);
    int V = m->cfg.vocab_size;
    float *la = malloc(sizeof(float) * V), *lb = malloc(sizeof(float) * V);
    cpt_kvcache *ka = NULL, *kb = NULL;
    cpt_acts *a = NULL;
    CHECK_OK(cpt_kvcache_create(&ka, m, NP + 4, &e), &e);
    CHECK_OK(cpt_kvcache_create(&kb, m, NP + 4, &e), &e);
    CHECK_OK(cpt_acts_create(&a, m, 1, NP, 0, &e), &e);
    CHECK_OK(cpt_model_prefill(m, a, ka, p, NP, la, &e), &e);
    for (int i = 0; i < NP; i++) CHECK_OK(cpt_model_decode(m, kb, p[i], lb, &e), &e);
    CHECKF(tu_rel_err(la, lb, (size_t)V) < 1e-5, "prefill logits vs decode: %.3g", tu_rel_err(la, lb, (size_t)V));
    CHECK(cpt_kvcache_len(ka) == NP);
    for (int s = 0; s < 3; s++) {
        CHECK_OK(cpt_model_decode(m, ka, 65 + s, la, &e), &e);
        CHECK_OK(cpt_model_decode(m, kb, 65 + s, lb, &e), &e);
        CHECKF(tu_rel_err(la, lb, (size_t)V) < 1e-5, "decode step %d after prefill: %.3g", s, tu_rel_err(la, lb, (size_t)V));
    }
    e = (cpt_err){0};
    CHECK(cpt_model_prefill(m, a, ka, p, NP, la, &e) == CPT_ESTATE); /* not empty */
    cpt_kvcache_free(ka), cpt_kvcache_free(kb);
    CHECK_OK(cpt_kvcache_create(&ka, m, NP + 4, &e), &e);
    e = (cpt_err){0};
    CHECK(cpt_model_prefill(m, a, ka, p, NP - 1, la, &e) == CPT_EINVAL); /* activations for NP */
    cpt_kvcache_free(ka);
    /* greedy through the prefill (cpt_generate, eval-long's path) = greedy by decode only */
    int32_t g[8], gref[8], eos = m->cfg.eos_id;
    cpt_gen_opts go = {.max_new = 8, .temperature = 0, .top_p = 1, .stop_ids = &eos, .n_stop_ids = 1, .ids_out = g};
    cpt_gen_out gout = {0};
    CHECK_OK(cpt_generate(m, tok, p, NP, &go, &gout, &e), &e);
    int ng = gout.n_tokens;
    CHECK_OK(cpt_kvcache_create(&kb, m, NP + 8, &e), &e);
    for (int i = 0; i < NP; i++) CHECK_OK(cpt_model_decode(m, kb, p[i], lb, &e), &e);
    int nref = 0;
    for (int s = 0; s < 8; s++) {
        int best = 0;
        for (int i = 1; i < V; i++)
            if (lb[i] > lb[best]) best = i;
        gref[nref++] = best;
        if (best == m->cfg.eos_id) break;
        CHECK_OK(cpt_model_decode(m, kb, best, lb, &e), &e);
    }
    cpt_kvcache_free(kb);
    CHECKF(ng == nref && !memcmp(g, gref, sizeof(int32_t) * (size_t)ng), "greedy %d tokens vs %d", ng, nref);
    char *dref = NULL;
    size_t dref_n = 0;
    CHECK_OK(cpt_tok_decode(tok, gref, (size_t)nref, 1, &dref, &dref_n, &e), &e);
    CHECKF(gout.text && dref && !strcmp(gout.text, dref), "the reply text is the decoded ids");
    free(dref), free(gout.text);

    /* 6. per-position losses */
    int32_t tg[NP];
    float ls[NP];
    for (int i = 0; i < NP; i++) tg[i] = i + 1 < NP ? p[i + 1] : -1;
    cpt_batch b = {1, NP, p, tg, NULL, NULL};
    double sum = 0, ref = 0;
    long long nv = 0, nv2 = 0;
    CHECK_OK(cpt_model_token_losses(m, a, &b, ls, &sum, &nv, &e), &e);
    CHECK_OK(cpt_model_step(m, a, &b, NULL, 1.0f, NULL, &ref, &nv2, NULL, &e), &e);
    double acc = 0;
    for (int i = 0; i < NP; i++) acc += ls[i];
    CHECKF(nv == NP - 1 && nv2 == nv && sum == ref && fabs(acc - ref) < 1e-4 * fabs(ref), "losses sum %.9g, step %.9g", acc, ref);
    CHECK(ls[NP - 1] == 0.0f);
    const int spots[3] = {0, 17, NP - 2};
    for (int k = 0; k < 3; k++) {
        int32_t one[NP];
        for (int i = 0; i < NP; i++) one[i] = i == spots[k] ? tg[i] : -1;
        cpt_batch b1 = {1, NP, p, one, NULL, NULL};
        double l1 = 0;
        CHECK_OK(cpt_model_step(m, a, &b1, NULL, 1.0f, NULL, &l1, NULL, NULL, &e), &e);
        CHECKF(fabs(l1 - ls[spots[k]]) <= 1e-6 * fabs(l1) + 1e-7, "position %d: %.9g vs %.9g", spots[k], (double)ls[spots[k]], l1);
    }
    cpt_acts_free(a);

    /* 7. buckets and windows */
    int lo[CPT_LC_MAX_BUCKETS], hi[CPT_LC_MAX_BUCKETS];
    int nb = cpt_lc_buckets(2048, 512, lo, hi);
    CHECK(nb == 3 && lo[0] == 0 && hi[0] == 512 && lo[1] == 512 && hi[1] == 1024 && lo[2] == 1024 && hi[2] == 2048);
    nb = cpt_lc_buckets(300, 512, lo, hi);
    CHECK(nb == 1 && lo[0] == 0 && hi[0] == 300);
    nb = cpt_lc_buckets(5000, 512, lo, hi);
    CHECK(nb == 5 && lo[4] == 4096 && hi[4] == 5000 && hi[3] == 4096);
    int32_t doc[100], doc2[20];
    for (int i = 0; i < 100; i++) doc[i] = (int32_t)((i * 53 + 5) % 256);
    for (int i = 0; i < 20; i++) doc2[i] = 1;
    const int32_t *docs[2] = {doc2, doc};
    size_t dl[2] = {20, 100};
    cpt_lc_ppl pr;
    CHECK_OK(cpt_lc_ppl_run(m, docs, dl, 2, 30, 8, 0, &pr, &e), &e);
    CHECKF(pr.windows == 3 && pr.tokens == 90 && pr.n_buckets == 3, "windows %d tokens %lld buckets %d", pr.windows, pr.tokens, pr.n_buckets);
    double wsum = 0;
    for (int k = 0; k < pr.n_buckets; k++) wsum += pr.bucket_loss[k] * (double)pr.bucket_tokens[k];
    CHECKF(fabs(wsum / 90 - pr.loss) < 1e-5 * pr.loss, "bucket means %.9g vs loss %.9g", wsum / 90, pr.loss);
    /* the window at 30 scored alone = the second window of the run */
    cpt_lc_ppl one;
    const int32_t *d1[1] = {doc + 30};
    size_t l1[1] = {31};
    CHECK_OK(cpt_lc_ppl_run(m, d1, l1, 1, 30, 8, 0, &one, &e), &e);
    CHECK(one.windows == 1 && one.tokens == 30);
    CHECK_OK(cpt_lc_ppl_run(m, docs, dl, 2, 30, 8, 2, &pr, &e), &e);
    CHECK(pr.windows == 2);
    e = (cpt_err){0};
    CHECK(cpt_lc_ppl_run(m, docs, dl, 2, 100, 8, 0, &pr, &e) == CPT_EINVAL && strstr(e.msg, "HINT"));

    /* 8. the SVG: one cell per (test, length, depth) with its counts */
    cpt_lc_trial tr[4] = {{CPT_LC_PASSKEY, 256, 0, 0, 200, 0, 5, NULL, 1, 0},
                          {CPT_LC_PASSKEY, 256, 1, 0, 200, 1, 6, NULL, 0, 0},
                          {CPT_LC_PASSKEY, 512, 0, 0, 400, 0, 7, NULL, 1, 0},
                          {CPT_LC_PASSKEY, 512, 1, 0, 400, 1, 8, NULL, 1, 0}};
    const int lens[2] = {256, 512};
    const double dps[2] = {0, 1};
    cpt_lc_opts o = {0};
    o.lengths = lens, o.n_lengths = 2, o.depths = dps, o.n_depths = 2, o.trials = 1;
    char *svg = cpt_lc_svg(tr, 4, &o, NULL, 0, "t <&>");
    CHECK(svg && count(svg, "<rect data-length=") == 4 && strstr(svg, "data-length=\"256\" data-depth=\"1\" data-correct=\"0\"") &&
          strstr(svg, "t &lt;&amp;&gt;") && !strstr(svg, "loss-by-position"));
    free(svg);

    free(la), free(lb), free(hay);
    cpt_tok_free(tok);
    cpt_model_free(m);
    TEST_END();
}

/* test_mc_score.c: the continuation scorer and the metrics on a tiny random model with a
 * byte-level tokenizer (one token per byte). Independent checks: each log-likelihood
 * equals minus the model's own cross-entropy (the xent kernel, not the scorer's
 * log-softmax) over the continuation positions; the greedy flag agrees with KV-cache
 * decoding's argmax; results do not depend on the batch size; the context's trailing
 * whitespace moves into the continuation (lm-eval's _encode_pair); acc, acc_norm and
 * mean_stderr on hand-computed values; the HellaSwag preprocess and str.capitalize
 * against Python's results written out here; the built-in loaders' file:line errors.
 * (The parity with transformers on real tasks is tests/eval/test_eval_ref.py.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cpt/eval.h"
#include "cpt/model.h"
#include "cpt/tokenizer.h"
#include "testutil.h"

#define CFG                                                                                                  \
    "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 260, \"hidden_size\": 32, \"intermediate_size\": " \
    "48, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, "                 \
    "\"max_position_embeddings\": 96, \"tie_word_embeddings\": false}"

static const char *tmpdir(void) {
    const char *d = getenv("CPT_TMP");
    return d ? d : "/tmp";
}

/* minus the summed cross-entropy of the bytes of `cont` after the bytes of `ctx`, from
 * cpt_model_step's loss (targets only on the continuation positions). */
static double xent_ll(cpt_model *m, const char *ctx, const char *cont) {
    size_t cl = strlen(ctx), kl = strlen(cont), L = cl + kl - 1;
    int32_t *ids = malloc(sizeof(int32_t) * L), *tg = malloc(sizeof(int32_t) * L);
    for (size_t t = 0; t < L; t++) {
        ids[t] = (unsigned char)(t < cl ? ctx[t] : cont[t - cl]);
        size_t nx = t + 1;
        tg[t] = nx >= cl ? (unsigned char)cont[nx - cl] : -1;
    }
    cpt_acts *a = NULL;
    cpt_err e = {0};
    double ls = 0;
    long long nv = 0;
    CHECK_OK(cpt_acts_create(&a, m, 1, (int)L, 0, &e), &e);
    cpt_batch b = {1, (int)L, ids, tg, NULL, NULL};
    CHECK_OK(cpt_model_step(m, a, &b, NULL, 1.0f, NULL, &ls, &nv, NULL, &e), &e);
    CHECK(nv == (long long)kl);
    cpt_acts_free(a);
    free(ids), free(tg);
    return -ls;
}

static int write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

int main(void) {
    cpt_err e = {0};
    cpt_config c;
    cpt_model *m = NULL;
    CHECK_OK(cpt_config_parse(&c, CFG, strlen(CFG), "tiny/config.json", &e), &e);
    CHECK_OK(cpt_model_create(&m, &c, &e), &e);
    cpt_config_free(&c);
    if (!m) TEST_END();
    cpt_model_init_random(m, 7, 0.3f);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/test_mc_score_tok", tmpdir());
    mkdir(dir, 0755);
    cpt_tok *tok = NULL;
    CHECK_OK(cpt_tok_write_bytelevel(dir, &e), &e);
    CHECK_OK(cpt_tok_load(&tok, dir, &e), &e);
    if (!tok) TEST_END();

    /* 1. log-likelihoods = -cross-entropy of the continuation, batch-independent */
    const char *ctx[5] = {"The cat sat on", "Once upon a", "x", "A longer context about many things, then", "Q: 2+2?\nA:"};
    const char *cont[5] = {" the mat.", " time", "yz", " a short end", " 4"};
    double ll1[5], ll3[5];
    int gr[5], nt[5];
    CHECK_OK(cpt_eval_loglik(m, tok, ctx, cont, 5, 1, ll1, gr, nt, &e), &e);
    CHECK_OK(cpt_eval_loglik(m, tok, ctx, cont, 5, 3, ll3, NULL, NULL, &e), &e);
    for (int i = 0; i < 5; i++) {
        double want = xent_ll(m, ctx[i], cont[i]);
        /* fp32 cross-entropy vs the scorer's double log-softmax of fp32 logits */
        CHECKF(fabs(ll1[i] - want) <= 1e-4 * (1 + fabs(want)), "pair %d: ll %.8f, -xent %.8f", i, ll1[i], want);
        CHECKF(fabs(ll1[i] - ll3[i]) <= 1e-5 * (1 + fabs(want)), "pair %d: batch 1 %.8f vs 3 %.8f", i, ll1[i], ll3[i]);
        CHECK(nt[i] == (int)strlen(cont[i]));
        CHECK(ll1[i] < 0);
    }

    /* 2. trailing whitespace of the context moves to the continuation: both pairs become
     * the same tokens, so scored one per batch (same shapes, same arithmetic) they match
     * bit for bit. In one batch of 2 the rows sit at different positions of the sgemm
     * tiles, and OpenBLAS's AVX2 kernels round some rows of a tile differently, so there
     * the check is the batch-size tolerance of section 1. */
    const char *c2[2] = {"abc ", "abc"}, *k2[2] = {"de", " de"};
    double ll2[2], ll2b[2];
    CHECK_OK(cpt_eval_loglik(m, tok, c2, k2, 2, 1, ll2, NULL, nt, &e), &e);
    CHECKF(ll2[0] == ll2[1], "%.9g vs %.9g", ll2[0], ll2[1]);
    CHECK(nt[0] == 3 && nt[1] == 3);
    CHECK_OK(cpt_eval_loglik(m, tok, c2, k2, 2, 2, ll2b, NULL, nt, &e), &e);
    CHECKF(fabs(ll2b[0] - ll2b[1]) <= 1e-5 * (1 + fabs(ll2[0])), "batch 2: %.9g vs %.9g", ll2b[0], ll2b[1]);
    CHECK(nt[0] == 3 && nt[1] == 3);

    /* 3. greedy flag = every continuation token is KV-cache decoding's argmax: find a
     * context whose greedy bytes are printable ASCII, 3 of them */
    int found = 0;
    for (int s = 0; s < 64 && !found; s++) {
        char gctx[8] = {(char)('a' + s % 26), (char)('A' + s / 26), 'e', 0}, gcont[8] = {0};
        cpt_kvcache *kv = NULL;
        CHECK_OK(cpt_kvcache_create(&kv, m, 32, &e), &e);
        float *lg = malloc(sizeof(float) * 260);
        int ok = 1;
        for (int t = 0; t < 3; t++) CHECK_OK(cpt_model_decode(m, kv, (unsigned char)gctx[t], lg, &e), &e);
        for (int j = 0; j < 3 && ok; j++) {
            int am = 0;
            for (int v = 1; v < 260; v++)
                if (lg[v] > lg[am]) am = v;
            if (am < 0x21 || am > 0x7e) ok = 0;
            else {
                gcont[j] = (char)am;
                CHECK_OK(cpt_model_decode(m, kv, am, lg, &e), &e);
            }
        }
        free(lg);
        cpt_kvcache_free(kv);
        if (!ok) continue;
        found = 1;
        char bad[8];
        memcpy(bad, gcont, 8);
        bad[2] = bad[2] == 'q' ? 'r' : 'q';
        const char *gc[2] = {gctx, gctx}, *gk[2] = {gcont, bad};
        int g[2];
        double gl[2];
        CHECK_OK(cpt_eval_loglik(m, tok, gc, gk, 2, 2, gl, g, NULL, &e), &e);
        CHECKF(g[0] == 1 && g[1] == 0, "greedy '%s' -> %d, '%s' -> %d", gcont, g[0], bad, g[1]);
        CHECK(gl[0] > gl[1]);
    }
    CHECKF(found, "no context with a printable greedy continuation (change the seed)");

    /* 4. mean_stderr: {1,0,1,1}: mean 0.75, sample std 0.5, stderr 0.25 */
    double xs[4] = {1, 0, 1, 1}, mu, se;
    cpt_eval_mean_stderr(xs, 4, &mu, &se);
    CHECK(fabs(mu - 0.75) < 1e-15 && fabs(se - 0.25) < 1e-15);
    cpt_eval_mean_stderr(xs, 1, &mu, &se);
    CHECK(mu == 1 && se == 0);

    /* 5. a task: acc = argmax of ll, acc_norm = argmax of ll / len(choice) */
    char *ch0[3] = {"a", "bbbbbbbbbbbb", "cc"}, *ch1[2] = {"yes", "no"}, *ch2[2] = {"zz", "z"};
    cpt_mc_item items[3] = {{"The letter", ch0, 3, 1, NULL}, {"Is it?", ch1, 2, 0, NULL}, {"End", ch2, 2, 1, NULL}};
    cpt_mc_task t = {items, 3, CPT_TASK_MC, 1, " ", NULL};
    cpt_eval_opts o = {0, 0, 1234, 4};
    cpt_eval_result r;
    CHECK_OK(cpt_eval_task_run(m, tok, &t, &o, &r, &e), &e);
    CHECK(r.n == 3);
    double acc = 0, accn = 0, hit[3], hitn[3];
    for (int i = 0; i < 3 && r.n == 3; i++) {
        const char *cc[3];
        char buf[3][64];
        for (int k = 0; k < items[i].n_choices; k++) snprintf(buf[k], 64, " %s", items[i].choices[k]), cc[k] = buf[k];
        const char *cx[3] = {items[i].context, items[i].context, items[i].context};
        double l[3];
        CHECK_OK(cpt_eval_loglik(m, tok, cx, cc, (size_t)items[i].n_choices, 1, l, NULL, NULL, &e), &e);
        int am = 0, an = 0;
        for (int k = 0; k < items[i].n_choices; k++) {
            CHECKF(fabs(l[k] - r.ll[r.ll_off[i] + (size_t)k]) < 1e-5, "item %d choice %d", i, k);
            if (l[k] > l[am]) am = k;
            if (l[k] / (double)strlen(items[i].choices[k]) > l[an] / (double)strlen(items[i].choices[an])) an = k;
        }
        CHECK(r.pred[i] == am && r.pred_norm[i] == an);
        hit[i] = am == items[i].gold, hitn[i] = an == items[i].gold;
        acc += hit[i] / 3, accn += hitn[i] / 3;
    }
    CHECK(fabs(r.acc - acc) < 1e-12 && fabs(r.acc_norm - accn) < 1e-12);
    cpt_eval_mean_stderr(hit, 3, &mu, &se);
    CHECK(fabs(r.acc_stderr - se) < 1e-12);
    cpt_eval_result_free(&r);

    /* few-shot: distinct indices, never the item itself, the same for the same (seed, i) */
    int sh[4], sh2[4];
    CHECK(cpt_eval_fewshot_pick(6, 2, 4, 1234, sh) == CPT_OK);
    CHECK(cpt_eval_fewshot_pick(6, 2, 4, 1234, sh2) == CPT_OK);
    for (int a = 0; a < 4; a++) {
        CHECK(sh[a] != 2 && sh[a] >= 0 && sh[a] < 6 && sh[a] == sh2[a]);
        for (int b = 0; b < a; b++) CHECK(sh[a] != sh[b]);
    }
    CHECK(cpt_eval_fewshot_pick(4, 0, 4, 1, sh) != CPT_OK);
    o.fewshot = 2;
    CHECK_OK(cpt_eval_task_run(m, tok, &t, &o, &r, &e), &e);
    CHECK(r.fewshot == 2 && r.shots[0] != 0 && r.shots[1] != 0);
    cpt_eval_result_free(&r);

    /* 6. HellaSwag preprocess and capitalize: Python's results for these inputs */
    char *p = cpt_eval_hellaswag_preprocess("  A man [header] is  sitting [title] here [x\n] ok [y]. ");
    CHECKF(p && !strcmp(p, "A man is sitting. here [x\n] ok ."), "got '%s'", p ? p : "(null)");
    free(p);
    p = cpt_eval_capitalize("hELLO wORLD \xc3\x89T\xc3\x89");
    CHECKF(p && !strcmp(p, "Hello world \xc3\xa9t\xc3\xa9"), "got '%s'", p ? p : "(null)");
    free(p);

    /* 7. built-in loaders: a malformed line names file:line; unknown names list the tasks */
    char dd[600], hs[700], want[800];
    snprintf(dd, sizeof dd, "%s/test_mc_score_data", tmpdir());
    mkdir(dd, 0755);
    snprintf(hs, sizeof hs, "%s/hellaswag", dd);
    mkdir(hs, 0755);
    snprintf(hs, sizeof hs, "%s/hellaswag/hellaswag_val_1k.jsonl", dd);
    CHECK(write_file(hs, "{\"activity_label\": \"Cooking\", \"ctx_a\": \"A man cuts.\", \"ctx_b\": \"he THEN\", "
                         "\"endings\": [\"eats.\", \"[step] sleeps.\"], \"label\": 1}\n"
                         "{\"activity_label\": \"X\", \"ctx_a\": \"a\", \"ctx_b\": \"b\", \"endings\": [\"c\"], \"label\": 0}\n") == 0);
    cpt_mc_task bt;
    e = (cpt_err){0};
    CHECK(cpt_eval_task_load(&bt, "hellaswag", dd, 0, &e) == CPT_EFORMAT);
    snprintf(want, sizeof want, "%s:2:", hs);
    CHECKF(strstr(e.msg, want) && strstr(e.msg, "HINT"), "message '%s'", e.msg);
    CHECK(write_file(hs, "{\"activity_label\": \"Cooking\", \"ctx_a\": \"A man cuts.\", \"ctx_b\": \"he THEN\", "
                         "\"endings\": [\"eats.\", \"[step] sleeps.\"], \"label\": 1}\n") == 0);
    CHECK_OK(cpt_eval_task_load(&bt, "hellaswag", dd, 0, &e), &e);
    if (bt.n == 1) {
        CHECKF(!strcmp(bt.items[0].context, "Cooking: A man cuts. He then"), "'%s'", bt.items[0].context);
        CHECK(!strcmp(bt.items[0].choices[1], " sleeps.") && bt.items[0].gold == 1);
    }
    cpt_mc_task_free(&bt);
    e = (cpt_err){0};
    CHECK(cpt_eval_task_load(&bt, "no_such_task", dd, 0, &e) == CPT_ENOTFOUND);
    CHECK(strstr(e.msg, "hellaswag") && strstr(e.msg, "HINT"));

    /* Winogrande and LAMBADA lines: fields as loaded, and a bad line named by file:line */
    char lf[700];
    snprintf(lf, sizeof lf, "%s/llm-foundry", dd);
    mkdir(lf, 0755);
    snprintf(lf, sizeof lf, "%s/llm-foundry/winogrande.jsonl", dd);
    CHECK(write_file(lf, "{\"context_options\": [\"A so A\", \"A so B\"], \"continuation\": \"won.\", \"gold\": 1}\n"
                         "{\"context_options\": [\"x\", \"y\"], \"continuation\": 3, \"gold\": 0}\n") == 0);
    e = (cpt_err){0};
    CHECK(cpt_eval_task_load(&bt, "winogrande", dd, 0, &e) == CPT_EFORMAT);
    snprintf(want, sizeof want, "%s:2:", lf);
    CHECKF(strstr(e.msg, want) && strstr(e.msg, "HINT"), "message '%s'", e.msg);
    CHECK(write_file(lf, "{\"context_options\": [\"A so A\", \"A so B\"], \"continuation\": \"won.\", \"gold\": 1}\n") == 0);
    CHECK_OK(cpt_eval_task_load(&bt, "winogrande", dd, 0, &e), &e);
    CHECK(bt.n == 1 && bt.kind == CPT_TASK_PARTIAL && !bt.has_norm && !strcmp(bt.items[0].suffix, "won.") &&
          !strcmp(bt.items[0].choices[1], "A so B"));
    cpt_mc_task_free(&bt);
    snprintf(lf, sizeof lf, "%s/llm-foundry/lambada_openai.jsonl", dd);
    CHECK(write_file(lf, "{\"context\": \"He said\", \"continuation\": \"hello\"}\n{\"context\": \"x\"}\n") == 0);
    e = (cpt_err){0};
    CHECK(cpt_eval_task_load(&bt, "lambada_openai", dd, 0, &e) == CPT_EFORMAT);
    snprintf(want, sizeof want, "%s:2:", lf);
    CHECKF(strstr(e.msg, want) && strstr(e.msg, "HINT"), "message '%s'", e.msg);
    CHECK(write_file(lf, "{\"context\": \"He said\", \"continuation\": \"hello\"}\n") == 0);
    CHECK_OK(cpt_eval_task_load(&bt, "lambada_openai", dd, 0, &e), &e);
    CHECK(bt.n == 1 && bt.kind == CPT_TASK_CLOZE && !strcmp(bt.delim, "") && !strcmp(bt.items[0].choices[0], " hello"));
    cpt_mc_task_free(&bt);

    cpt_tok_free(tok);
    cpt_model_free(m);
    TEST_END();
}

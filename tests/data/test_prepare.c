/* test_prepare.c: the prepare pipeline on hand-made inputs (.jsonl, .txt.gz, .jsonl.zst) with
 * the GPT-2 tokenizer from CPT_SHARED: each document's fate is known in advance, the
 * accounting identity holds, shards hold exactly encode(text) + EOS in input order, the
 * validation split has the requested size, and two runs give identical bytes. */
#include <jansson.h>
#include <stdint.h>

#include "cpt/fileio.h"
#include "cpt/prepare.h"
#include "cpt/shard.h"
#include "cpt/tokenizer.h"
#include "testutil.h"

#ifdef CPT_HAVE_ZLIB
#include <zlib.h>
#endif
#ifdef CPT_HAVE_ZSTD
#include <zstd.h>
#endif

static uint64_t rs = 5;
static const char *vocab[48] = {
    "harbor", "lantern", "meadow", "copper", "winter", "garden", "pillar", "market", "silver", "forest",
    "bridge", "candle", "ribbon", "valley", "thunder", "pepper", "window", "castle", "anchor", "basket",
    "feather", "marble", "orchard", "saddle", "timber", "velvet", "whistle", "compass", "harvest", "journal",
    "kettle", "ladder", "mirror", "needle", "quarry", "rocket", "shovel", "tunnel", "umbrella", "voyage",
    "wagon", "yonder", "zephyr", "blanket", "cactus", "dolphin", "engine", "fabric"};
static const char *pick(void) {
    rs = rs * 6364136223846793005ull + 1442695040888963407ull;
    return vocab[(rs >> 33) % 48];
}

/* A document of 12 lines that passes Gopher and C4 (checked by the test itself below). */
static char *gen_doc(void) {
    char *d = malloc(4096);
    size_t k = 0;
    for (int s = 0; s < 12; s++)
        k += (size_t)snprintf(d + k, 4096 - k, "%sThe %s %s of the %s %s and %s %s.", s ? "\n" : "", pick(), pick(),
                              pick(), pick(), pick(), pick());
    return d;
}

static char *jsonl_line(const char *text) {
    json_t *o = json_pack("{s:s}", "text", text);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static char dir[4096];
static char *tp(const char *name) {
    static char b[8][4300];
    static int i;
    i = (i + 1) % 8;
    snprintf(b[i], sizeof b[i], "%s/%s", dir, name);
    return b[i];
}

static int same_file(const char *a, const char *b) {
    char *x, *y;
    size_t nx, ny;
    cpt_err e = {0};
    if (cpt_read_file(a, &x, &nx, &e) || cpt_read_file(b, &y, &ny, &e)) return 0;
    int same = nx == ny && memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return same;
}

int main(void) {
    const char *shared = tu_env("CPT_SHARED"), *tmp = tu_env("CPT_TMP");
    char tokpath[4200];
    snprintf(tokpath, sizeof tokpath, "%s/data/tokenizers/gpt2/hf/tokenizer.json", shared ? shared : "/nonexistent");
    if (!cpt_is_file(tokpath)) TEST_SKIP("no GPT-2 tokenizer at %s", tokpath);
    snprintf(dir, sizeof dir, "%s/test_prepare", tmp ? tmp : "/tmp");
    cpt_err err = {0};
    CHECK_OK(cpt_mkdirs(dir, &err), &err);

    char *G[6];
    for (int i = 0; i < 6; i++) G[i] = gen_doc();
    /* Sanity: the generated documents pass every filter family on their own. */
    cpt_filter_cfg fc;
    cpt_filter_cfg_default(&fc);
    for (int i = 0; i < 6; i++) {
        char *o;
        size_t on;
        int r = cpt_filter_apply(&fc, G[i], strlen(G[i]), &o, &on, NULL, &err);
        CHECKF(r == CPT_FR_KEEP && o && strcmp(o, G[i]) == 0, "generated doc %d: %s", i, cpt_filter_rule_name(r));
        free(o);
    }
    /* G2 is contaminated: the eval file holds its first two lines (20 words, so 13-grams
     * of G2) after a prefix that G2 lacks. */
    char eval_line[512];
    const char *nl = strchr(strchr(G[2], '\n') + 1, '\n');
    snprintf(eval_line, sizeof eval_line, "Question: %.*s\n", (int)(nl - G[2]), G[2]);
    *strchr(eval_line, '\n') = ' '; /* one eval item per line: join G2's two lines */
    CHECK_OK(cpt_write_file_atomic(tp("eval.txt"), eval_line, strlen(eval_line), &err), &err);

    /* near duplicate of G0: one word changed in line 6 (5 of 116 shingles differ, J = 111/121) */
    char *near = strdup(G[0]);
    char *l6 = near;
    for (int i = 0; i < 6; i++) l6 = strchr(l6, '\n') + 1;
    memcpy(l6, "Abc", 3); /* "The" -> "Abc" */
    char *dupws = malloc(strlen(G[0]) + 8);
    sprintf(dupws, "  %s \n ", G[0]); /* an exact duplicate: the key (before the filters) strips the ends */
    char *curly = malloc(strlen(G[3]) + 64);
    sprintf(curly, "%s\nThe code is { x } here.", G[3]);

    /* a.jsonl: fates G0 keep, dup exact, 2 malformed, blank, curly filtered, curly again (an
     * exact duplicate, not filtered a second time: dedup sees the text before the filters),
     * near dup, G2 contaminated, G1 keep. */
    const char *texts[] = {G[0], dupws, NULL, NULL, "", curly, curly, near, G[2], G[1]};
    char *js = malloc(1 << 16);
    size_t k = 0;
    for (int i = 0; i < 10; i++) {
        if (i == 2) k += (size_t)sprintf(js + k, "{\"txt\": \"wrong field\"}\n");
        else if (i == 3) k += (size_t)sprintf(js + k, "not json at all\n");
        else if (i == 4) k += (size_t)sprintf(js + k, "   \n");
        else {
            char *l = jsonl_line(texts[i]);
            k += (size_t)sprintf(js + k, "%s\n", l);
            free(l);
        }
    }
    CHECK_OK(cpt_write_file_atomic(tp("a.jsonl"), js, k, &err), &err);
    free(js);
    const char *inputs[3] = {tp("a.jsonl"), NULL, NULL};
    size_t n_inputs = 1;
    int n_kept_expected = 2;
    const char *kept_texts[4] = {G[0], G[1], NULL, NULL};
#ifdef CPT_HAVE_ZLIB
    {
        gzFile gz = gzopen(tp("b.txt.gz"), "wb");
        gzwrite(gz, G[4], (unsigned)strlen(G[4]));
        gzclose(gz);
        inputs[n_inputs++] = strdup(tp("b.txt.gz"));
        kept_texts[n_kept_expected++] = G[4];
    }
#endif
#ifdef CPT_HAVE_ZSTD
    {
        char *l = jsonl_line(G[5]);
        size_t cap = ZSTD_compressBound(strlen(l) + 1);
        char *z = malloc(cap), *src = malloc(strlen(l) + 2);
        sprintf(src, "%s\n", l);
        size_t zn = ZSTD_compress(z, cap, src, strlen(src), 3);
        CHECK(!ZSTD_isError(zn));
        CHECK_OK(cpt_write_file_atomic(tp("c.jsonl.zst"), z, zn, &err), &err);
        inputs[n_inputs++] = strdup(tp("c.jsonl.zst"));
        kept_texts[n_kept_expected++] = G[5];
        free(l);
        free(z);
        free(src);
    }
#endif
    inputs[0] = strdup(inputs[0]);

    cpt_prepare_cfg cfg;
    cpt_prepare_cfg_default(&cfg);
    cfg.inputs = inputs;
    cfg.n_inputs = n_inputs;
    cfg.tokenizer = tokpath;
    char out1[4300], out2[4300];
    snprintf(out1, sizeof out1, "%s/out1", dir);
    snprintf(out2, sizeof out2, "%s/out2", dir);
    cfg.out_dir = out1;
    const char *evals[1] = {strdup(tp("eval.txt"))};
    cfg.eval_files = evals;
    cfg.n_eval = 1;
    cfg.val_docs = 1;
    cfg.shard_tokens = 300; /* ~140 tokens per document: several train shards */
    cpt_prepare_stats st;
    CHECK_OK(cpt_prepare_run(&cfg, &st, &err), &err);

    uint64_t docs_in = 9 + (uint64_t)(n_inputs - 1);
    CHECKF(st.docs_in == docs_in && st.kept == (uint64_t)n_kept_expected && st.malformed == 2 && st.filtered == 1 &&
               st.filter.dropped[CPT_FR_C4_CURLY] == 1 && st.exact_duplicates == 2 && st.near_duplicates == 1 &&
               st.contaminated == 1,
           "in %llu kept %llu mal %llu filt %llu exact %llu near %llu contam %llu", (unsigned long long)st.docs_in,
           (unsigned long long)st.kept, (unsigned long long)st.malformed, (unsigned long long)st.filtered,
           (unsigned long long)st.exact_duplicates, (unsigned long long)st.near_duplicates,
           (unsigned long long)st.contaminated);
    CHECK(st.docs_in == st.kept + st.malformed + st.filtered + st.exact_duplicates + st.contaminated + st.near_duplicates);
    CHECK(st.val_docs == 1 && st.train_docs == st.kept - 1);

    /* Shards: train-*, val-00000; every document is encode(text, add_special) + EOS, and
     * the train documents come in input order. */
    cpt_tok *tok = NULL;
    CHECK_OK(cpt_tok_load(&tok, tokpath, &err), &err);
    int eos = tok ? cpt_tok_eos(tok) : -1;
    CHECK(eos == 50256);
    int matched[4] = {0}, order_ok = 1, last = -1;
    uint64_t tokens = 0, shards_seen = 0;
    for (int split = 0; split < 2 && tok; split++) {
        for (uint64_t s = 0;; s++) {
            char name[4400];
            snprintf(name, sizeof name, "%s/%s-%05llu.shard", out1, split ? "val" : "train", (unsigned long long)s);
            if (!cpt_is_file(name)) break;
            shards_seen++;
            cpt_shard *sh = NULL;
            CHECK_OK(cpt_shard_open(&sh, name, &err), &err);
            if (!sh) break;
            CHECK_OK(cpt_shard_verify(sh, &err), &err);
            CHECK(cpt_shard_vocab_size(sh) == 50257 && cpt_shard_token_bytes(sh) == 2);
            for (uint64_t d = 0; d < cpt_shard_n_docs(sh); d++) {
                uint64_t a, n;
                cpt_shard_doc_range(sh, d, &a, &n);
                uint32_t *got = malloc(n * 4);
                cpt_shard_tokens(sh, a, n, got);
                tokens += n;
                int which = -1;
                for (int t = 0; t < n_kept_expected && which < 0; t++) {
                    int32_t *ids;
                    size_t ni;
                    cpt_tok_encode(tok, kept_texts[t], strlen(kept_texts[t]), 1, &ids, &ni, NULL, &err);
                    int eq = ni + 1 == n && got[ni] == (uint32_t)eos;
                    for (size_t q = 0; eq && q < ni; q++) eq = got[q] == (uint32_t)ids[q];
                    if (eq) which = t;
                    free(ids);
                }
                CHECKF(which >= 0, "%s doc %llu matches no kept document", name, (unsigned long long)d);
                if (which >= 0) {
                    matched[which]++;
                    if (!split) {
                        order_ok &= which > last;
                        last = which;
                    }
                }
                free(got);
            }
            cpt_shard_close(sh);
        }
    }
    for (int t = 0; t < n_kept_expected; t++) CHECKF(matched[t] == 1, "kept doc %d found %d times", t, matched[t]);
    CHECK(order_ok);
    CHECK(tokens == st.train_tokens + st.val_tokens);
    CHECK(shards_seen == st.train_shards + st.val_shards && st.train_shards >= 2 && st.val_shards == 1);

    /* stats.json */
    json_error_t je;
    json_t *j = json_load_file(tp("out1/stats.json"), 0, &je);
    CHECKF(j != NULL, "stats.json: %s", je.text);
    if (j) {
        CHECK(json_integer_value(json_object_get(j, "docs_in")) == (json_int_t)docs_in);
        CHECK(json_integer_value(json_object_get(json_object_get(j, "filtered_by_rule"), "c4_curly_bracket")) == 1);
        CHECK(json_integer_value(json_object_get(j, "near_duplicates")) == 1);
        json_decref(j);
    }

    /* Determinism: a second run on one thread (the first used the OpenMP default) gives
     * the same bytes. */
    cfg.out_dir = out2;
    cfg.threads = 1;
    cpt_prepare_stats st2;
    CHECK_OK(cpt_prepare_run(&cfg, &st2, &err), &err);
    CHECK(same_file(tp("out1/train-00000.shard"), tp("out2/train-00000.shard")));
    CHECK(same_file(tp("out1/val-00000.shard"), tp("out2/val-00000.shard")));
    CHECK(same_file(tp("out1/train-00001.shard"), tp("out2/train-00001.shard")));

    /* A missing input is an error naming it. */
    const char *missing[1] = {tp("nope.jsonl")};
    cfg.inputs = missing;
    cfg.n_inputs = 1;
    cpt_err e2 = {0};
    CHECK(cpt_prepare_run(&cfg, &st2, &e2) == CPT_ENOTFOUND && strstr(e2.msg, "nope.jsonl"));

    cpt_tok_free(tok);
    for (size_t i = 0; i < n_inputs; i++) free((char *)inputs[i]);
    free((char *)evals[0]);
    for (int i = 0; i < 6; i++) free(G[i]);
    free(near);
    free(dupws);
    free(curly);
    TEST_END();
}

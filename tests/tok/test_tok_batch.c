/* test_tok_batch.c: the C side of the HF parity test (test_tok_parity.py), and a
 * small self-check when run alone.
 *
 *   test_tok_batch TOKENIZER IN.json OUT.json
 * IN.json:  {"texts": ["...", ...]}
 * OUT.json: {"plain": [[ids]...], "special": [[ids]...], "dec": ["..."], "dec_skip": ["..."],
 *            "replaced": [n...], "bos"/"eos"/"pad"/"unk": id or -1, "vocab": n}
 * plain/special = encode without/with special tokens; dec/dec_skip = decode of the
 * "special" ids without/with skip_special. Documents are encoded with
 * cpt_tok_encode_batch on 2 threads, so the batch path is what parity checks.
 *   test_tok_batch --sanitize IN.bin OUT.bin   (see run_sanitize; test_tok_utf8.py)
 * Alone (no arguments) it checks batch == single-document encoding on GPT-2. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/fileio.h"
#include "cpt/tokenizer.h"
#include "testutil.h"

static json_t *ids_json(const int32_t *v, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(a, json_integer(v[i]));
    return a;
}

static int run_batch(const char *tok_path, const char *in_path, const char *out_path) {
    cpt_err err = {0};
    cpt_tok *t = NULL;
    if (cpt_tok_load(&t, tok_path, &err)) {
        fprintf(stderr, "load: %s\n", err.msg);
        return 2;
    }
    json_error_t je;
    json_t *in = json_load_file(in_path, JSON_ALLOW_NUL, &je);
    json_t *texts = in ? json_object_get(in, "texts") : NULL;
    if (!json_is_array(texts)) {
        fprintf(stderr, "%s: bad input: %s\n", in_path, je.text);
        return 2;
    }
    size_t n = json_array_size(texts);
    const char **tx = calloc(n + 1, sizeof *tx);
    size_t *ln = calloc(n + 1, sizeof *ln), *np = calloc(n + 1, sizeof *np), *ns = calloc(n + 1, sizeof *ns);
    size_t *rep = calloc(n + 1, sizeof *rep);
    int32_t **ip = calloc(n + 1, sizeof *ip), **is = calloc(n + 1, sizeof *is);
    for (size_t i = 0; i < n; i++) {
        tx[i] = json_string_value(json_array_get(texts, i));
        ln[i] = json_string_length(json_array_get(texts, i));
    }
    int rc = cpt_tok_encode_batch(t, tx, ln, n, 0, 2, ip, np, rep, &err);
    if (!rc) rc = cpt_tok_encode_batch(t, tx, ln, n, 1, 2, is, ns, NULL, &err);
    if (rc) {
        fprintf(stderr, "encode: %s\n", err.msg);
        return 2;
    }
    json_t *out = json_object(), *jp = json_array(), *js = json_array(), *jd = json_array(),
           *jk = json_array(), *jr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(jp, ids_json(ip[i], np[i]));
        json_array_append_new(js, ids_json(is[i], ns[i]));
        json_array_append_new(jr, json_integer((json_int_t)rep[i]));
        for (int skip = 0; skip < 2; skip++) {
            char *s = NULL;
            size_t sl = 0;
            if (cpt_tok_decode(t, is[i], ns[i], skip, &s, &sl, &err)) {
                fprintf(stderr, "decode: %s\n", err.msg);
                return 2;
            }
            json_array_append_new(skip ? jk : jd, json_stringn(s, sl));
            free(s);
        }
        free(ip[i]);
        free(is[i]);
    }
    json_object_set_new(out, "plain", jp);
    json_object_set_new(out, "special", js);
    json_object_set_new(out, "dec", jd);
    json_object_set_new(out, "dec_skip", jk);
    json_object_set_new(out, "replaced", jr);
    json_object_set_new(out, "bos", json_integer(cpt_tok_bos(t)));
    json_object_set_new(out, "eos", json_integer(cpt_tok_eos(t)));
    json_object_set_new(out, "pad", json_integer(cpt_tok_pad(t)));
    json_object_set_new(out, "unk", json_integer(cpt_tok_unk(t)));
    json_object_set_new(out, "vocab", json_integer(cpt_tok_vocab_size(t)));
    rc = json_dump_file(out, out_path, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(out);
    json_decref(in);
    free(tx), free(ln), free(np), free(ns), free(rep), free(ip), free(is);
    cpt_tok_free(t);
    return rc ? 2 : 0;
}

/* --sanitize IN OUT: IN holds records (u32 little-endian length, bytes); OUT gets
 * (u32 length, sanitized bytes, u32 replacement count) per record. */
static int run_sanitize(const char *in_path, const char *out_path) {
    FILE *in = fopen(in_path, "rb"), *out = fopen(out_path, "wb");
    if (!in || !out) return 2;
    uint32_t n;
    while (fread(&n, 4, 1, in) == 1) {
        char *b = malloc(n + 1), *o = NULL;
        size_t ol = 0;
        if (!b || fread(b, 1, n, in) != n) return 2;
        long r = cpt_tok_utf8_sanitize(b, n, &o, &ol);
        if (r < 0) return 2;
        uint32_t l32 = (uint32_t)ol, r32 = (uint32_t)r;
        fwrite(&l32, 4, 1, out);
        fwrite(o, 1, ol, out);
        fwrite(&r32, 4, 1, out);
        free(b);
        free(o);
    }
    fclose(in);
    return fclose(out) ? 2 : 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "--sanitize")) return run_sanitize(argv[2], argv[3]);
    if (argc == 4) return run_batch(argv[1], argv[2], argv[3]);
    const char *shared = tu_env("CPT_SHARED");
    if (!shared) TEST_SKIP("CPT_SHARED not set");
    char path[4096];
    snprintf(path, sizeof path, "%s/data/tokenizers/gpt2/hf/tokenizer.json", shared);
    cpt_err err = {0};
    cpt_tok *t = NULL;
    /* Only a missing file is a skip; a tokenizer that is there but does not load is a bug. */
    if (!cpt_is_file(path)) TEST_SKIP("no GPT-2 tokenizer at %s", path);
    if (cpt_tok_load(&t, path, &err)) {
        CHECKF(0, "cpt_tok_load %s: %s", path, err.msg);
        TEST_END();
    }
    /* Hand-checked GPT-2 ids: "Hello world" = Hello(15496) Ġworld(995). */
    int32_t *ids = NULL;
    size_t n = 0, rep = 9;
    CHECK_OK(cpt_tok_encode(t, "Hello world", 11, 1, &ids, &n, &rep, &err), &err);
    CHECK(n == 2 && ids[0] == 15496 && ids[1] == 995);
    CHECK(rep == 0);
    free(ids);
    /* Batch on 2 threads must equal one-by-one encoding. */
    const char *docs[] = {"The quick brown fox", "", "<|endoftext|>x", "caf\xc3\xa9 \xff\xfe!", "  a  b  "};
    size_t lens[5], on[5], orep[5];
    int32_t *oids[5];
    for (int i = 0; i < 5; i++) lens[i] = strlen(docs[i]);
    CHECK_OK(cpt_tok_encode_batch(t, docs, lens, 5, 0, 2, oids, on, orep, &err), &err);
    for (int i = 0; i < 5; i++) {
        int32_t *one = NULL;
        size_t m = 0, r1 = 0;
        CHECK_OK(cpt_tok_encode(t, docs[i], lens[i], 0, &one, &m, &r1, &err), &err);
        CHECKF(m == on[i] && !memcmp(one, oids[i], m * sizeof *one), "doc %d", i);
        CHECKF(r1 == orep[i], "doc %d replaced %zu vs %zu", i, r1, orep[i]);
        /* "<|endoftext|>x": the special token is matched inside text, then "x" (87). */
        if (i == 2) CHECK(on[i] == 2 && oids[i][0] == 50256 && oids[i][1] == 87);
        free(one);
        free(oids[i]);
    }
    CHECK(orep[3] == 2); /* \xff and \xfe are one U+FFFD each */
    CHECK(on[1] == 0);
    cpt_tok_free(t);
    TEST_END();
}

/* test_prepare_inputs.c: input expansion (directories, globs), blank-line text documents,
 * and "nothing lost silently": every malformed document counted under its reason and listed
 * by file and line, strict mode failing on the first one, empty files counted, and the
 * accounting identity in every run. Expectations are hand-computed from the files written. */
#include <jansson.h>

#include "cpt/fileio.h"
#include "cpt/prepare.h"
#include "data/reader.h"
#include "testutil.h"

static char dir[4096];
static char *tp(const char *name) {
    static char b[16][4400];
    static int i;
    i = (i + 1) % 16;
    snprintf(b[i], sizeof b[i], "%s/%s", dir, name);
    return b[i];
}

static void put(const char *name, const char *data, size_t n) {
    cpt_err e = {0};
    if (cpt_write_file_atomic(tp(name), data, n, &e)) fprintf(stderr, "write %s: %s\n", name, e.msg);
}
static void puts0(const char *name, const char *s) { put(name, s, strlen(s)); }

static int identity(const cpt_prepare_stats *st) {
    uint64_t mb = 0;
    for (int k = 0; k < CPT_PREP_N_REASONS; k++) mb += st->malformed_by[k];
    return st->docs_in == st->kept + st->malformed + st->filtered + st->exact_duplicates + st->contaminated +
                              st->near_duplicates &&
           st->kept == st->train_docs + st->val_docs && mb == st->malformed;
}

static const char *base(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

int main(void) {
    const char *shared = tu_env("CPT_SHARED"), *tmp = tu_env("CPT_TMP");
    snprintf(dir, sizeof dir, "%s/test_prepare_inputs", tmp ? tmp : "/tmp");
    cpt_err err = {0};
    CHECK_OK(cpt_mkdirs(tp("corpus/a/deep"), &err), &err);
    CHECK_OK(cpt_mkdirs(tp("corpus/.git"), &err), &err);

    /* ---- expansion: recursive, sorted, corpus extensions only, no hidden names ---- */
    puts0("corpus/b.txt", "b");
    puts0("corpus/a/x.jsonl", "{\"text\": \"x\"}\n");
    puts0("corpus/a/deep/y.txt.zst", "not really zstd");
    puts0("corpus/.hidden.txt", "h");
    puts0("corpus/.git/c.txt", "c");
    puts0("corpus/notes.bin", "n");
    puts0("corpus/A.jsonl.gz", "g");
    {
        const char *args[] = {tp("corpus")};
        char **f = NULL;
        size_t n = 0;
        CHECK_OK(cpt_prepare_expand_inputs(args, 1, &f, &n, &err), &err);
        /* bytewise order: "A.jsonl.gz" < "a/deep/y.txt.zst" < "a/x.jsonl" < "b.txt" */
        const char *want[] = {"corpus/A.jsonl.gz", "corpus/a/deep/y.txt.zst", "corpus/a/x.jsonl", "corpus/b.txt"};
        CHECKF(n == 4, "%zu files", n);
        for (size_t i = 0; i < n && i < 4; i++) CHECKF(strcmp(f[i], tp(want[i])) == 0, "%zu: %s", i, f[i]);
        cpt_prepare_free_inputs(f, n);
    }
    {
        char pat[4400];
        snprintf(pat, sizeof pat, "%s/corpus/*.txt", dir);
        const char *args[] = {pat, tp("corpus/notes.bin")}; /* an explicit file is taken whatever its name */
        char **f = NULL;
        size_t n = 0;
        CHECK_OK(cpt_prepare_expand_inputs(args, 2, &f, &n, &err), &err);
        CHECK(n == 2 && f && !strcmp(f[0], tp("corpus/b.txt")) && !strcmp(f[1], tp("corpus/notes.bin")));
        cpt_prepare_free_inputs(f, n);
        snprintf(pat, sizeof pat, "%s/corpus/*.nothing", dir);
        cpt_err e = {0};
        CHECK(cpt_prepare_expand_inputs(args, 1, &f, &n, &e) == CPT_ENOTFOUND && strstr(e.msg, "*.nothing"));
        const char *miss[] = {tp("corpus/missing.txt")};
        cpt_err e2 = {0};
        CHECK(cpt_prepare_expand_inputs(miss, 1, &f, &n, &e2) == CPT_ENOTFOUND && strstr(e2.msg, "missing.txt"));
    }

    /* ---- blank-line documents: start lines, whitespace-only separators, CRLF ---- */
    puts0("para.txt", "\n\nfirst para line one\nline two\n \t\r\nsecond\r\n\r\n\n\nthird at end");
    {
        drd *r = NULL;
        CHECK_OK(drd_open(&r, tp("para.txt"), NULL, 1, &err), &err);
        const char *want[] = {"first para line one\nline two", "second\r", "third at end"};
        size_t lines[] = {3, 6, 10}, k = 0;
        const char *t;
        size_t n, line;
        int mal, rc;
        while (r && (rc = drd_next(r, &t, &n, &mal, &line, &err)) == 1) {
            CHECKF(k < 3 && n == strlen(want[k]) && !memcmp(t, want[k], n) && line == lines[k] && !mal,
                   "doc %zu: '%.*s' line %zu", k, (int)n, t, line);
            k++;
        }
        CHECK(k == 3);
        drd_close(r);
    }

    char tokpath[4200];
    snprintf(tokpath, sizeof tokpath, "%s/data/tokenizers/gpt2/hf/tokenizer.json", shared ? shared : "/nonexistent");
    /* The rest needs the real tokenizer: without it the test reports skipped (failed
     * under CI=true, or if a check above failed), never passed. */
    if (!cpt_is_file(tokpath)) TEST_SKIP("rest of the test: no GPT-2 tokenizer at %s", tokpath);

    /* ---- malformed inputs, each reason by file and line ---- */
    const char *jl = "{\"text\": \"good one\"}\n"  /* 1 kept */
                     "{\"text\": \"broken\"\n"     /* 2 bad_json */
                     "{\"body\": \"wrong field\"}\n" /* 3 no_field */
                     "{\"text\": \"bad \xff byte\"}\n" /* 4 invalid_utf8 (JSON line) */
                     "\n"                            /* 5 blank: not a document */
                     "{\"text\": \"   \"}\n"        /* 6 empty */
                     "[1, 2]\n"                      /* 7 bad_json: not an object */
                     "{\"text\": 7}\n";              /* 8 no_field: not a string */
    puts0("m.jsonl", jl);
    puts0("t.txt", "line one ok\nline two ok\nbad \xc3( here\nafter\n\nnext para fine\n");
    put("empty.txt", "", 0);
    put("empty.jsonl", "", 0);
    cpt_prepare_cfg cfg;
    cpt_prepare_cfg_default(&cfg);
    cfg.filters = 0;
    cfg.exact_dedup = cfg.near_dedup = 0;
    cfg.val_fraction = 0;
    cfg.tokenizer = tokpath;
    cfg.txt_blank = 1;
    char *ins[4] = {strdup(tp("m.jsonl")), strdup(tp("empty.txt")), strdup(tp("t.txt")), strdup(tp("empty.jsonl"))};
    cfg.inputs = (const char *const *)ins;
    cfg.n_inputs = 4;
    char out[4400];
    snprintf(out, sizeof out, "%s/out", dir);
    cfg.out_dir = out;
    cpt_prepare_stats st;
    CHECK_OK(cpt_prepare_run(&cfg, &st, &err), &err);
    /* m.jsonl: 7 documents (the blank line is none), 1 kept; t.txt (blank mode): 2 paragraphs,
     * the first with invalid UTF-8 on its line 3. */
    CHECKF(st.docs_in == 9 && st.kept == 2 && st.malformed == 7, "in %llu kept %llu mal %llu",
           (unsigned long long)st.docs_in, (unsigned long long)st.kept, (unsigned long long)st.malformed);
    CHECK(st.malformed_by[CPT_PREP_BAD_JSON] == 2 && st.malformed_by[CPT_PREP_NO_FIELD] == 2 &&
          st.malformed_by[CPT_PREP_BAD_UTF8] == 2 && st.malformed_by[CPT_PREP_EMPTY] == 1);
    CHECK(st.files == 4 && st.empty_files == 2);
    CHECK(identity(&st));
    struct {
        size_t file, line;
        int why;
    } want[] = {{0, 2, CPT_PREP_BAD_JSON}, {0, 3, CPT_PREP_NO_FIELD}, {0, 4, CPT_PREP_BAD_UTF8},
                {0, 6, CPT_PREP_EMPTY},    {0, 7, CPT_PREP_BAD_JSON}, {0, 8, CPT_PREP_NO_FIELD},
                {2, 3, CPT_PREP_BAD_UTF8}};
    CHECKF(st.n_issues == 7, "%zu issues", st.n_issues);
    for (size_t i = 0; i < st.n_issues && i < 7; i++)
        CHECKF(st.issues[i].file == want[i].file && st.issues[i].line == want[i].line && st.issues[i].reason == want[i].why,
               "issue %zu: file %zu line %llu %s", i, st.issues[i].file, (unsigned long long)st.issues[i].line,
               cpt_prepare_reason_name(st.issues[i].reason));
    json_error_t je;
    json_t *j = json_load_file(tp("out/stats.json"), 0, &je);
    CHECKF(j != NULL, "stats.json: %s", je.text);
    if (j) {
        json_t *iss = json_object_get(j, "first_issues");
        CHECK(json_array_size(iss) == 7);
        json_t *last = json_array_get(iss, 6);
        CHECK(last && !strcmp(base(json_string_value(json_object_get(last, "file"))), "t.txt") &&
              json_integer_value(json_object_get(last, "line")) == 3 &&
              !strcmp(json_string_value(json_object_get(last, "reason")), "invalid_utf8"));
        CHECK(json_integer_value(json_object_get(json_object_get(j, "malformed_by_reason"), "bad_json")) == 2);
        CHECK(json_integer_value(json_object_get(j, "empty_files")) == 2);
        json_decref(j);
    }

    /* ---- strict: the first defect is an error naming file and line ---- */
    cfg.strict = 1;
    cpt_err e = {0};
    CHECK(cpt_prepare_run(&cfg, &st, &e) == CPT_EFORMAT && strstr(e.msg, "m.jsonl:2:") && strstr(e.msg, "JSON"));
    cfg.inputs = (const char *const *)(ins + 2); /* t.txt alone: invalid UTF-8 on line 3 */
    cfg.n_inputs = 1;
    cpt_err e3 = {0};
    CHECK(cpt_prepare_run(&cfg, &st, &e3) == CPT_EFORMAT && strstr(e3.msg, "t.txt:3:") && strstr(e3.msg, "UTF-8"));
    /* strict with only whitespace documents: not an input defect, so it runs */
    puts0("ws.txt", "para\n\n   \n\nother\n");
    char *ws[1] = {strdup(tp("ws.txt"))};
    cfg.inputs = (const char *const *)ws;
    CHECK_OK(cpt_prepare_run(&cfg, &st, &err), &err);
    CHECK(st.docs_in == 2 && st.kept == 2 && identity(&st));
    /* one document per file: the whole file, empty files yield none */
    cfg.txt_blank = 0;
    cfg.strict = 0;
    CHECK_OK(cpt_prepare_run(&cfg, &st, &err), &err);
    CHECK(st.docs_in == 1 && st.kept == 1 && st.train_docs == 1 && identity(&st));

    /* ---- more than CPT_PREPARE_MAX_ISSUES defects: all counted, the first 10 listed ---- */
    char big[4096];
    size_t k = 0;
    for (int i = 0; i < 25; i++) k += (size_t)snprintf(big + k, sizeof big - k, "%s\n", i % 4 ? "nope" : "{\"text\": \"ok\"}");
    puts0("many.jsonl", big);
    char *many[1] = {strdup(tp("many.jsonl"))};
    cfg.inputs = (const char *const *)many;
    CHECK_OK(cpt_prepare_run(&cfg, &st, &err), &err);
    /* lines 1, 5, ..., 25 are good: 7 kept, 18 bad, the first 10 listed */
    CHECK(st.docs_in == 25 && st.malformed == 18 && st.kept == 7 && st.n_issues == CPT_PREPARE_MAX_ISSUES);
    CHECK(identity(&st));
    size_t wl[] = {2, 3, 4, 6, 7, 8, 10, 11, 12, 14};
    for (size_t i = 0; i < st.n_issues && i < 10; i++) CHECK(st.issues[i].line == wl[i]);

    /* ---- a run that keeps nothing is an error naming the top reason and its option ---- */
    puts0("nofield.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\"}\nnot json\n");
    char *nf[1] = {strdup(tp("nofield.jsonl"))};
    cfg.inputs = (const char *const *)nf;
    cfg.text_field = "body";
    snprintf(out, sizeof out, "%s/out_none", dir);
    cpt_err e4 = {0};
    CHECK(cpt_prepare_run(&cfg, &st, &e4) == CPT_EINVAL);
    CHECKF(strstr(e4.msg, "kept 0 of 3") && strstr(e4.msg, "malformed removed 3") &&
               strstr(e4.msg, "HINT: --text-field NAME (no string field \"body\")"), "%s", e4.msg);
    CHECK(st.docs_in == 3 && st.kept == 0 && identity(&st));
    CHECK(cpt_is_file(tp("out_none/stats.json")));
    cfg.text_field = NULL;
    /* ... and a length range that keeps nothing names it */
    cfg.min_doc_tokens = 1000000;
    snprintf(out, sizeof out, "%s/out_short", dir);
    cpt_err e5 = {0};
    CHECK(cpt_prepare_run(&cfg, &st, &e5) == CPT_EINVAL && strstr(e5.msg, "too_short removed 2") &&
          strstr(e5.msg, "--min-doc-tokens"));
    CHECK(st.too_short == 2 && st.kept == 0 && st.malformed == 1 && st.train_docs == 0);
    cfg.min_doc_tokens = 0;

    /* ---- kinds under kind auto, by path ---- */
    CHECK(cpt_prepare_file_kind("src/a.py", 0) == CPT_KIND_CODE);
    CHECK(cpt_prepare_file_kind("b.c.gz", 1) == CPT_KIND_CODE);
    CHECK(cpt_prepare_file_kind("lib.rs.zst", 0) == CPT_KIND_CODE);
    CHECK(cpt_prepare_file_kind("c.jsonl", 0) == CPT_KIND_AUTO);
    CHECK(cpt_prepare_file_kind("c.jsonl.gz", 0) == CPT_KIND_AUTO);
    CHECK(cpt_prepare_file_kind("novel.txt", 0) == CPT_KIND_BOOK);
    CHECK(cpt_prepare_file_kind("novel.txt.zst", 0) == CPT_KIND_BOOK);
    CHECK(cpt_prepare_file_kind("pages.txt", 1) == CPT_KIND_AUTO);
    CHECK(cpt_prepare_file_kind("notes.c/readme.txt", 0) == CPT_KIND_BOOK);
    CHECK(cpt_prepare_file_kind("dir/.c", 0) == CPT_KIND_BOOK); /* a hidden name, not a C file */
    for (int i = 0; i < 4; i++) free(ins[i]);
    free(ws[0]);
    free(many[0]);
    free(nf[0]);
    TEST_END();
}

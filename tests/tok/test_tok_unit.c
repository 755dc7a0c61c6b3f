/* test_tok_unit.c: hand-computed checks of the tokenizer's pieces: UTF-8
 * replacement, the byte-level alphabet, BPE merge order on a toy vocabulary,
 * ignore_merges / byte_fallback / unk, and errors for malformed files. */
#include <stdlib.h>
#include <string.h>

#include "cpt/fileio.h"
#include "cpt/tokenizer.h"
#include "testutil.h"
#include "tok/tok_impl.h"

#define FFFD "\xEF\xBF\xBD"

static void utf8_case(const char *in, size_t n, const char *want, long want_rep) {
    char *out = NULL;
    size_t ol = 0;
    long r = cpt_tok_utf8_sanitize(in, n, &out, &ol);
    CHECKF(r == want_rep, "replacements %ld, want %ld", r, want_rep);
    CHECKF(ol == strlen(want) && !memcmp(out, want, ol), "output for a %zu-byte input", n);
    free(out);
}

static char tmpdir[4096];

static int write_tok(const char *name, const char *json, char *path, size_t cap) {
    snprintf(path, cap, "%s/%s", tmpdir, name);
    cpt_err e = {0};
    return cpt_write_file_atomic(path, json, strlen(json), &e);
}

/* Load `json`; expect status `code` and an error naming the file and `field`. */
static void bad_file(const char *json, int code, const char *field) {
    char path[4300];
    CHECK(write_tok("bad_tokenizer.json", json, path, sizeof path) == 0);
    cpt_tok *t = NULL;
    cpt_err e = {0};
    int rc = cpt_tok_load(&t, path, &e);
    CHECKF(rc == code, "rc %d want %d for field %s (%s)", rc, code, field, e.msg);
    CHECKF(t == NULL, "handle must be NULL on failure");
    CHECKF(strstr(e.msg, path) != NULL, "message names the file: %s", e.msg);
    CHECKF(strstr(e.msg, field) != NULL, "message names '%s': %s", field, e.msg);
    CHECKF(strstr(e.msg, "HINT") != NULL, "message has a HINT: %s", e.msg);
}

static void enc(cpt_tok *t, const char *s, int add_special, const int32_t *want, size_t nw) {
    int32_t *ids = NULL;
    size_t n = 0;
    cpt_err e = {0};
    CHECK_OK(cpt_tok_encode(t, s, strlen(s), add_special, &ids, &n, NULL, &e), &e);
    int same = n == nw && (nw == 0 || !memcmp(ids, want, nw * sizeof *ids));
    CHECKF(same, "encode \"%s\": got %zu ids", s, n);
    if (!same)
        for (size_t i = 0; i < n; i++) fprintf(stderr, "  id[%zu] = %d\n", i, ids[i]);
    free(ids);
}

#define TOY_HEAD                                                                            \
    "{\"added_tokens\": [{\"id\": 9, \"content\": \"<s>\", \"special\": true, \"lstrip\": false," \
    " \"rstrip\": false, \"single_word\": false, \"normalized\": false}],"                  \
    " \"normalizer\": null, \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"String\": \" \"}," \
    " \"behavior\": \"Removed\", \"invert\": false},"                                       \
    " \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\":"  \
    " {\"id\": \"<s>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}],"   \
    " \"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [9], \"tokens\": [\"<s>\"]}}},"  \
    " \"decoder\": {\"type\": \"Sequence\", \"decoders\": [{\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}]},"

int main(void) {
    /* --- UTF-8 replacement, expectations from Python's bytes.decode(errors="replace") */
    utf8_case("abc", 3, "abc", 0);
    utf8_case("\xff", 1, FFFD, 1);
    utf8_case("\xe2\x82", 2, FFFD, 1);                    /* truncated: one U+FFFD */
    utf8_case("\xe2\x82" "A", 3, FFFD "A", 1);
    utf8_case("\xed\xa0\x80", 3, FFFD FFFD FFFD, 3);     /* surrogate: byte by byte */
    utf8_case("\xf0\x80\x80\x80", 4, FFFD FFFD FFFD FFFD, 4); /* overlong */
    utf8_case("\xf4\x90\x80\x80", 4, FFFD FFFD FFFD FFFD, 4); /* > U+10FFFF */
    utf8_case("\xc0\xaf", 2, FFFD FFFD, 2);
    utf8_case("\xf0\x9f\x98", 3, FFFD, 1);
    utf8_case("\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80", 0);
    utf8_case("a\x80" "b", 3, "a" FFFD "b", 1);
    utf8_case("\xf0\x9f\x98" "\xf0\x9f\x98\x80", 7, FFFD "\xf0\x9f\x98\x80", 1);
    {
        char *o = NULL;
        size_t ol = 0;
        CHECK(cpt_tok_utf8_sanitize("a\0b", 3, &o, &ol) == 0 && ol == 3 && o[1] == 0 && o[2] == 'b');
        free(o);
    }

    /* --- GPT-2 byte alphabet: printable bytes are themselves, the rest U+0100.. */
    CHECK(tok_cp_to_byte('A') == 'A');
    CHECK(tok_cp_to_byte(0x100) == 0x00);
    CHECK(tok_cp_to_byte(0x10A) == '\n'); /* "Ċ" */
    CHECK(tok_cp_to_byte(0x120) == ' ');  /* "Ġ" */
    CHECK(tok_cp_to_byte(0x121) == 0x7F);
    CHECK(tok_cp_to_byte(0x143) == 0xAD); /* the last one */
    CHECK(tok_cp_to_byte(0x144) == -1);
    CHECK(tok_cp_to_byte(0xE9) == 0xE9);

    const char *tmp = tu_env("CPT_TMP");
    snprintf(tmpdir, sizeof tmpdir, "%s", tmp ? tmp : "/tmp");

    /* --- toy BPE. merges: "b c" (rank 0) before "a b" (rank 1), so "abc" -> a + bc;
     * "abd" -> ab + d; byte fallback for 'é' (C3 A9); unknown 'z' -> <unk>. */
    char path[4300];
    const char *toy = TOY_HEAD
        " \"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"byte_fallback\": true,"
        " \"fuse_unk\": true, \"ignore_merges\": %s,"
        " \"vocab\": {\"<unk>\": 0, \"a\": 1, \"b\": 2, \"c\": 3, \"d\": 4, \"ab\": 5, \"bc\": 6, \"abc\": 7,"
        " \"<0xC3>\": 10, \"<0xA9>\": 11},"
        " \"merges\": [\"b c\", [\"a\", \"b\"], \"ab c\"]}}";
    char json[4096];
    snprintf(json, sizeof json, toy, "false");
    CHECK(write_tok("toy_tokenizer.json", json, path, sizeof path) == 0);
    cpt_tok *t = NULL;
    cpt_err e = {0};
    CHECK_OK(cpt_tok_load(&t, path, &e), &e);
    if (t) {
        enc(t, "abc", 0, (int32_t[]){1, 6}, 2);
        enc(t, "abd", 0, (int32_t[]){5, 4}, 2);
        enc(t, "abc abd", 1, (int32_t[]){9, 1, 6, 5, 4}, 5);
        enc(t, "a\xc3\xa9", 0, (int32_t[]){1, 10, 11}, 3);
        enc(t, "azzb", 0, (int32_t[]){1, 0, 2}, 3); /* fuse_unk: "zz" -> one <unk> */
        enc(t, "<s>ab<s>", 0, (int32_t[]){9, 5, 9}, 3);
        enc(t, "", 1, (int32_t[]){9}, 1);
        CHECK(cpt_tok_vocab_size(t) == 12);
        CHECK(cpt_tok_bos(t) == 9); /* from the template: no tokenizer_config.json */
        CHECK(cpt_tok_eos(t) == -1);
        CHECK(cpt_tok_chat_template(t) == NULL);
        CHECK(cpt_tok_piece(t, 6) && !strcmp(cpt_tok_piece(t, 6), "bc"));
        CHECK(cpt_tok_piece(t, 8) == NULL && cpt_tok_piece(t, 99) == NULL);
        CHECK(cpt_tok_is_special(t, 9) && !cpt_tok_is_special(t, 1));
        char *s = NULL;
        size_t sl = 0;
        int32_t d[] = {9, 1, 10, 11, 6, 10, 8, 77};
        CHECK_OK(cpt_tok_decode(t, d, 8, 0, &s, &sl, &e), &e);
        /* <s> a é bc, then a lone <0xC3> -> U+FFFD; ids 8 and 77 unknown -> skipped */
        CHECKF(s && !strcmp(s, "<s>a\xc3\xa9" "bc" FFFD), "decode: %s", s ? s : "(null)");
        free(s);
        CHECK_OK(cpt_tok_decode(t, d, 8, 1, &s, &sl, &e), &e);
        CHECKF(s && !strcmp(s, "a\xc3\xa9" "bc" FFFD), "decode skip: %s", s ? s : "(null)");
        free(s);
        cpt_tok_free(t);
    }
    snprintf(json, sizeof json, toy, "true");
    CHECK(write_tok("toy2_tokenizer.json", json, path, sizeof path) == 0);
    t = NULL;
    CHECK_OK(cpt_tok_load(&t, path, &e), &e);
    if (t) {
        enc(t, "abc", 0, (int32_t[]){7}, 1); /* ignore_merges: whole word is in vocab */
        enc(t, "abd", 0, (int32_t[]){5, 4}, 2);
        cpt_tok_free(t);
    }

    /* --- malformed files: status, file name, field and HINT in the message */
    bad_file("{\"model\": ", CPT_EFORMAT, "invalid JSON");
    bad_file("[1, 2]", CPT_EFORMAT, "(root)");
    bad_file("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", CPT_EUNSUPPORTED, "model.type");
    bad_file("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}}}", CPT_EFORMAT, "model.vocab");
    bad_file("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a\", \"a q\"]}}",
             CPT_EFORMAT, "model.merges[0]");
    bad_file("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a q\"]}}",
             CPT_EFORMAT, "model.merges[0]");
    bad_file("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"unk_token\": \"<unk>\"}}",
             CPT_EFORMAT, "model.unk_token");
    bad_file("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"pre_tokenizer\": {\"type\": \"Split\","
             " \"pattern\": {\"Regex\": \"(\"}, \"behavior\": \"Isolated\"}}",
             CPT_EFORMAT, "pre_tokenizer.pattern.Regex");
    bad_file("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"pre_tokenizer\": {\"type\": \"Split\","
             " \"pattern\": {\"String\": \" \"}, \"behavior\": \"Sideways\"}}",
             CPT_EFORMAT, "pre_tokenizer");
    bad_file("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"added_tokens\": [{\"id\": 1}]}",
             CPT_EFORMAT, "added_tokens[0]");
    bad_file("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"normalizer\": {\"type\": \"BertNormalizer\"}}",
             CPT_EUNSUPPORTED, "normalizer");
    bad_file("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"a\": 1}}}", CPT_EFORMAT, "duplicate");
    bad_file("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"dropout\": 0.1}}", CPT_EUNSUPPORTED,
             "model.dropout");
    {
        cpt_tok *x = NULL;
        cpt_err e2 = {0};
        CHECK(cpt_tok_load(&x, "/nonexistent/tokenizer.json", &e2) < 0 && x == NULL);
        CHECK(strstr(e2.msg, "/nonexistent/tokenizer.json") != NULL);
        cpt_err e3 = {0};
        CHECK(cpt_tok_load(&x, "/nonexistent/tokenizer.model", &e3) < 0 && x == NULL);
        CHECK(strstr(e3.msg, "/nonexistent/tokenizer.model") != NULL);
    }
    TEST_END();
}

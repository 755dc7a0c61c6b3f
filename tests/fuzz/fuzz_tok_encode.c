/* fuzz_tok_encode.c: libFuzzer target for cpt_tok_encode/decode on a byte-level BPE
 * tokenizer built in memory (Llama-3-style Split regex + ByteLevel, added tokens with
 * lstrip/rstrip/single_word). Property checked: ids are in range, and because a
 * byte-level tokenizer without normalizer is lossless, decode(encode(x)) equals x
 * with invalid UTF-8 replaced as cpt_tok_utf8_sanitize does (unless the text holds
 * the whitespace-stripping <mask>). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpt/tokenizer.h"
#include "tok/tok_impl.h"

static cpt_tok *g_tok;

static void put_json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static cpt_tok *build(void) {
    char path[] = "/tmp/fuzz_tok_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) abort();
    FILE *f = fdopen(fd, "w");
    fputs("{\"added_tokens\": ["
          "{\"id\": 300, \"content\": \"<s>\", \"special\": true, \"lstrip\": false, \"rstrip\": false, \"single_word\": false, \"normalized\": false},"
          "{\"id\": 301, \"content\": \"<mask>\", \"special\": true, \"lstrip\": true, \"rstrip\": true, \"single_word\": false, \"normalized\": false},"
          "{\"id\": 302, \"content\": \"word\", \"special\": false, \"lstrip\": false, \"rstrip\": false, \"single_word\": true, \"normalized\": true}],"
          "\"normalizer\": null,"
          "\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": "
          "\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},"
          " \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": false}]},"
          "\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}},"
          " {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], \"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [300], \"tokens\": [\"<s>\"]}}},"
          "\"decoder\": {\"type\": \"ByteLevel\"},"
          "\"model\": {\"type\": \"BPE\", \"ignore_merges\": true, \"vocab\": {",
          f);
    for (uint32_t cp = 0, n = 0; cp < 324; cp++) {
        if (tok_cp_to_byte(cp) < 0) continue;
        char u[5] = {0};
        tok_utf8_put(cp, u);
        if (n++) fputc(',', f);
        put_json_str(f, u);
        fprintf(f, ": %d", tok_cp_to_byte(cp));
    }
    fputs(", \"\xc4\xa0t\": 256, \"he\": 257, \"\xc4\xa0the\": 258, \"\xc4\xa0\xc4\xa0\": 259},"
          " \"merges\": [\"\xc4\xa0 t\", \"h e\", \"\xc4\xa0t he\", [\"\xc4\xa0\", \"\xc4\xa0\"]]}}",
          f);
    fclose(f);
    cpt_tok *t = NULL;
    cpt_err err = {0};
    int rc = cpt_tok_load(&t, path, &err);
    unlink(path);
    if (rc) {
        fprintf(stderr, "fuzz_tok_encode: %s\n", err.msg);
        abort();
    }
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_tok) g_tok = build();
    if (size == 0) return 0;
    int add_special = data[0] & 1;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    int32_t *ids = NULL;
    size_t n = 0, rep = 0;
    cpt_err err = {0};
    if (cpt_tok_encode(g_tok, text, len, add_special, &ids, &n, &rep, &err)) abort();
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= cpt_tok_vocab_size(g_tok)) abort();
    if (add_special && (n == 0 || ids[0] != 300)) abort();
    char *dec = NULL, *clean = NULL;
    size_t dl = 0, cl = 0;
    if (cpt_tok_decode(g_tok, ids, n, 0, &dec, &dl, &err)) abort();
    long r = cpt_tok_utf8_sanitize(text, len, &clean, &cl);
    if (r < 0 || (size_t)r != rep) abort();
    /* With add_special the template's "<s>" comes first in the decoded text. <mask>
     * strips the whitespace around it (lstrip/rstrip), so lossless only without it. */
    size_t skip = add_special ? 3 : 0;
    if (!memmem(clean, cl, "<mask>", 6) && (dl != cl + skip || memcmp(dec + skip, clean, cl))) abort();
    free(ids);
    free(dec);
    free(clean);
    return 0;
}

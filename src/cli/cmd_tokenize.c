/* cmd_tokenize.c: `cpt tokenize` (stdin text -> ids or pieces) and `cpt detokenize`
 * (stdin ids -> text). Thin wrappers over include/cpt/tokenizer.h. */
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "cpt/tokenizer.h"


/* All of stdin as bytes (may contain NUL). */
static int read_stdin(char **out, size_t *len, cpt_err *err) {
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    if (!b) return cpt_err_set(err, CPT_ENOMEM, "stdin: out of memory");
    for (;;) {
        if (n == cap) {
            char *nb = cap > ((size_t)1 << 40) ? NULL : realloc(b, cap * 2);
            if (!nb) {
                free(b);
                return cpt_err_set(err, CPT_ENOMEM, "stdin: out of memory after %zu bytes", n);
            }
            b = nb;
            cap *= 2;
        }
        size_t k = fread(b + n, 1, cap - n, stdin);
        n += k;
        if (k == 0) break;
    }
    if (ferror(stdin)) {
        free(b);
        return cpt_err_set(err, CPT_EIO, "stdin: read error after %zu bytes", n);
    }
    *out = b;
    *len = n;
    return 0;
}

int cpt_cmd_tokenize(int argc, char **argv) {
    const char *tok_path = NULL;
    int no_special = 0, pieces = 0;
    cpt_opt opts[] = {
        {"--tokenizer", CPT_OPT_STR, &tok_path, "PATH", "tokenizer.json, a SentencePiece tokenizer.model, or a directory holding one", 1, 0, 0, NULL, 0},
        {"--no-special", CPT_OPT_FLAG, &no_special, NULL, "do not add the template's special tokens (e.g. BOS)", 0, 0, 0, NULL, 0},
        {"--pieces", CPT_OPT_FLAG, &pieces, NULL, "print token strings instead of ids", 0, 0, 0, NULL, 0},
    };
    cpt_cmd_spec spec = {"tokenize",
                         "Read all of stdin as one text (bytes exactly as given) and print its token ids on one\n"
                         "line, separated by spaces. Invalid UTF-8 is replaced by U+FFFD (count on stderr).",
                         NULL, opts, CPT_NOPTS(opts), NULL, NULL};
    int prc = cpt_opts_parse(&spec, argc, argv);
    if (prc) return prc == 1 ? 0 : 2;
    cpt_err err = {0};
    cpt_tok *t = NULL;
    char *text = NULL;
    size_t len = 0, n = 0, rep = 0;
    int32_t *ids = NULL;
    int rc = cpt_tok_load(&t, tok_path, &err);
    if (!rc) rc = read_stdin(&text, &len, &err);
    if (!rc) rc = cpt_tok_encode(t, text, len, !no_special, &ids, &n, &rep, &err);
    if (!rc) {
        for (size_t i = 0; i < n; i++) {
            if (i) putchar(' ');
            if (pieces) fputs(cpt_tok_piece(t, ids[i]) ? cpt_tok_piece(t, ids[i]) : "", stdout);
            else printf("%d", (int)ids[i]);
        }
        putchar('\n');
        if (rep) fprintf(stderr, "cpt tokenize: replaced %zu invalid UTF-8 sequence(s) with U+FFFD\n", rep);
        if (fflush(stdout)) rc = cpt_err_set(&err, CPT_EIO, "stdout: write failed");
    }
    free(text);
    free(ids);
    cpt_tok_free(t);
    return rc ? cpt_cli_fail("tokenize", &err) : 0;
}

int cpt_cmd_detokenize(int argc, char **argv) {
    const char *tok_path = NULL;
    int skip_special = 0;
    cpt_opt opts[] = {
        {"--tokenizer", CPT_OPT_STR, &tok_path, "PATH", "tokenizer.json, a SentencePiece tokenizer.model, or a directory holding one", 1, 0, 0, NULL, 0},
        {"--skip-special", CPT_OPT_FLAG, &skip_special, NULL, "drop special tokens from the text", 0, 0, 0, NULL, 0},
    };
    cpt_cmd_spec spec = {"detokenize",
                         "Read whitespace-separated token ids from stdin and print their text (no newline added).",
                         NULL, opts, CPT_NOPTS(opts), NULL, NULL};
    int prc = cpt_opts_parse(&spec, argc, argv);
    if (prc) return prc == 1 ? 0 : 2;
    cpt_err err = {0};
    cpt_tok *t = NULL;
    char *in = NULL, *text = NULL;
    size_t len = 0, n = 0, tl = 0;
    int32_t *ids = NULL;
    int rc = cpt_tok_load(&t, tok_path, &err);
    if (!rc) rc = read_stdin(&in, &len, &err);
    if (!rc) {
        /* cpt_parse_ids wants a NUL-terminated string. */
        char *z = realloc(in, len + 1);
        if (!z) rc = cpt_err_set(&err, CPT_ENOMEM, "stdin: out of memory");
        else {
            in = z;
            in[len] = '\0';
        }
    }
    if (!rc) rc = cpt_parse_ids(in, "stdin", &ids, &n, &err);
    if (!rc) rc = cpt_tok_decode(t, ids, n, skip_special, &text, &tl, &err);
    if (!rc && (fwrite(text, 1, tl, stdout) != tl || fflush(stdout)))
        rc = cpt_err_set(&err, CPT_EIO, "stdout: write failed");
    free(in);
    free(ids);
    free(text);
    cpt_tok_free(t);
    return rc ? cpt_cli_fail("detokenize", &err) : 0;
}

/* fuzz_tok_spm_load.c: libFuzzer target for the SentencePiece tokenizer.model loader
 * (hand-written protobuf reader, charsmap trie check). The input is written to a
 * .model file and loaded. A failed load must carry a message; a successful one must
 * encode a fixed set of texts to ids inside the vocabulary, and decode them (and
 * every id of the vocabulary) to valid UTF-8. Any crash, leak or sanitizer report is
 * a bug. Seeds: tests/tok/make_spm_seeds.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpt/tokenizer.h"
#include "fuzz_spm_vocab.h"

static void check_decode(const cpt_tok *t, const int32_t *ids, size_t n) {
    char *s = NULL, *clean = NULL;
    size_t sl = 0, cl = 0;
    cpt_err err = {0};
    for (int skip = 0; skip < 2; skip++) {
        if (cpt_tok_decode(t, ids, n, skip, &s, &sl, &err) != 0) abort();
        long r = cpt_tok_utf8_sanitize(s, sl, &clean, &cl);
        if (r != 0 || strlen(s) > sl) abort(); /* valid UTF-8, NUL-terminated */
        free(clean);
        free(s);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char dir[] = "/tmp/fuzz_tokspm_XXXXXX";
    if (!mkdtemp(dir)) return 0;
    char path[64];
    snprintf(path, sizeof path, "%s/tokenizer.model", dir);
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    cpt_tok *t = NULL;
    cpt_err err = {0};
    if (cpt_tok_load(&t, path, &err) == 0) {
        static const char *texts[] = {"Hello world", "  lead  and\ttrail  ", "\xff caf\xc3\xa9 \xe2\x96\x81x",
                                      "ABC abc <s> [INST] \xef\xbc\xa1 \xef\xac\x81", ""};
        int vocab = cpt_tok_vocab_size(t);
        for (size_t k = 0; k < sizeof texts / sizeof *texts; k++) {
            for (int special = 0; special < 2; special++) {
                int32_t *ids = NULL;
                size_t n = 0;
                if (cpt_tok_encode(t, texts[k], strlen(texts[k]), special, &ids, &n, NULL, &err) != 0) abort();
                for (size_t i = 0; i < n; i++)
                    if (ids[i] < 0 || ids[i] >= vocab) abort();
                check_decode(t, ids, n);
                free(ids);
            }
        }
        int32_t all[512];
        int m = vocab < 512 ? vocab : 512;
        for (int i = 0; i < m; i++) all[i] = i;
        check_decode(t, all, (size_t)m);
        fuzz_check_spm_vocab(t);
        cpt_tok_free(t);
    } else if (err.code == 0 || !err.msg[0] || !strstr(err.msg, path)) {
        abort(); /* every failure must come with a message naming the file */
    }
    unlink(path);
    rmdir(dir);
    return 0;
}

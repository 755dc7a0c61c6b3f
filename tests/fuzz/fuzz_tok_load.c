/* fuzz_tok_load.c: libFuzzer target for the tokenizer.json loader. The input is
 * written to a file and loaded; a successful load must then encode and decode a
 * fixed text without failing. Any crash, leak or sanitizer report is a bug. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpt/tokenizer.h"
#include "fuzz_spm_vocab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char dir[] = "/tmp/fuzz_tokload_XXXXXX";
    if (!mkdtemp(dir)) return 0;
    char path[64];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    cpt_tok *t = NULL;
    cpt_err err = {0};
    if (cpt_tok_load(&t, dir, &err) == 0) {
        static const char text[] = "Hello world <s> \xff caf\xc3\xa9  123\n";
        int32_t *ids = NULL;
        size_t n = 0;
        if (cpt_tok_encode(t, text, sizeof text - 1, 1, &ids, &n, NULL, &err) == 0) {
            char *s = NULL;
            size_t sl = 0;
            if (cpt_tok_decode(t, ids, n, 1, &s, &sl, &err) == 0) free(s);
            free(ids);
        }
        fuzz_check_spm_vocab(t);
        cpt_tok_free(t);
    } else if (err.code == 0 || !err.msg[0]) {
        abort(); /* every failure must come with a message */
    }
    unlink(path);
    rmdir(dir);
    return 0;
}

/* fuzz_shard.c: libFuzzer target for the shard reader (open checks, document access, verify). */
#include <stdint.h>
#include <stdlib.h>

#include "cpt/shard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cpt_err err = {0};
    cpt_shard *s = NULL;
    if (cpt_shard_open_mem(&s, data, size, "fuzz", &err) != 0) return 0;
    /* A shard that opened must be safe to walk completely. */
    uint64_t nd = cpt_shard_n_docs(s);
    uint32_t buf[64];
    for (uint64_t i = 0; i < nd && i < 4096; i++) {
        uint64_t st, n;
        cpt_shard_doc_range(s, i, &st, &n);
        cpt_shard_tokens(s, st, n < 64 ? n : 64, buf);
        if (n) CPT_ASSERT(cpt_shard_doc_of_token(s, st) == i || n == 0);
    }
    (void)cpt_shard_verify(s, &err);
    cpt_shard_close(s);
    return 0;
}

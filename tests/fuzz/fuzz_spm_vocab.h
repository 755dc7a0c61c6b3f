/* fuzz_spm_vocab.h: the check both tokenizer-loading fuzz targets run on a loaded
 * tokenizer: cpt_tok_spm_vocab_get (the GGUF "llama" export view) either fails with a
 * message or gives n entries with types 1..6, a piece for every used id and finite
 * scores. Not a fuzz target itself (no fuzz_*.c name). */
#ifndef CPT_FUZZ_SPM_VOCAB_H
#define CPT_FUZZ_SPM_VOCAB_H
#include <math.h>
#include <stdlib.h>

#include "cpt/tokenizer.h"

static void fuzz_check_spm_vocab(const cpt_tok *t) {
    cpt_tok_spm_vocab v;
    cpt_err err = {0};
    if (cpt_tok_spm_vocab_get(t, &v, &err) == 0) {
        if (v.n != cpt_tok_vocab_size(t)) abort();
        for (int32_t i = 0; i < v.n; i++) {
            if (v.type[i] < 1 || v.type[i] > 6 || !isfinite(v.score[i])) abort();
            if (!v.piece[i] && v.type[i] != 5) abort();
        }
    } else if (err.code == 0 || !err.msg[0]) {
        abort();
    }
    cpt_tok_spm_vocab_free(&v);
}
#endif

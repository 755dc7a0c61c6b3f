/* cpt/vocab.h: vocabulary extension of a Hugging Face model directory (`cpt vocab extend`).
 *
 * Two ways to get new tokens:
 *  - whole tokens from a file (one per line, the line's bytes exactly, without its "\n" /
 *    "\r\n"): appended to tokenizer.json's added_tokens (special false, normalized true,
 *    no strip, not single_word: what transformers' tokenizer.add_tokens writes) and to
 *    tokenizer_config.json's added_tokens_decoder;
 *  - for a byte-level BPE tokenizer.json (ByteLevel pre-tokenizer, no subword prefix or
 *    suffix): N new merges learned on a corpus (read as raw UTF-8 text). The corpus goes
 *    through the tokenizer's own added-token split, normalizer and pre-tokenizer; each
 *    distinct pre-token starts as the OLD tokenizer's segmentation of it (a fixed point of
 *    the old merges), weighted by its count. Each round merges the most frequent adjacent
 *    pair (ties: the smallest left id, then the smallest right id) whose concatenation is
 *    not a token already, everywhere, left to right without overlap. The merges are
 *    appended after the old ones (so they rank last and the old segmentation of a word is
 *    reached first, then continued) with new ids in model.vocab.
 * New ids start at the old tokenizer's vocabulary size (cpt_tok_vocab_size). The model's
 * embed_tokens (and lm_head when untied) grow to max(vocab_size, new tokenizer size) rows;
 * config.json vocab_size follows. Old rows are copied bit for bit.
 *
 * Initialisation of a new row (embed_tokens and, separately, lm_head):
 *  - CPT_VOCAB_INIT_MEAN: the mean of the rows of the ids the OLD tokenizer gives the
 *    token's text (encode without special tokens; for a merged byte-level token its text is
 *    the bytes its characters stand for);
 *  - CPT_VOCAB_INIT_HEWITT: a sample of N(mu, 1e-5 * Sigma), mu and Sigma the mean and the
 *    (biased, 1/V) covariance of all old rows (Hewitt 2021, "Initializing new word
 *    embeddings for pretrained language models", whose code scales Sigma by 1e-5). The
 *    sample is mu + L z with L the Cholesky factor of 1e-5 * Sigma (a diagonal jitter of
 *    1e-12 * trace/D is added when Sigma is singular) and z standard normal from a
 *    splitmix64 / Box-Muller stream seeded by `seed`.
 * mu and Sigma are over the old tokens' rows [0, min(vocab_size, old tokenizer size)). A model
 * padded past its tokenizer (Qwen) gets its new tokens in padding rows; other padding rows
 * are kept. Rows between the old model size and the old tokenizer size get mu.
 */
#ifndef CPT_VOCAB_H
#define CPT_VOCAB_H

#include <stdint.h>

#include "cpt/common.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { CPT_VOCAB_INIT_MEAN = 0, CPT_VOCAB_INIT_HEWITT = 1 };

typedef struct cpt_vocab_opts {
    const char *model_dir;   /* HF model directory with tokenizer.json */
    const char *tokens_file; /* whole tokens, one a line; or NULL */
    const char *corpus;      /* --train-bpe corpus; or NULL */
    int add_n;               /* merges to learn from corpus */
    int init;                /* CPT_VOCAB_INIT_* */
    uint64_t seed;           /* Hewitt sampling */
    const char *out_dir;
} cpt_vocab_opts;

typedef struct cpt_vocab_result {
    int old_tok_size, new_tok_size; /* tokenizer ids before / after */
    int old_vocab_size, new_vocab_size; /* model rows before / after */
    int n_added;
    long long corpus_words;         /* pre-tokens counted (train-bpe) */
} cpt_vocab_result;

/* Extend the model in o->model_dir into o->out_dir (config.json, model.safetensors in fp32,
 * tokenizer.json, tokenizer_config.json; special_tokens_map.json and generation_config.json
 * copied; vocab_extend.json records first_new_id / n_new for training.train_only:
 * new_embeddings). Errors name the file (and line) with a HINT: a token already in the vocabulary
 * (the old tokenizer encodes it to one id), an empty token, a duplicate, an unreadable or
 * empty corpus, a tokenizer that is not byte-level BPE for --train-bpe, fewer mergeable
 * pairs than asked. */
int cpt_vocab_extend(const cpt_vocab_opts *o, cpt_vocab_result *res, cpt_err *err);

#ifdef __cplusplus
}
#endif
#endif /* CPT_VOCAB_H */

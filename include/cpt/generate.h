/* cpt/generate.h: text generation with a KV cache (the prompt prefilled in one forward,
 * then one decode step per token): greedy or temperature + top-p sampling, stopping at
 * end-of-sequence ids or at stop strings in the decoded text, as lm-eval's generate_until
 * and transformers' generate(stop_strings=...) do. Used by `cpt eval` (QA, ifeval),
 * `cpt eval-long`, the training loop's evaluations and `cpt synth qa`. */
#ifndef CPT_GENERATE_H
#define CPT_GENERATE_H

#include <stdint.h>

#include "cpt/common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cpt_model;
struct cpt_tok;

/* Softmax of logits / temp, then nucleus sampling over the smallest set of most likely
 * tokens whose probability reaches top_p (top_p >= 1: all tokens); ties by lower id.
 * rng: xorshift64* state (never 0). scratch: V (prob, id) pairs, 8 bytes each. */
int cpt_sample_token(const float *logits, int V, double temp, double top_p, uint64_t *rng, void *scratch);
/* The id of the largest logit (the first one on ties). */
int cpt_argmax(const float *logits, int V);

typedef struct cpt_gen_opts {
    int max_new;                   /* at most this many new tokens (>= 1) */
    double temperature;            /* <= 0: greedy */
    double top_p;                  /* nucleus mass (1: off) */
    uint64_t seed;                 /* sampling seed */
    const int32_t *stop_ids;       /* generation ends after any of these ids (eos, end of turn) */
    int n_stop_ids;
    const char *const *stop_strs;  /* ... or once the decoded reply contains any of these */
    int n_stop_strs;
    int32_t *ids_out;              /* optional: prompt i's new ids (n_tokens of them) at ids_out + i * max_new */
} cpt_gen_opts;

typedef struct cpt_gen_out {
    char *text;       /* the reply decoded with special tokens skipped, cut before the first
                       * occurrence of any stop string (malloc'ed, NUL-terminated; NULL
                       * when generating without a tokenizer, tok NULL: ids_out only) */
    int n_tokens;     /* tokens generated (the stop id included) */
    int stop;         /* 0: max_new reached, 1: a stop id, 2: a stop string */
} cpt_gen_out;

/* Generate from ids[n_ids] (already encoded, special tokens as the caller wants them):
 * cpt_generate_batch of one prompt. */
int cpt_generate(struct cpt_model *m, const struct cpt_tok *tok, const int32_t *ids, size_t n_ids,
                 const cpt_gen_opts *o, cpt_gen_out *out, cpt_err *err);

/* n prompts at once: each is prefilled alone, then the unfinished ones decode together
 * (cpt_model_decode_batch: each weight read serves every row). seeds[i] is prompt i's
 * sampling seed (NULL: o->seed for all), so a reply does not depend on its batch mates'
 * sampling; outs[i] as cpt_generate. The logits match one-at-a-time decoding up to the
 * rounding of B-row products, so a greedy near-tie can resolve differently. */
int cpt_generate_batch(struct cpt_model *m, const struct cpt_tok *tok, const int32_t *const *ids, const size_t *n_ids, int n,
                       const uint64_t *seeds, const cpt_gen_opts *o, cpt_gen_out *outs, cpt_err *err);

#ifdef __cplusplus
}
#endif
#endif

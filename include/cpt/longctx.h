/* cpt/longctx.h: long-context evaluation (cpt eval-long, issue 11): passkey retrieval
 * (methods.md §8.1, Mohtashami & Jaggi 2023) and needle-in-a-haystack (§8.2, gkamradt's
 * insertion algorithm) scored by greedy generation, and loss by position bucket on
 * non-overlapping windows of long documents (§8.4). */
#ifndef CPT_LONGCTX_H
#define CPT_LONGCTX_H

#include <stdio.h>

#include "cpt/common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cpt_model;
struct cpt_tok;

enum { CPT_LC_PASSKEY = 0, CPT_LC_NEEDLE = 1, CPT_LC_NTESTS = 2 };
extern const char *const cpt_lc_test_names[CPT_LC_NTESTS]; /* "passkey", "needle" */

/* ---- prompts ---- */

/* The passkey prompt of §8.1 as text: "\n".join([task, garbage_prefix, needle,
 * garbage_suffix, question]), each garbage part n repetitions of the garbage sentence
 * joined by " " (Landmark Attention's construction). Returns a malloc'ed string. */
char *cpt_lc_passkey_text(int n_prefix, int n_suffix, int key);

/* The passkey prompt for a context of `length` tokens: the most garbage repetitions for
 * which encode(prompt) (special tokens as the tokenizer adds them) + max_new <= length,
 * split at depth in [0, 1] (n_prefix = round(depth * n)). *ids malloc'ed; *n_rep the
 * repetitions used. CPT_EINVAL when even no garbage does not fit. */
int cpt_lc_passkey_prompt(const struct cpt_tok *tok, int length, int max_new, double depth, int key, int32_t **ids,
                          size_t *n_ids, int *n_rep, cpt_err *err);

/* The needle of §8.2, its question, and the answer prefix the prompt ends with. */
extern const char cpt_lc_needle_text[], cpt_lc_needle_question[];

/* The needle prompt for `length` tokens: the haystack tokens (repeated when short) cut to
 * the budget that leaves room for the needle, the question and max_new tokens; the
 * needle spliced in at int(budget * depth), stepped back to just after a token ending in
 * "." (depth >= 1: appended at the end); the tokens decoded to text, the question
 * appended, and the whole encoded (shrinking the budget until it fits). *actual_depth:
 * the insertion point / budget. */
int cpt_lc_needle_prompt(const struct cpt_tok *tok, const int32_t *hay, size_t n_hay, int length, int max_new,
                         double depth, int32_t **ids, size_t *n_ids, double *actual_depth, cpt_err *err);

/* ---- scoring ---- */

/* The first integer (a maximal run of ASCII digits) in s: 1 and *v, or 0 when none. */
int cpt_lc_first_int(const char *s, long long *v);
/* The needle answer: s contains "dolores park" and "sandwich" (ASCII case-insensitive). */
int cpt_lc_needle_hit(const char *s);

/* ---- the retrieval sweep ---- */

typedef struct cpt_lc_trial {
    int test;            /* CPT_LC_* */
    int length;          /* requested context length */
    double depth;        /* requested depth */
    int trial;
    int prompt_tokens;   /* the prompt's actual token count */
    double actual_depth; /* needle: where it went; passkey: n_prefix / n */
    long long key;       /* passkey: the key; needle: 0 */
    char *answer;        /* the decoded continuation */
    int correct;
    double seconds;      /* prefill + generation */
} cpt_lc_trial;

typedef struct cpt_lc_opts {
    const int *lengths;
    int n_lengths;
    const double *depths;
    int n_depths;
    int trials;           /* per (test, length, depth) */
    uint64_t seed;        /* passkeys: splitmix64 of (seed, length, depth, trial) */
    int max_new[CPT_LC_NTESTS];
    int run[CPT_LC_NTESTS];
    const int32_t *haystack; /* needle haystack tokens (no special tokens) */
    size_t n_haystack;
    FILE *progress;       /* one line per trial, or NULL */
} cpt_lc_opts;

/* Run every enabled test over lengths x depths x trials. *trials malloc'ed (free with
 * cpt_lc_trials_free). */
int cpt_lc_run(struct cpt_model *m, const struct cpt_tok *tok, const cpt_lc_opts *o, cpt_lc_trial **trials,
               size_t *n_trials, cpt_err *err);
void cpt_lc_trials_free(cpt_lc_trial *t, size_t n);

/* ---- loss by position ---- */

#define CPT_LC_MAX_BUCKETS 32
typedef struct cpt_lc_ppl {
    int length;      /* window length (tokens of input) */
    int windows;     /* windows scored */
    long long tokens;
    double loss;     /* mean NLL over all scored tokens */
    int n_buckets;   /* [lo, hi) positions within the window */
    int lo[CPT_LC_MAX_BUCKETS], hi[CPT_LC_MAX_BUCKETS];
    double bucket_loss[CPT_LC_MAX_BUCKETS];
    long long bucket_tokens[CPT_LC_MAX_BUCKETS];
} cpt_lc_ppl;

/* Bucket edges 0, b, 2b, 4b, ... up to length (the last bucket ends at length); one
 * bucket [0, length) when length <= b. Returns the bucket count (<= CPT_LC_MAX_BUCKETS). */
int cpt_lc_buckets(int length, int b, int *lo, int *hi);

/* Loss by position on non-overlapping windows of length+1 tokens of each document (a
 * window starts every `length` tokens; documents shorter than length+1 give none), at
 * most max_windows in all (0: no limit), in document order. The loss at position t is
 * the model's NLL of token t+1 of the window given tokens 0..t. CPT_EINVAL when no
 * document is long enough. */
int cpt_lc_ppl_run(struct cpt_model *m, const int32_t *const *docs, const size_t *doc_len, int n_docs, int length,
                   int bucket, int max_windows, cpt_lc_ppl *out, cpt_err *err);

/* ---- output ---- */

/* SVG: one heat map per retrieval test that ran (rows: depths, columns: lengths, colour and
 * label the accuracy of the cell), and when n_ppl > 0 a line chart of the loss per position
 * bucket, one line per window length. Returns a malloc'ed document, NULL on out of memory. */
char *cpt_lc_svg(const cpt_lc_trial *t, size_t n, const cpt_lc_opts *o, const cpt_lc_ppl *ppl, int n_ppl,
                 const char *title);

#ifdef __cplusplus
}
#endif
#endif

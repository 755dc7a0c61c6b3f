/* cpt/eval.h: benchmark tasks scored the lm-evaluation-harness way (issue 15): item
 * loaders (the generic multiple-choice JSONL format {"query": STR, "choices": [STR, ...],
 * "gold": INT}, one item per line, and the built-in tasks), continuation log-likelihoods
 * through the model, and acc / acc_norm with standard errors. */
#ifndef CPT_EVAL_H
#define CPT_EVAL_H

#include "cpt/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cpt_mc_item {
    char *context;  /* lm-eval's doc_to_text: the prompt the choices continue */
    char **choices; /* n_choices continuation strings (without the target delimiter) */
    int n_choices;
    int gold;       /* index into choices */
    /* Partial scoring (Winogrande, CPT_TASK_PARTIAL): choices[c] are the contexts and
     * `suffix` is the shared continuation scored after each; NULL otherwise. */
    char *suffix;
} cpt_mc_item;

/* How a task's items become (context, continuation) requests, as lm-eval builds them:
 *   CPT_TASK_MC       (P + context, delim + choices[c]) for each choice c
 *   CPT_TASK_PARTIAL  (P + choices[c], delim + suffix)  (lm-eval's multiple_input)
 *   CPT_TASK_CLOZE    (P + context, choices[0]), one choice, correct iff greedy (LAMBADA)
 * where P is the description followed by the few-shot examples, each "context + delim +
 * gold choice" (partial: "choices[gold] + delim + suffix") and then "\n\n". */
enum { CPT_TASK_MC = 0, CPT_TASK_PARTIAL = 1, CPT_TASK_CLOZE = 2 };

typedef struct cpt_mc_task {
    cpt_mc_item *items;
    size_t n;
    int kind;          /* CPT_TASK_* */
    int has_norm;      /* acc_norm is defined (lm-eval reports it for this task) */
    char delim[8];     /* target delimiter, " " (lm-eval's default) or "" */
    char *description; /* text before the few-shot examples (MMLU's subject line), may be NULL */
} cpt_mc_task;
/* Load a generic multiple-choice JSONL file. Blank lines are skipped. A malformed line
 * (bad JSON, a missing or mistyped field, fewer than 2 choices, gold out of range) is
 * CPT_EFORMAT with "PATH:LINE: ..." and a HINT. limit > 0 keeps the first `limit` items. */
int cpt_mc_load_jsonl(cpt_mc_task *t, const char *path, size_t limit, cpt_err *err);
void cpt_mc_task_free(cpt_mc_task *t);

/* ---- built-in tasks (files of ../shared/data/eval, lm-eval's prompt formats) ---- */

/* Names of the built-in tasks, NULL-terminated. */
extern const char *const cpt_eval_builtin_names[];
/* Load a built-in task by name from data_dir (../shared/data/eval layout) or, when `name`
 * is a path to a .jsonl file, the generic {"query","choices","gold"} format (letters != 0:
 * MMLU-style letter answers: the choices are listed as "A. ..." in the context and the
 * continuations are the letters). limit as cpt_mc_load_jsonl, but 0 loads everything (the
 * few-shot pool is the whole file). Unknown names are CPT_ENOTFOUND with the list. */
int cpt_eval_task_load(cpt_mc_task *t, const char *name, const char *data_dir, int letters, cpt_err *err);
/* lm-eval's HellaSwag preprocess(): strip, " [title]" -> ". ", drop "[...]", "  " -> " ".
 * Returns a malloc'ed string or NULL (out of memory). */
char *cpt_eval_hellaswag_preprocess(const char *text);
/* Python's str.capitalize() (first code point title-cased, the rest lower-cased). */
char *cpt_eval_capitalize(const char *text);

/* ---- scoring ---- */

struct cpt_model;
struct cpt_tok;

/* Log-likelihood of each continuation given its context, as lm-eval's HFLM computes it:
 * trailing whitespace of the context moves to the continuation; the continuation's tokens
 * are those of encode(context + continuation) past the len(encode(context)) first ones
 * (no special tokens; an empty context is the BOS id, else EOS); the sequence keeps its
 * last max_position_embeddings + 1 tokens. ll[i] = sum of log-softmax of the continuation
 * tokens; greedy[i] = 1 iff each is the argmax; n_tok[i] = their count (any of the three
 * may be NULL). Requests go through the model's forward `batch` rows at a time (right
 * padded; results do not depend on batch). */
int cpt_eval_loglik(struct cpt_model *m, const struct cpt_tok *tok, const char *const *ctx,
                    const char *const *cont, size_t n, int batch, double *ll, int *greedy, int *n_tok,
                    cpt_err *err);

typedef struct cpt_eval_opts {
    size_t limit;   /* score the first `limit` items (0: all) */
    int fewshot;    /* K examples per item, drawn from the other items of the file */
    uint64_t seed;  /* few-shot sampler seed (1234 as lm-eval) */
    int batch;      /* rows per forward */
} cpt_eval_opts;

typedef struct cpt_eval_result {
    size_t n;                     /* items scored */
    double acc, acc_stderr;       /* mean and sample std / sqrt(n) (lm-eval's mean_stderr) */
    double acc_norm, acc_norm_stderr; /* NAN when the task has no acc_norm */
    double ppl;                   /* cloze: exp(-mean item log-likelihood); NAN otherwise */
    /* cloze: the mean over items of the continuation's log-likelihood per token (the
     * Fictional Knowledge probes' score) and its standard error; NAN otherwise */
    double ll_tok, ll_tok_stderr;
    double seconds;               /* wall time of the scoring */
    /* per item: the first choice index of each item's lls, its prediction, etc. */
    size_t *ll_off;               /* [n + 1]: item i's lls are ll[ll_off[i] .. ll_off[i+1]) */
    double *ll;
    int *greedy;                  /* per request */
    int *pred, *pred_norm;        /* per item (cloze: pred = greedy) */
    int *shots;                   /* [n * fewshot]: the few-shot item indices of item i */
    int fewshot;
} cpt_eval_result;

/* Score a task: builds each item's requests (with few-shot examples), runs
 * cpt_eval_loglik, and aggregates acc / acc_norm / stderr (and ppl for cloze). */
int cpt_eval_task_run(struct cpt_model *m, const struct cpt_tok *tok, const cpt_mc_task *t,
                      const cpt_eval_opts *o, cpt_eval_result *r, cpt_err *err);
void cpt_eval_result_free(cpt_eval_result *r);
/* Mean and lm-eval's mean_stderr (sample standard deviation / sqrt(n); 0 when n < 2). */
void cpt_eval_mean_stderr(const double *x, size_t n, double *mean, double *stderr_out);
/* The few-shot example indices of item i: k distinct indices in [0, n) other than i,
 * from a splitmix64 stream seeded by (seed, i), so they do not depend on --limit. */
int cpt_eval_fewshot_pick(size_t n, size_t i, int k, uint64_t seed, int *out);


/* ---- comparing two models (cpt compare) ---- */

/* Paired difference of per-item scores b - a (tuned - base): mean and its standard error,
 * sample std of the differences / sqrt(n) (0 when n < 2). */
void cpt_eval_paired_delta(const double *a, const double *b, size_t n, double *delta, double *stderr_out);

typedef struct cpt_compare_row {
    const char *task;
    size_t n;
    double base, tuned, delta, delta_se; /* acc (or acc_norm where the task has it) */
    const char *metric;                  /* "acc" or "acc_norm" */
    int forgot;                          /* delta < -budget */
} cpt_compare_row;

/* An SVG bar chart of the deltas with +-1.96 standard-error whiskers and the forgetting
 * budget as a dashed line at -budget; returns a malloc'ed NUL-terminated document. */
char *cpt_eval_compare_svg(const cpt_compare_row *rows, int n, double budget);

#ifdef __cplusplus
}
#endif
#endif

/* cpt/qa.h: question answering by greedy generation, scored by exact match and token F1
 * after SQuAD normalisation (issue 15): TriviaQA, Jeopardy and PubMedQA of
 * ../shared/data/eval/llm-foundry and the user's own JSONL.
 *
 * Item formats (one JSON object per line, blank lines skipped):
 *   {"question": STR, "answers": [STR, ...] | STR}   prompt "Question: {question}\nAnswer:"
 *   {"context": STR, "answer": STR, "aliases": [STR, ...]}      (llm-foundry TriviaQA)
 *   {"context": STR, "continuation": STR}                       (llm-foundry QA shape)
 * The gold answers are, in order and without repeats, "answer", "continuation",
 * "answers" and "aliases"; the first is the target of few-shot examples.
 *
 * The request is lm-eval's generate_until: the few-shot examples (context + " " + first
 * answer, joined by "\n\n") and "\n\n" before the item's context, trailing whitespace of
 * every context removed; encoded without special tokens; left-truncated to
 * context_len - max_new tokens; greedy; stopped at the model's or tokenizer's end of
 * sequence or at the first "until" string, the reply cut before it. Metrics per item are
 * the best over the gold answers:
 *   exact_match = normalize(reply) == normalize(gold)
 *   f1          = SQuAD v1.1 token F1 of normalize(reply).split() vs normalize(gold).split()
 * with normalize(s) = " ".join(remove_articles(remove_punctuation(s.lower())).split()):
 * Unicode lower case, ASCII punctuation (Python's string.punctuation) removed, the words
 * a/an/the (between regex word boundaries, word = letter, number or '_') replaced by a
 * space, whitespace runs collapsed. */
#ifndef CPT_QA_H
#define CPT_QA_H

#include <stdint.h>
#include <stdio.h>

#include "cpt/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cpt_qa_item {
    char *context;  /* the prompt text (trailing whitespace removed) */
    char **answers; /* n_answers >= 1 gold answers */
    int n_answers;
} cpt_qa_item;

enum { CPT_QA_MAX_UNTIL = 4 };

typedef struct cpt_qa_task {
    cpt_qa_item *items;
    size_t n;
    const char *until[CPT_QA_MAX_UNTIL]; /* stop strings (static) */
    int n_until;
} cpt_qa_task;

/* Built-in QA task names (NULL-terminated): triviaqa, jeopardy, pubmedqa. */
extern const char *const cpt_qa_builtin_names[];
/* 1 when `name` is a QA task: a built-in name or "qa:PATH". */
int cpt_qa_is_task(const char *name);
/* Load a built-in task from data_dir (../shared/data/eval layout) or "qa:PATH". Every
 * item is loaded (the few-shot pool is the whole file). A malformed line is CPT_EFORMAT
 * naming PATH:LINE with a HINT. */
int cpt_qa_load(cpt_qa_task *t, const char *name, const char *data_dir, cpt_err *err);
/* Parse QA JSONL text (label names it in errors; suffix, may be NULL, is appended to
 * every "context"); t->until is left as it is. On error t is empty. */
int cpt_qa_parse(cpt_qa_task *t, const char *text, size_t len, const char *label, const char *suffix, cpt_err *err);
/* The generic loader; until = {"\n"}. */
int cpt_qa_load_jsonl(cpt_qa_task *t, const char *path, cpt_err *err);
void cpt_qa_task_free(cpt_qa_task *t);

/* SQuAD normalisation (above); malloc'ed, NULL when out of memory. */
char *cpt_qa_normalize(const char *s);
/* Exact match and token F1 of one prediction against one gold answer. */
int cpt_qa_exact_match(const char *pred, const char *gold);
double cpt_qa_f1(const char *pred, const char *gold);

typedef struct cpt_qa_opts {
    size_t limit;  /* answer the first `limit` items (0: all) */
    int fewshot;   /* examples per item, from cpt_eval_fewshot_pick over the whole file */
    uint64_t seed;
    int max_new;   /* generated tokens per answer */
    int batch;     /* items decoded together (cpt_generate_batch); 0 or 1: one at a time.
                    * Greedy replies equal one-at-a-time decoding up to near ties (generate.h) */
} cpt_qa_opts;

typedef struct cpt_qa_result {
    size_t n;
    double em, em_stderr, f1, f1_stderr; /* means and sample std / sqrt(n) */
    double seconds;
    long long tokens;                    /* generated tokens, all items */
    char **replies;                      /* [n] the cut replies */
    double *em_i, *f1_i;                 /* [n] per item */
    int *shots;                          /* [n * fewshot] few-shot item indices */
    int fewshot;
} cpt_qa_result;

struct cpt_model;
struct cpt_tok;

/* Answer and score the items; progress (may be NULL) gets a line per item. */
int cpt_qa_run(struct cpt_model *m, const struct cpt_tok *tok, const cpt_qa_task *t, const cpt_qa_opts *o,
               FILE *progress, cpt_qa_result *r, cpt_err *err);
void cpt_qa_result_free(cpt_qa_result *r);

#ifdef __cplusplus
}
#endif
#endif

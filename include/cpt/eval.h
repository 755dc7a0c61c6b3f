/* cpt/eval.h: benchmark tasks scored the lm-evaluation-harness way (issue 15).
 * First part: the item loader for the generic multiple-choice JSONL format
 * {"query": STR, "choices": [STR, ...], "gold": INT}, one item per line. */
#ifndef CPT_EVAL_H
#define CPT_EVAL_H

#include "cpt/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cpt_mc_item {
    char *context;  /* the prompt the choices continue */
    char **choices; /* n_choices continuation strings (without the target delimiter) */
    int n_choices;
    int gold;       /* index into choices */
} cpt_mc_item;

typedef struct cpt_mc_task {
    cpt_mc_item *items;
    size_t n;
} cpt_mc_task;

/* Load a generic multiple-choice JSONL file. Blank lines are skipped. A malformed line
 * (bad JSON, a missing or mistyped field, fewer than 2 choices, gold out of range) is
 * CPT_EFORMAT with "PATH:LINE: ..." and a HINT. limit > 0 keeps the first `limit` items. */
int cpt_mc_load_jsonl(cpt_mc_task *t, const char *path, size_t limit, cpt_err *err);
void cpt_mc_task_free(cpt_mc_task *t);

#ifdef __cplusplus
}
#endif
#endif

/* task_score.h: one benchmark task of any kind for the CLI (src/cli/task_score.c). Not
 * in cli.h: cpt/eval.h and cpt/train.h both name a cpt_eval_result. */
#ifndef CPT_CLI_TASK_SCORE_H
#define CPT_CLI_TASK_SCORE_H

#include "cpt/eval.h"
#include "cpt/ifeval.h"
#include "cpt/qa.h"

/* One benchmark task of any kind, scored as per-item 0/1 hits (src/cli/task_score.c):
 * multiple choice / cloze by name or .jsonl path (hits: acc_norm's pick where the task has
 * it, else acc's; cloze: greedy), ifeval / ifeval:FILE (prompt-level strict), QA tasks
 * (triviaqa, jeopardy, pubmedqa, qa:FILE; exact match, max_new 0 = 32 tokens). n is the
 * task's size capped at limit (0: all). */
enum { CPT_CLI_TASK_MC = 0, CPT_CLI_TASK_IF = 1, CPT_CLI_TASK_QA = 2 };
typedef struct cpt_cli_task {
    int kind;
    cpt_mc_task mc;
    cpt_if_set ifs;
    cpt_qa_task qa;
    size_t n;
    char label[256]; /* the name without a directory */
} cpt_cli_task;
/* A task's name in tables, metrics and JSON: the base name of its file, after the task's
 * own prefix where it has one (fictional_mem:DIR/docs.json -> fictional_mem:docs.json; qa:
 * and ifeval: are dropped), without .jsonl / .json when drop_ext. */
void cpt_cli_task_label(const char *name, char *out, size_t cap, int drop_ext);
/* letters: MMLU-style letter answers for .jsonl multiple-choice files (cpt eval --letters). */
int cpt_cli_task_load(cpt_cli_task *t, const char *name, const char *data_dir, size_t limit, int letters, cpt_err *err);
void cpt_cli_task_free(cpt_cli_task *t);
const char *cpt_cli_task_metric(const cpt_cli_task *t);
/* hits: malloc'ed [t->n]; o gives fewshot, seed and batch. */
int cpt_cli_task_hits(struct cpt_model *m, const struct cpt_tok *tok, const cpt_cli_task *t, const cpt_eval_opts *o,
                      int max_new, double **hits, cpt_err *err);

#endif

/* task_score.c: one benchmark task of any kind -- multiple choice / cloze (cpt/eval.h),
 * ifeval (cpt/ifeval.h) or QA by generation (cpt/qa.h) -- loaded by name and scored as
 * per-item 0/1 hits, the form `cpt compare` pairs between two models and the training
 * loop's eval.tasks block compares with the base (see cli.h). */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/task_score.h"
#include "cpt/model.h"
#include "cpt/tokenizer.h"

void cpt_cli_task_label(const char *name, char *out, size_t cap, int drop_ext) {
    if (!strncmp(name, "qa:", 3)) name += 3;
    else if (!strncmp(name, "ifeval:", 7)) name += 7;
    const char *colon = strchr(name, ':'), *slash = strchr(name, '/');
    int pre = colon && (!slash || colon < slash) ? (int)(colon - name) + 1 : 0;
    const char *b = strrchr(name + pre, '/');
    snprintf(out, cap, "%.*s%s", pre, name, b ? b + 1 : name + pre);
    size_t n = strlen(out);
    if (drop_ext && n > 6 && !strcmp(out + n - 6, ".jsonl")) out[n - 6] = 0;
    else if (drop_ext && n > 5 + (size_t)pre && !strcmp(out + n - 5, ".json")) out[n - 5] = 0;
}

int cpt_cli_task_load(cpt_cli_task *t, const char *name, const char *data_dir, size_t limit, int letters, cpt_err *err) {
    memset(t, 0, sizeof *t);
    cpt_cli_task_label(name, t->label, sizeof t->label, 0);
    int rc;
    if (!strcmp(name, "ifeval") || !strncmp(name, "ifeval:", 7)) {
        t->kind = CPT_CLI_TASK_IF;
        rc = cpt_if_load(&t->ifs, name[6] ? name + 7 : name, limit, err);
        t->n = rc ? 0 : t->ifs.n;
    } else if (cpt_qa_is_task(name)) {
        t->kind = CPT_CLI_TASK_QA;
        rc = cpt_qa_load(&t->qa, name, data_dir, err);
        t->n = rc ? 0 : t->qa.n;
    } else {
        t->kind = CPT_CLI_TASK_MC;
        rc = cpt_eval_task_load(&t->mc, name, data_dir, letters, err);
        t->n = rc ? 0 : t->mc.n;
    }
    if (!rc && limit && limit < t->n) t->n = limit;
    return rc;
}

void cpt_cli_task_free(cpt_cli_task *t) {
    if (t->kind == CPT_CLI_TASK_IF) cpt_if_free(&t->ifs);
    else if (t->kind == CPT_CLI_TASK_QA) cpt_qa_task_free(&t->qa);
    else cpt_mc_task_free(&t->mc);
    memset(t, 0, sizeof *t);
}

const char *cpt_cli_task_metric(const cpt_cli_task *t) {
    if (t->kind == CPT_CLI_TASK_IF) return "prompt_strict";
    if (t->kind == CPT_CLI_TASK_QA) return "exact_match";
    return t->mc.kind != CPT_TASK_CLOZE && t->mc.has_norm ? "acc_norm" : "acc";
}

int cpt_cli_task_hits(cpt_model *m, const cpt_tok *tok, const cpt_cli_task *t, const cpt_eval_opts *o, int max_new,
                      double **hits, cpt_err *err) {
    *hits = calloc(t->n + 1, sizeof(double));
    if (!*hits) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    int rc = CPT_OK;
    if (t->kind == CPT_CLI_TASK_QA) {
        cpt_qa_opts qo = {t->n, o->fewshot, o->seed, max_new ? max_new : 32, o->batch};
        cpt_qa_result qr;
        if (!(rc = cpt_qa_run(m, tok, &t->qa, &qo, NULL, &qr, err))) {
            for (size_t i = 0; i < qr.n && i < t->n; i++) (*hits)[i] = qr.em_i[i];
            cpt_qa_result_free(&qr);
        }
    } else if (t->kind == CPT_CLI_TASK_IF) {
        cpt_if_result ir;
        if (!(rc = cpt_if_run(m, tok, NULL, &t->ifs, max_new ? max_new : 256, o->batch, NULL, &ir, err))) {
            for (size_t i = 0; i < ir.n && i < t->n; i++) {
                int all = 1;
                for (int c = 0; c < t->ifs.items[i].n_checks; c++) all &= ir.follows[i * CPT_IF_MAX_CHECKS + (size_t)c];
                (*hits)[i] = all;
            }
            cpt_if_result_free(&ir);
        }
    } else {
        cpt_eval_opts eo = *o;
        eo.limit = t->n;
        cpt_eval_result r;
        if (!(rc = cpt_eval_task_run(m, tok, &t->mc, &eo, &r, err))) {
            for (size_t i = 0; i < r.n && i < t->n; i++)
                (*hits)[i] = t->mc.kind == CPT_TASK_CLOZE ? r.pred[i]
                                                          : (t->mc.has_norm ? r.pred_norm[i] : r.pred[i]) == t->mc.items[i].gold;
            cpt_eval_result_free(&r);
        }
    }
    if (rc) {
        free(*hits);
        *hits = NULL;
        cpt_err_wrap(err, "task %s", t->label);
    }
    return rc;
}

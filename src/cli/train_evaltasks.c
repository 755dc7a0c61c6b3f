/* train_evaltasks.c: the recipe's eval.tasks block for `cpt train`: benchmark tasks (the
 * names `cpt eval` takes: multiple choice, cloze, ifeval, QA by generation) on a fixed
 * subset (the first eval.tasks.limit items) at step 0, every eval.tasks.every steps and at
 * the end. The step-0 run is the base model: its per-item hits are cached in
 * OUT_DIR/eval_tasks/base.json (a resumed run reads them instead of losing the base), and
 * every later run logs, per task, the score, its standard error and the paired delta
 * against the base with its standard error (as cpt compare). A drop past
 * eval.tasks.budget (absolute) is a logged warning and a "task_budget" event. The base
 * and the last run feed a "Benchmark tasks" section of report.md. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/task_score.h"
#include "cpt/fileio.h"
#include "cpt/metrics.h"
#include "cpt/model.h"
#include "cpt/recipe.h"
#include "cpt/tokenizer.h"

enum { MAX_TASKS = 32 };

struct cpt_train_evaltasks {
    const cpt_tok *tok;
    cpt_cli_task tasks[MAX_TASKS];
    int nt;
    double *base[MAX_TASKS];
    long long base_step;
    double last[MAX_TASKS], last_se[MAX_TASKS], delta[MAX_TASKS], delta_se[MAX_TASKS];
    long long last_step;
    int n_runs, over[MAX_TASKS];
    cpt_eval_opts o;
    int max_new;
    double budget;
    long long every;
    char dir[4200], base_path[4400];
};

/* base.json: {"step": S, "tasks": {label: {"n": N, "metric": M, "hits": [...]}}}, read
 * when a run resumes. All or nothing: a task it lacks, or holds on another number of
 * items, is an error (the recipe's eval.tasks changed since the base was measured). */
static int load_base(cpt_train_evaltasks *e, cpt_err *err) {
    if (!cpt_is_file(e->base_path)) return CPT_OK;
    json_error_t je;
    json_t *o = json_load_file(e->base_path, 0, &je);
    if (!o) return cpt_err_set(err, CPT_EFORMAT, "%s: %s (line %d). HINT: delete it to measure the base again (start a new run)",
                               e->base_path, je.text, je.line);
    json_t *ts = json_object_get(o, "tasks");
    int rc = CPT_OK;
    for (int k = 0; k < e->nt && !rc; k++) {
        json_t *h = json_object_get(json_object_get(ts, e->tasks[k].label), "hits");
        if (!json_is_array(h) || json_array_size(h) != e->tasks[k].n) {
            rc = cpt_err_set(err, CPT_EINVAL, "%s: no base scores of task %s on %zu items. HINT: eval.tasks changed since the run "
                             "started; keep its names and limit, or start a new run", e->base_path, e->tasks[k].label, e->tasks[k].n);
            break;
        }
        if (!(e->base[k] = malloc((e->tasks[k].n + 1) * sizeof(double)))) rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
        for (size_t i = 0; !rc && i < e->tasks[k].n; i++) e->base[k][i] = json_number_value(json_array_get(h, i));
    }
    e->base_step = json_integer_value(json_object_get(o, "step"));
    json_decref(o);
    return rc;
}

static int save_base(const cpt_train_evaltasks *e, cpt_err *err) {
    json_t *o = json_object(), *ts = json_object();
    json_object_set_new(o, "step", json_integer(e->base_step));
    for (int k = 0; k < e->nt; k++) {
        json_t *t = json_object(), *h = json_array();
        for (size_t i = 0; i < e->tasks[k].n; i++) json_array_append_new(h, json_real(e->base[k][i]));
        json_object_set_new(t, "n", json_integer((json_int_t)e->tasks[k].n));
        json_object_set_new(t, "metric", json_string(cpt_cli_task_metric(&e->tasks[k])));
        json_object_set_new(t, "hits", h);
        json_object_set_new(ts, e->tasks[k].label, t);
    }
    json_object_set_new(o, "tasks", ts);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    int rc = cpt_mkdirs(e->dir, err);
    if (!rc) rc = cpt_write_file_atomic(e->base_path, s, strlen(s), err);
    free(s);
    return rc;
}

int cpt_train_evaltasks_setup(const cpt_recipe *r, const cpt_tok *tok, const char *run_dir, int resuming,
                              cpt_train_evaltasks **out, long long *every, cpt_err *err) {
    *out = NULL;
    if (!cpt_recipe_has(r, "eval.tasks.names")) return CPT_OK;
    cpt_train_evaltasks *e = calloc(1, sizeof *e);
    char *list = strdup(cpt_recipe_str(r, "eval.tasks.names")), *save = NULL, ddbuf[4200];
    if (!e || !list) {
        free(e), free(list);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    }
    const char *data_dir = cpt_recipe_has(r, "eval.tasks.data_dir") ? cpt_recipe_str(r, "eval.tasks.data_dir")
                                                                     : cpt_eval_default_data_dir(ddbuf, sizeof ddbuf);
    size_t limit = (size_t)cpt_recipe_int(r, "eval.tasks.limit");
    int rc = CPT_OK;
    for (char *nm = strtok_r(list, ",", &save); nm && !rc; nm = strtok_r(NULL, ",", &save)) {
        while (*nm == ' ') nm++;
        if (!*nm) continue;
        if (e->nt == MAX_TASKS) rc = cpt_err_set(err, CPT_EINVAL, "eval.tasks.names: more than %d tasks", MAX_TASKS);
        else if (!(rc = cpt_cli_task_load(&e->tasks[e->nt], nm, data_dir, limit, 0, err))) e->nt++;
        for (int k = 0; !rc && k < e->nt - 1; k++)
            if (!strcmp(e->tasks[k].label, e->tasks[e->nt - 1].label))
                rc = cpt_err_set(err, CPT_EINVAL, "eval.tasks.names: task %s twice. HINT: name each task once", nm);
    }
    if (!rc && e->nt == 0) rc = cpt_err_set(err, CPT_EINVAL, "eval.tasks.names is empty. HINT: e.g. \"arc_easy,hellaswag\"");
    for (int k = 0; !rc && k < e->nt; k++)
        if (e->tasks[k].kind == CPT_CLI_TASK_IF && !cpt_tok_chat_template(tok))
            rc = cpt_err_set(err, CPT_EINVAL, "eval.tasks.names: ifeval needs the model's chat template. HINT: drop it for a base model");
    free(list);
    e->tok = tok;
    e->o.limit = limit, e->o.fewshot = (int)cpt_recipe_int(r, "eval.tasks.fewshot"), e->o.seed = 1234, e->o.batch = 4;
    e->max_new = (int)cpt_recipe_int(r, "eval.tasks.max_new");
    e->budget = cpt_recipe_float(r, "eval.tasks.budget");
    e->every = *every = cpt_recipe_int(r, "eval.tasks.every");
    snprintf(e->dir, sizeof e->dir, "%s/eval_tasks", run_dir);
    snprintf(e->base_path, sizeof e->base_path, "%s/base.json", e->dir);
    if (!rc && resuming) rc = load_base(e, err);
    else if (!rc) remove(e->base_path); /* a fresh run in an old directory measures its own base */
    if (rc) {
        cpt_train_evaltasks_free(e);
        return cpt_err_wrap(err, "eval.tasks");
    }
    *out = e;
    return CPT_OK;
}

void cpt_train_evaltasks_free(cpt_train_evaltasks *e) {
    if (!e) return;
    for (int k = 0; k < e->nt; k++) cpt_cli_task_free(&e->tasks[k]), free(e->base[k]);
    free(e);
}

int cpt_train_evaltasks_run(void *ctx, cpt_model *m, long long step, struct cpt_metrics *mx, FILE *log, cpt_err *err) {
    cpt_train_evaltasks *e = ctx;
    int is_base = e->base[0] == NULL, rc = CPT_OK;
    for (int k = 0; k < e->nt && !rc; k++) {
        cpt_cli_task *t = &e->tasks[k];
        double *h = NULL, mean, se, d = 0, dse = 0;
        double t0 = cpt_now();
        if ((rc = cpt_cli_task_hits(m, e->tok, t, &e->o, e->max_new, &h, err))) break;
        cpt_eval_mean_stderr(h, t->n, &mean, &se);
        if (is_base) e->base[k] = h, h = NULL;
        else cpt_eval_paired_delta(e->base[k], h, t->n, &d, &dse);
        free(h);
        e->last[k] = mean, e->last_se[k] = se, e->delta[k] = d, e->delta_se[k] = dse;
        char k1[320], k2[320], k3[320], k4[320];
        snprintf(k1, sizeof k1, "task/%s/%s", t->label, cpt_cli_task_metric(t));
        snprintf(k2, sizeof k2, "task/%s/stderr", t->label);
        snprintf(k3, sizeof k3, "task/%s/delta", t->label);
        snprintf(k4, sizeof k4, "task/%s/delta_stderr", t->label);
        const char *keys[] = {k1, k2, k3, k4};
        double vals[] = {mean, se, d, dse};
        if (mx && (rc = cpt_metrics_log(mx, "eval", step, keys, vals, is_base ? 2 : 4, err))) break;
        if (log)
            fprintf(log, "task %s at step %lld: %s %.3f +- %.3f on %zu items in %.0f s\n", t->label, step,
                    cpt_cli_task_metric(t), mean, se, t->n, cpt_now() - t0);
        if (log && !is_base) fprintf(log, "  vs the base (step %lld): %+.3f +- %.3f (paired)\n", e->base_step, d, dse);
        if (!is_base && d < -e->budget) {
            e->over[k] = 1;
            if (log)
                fprintf(log, "warning: task %s fell by %.3f (%s, paired stderr %.3f), past eval.tasks.budget %.3f. HINT: more replay "
                             "of general data (data.replay) or a lower learning rate\n", t->label, -d, cpt_cli_task_metric(t), dse, e->budget);
            char ev[512];
            snprintf(ev, sizeof ev, "{\"what\": \"task_budget\", \"task\": \"%s\", \"delta\": %.6g, \"delta_stderr\": %.6g, \"budget\": %.6g}",
                     t->label, d, dse, e->budget);
            if (mx && (rc = cpt_metrics_event(mx, step, ev, err))) break;
        }
    }
    if (rc) return cpt_err_wrap(err, "eval.tasks at step %lld", step);
    if (is_base) {
        e->base_step = step;
        if ((rc = save_base(e, err))) return rc;
    }
    e->n_runs++, e->last_step = step;
    return CPT_OK;
}

char *cpt_train_evaltasks_markdown(const cpt_train_evaltasks *e) {
    if (!e || e->n_runs == 0) return NULL;
    size_t cap = 1024 + (size_t)e->nt * 320, w = 0;
    char *md = malloc(cap);
    if (!md) return NULL;
    w += (size_t)snprintf(md + w, cap - w,
                          "## Benchmark tasks\n\nThe same items at step %lld (the base) and step %lld; delta = last - base "
                          "with its paired standard error; budget %.3f (absolute).\n\n"
                          "| task | metric | n | base | step %lld | delta | stderr | verdict |\n|---|---|---|---|---|---|---|---|\n",
                          e->base_step, e->last_step, e->budget, e->last_step);
    for (int k = 0; k < e->nt && w < cap; k++) {
        double b;
        cpt_eval_mean_stderr(e->base[k], e->tasks[k].n, &b, NULL);
        w += (size_t)snprintf(md + w, cap - w, "| %s | %s | %zu | %.3f | %.3f +- %.3f | %+.3f | %.3f | %s |\n", e->tasks[k].label,
                              cpt_cli_task_metric(&e->tasks[k]), e->tasks[k].n, b, e->last[k], e->last_se[k], e->delta[k],
                              e->delta_se[k], e->last_step == e->base_step ? "-" : e->over[k] ? "**forgot**" : "kept");
    }
    return md;
}

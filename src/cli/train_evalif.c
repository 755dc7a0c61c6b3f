/* train_evalif.c: the recipe's eval.ifeval block for `cpt train`: instruction-following
 * retention (cpt/ifeval.h) at step 0 (the base), every eval.ifeval.every steps and at the
 * end, with that step's weights. Each run logs ifeval/acc and ifeval/inst_acc, writes every
 * reply and verdict to OUT_DIR/eval_ifeval/step-N.jsonl, and compares the prompt-level
 * accuracy with the base's: a drop past eval.ifeval.budget (absolute) is a logged warning
 * and an "ifeval_budget" event in metrics.jsonl, which perplexity cannot show (a model can
 * gain on every validation set and lose its instruction following). The first and last
 * runs feed an "Instruction following" section of report.md. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cpt/ifeval.h"
#include "cpt/metrics.h"
#include "cpt/model.h"
#include "cpt/recipe.h"
#include "cpt/tokenizer.h"

struct cpt_train_evalif {
    const cpt_tok *tok;
    cpt_if_set set;
    char dir[4200], name[256];
    int max_new;
    double budget;
    long long every;
    int n_runs;
    long long first_step, last_step;
    double first_acc, first_se, last_acc, last_se, last_inst;
    int over;
};

int cpt_train_evalif_setup(const cpt_recipe *r, const cpt_tok *tok, const char *run_dir, cpt_train_evalif **out, long long *every,
                           cpt_err *err) {
    *out = NULL;
    if (!cpt_recipe_has(r, "eval.ifeval.every")) return CPT_OK;
    cpt_train_evalif *e = calloc(1, sizeof *e);
    if (!e) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    const char *p = cpt_recipe_str(r, "eval.ifeval.prompts");
    snprintf(e->name, sizeof e->name, "%s", p);
    int rc = cpt_if_load(&e->set, p, (size_t)cpt_recipe_int(r, "eval.ifeval.limit"), err);
    if (rc) {
        free(e);
        return cpt_err_wrap(err, "eval.ifeval.prompts");
    }
    if (!cpt_tok_chat_template(tok)) {
        cpt_if_free(&e->set);
        free(e);
        return cpt_err_set(err, CPT_EINVAL, "eval.ifeval needs the model's chat template (an instruct model's tokenizer_config.json has one). HINT: drop the eval.ifeval block for a base model");
    }
    e->tok = tok;
    e->max_new = (int)cpt_recipe_int(r, "eval.ifeval.max_new");
    e->budget = cpt_recipe_float(r, "eval.ifeval.budget");
    e->every = *every = cpt_recipe_int(r, "eval.ifeval.every");
    snprintf(e->dir, sizeof e->dir, "%s/eval_ifeval", run_dir);
    *out = e;
    return CPT_OK;
}

void cpt_train_evalif_free(cpt_train_evalif *e) {
    if (!e) return;
    cpt_if_free(&e->set);
    free(e);
}

long long cpt_train_evalif_every(const cpt_train_evalif *e) { return e->every; }

int cpt_train_evalif_run(void *ctx, cpt_model *m, long long step, struct cpt_metrics *mx, FILE *log, cpt_err *err) {
    cpt_train_evalif *e = ctx;
    cpt_if_result r;
    int rc = cpt_if_run(m, e->tok, NULL, &e->set, e->max_new, 4, NULL, &r, err);
    if (rc) return cpt_err_wrap(err, "eval.ifeval at step %lld", step);
    /* every reply and verdict */
    char path[4400];
    mkdir(e->dir, 0755);
    snprintf(path, sizeof path, "%s/step-%08lld.jsonl", e->dir, step);
    FILE *f = fopen(path, "wb");
    for (size_t i = 0; f && i < r.n; i++) {
        json_t *o = json_object(), *fl = json_array();
        for (int c = 0; c < e->set.items[i].n_checks; c++) json_array_append_new(fl, json_boolean(r.follows[i * CPT_IF_MAX_CHECKS + (size_t)c]));
        json_object_set_new(o, "id", json_string(e->set.items[i].id));
        json_object_set_new(o, "response", json_string(r.responses[i]));
        json_object_set_new(o, "follows", fl);
        char *s = json_dumps(o, JSON_COMPACT);
        if (s) fprintf(f, "%s\n", s);
        free(s);
        json_decref(o);
    }
    if (!f || fclose(f)) {
        cpt_if_result_free(&r);
        return cpt_err_set(err, CPT_EIO, "%s: cannot write the eval.ifeval replies", path);
    }
    if (e->n_runs++ == 0) e->first_step = step, e->first_acc = r.acc, e->first_se = r.acc_stderr;
    e->last_step = step, e->last_acc = r.acc, e->last_se = r.acc_stderr, e->last_inst = r.inst_acc;
    const char *keys[] = {"ifeval/acc", "ifeval/acc_stderr", "ifeval/inst_acc"};
    double vals[] = {r.acc, r.acc_stderr, r.inst_acc};
    if (mx && (rc = cpt_metrics_log(mx, "eval", step, keys, vals, 3, err))) {
        cpt_if_result_free(&r);
        return rc;
    }
    double drop = e->first_acc - r.acc;
    if (log)
        fprintf(log, "ifeval at step %lld: prompt-level %.3f +- %.3f (base %.3f, %+.3f), instruction-level %.3f, %zu prompts in %.0f s\n",
                step, r.acc, r.acc_stderr, e->first_acc, r.acc - e->first_acc, r.inst_acc, r.n, r.seconds);
    if (e->n_runs > 1 && drop > e->budget) {
        e->over = 1;
        if (log)
            fprintf(log, "warning: instruction following fell by %.3f (prompt-level, %.3f -> %.3f), past eval.ifeval.budget %.3f. HINT: mix 1-5%% "
                         "instruction data into the stages (the seeds' advice) or lower the learning rate\n",
                    drop, e->first_acc, r.acc, e->budget);
        char ev[256];
        snprintf(ev, sizeof ev, "{\"what\": \"ifeval_budget\", \"base\": %.6g, \"now\": %.6g, \"budget\": %.6g}", e->first_acc, r.acc, e->budget);
        if (mx && (rc = cpt_metrics_event(mx, step, ev, err))) {
            cpt_if_result_free(&r);
            return rc;
        }
    }
    cpt_if_result_free(&r);
    return CPT_OK;
}

char *cpt_train_evalif_markdown(const cpt_train_evalif *e) {
    if (!e || e->n_runs == 0) return NULL;
    char *md = malloc(1024);
    if (!md) return NULL;
    snprintf(md, 1024,
             "## Instruction following\n\n%s, %zu prompts, greedy replies of at most %d tokens through the chat template "
             "(eval_ifeval/step-N.jsonl has every reply).\n\n| step | prompt-level strict accuracy |\n|---|---|\n"
             "| %lld (base) | %.3f +- %.3f |\n| %lld | %.3f +- %.3f |\n\nChange %+.3f; budget %.3f: %s.\n",
             e->name, e->set.n, e->max_new, e->first_step, e->first_acc, e->first_se, e->last_step, e->last_acc, e->last_se,
             e->last_acc - e->first_acc, e->budget, e->over ? "**exceeded**" : "kept");
    return md;
}

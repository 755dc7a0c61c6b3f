/* cmd_compare.c: `cpt compare BASE TUNED --tasks ...`: both models on the same items,
 * per-task deltas with paired standard errors, a verdict against a forgetting budget,
 * Markdown on stdout and compare.md / compare.svg / compare.json in --out-dir. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/task_score.h"
#include "cli/opts.h"
#include "cpt/model.h"
#include "cpt/tokenizer.h"

#define MAX_TASKS 64

/* Per-item 0/1 hits of one model on every task (cpt_cli_task_hits). */
static int score_model(const char *dir, const cpt_cli_task *tasks, int max_new, int nt, const cpt_eval_opts *o,
                       const char *precision, double **hits, cpt_err *err) {
    cpt_model *m = NULL;
    cpt_tok *tok = NULL;
    int rc = cpt_model_load_hf(&m, dir, err);
    if (!rc) rc = cpt_cli_set_precision(m, precision, "comparison", stderr, err);
    if (!rc) rc = cpt_tok_load(&tok, dir, err);
    for (int k = 0; k < nt && !rc; k++) rc = cpt_cli_task_hits(m, tok, &tasks[k], o, max_new, &hits[k], err);
    if (rc) cpt_err_wrap(err, "model %s", dir);
    cpt_tok_free(tok);
    cpt_model_free(m);
    return rc;
}

static int write_text(const char *path, const char *text, cpt_err *err) {
    FILE *f = fopen(path, "wb");
    if (!f) return cpt_err_set(err, CPT_EIO, "%s: cannot open for writing. HINT: check --out-dir", path);
    fputs(text, f);
    if (fclose(f)) return cpt_err_set(err, CPT_EIO, "%s: write failed", path);
    return CPT_OK;
}

int cpt_cmd_compare(int argc, char **argv) {
    const char *tasks_s = NULL, *out_dir = NULL, *data_dir = NULL, *models[2] = {NULL, NULL}, *precision = "fp32";
    long long limit = 0, fewshot = 0, batch = 4, seed = 1234, max_new = 0;
    double budget = 0.02;
    cpt_opt opts[] = {
        {"--tasks", CPT_OPT_STR, &tasks_s, "LIST", "comma-separated built-in task names and/or .jsonl paths (as cpt eval)", 1, 0, 0, NULL, 0},
        {"--limit", CPT_OPT_INT, &limit, "N", "the first N items of each task (0: all)", 0, 0, 1e9, NULL, 0},
        {"--fewshot", CPT_OPT_INT, &fewshot, "K", "K solved examples before each item (the same for both models)", 0, 0, 64, NULL, 0},
        {"--seed", CPT_OPT_INT, &seed, "S", "seed of the few-shot sampler", 0, 0, 9e15, NULL, 0},
        {"--batch", CPT_OPT_INT, &batch, "N", "rows per forward", 0, 1, 4096, NULL, 0},
        {"--max-new", CPT_OPT_INT, &max_new, "N", "ifeval / QA: at most N generated tokens per reply (0: the task's default, ifeval 256, QA 32)", 0, 0, 1e6, NULL, 0},
        {"--budget", CPT_OPT_FLOAT, &budget, "B", "forgetting budget: a task whose score drops by more than B (absolute, e.g. 0.02 = 2 points) is forgotten", 0, 0, 1, NULL, 0},
        {"--data-dir", CPT_OPT_STR, &data_dir, "DIR", "where the built-in tasks' files are (default as cpt eval)", 0, 0, 0, NULL, 0},
        {"--precision", CPT_OPT_STR, &precision, "fp32|bf16", "both models' products of the linears, the LM head and attention (as cpt eval --precision; the same for both)", 0, 0, 0, NULL, 0},
        {"--out-dir", CPT_OPT_STR, &out_dir, "DIR", "also write compare.md, compare.svg and compare.json there", 0, 0, 0, NULL, 0},
    };
    const char *pos = NULL;
    cpt_cmd_spec spec = {"compare",
                         "Compare a tuned model with its base on the same benchmark items (cpt eval's scoring):\n"
                         "per task the score (acc_norm where the task has it, else acc; ifeval: prompt-level strict\n"
                         "accuracy; QA tasks (triviaqa, jeopardy, pubmedqa, qa:FILE): exact match) of each, the delta\n"
                         "tuned - base with its paired standard error, and a verdict against --budget.",
                         "Usage: cpt compare BASE_DIR TUNED_DIR --tasks LIST [options]. Exit 0 either way; the\n"
                         "verdict is in the output (\"kept\" or \"forgot\" per task, and overall).",
                         opts, CPT_NOPTS(opts), "BASE_DIR TUNED_DIR", &pos};
    /* two positionals: take them out before the option parser (it accepts one) */
    char *av[256];
    int ac = 0;
    for (int i = 0; i < argc && ac < 255; i++) {
        int is_val = i > 0 && argv[i - 1][0] == '-' && argv[i - 1][1] == '-' && strcmp(argv[i - 1], "--help") != 0;
        if (i > 0 && argv[i][0] != '-' && !is_val && (!models[0] || !models[1])) {
            if (!models[0]) models[0] = argv[i];
            else models[1] = argv[i];
            continue;
        }
        av[ac++] = argv[i];
    }
    int prc = cpt_opts_parse(&spec, ac, av);
    if (prc) return prc == 1 ? 0 : 2;
    if (!models[0] || !models[1] || pos) {
        fprintf(stderr, "cpt compare: give BASE_DIR and TUNED_DIR\nHINT: run 'cpt compare --help'\n");
        return 2;
    }
    char ddbuf[4200];
    if (!data_dir) data_dir = cpt_eval_default_data_dir(ddbuf, sizeof ddbuf);
    cpt_err err = {0};
    cpt_cli_task tasks[MAX_TASKS];
    double *hits[2][MAX_TASKS];
    memset(hits, 0, sizeof hits);
    int nt = 0, rc = CPT_OK;
    char *list = strdup(tasks_s), *save = NULL;
    if (!list) rc = cpt_err_set(&err, CPT_ENOMEM, "out of memory");
    for (char *nm = list ? strtok_r(list, ",", &save) : NULL; nm && !rc; nm = strtok_r(NULL, ",", &save)) {
        if (!*nm) continue;
        if (nt == MAX_TASKS) {
            rc = cpt_err_set(&err, CPT_EINVAL, "more than %d tasks. HINT: compare fewer at once", MAX_TASKS);
            break;
        }
        rc = cpt_cli_task_load(&tasks[nt], nm, data_dir, (size_t)limit, 0, &err);
        if (!rc) nt++;
    }
    cpt_eval_opts o = {(size_t)limit, (int)fewshot, (uint64_t)seed, (int)batch};
    for (int mi = 0; mi < 2 && !rc; mi++) rc = score_model(models[mi], tasks, (int)max_new, nt, &o, precision, hits[mi], &err);
    cpt_compare_row rows[MAX_TASKS];
    int n_forgot = 0;
    for (int k = 0; k < nt && !rc; k++) {
        size_t n = tasks[k].n;
        rows[k].task = tasks[k].label;
        rows[k].n = n;
        rows[k].metric = cpt_cli_task_metric(&tasks[k]);
        cpt_eval_mean_stderr(hits[0][k], n, &rows[k].base, NULL);
        cpt_eval_mean_stderr(hits[1][k], n, &rows[k].tuned, NULL);
        cpt_eval_paired_delta(hits[0][k], hits[1][k], n, &rows[k].delta, &rows[k].delta_se);
        rows[k].forgot = rows[k].delta < -budget;
        n_forgot += rows[k].forgot;
    }
    if (!rc) {
        /* the Markdown report */
        size_t cap = 1024 + (size_t)nt * 256;
        char *md = malloc(cap);
        if (!md) rc = cpt_err_set(&err, CPT_ENOMEM, "out of memory");
        else {
            size_t w = (size_t)snprintf(md, cap, "base: %s\ntuned: %s\nforgetting budget: %.4g (absolute)\n\n"
                                                 "| task | metric | n | base | tuned | delta | stderr | verdict |\n"
                                                 "|---|---|---|---|---|---|---|---|\n", models[0], models[1], budget);
            for (int k = 0; k < nt && w < cap; k++)
                w += (size_t)snprintf(md + w, cap - w, "| %s | %s | %zu | %.4f | %.4f | %+.4f | %.4f | %s |\n", rows[k].task,
                                      rows[k].metric, rows[k].n, rows[k].base, rows[k].tuned, rows[k].delta,
                                      rows[k].delta_se, rows[k].forgot ? "forgot" : "kept");
            if (w < cap)
                snprintf(md + w, cap - w, "\nverdict: %s (%d of %d tasks past the budget)\n", n_forgot ? "forgot" : "kept",
                         n_forgot, nt);
            fputs(md, stdout);
            if (out_dir) {
                char path[4200];
                mkdir(out_dir, 0755);
                snprintf(path, sizeof path, "%s/compare.md", out_dir);
                rc = write_text(path, md, &err);
                char *svg = rc ? NULL : cpt_eval_compare_svg(rows, nt, budget);
                if (!rc && !svg) rc = cpt_err_set(&err, CPT_ENOMEM, "out of memory");
                snprintf(path, sizeof path, "%s/compare.svg", out_dir);
                if (!rc) rc = write_text(path, svg, &err);
                free(svg);
                json_t *j = json_object(), *jt = json_object();
                json_object_set_new(j, "base", json_string(models[0]));
                json_object_set_new(j, "tuned", json_string(models[1]));
                json_object_set_new(j, "budget", json_real(budget));
                json_object_set_new(j, "verdict", json_string(n_forgot ? "forgot" : "kept"));
                for (int k = 0; k < nt; k++) {
                    json_t *r = json_object();
                    json_object_set_new(r, "metric", json_string(rows[k].metric));
                    json_object_set_new(r, "n", json_integer((json_int_t)rows[k].n));
                    json_object_set_new(r, "base", json_real(rows[k].base));
                    json_object_set_new(r, "tuned", json_real(rows[k].tuned));
                    json_object_set_new(r, "delta", json_real(rows[k].delta));
                    json_object_set_new(r, "delta_stderr", json_real(rows[k].delta_se));
                    json_object_set_new(r, "verdict", json_string(rows[k].forgot ? "forgot" : "kept"));
                    json_object_set_new(jt, rows[k].task, r);
                }
                json_object_set_new(j, "tasks", jt);
                snprintf(path, sizeof path, "%s/compare.json", out_dir);
                if (!rc && json_dump_file(j, path, JSON_INDENT(2) | JSON_REAL_PRECISION(17)))
                    rc = cpt_err_set(&err, CPT_EIO, "%s: cannot write", path);
                json_decref(j);
            }
            free(md);
        }
    }
    for (int k = 0; k < nt; k++) {
        cpt_cli_task_free(&tasks[k]);
        free(hits[0][k]), free(hits[1][k]);
    }
    free(list);
    return rc ? cpt_cli_fail("compare", &err) : 0;
}

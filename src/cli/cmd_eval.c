/* cmd_eval.c: `cpt eval`: benchmark tasks scored the lm-evaluation-harness way
 * (multiple choice by continuation log-likelihood, LAMBADA cloze), a Markdown table on
 * stdout, the per-task metrics as JSON (--out) and every item's log-likelihoods (--items). */
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/task_score.h"
#include "cli/opts.h"
#include "cpt/eval.h"
#include "cpt/fileio.h"
#include "cpt/ifeval.h"
#include "cpt/qa.h"
#include "cpt/model.h"
#include "cpt/tokenizer.h"

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* --data-dir, else $CPT_EVAL_DATA, else ../shared/data/eval beside the checkout the binary
 * was built in (build/cpt -> CHECKOUT/../shared), else ../shared/data/eval from here. */
const char *cpt_eval_default_data_dir(char *buf, size_t cap) {
    const char *env = getenv("CPT_EVAL_DATA");
    if (env && *env) return env;
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k > 0) {
        exe[k] = 0;
        for (int up = 0; up < 4; up++) {
            char *s = strrchr(exe, '/');
            if (!s || s == exe) break;
            *s = 0;
            if ((size_t)snprintf(buf, cap, "%s/../shared/data/eval", exe) < cap && is_dir(buf)) return buf;
        }
    }
    return "../shared/data/eval";
}

static json_t *num_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static void fmt_metric(char *buf, size_t cap, double v, double se) {
    if (isfinite(v)) snprintf(buf, cap, "%.4f | %.4f", v, se);
    else snprintf(buf, cap, "- | -");
}

/* One QA task: generation, the table row, the JSON entry and the items. */
static int run_qa(cpt_model *m, cpt_tok *tok, const char *name, const cpt_qa_task *t, size_t limit, int fewshot,
                  uint64_t seed, int max_new, int batch, json_t *jt, FILE *items_f, cpt_err *err) {
    cpt_qa_opts o = {limit, fewshot, seed, max_new, batch};
    cpt_qa_result r;
    int rc = cpt_qa_run(m, tok, t, &o, NULL, &r, err);
    if (rc) return cpt_err_wrap(err, "task %s", name);
    char label[256], a[64], f[64];
    cpt_cli_task_label(name, label, sizeof label, 1);
    double ips = r.seconds > 0 ? (double)r.n / r.seconds : 0;
    fmt_metric(a, sizeof a, r.em, r.em_stderr);
    fmt_metric(f, sizeof f, r.f1, r.f1_stderr);
    printf("| %s | %zu | %s | %s | - | %.2f |\n", label, r.n, a, f, ips);
    fflush(stdout);
    json_t *o1 = json_object();
    json_object_set_new(o1, "acc", num_or_null(r.em));
    json_object_set_new(o1, "acc_stderr", num_or_null(r.em_stderr));
    json_object_set_new(o1, "exact_match", num_or_null(r.em));
    json_object_set_new(o1, "exact_match_stderr", num_or_null(r.em_stderr));
    json_object_set_new(o1, "f1", num_or_null(r.f1));
    json_object_set_new(o1, "f1_stderr", num_or_null(r.f1_stderr));
    json_object_set_new(o1, "n", json_integer((json_int_t)r.n));
    json_object_set_new(o1, "max_new", json_integer(max_new));
    json_object_set_new(o1, "generated_tokens", json_integer(r.tokens));
    json_object_set_new(o1, "seconds", json_real(r.seconds));
    json_object_set_new(o1, "items_per_s", json_real(ips));
    json_object_set_new(jt, label, o1);
    for (size_t i = 0; items_f && i < r.n; i++) {
        json_t *li = json_object(), *sh = json_array(), *golds = json_array();
        for (int k = 0; k < r.fewshot; k++) json_array_append_new(sh, json_integer(r.shots[i * (size_t)r.fewshot + (size_t)k]));
        for (int g = 0; g < t->items[i].n_answers; g++) json_array_append_new(golds, json_string(t->items[i].answers[g]));
        json_object_set_new(li, "task", json_string(label));
        json_object_set_new(li, "item", json_integer((json_int_t)i));
        json_object_set_new(li, "response", json_string(r.replies[i]));
        json_object_set_new(li, "answers", golds);
        json_object_set_new(li, "exact_match", json_real(r.em_i[i]));
        json_object_set_new(li, "f1", json_real(r.f1_i[i]));
        json_object_set_new(li, "shots", sh);
        char *s = json_dumps(li, JSON_COMPACT | JSON_REAL_PRECISION(17));
        if (s) fprintf(items_f, "%s\n", s);
        free(s);
        json_decref(li);
    }
    cpt_qa_result_free(&r);
    return CPT_OK;
}

/* One ifeval set: greedy replies through the chat template, the rule checks, the row, the
 * JSON entry and the items. */
static int run_if(cpt_model *m, cpt_tok *tok, const char *name, const cpt_if_set *ifs, const char *tpl, int max_new,
                  int batch, json_t *jt, FILE *items_f, cpt_err *err) {
    cpt_if_result ir;
    if (cpt_if_run(m, tok, tpl, ifs, max_new, batch, NULL, &ir, err)) return cpt_err_wrap(err, "task %s", name);
    char label[256], a[64];
    cpt_cli_task_label(name, label, sizeof label, 1);
    if (name[6]) snprintf(label + strlen(label), sizeof label - strlen(label), " (ifeval)");
    fmt_metric(a, sizeof a, ir.acc, ir.acc_stderr);
    printf("| %s | %zu | %s | inst %.4f | %.4f | - | %.2f |\n", label, ir.n, a, ir.inst_acc, ir.inst_acc_stderr,
           ir.seconds > 0 ? (double)ir.n / ir.seconds : 0);
    fflush(stdout);
    json_t *o1 = json_object();
    json_object_set_new(o1, "acc", num_or_null(ir.acc));
    json_object_set_new(o1, "acc_stderr", num_or_null(ir.acc_stderr));
    json_object_set_new(o1, "prompt_level_strict_acc", num_or_null(ir.acc));
    json_object_set_new(o1, "inst_level_strict_acc", num_or_null(ir.inst_acc));
    json_object_set_new(o1, "inst_level_strict_acc_stderr", num_or_null(ir.inst_acc_stderr));
    json_object_set_new(o1, "n", json_integer((json_int_t)ir.n));
    json_object_set_new(o1, "n_instructions", json_integer((json_int_t)ir.n_inst));
    json_object_set_new(o1, "max_new", json_integer(max_new));
    json_object_set_new(o1, "seconds", json_real(ir.seconds));
    json_object_set_new(jt, label, o1);
    for (size_t i = 0; items_f && i < ir.n; i++) {
        const cpt_if_item *it = &ifs->items[i];
        json_t *li = json_object(), *fl = json_array(), *ks = json_array();
        for (int c = 0; c < it->n_checks; c++) {
            json_array_append_new(fl, json_boolean(ir.follows[i * CPT_IF_MAX_CHECKS + (size_t)c]));
            json_array_append_new(ks, json_string(cpt_if_kind_name(it->checks[c].kind)));
        }
        json_object_set_new(li, "task", json_string(label));
        json_object_set_new(li, "item", json_integer((json_int_t)i));
        json_object_set_new(li, "id", json_string(it->id));
        json_object_set_new(li, "response", json_string(ir.responses[i]));
        json_object_set_new(li, "checks", ks);
        json_object_set_new(li, "follows", fl);
        char *js = json_dumps(li, JSON_COMPACT);
        if (js) fprintf(items_f, "%s\n", js);
        free(js);
        json_decref(li);
    }
    cpt_if_result_free(&ir);
    return CPT_OK;
}

/* One multiple-choice or cloze task: the log-likelihoods, the row, the JSON entry and the
 * items. */
static int run_mc(cpt_model *m, cpt_tok *tok, const char *name, const cpt_mc_task *t, const cpt_eval_opts *o,
                  json_t *jt, FILE *items_f, cpt_err *err) {
    cpt_eval_result r;
    if (cpt_eval_task_run(m, tok, t, o, &r, err)) return cpt_err_wrap(err, "task %s", name);
    char label[256], a[64], an[64], ppl[64];
    cpt_cli_task_label(name, label, sizeof label, 1);
    double ips = r.seconds > 0 ? (double)r.n / r.seconds : 0;
    fmt_metric(a, sizeof a, r.acc, r.acc_stderr);
    fmt_metric(an, sizeof an, r.acc_norm, r.acc_norm_stderr);
    if (isfinite(r.ppl) && isfinite(r.ll_tok)) snprintf(ppl, sizeof ppl, "%.4g (%.3f/token)", r.ppl, r.ll_tok);
    else if (isfinite(r.ppl)) snprintf(ppl, sizeof ppl, "%.3f", r.ppl);
    else snprintf(ppl, sizeof ppl, "-");
    printf("| %s | %zu | %s | %s | %s | %.1f |\n", label, r.n, a, an, ppl, ips);
    fflush(stdout);
    json_t *o1 = json_object();
    json_object_set_new(o1, "acc", num_or_null(r.acc));
    json_object_set_new(o1, "acc_stderr", num_or_null(r.acc_stderr));
    json_object_set_new(o1, "acc_norm", num_or_null(r.acc_norm));
    json_object_set_new(o1, "acc_norm_stderr", num_or_null(r.acc_norm_stderr));
    if (t->kind == CPT_TASK_CLOZE) {
        json_object_set_new(o1, "perplexity", num_or_null(r.ppl));
        json_object_set_new(o1, "logprob_per_token", num_or_null(r.ll_tok));
        json_object_set_new(o1, "logprob_per_token_stderr", num_or_null(r.ll_tok_stderr));
    }
    json_object_set_new(o1, "n", json_integer((json_int_t)r.n));
    json_object_set_new(o1, "seconds", json_real(r.seconds));
    json_object_set_new(o1, "items_per_s", json_real(ips));
    json_object_set_new(jt, label, o1);
    for (size_t i = 0; items_f && i < r.n; i++) {
        json_t *li = json_object(), *ll = json_array(), *gr = json_array(), *sh = json_array();
        for (size_t q = r.ll_off[i]; q < r.ll_off[i + 1]; q++) {
            json_array_append_new(ll, json_real(r.ll[q]));
            json_array_append_new(gr, json_boolean(r.greedy[q]));
        }
        for (int k = 0; k < r.fewshot; k++) json_array_append_new(sh, json_integer(r.shots[i * (size_t)r.fewshot + (size_t)k]));
        json_object_set_new(li, "task", json_string(label));
        json_object_set_new(li, "item", json_integer((json_int_t)i));
        json_object_set_new(li, "gold", json_integer(t->items[i].gold));
        json_object_set_new(li, "ll", ll);
        json_object_set_new(li, "greedy", gr);
        json_object_set_new(li, "pred", json_integer(r.pred[i]));
        json_object_set_new(li, "pred_norm", json_integer(r.pred_norm[i]));
        json_object_set_new(li, "shots", sh);
        char *s = json_dumps(li, JSON_COMPACT | JSON_REAL_PRECISION(17));
        if (s) fprintf(items_f, "%s\n", s);
        free(s);
        json_decref(li);
    }
    cpt_eval_result_free(&r);
    return CPT_OK;
}

int cpt_cmd_eval(int argc, char **argv) {
    const char *model_dir = NULL, *tasks = NULL, *out_path = NULL, *items_path = NULL, *data_dir = NULL,
               *tok_path = NULL, *tpl_path = NULL, *precision = "fp32";
    long long limit = 0, fewshot = 0, batch = 4, seed = 1234, max_new = 0;
    int letters = 0;
    cpt_opt opts[] = {
        {"--model", CPT_OPT_STR, &model_dir, "DIR", "Hugging Face model directory (config.json + safetensors + tokenizer)", 1, 0, 0, NULL, 0},
        {"--tasks", CPT_OPT_STR, &tasks, "LIST", "comma-separated built-in task names and/or paths of {\"query\",\"choices\",\"gold\"} .jsonl files", 1, 0, 0, NULL, 0},
        {"--limit", CPT_OPT_INT, &limit, "N", "score the first N items of each task (0: all)", 0, 0, 1e9, NULL, 0},
        {"--fewshot", CPT_OPT_INT, &fewshot, "K", "K solved examples before each item, drawn from the task's other items", 0, 0, 64, NULL, 0},
        {"--seed", CPT_OPT_INT, &seed, "S", "seed of the few-shot sampler", 0, 0, 9e15, NULL, 0},
        {"--batch", CPT_OPT_INT, &batch, "N", "rows (context, continuation pairs) per forward; QA and ifeval: replies decoded together", 0, 1, 4096, NULL, 0},
        {"--letters", CPT_OPT_FLAG, &letters, NULL, "MMLU-style letter answers for .jsonl tasks (choices listed as \"A. ...\", continuations \"A\", \"B\", ...)", 0, 0, 0, NULL, 0},
        {"--data-dir", CPT_OPT_STR, &data_dir, "DIR", "where the built-in tasks' files are (default: $CPT_EVAL_DATA, else ../shared/data/eval beside the checkout)", 0, 0, 0, NULL, 0},
        {"--tokenizer", CPT_OPT_STR, &tok_path, "PATH", "tokenizer (default: the model directory)", 0, 0, 0, NULL, 0},
        {"--max-new", CPT_OPT_INT, &max_new, "N", "generated tokens per reply (0: the task's default, ifeval 256, QA 32)", 0, 0, 1e6, NULL, 0},
        {"--chat-template", CPT_OPT_STR, &tpl_path, "FILE", "ifeval: a Jinja chat template file instead of the tokenizer's", 0, 0, 0, NULL, 0},
        {"--out", CPT_OPT_STR, &out_path, "FILE.json", "write the per-task metrics as JSON", 0, 0, 0, NULL, 0},
        {"--items", CPT_OPT_STR, &items_path, "FILE.jsonl", "write every item's choice log-likelihoods, predictions and few-shot indices", 0, 0, 0, NULL, 0},
        {"--precision", CPT_OPT_STR, &precision, "fp32|bf16", "products of the linears, the LM head and attention in scoring and prefill, of the linears and the LM head in decoding: bf16 on AMX / AVX512-BF16, else fp32", 0, 0, 0, NULL, 0},
    };
    cpt_cmd_spec spec = {"eval",
                         "Score benchmark tasks the lm-evaluation-harness way: each choice's continuation\n"
                         "log-likelihood given the context; acc (argmax of the sum), acc_norm (sum / length of the\n"
                         "choice in characters), their standard errors (sample std / sqrt(n)); LAMBADA: last-word\n"
                         "accuracy (greedy) and perplexity.",
                         "Built-in tasks: hellaswag, arc_easy, arc_challenge, piqa, winogrande, boolq, copa, openbookqa,\n"
                         "lambada_openai, mmlu_cs (files under --data-dir). Prints a Markdown table and items/s.\n"
                         "Knowledge probes: fictional_mem, fictional_gen, fictional_hard (the Fictional Knowledge\n"
                         "dataset beside --data-dir: memorization, paraphrase and composition probes of its 130\n"
                         "documents); acc = the target is the greedy continuation, ppl column also gives the\n"
                         "target's mean log-probability per token (JSON logprob_per_token), the dataset's score.\n"
                         "Instruction following: ifeval (100 verifiable-instruction prompts carried by the binary) or\n"
                         "ifeval:FILE.jsonl (your own, same form): the prompt through the chat template, a greedy reply,\n"
                         "rule checks; acc = prompt-level strict accuracy, inst_acc = instruction-level.\n"
                         "Question answering by greedy generation: triviaqa, jeopardy, pubmedqa, or qa:FILE.jsonl\n"
                         "({\"question\", \"answers\"} or {\"context\", \"answer\"} lines); acc = exact match and the\n"
                         "acc_norm column = token F1, both after SQuAD normalisation, best over the gold answers.",
                         opts, CPT_NOPTS(opts), NULL, NULL};
    int prc = cpt_opts_parse(&spec, argc, argv);
    if (prc) return prc == 1 ? 0 : 2;
    char ddbuf[PATH_MAX + 32];
    if (!data_dir) data_dir = cpt_eval_default_data_dir(ddbuf, sizeof ddbuf);
    cpt_err err = {0};
    cpt_model *m = NULL;
    cpt_tok *tok = NULL;
    /* every task loads (and is checked) before the model does */
    enum { MAX_TASKS = 64 };
    cpt_cli_task tl[MAX_TASKS];
    char *names[MAX_TASKS];
    int nt = 0, rc = CPT_OK;
    char *list = strdup(tasks), *save = NULL;
    if (!list) rc = cpt_err_set(&err, CPT_ENOMEM, "out of memory");
    for (char *nm = list ? strtok_r(list, ",", &save) : NULL; nm && !rc; nm = strtok_r(NULL, ",", &save)) {
        if (!*nm) continue;
        if (nt == MAX_TASKS) rc = cpt_err_set(&err, CPT_EINVAL, "more than %d tasks. HINT: run fewer at once", MAX_TASKS);
        else if (!(rc = cpt_cli_task_load(&tl[nt], nm, data_dir, (size_t)limit, letters, &err))) names[nt++] = nm;
    }
    if (!rc && nt == 0) rc = cpt_err_set(&err, CPT_EINVAL, "--tasks names no task. HINT: e.g. --tasks hellaswag,arc_easy");
    if (!rc) rc = cpt_model_load_hf(&m, model_dir, &err);
    if (!rc) rc = cpt_cli_set_precision(m, precision, "evaluation", stderr, &err);
    if (!rc) rc = cpt_tok_load(&tok, tok_path ? tok_path : model_dir, &err);
    char *tpl = NULL;
    size_t tpl_len = 0;
    if (!rc && tpl_path && (rc = cpt_read_file(tpl_path, &tpl, &tpl_len, &err)))
        cpt_err_wrap(&err, "--chat-template");
    FILE *items_f = NULL;
    if (!rc && items_path && !(items_f = fopen(items_path, "wb")))
        rc = cpt_err_set(&err, CPT_EIO, "%s: cannot open for writing. HINT: check the --items path", items_path);
    json_t *res = json_object(), *jt = json_object();
    json_object_set_new(res, "model", json_string(model_dir));
    json_object_set_new(res, "fewshot", json_integer(fewshot));
    json_object_set_new(res, "limit", json_integer(limit));
    json_object_set_new(res, "tasks", jt);
    if (!rc) {
        printf("| task | n | acc | stderr | acc_norm | stderr | ppl | items/s |\n");
        printf("|---|---|---|---|---|---|---|---|\n");
    }
    for (int ti = 0; ti < nt && !rc; ti++) {
        const cpt_cli_task *t = &tl[ti];
        if (t->kind == CPT_CLI_TASK_QA)
            rc = run_qa(m, tok, names[ti], &t->qa, (size_t)limit, (int)fewshot, (uint64_t)seed, max_new ? (int)max_new : 32,
                        (int)batch, jt, items_f, &err);
        else if (t->kind == CPT_CLI_TASK_IF)
            rc = run_if(m, tok, names[ti], &t->ifs, tpl, max_new ? (int)max_new : 256, (int)batch, jt, items_f, &err);
        else {
            cpt_eval_opts o = {(size_t)limit, (int)fewshot, (uint64_t)seed, (int)batch};
            rc = run_mc(m, tok, names[ti], &t->mc, &o, jt, items_f, &err);
        }
    }
    for (int ti = 0; ti < nt; ti++) cpt_cli_task_free(&tl[ti]);
    free(tpl);
    free(list);
    if (items_f && fclose(items_f) && !rc) rc = cpt_err_set(&err, CPT_EIO, "%s: write failed", items_path);
    if (!rc && out_path && json_dump_file(res, out_path, JSON_INDENT(2) | JSON_REAL_PRECISION(10)))
        rc = cpt_err_set(&err, CPT_EIO, "%s: cannot write. HINT: check the --out path", out_path);
    json_decref(res);
    cpt_tok_free(tok);
    cpt_model_free(m);
    return rc ? cpt_cli_fail("eval", &err) : 0;
}

/* qa.c: QA by greedy generation with exact match / token F1 after SQuAD normalisation
 * (cpt/qa.h). */
#include "cpt/qa.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "cpt/eval.h"
#include "cpt/fileio.h"
#include "cpt/generate.h"
#include "cpt/model.h"
#include "cpt/tokenizer.h"

/* ---- SQuAD normalisation ---- */

/* Python's str.isspace(), for the code points str.split() splits on. */
static int is_space(int32_t c) {
    if (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f) || c == 0x85) return 1;
    if (c < 0x80) return 0;
    utf8proc_category_t k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_ZS || k == UTF8PROC_CATEGORY_ZL || k == UTF8PROC_CATEGORY_ZP;
}

/* re's \w for str patterns: letters, numbers and '_'. */
static int is_word(int32_t c) {
    if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    utf8proc_category_t k = utf8proc_category(c);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) || (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO);
}

static int is_punct(int32_t c) { /* string.punctuation */
    return c < 0x80 && c > 0x20 && c != 0x7f && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'));
}

char *cpt_qa_normalize(const char *s) {
    size_t n = strlen(s), k = 0;
    int32_t *cp = malloc(sizeof(int32_t) * (n + 1));
    char *out = malloc(4 * n + 1);
    if (!cp || !out) {
        free(cp), free(out);
        return NULL;
    }
    /* lower() and the punctuation removal (invalid bytes read as U+FFFD) */
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &c);
        if (l <= 0) c = 0xFFFD, l = 1;
        i += (size_t)l;
        c = utf8proc_tolower(c);
        if (!is_punct(c)) cp[k++] = c;
    }
    /* articles between word boundaries become a space, then whitespace runs collapse */
    size_t o = 0;
    int pending = 0; /* a space is due before the next word character */
    for (size_t i = 0; i < k;) {
        static const char *const art[] = {"a", "an", "the"};
        size_t alen = 0;
        if (i == 0 || !is_word(cp[i - 1]))
            for (int a = 0; a < 3 && !alen; a++) {
                size_t L = strlen(art[a]), j = 0;
                while (j < L && i + j < k && cp[i + j] == (int32_t)art[a][j]) j++;
                if (j == L && (i + L == k || !is_word(cp[i + L]))) alen = L;
            }
        if (alen) {
            pending = o > 0, i += alen;
            continue;
        }
        if (is_space(cp[i])) {
            pending = o > 0, i++;
            continue;
        }
        if (pending) out[o++] = ' ', pending = 0;
        o += (size_t)utf8proc_encode_char(cp[i], (utf8proc_uint8_t *)out + o);
        i++;
    }
    out[o] = 0;
    free(cp);
    return out;
}

int cpt_qa_exact_match(const char *pred, const char *gold) {
    char *a = cpt_qa_normalize(pred), *b = cpt_qa_normalize(gold);
    int eq = a && b && !strcmp(a, b);
    free(a), free(b);
    return eq;
}

/* Split a normalised string (single spaces) in place into words. */
static size_t split_words(char *s, char **w, size_t cap) {
    size_t n = 0;
    for (char *p = s; *p && n < cap;) {
        w[n++] = p;
        char *q = strchr(p, ' ');
        if (!q) break;
        *q = 0, p = q + 1;
    }
    return n;
}

double cpt_qa_f1(const char *pred, const char *gold) {
    char *a = cpt_qa_normalize(pred), *b = cpt_qa_normalize(gold);
    double f1 = 0;
    size_t la = a ? strlen(a) / 2 + 1 : 0, lb = b ? strlen(b) / 2 + 1 : 0;
    char **wa = a ? malloc(sizeof(char *) * la) : NULL, **wb = b ? malloc(sizeof(char *) * lb) : NULL;
    unsigned char *used = malloc(lb ? lb : 1);
    if (a && b && wa && wb && used) {
        size_t na = split_words(a, wa, la), nb = split_words(b, wb, lb), same = 0;
        memset(used, 0, lb);
        /* Counter(pred) & Counter(gold): each gold word matches at most once */
        for (size_t i = 0; i < na; i++)
            for (size_t j = 0; j < nb; j++)
                if (!used[j] && !strcmp(wa[i], wb[j])) {
                    used[j] = 1, same++;
                    break;
                }
        if (same) {
            double p = (double)same / (double)na, r = (double)same / (double)nb;
            f1 = 2 * p * r / (p + r);
        }
    }
    free(a), free(b), free(wa), free(wb), free(used);
    return f1;
}

/* ---- loading ---- */

const char *const cpt_qa_builtin_names[] = {"triviaqa", "jeopardy", "pubmedqa", NULL};

int cpt_qa_is_task(const char *name) {
    if (!strncmp(name, "qa:", 3)) return 1;
    for (int i = 0; cpt_qa_builtin_names[i]; i++)
        if (!strcmp(name, cpt_qa_builtin_names[i])) return 1;
    return 0;
}

void cpt_qa_task_free(cpt_qa_task *t) {
    if (!t) return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->items[i].context);
        for (int a = 0; a < t->items[i].n_answers; a++) free(t->items[i].answers[a]);
        free(t->items[i].answers);
    }
    free(t->items);
    t->items = NULL, t->n = 0;
}

#define HINT_QA                                                                                               \
    "HINT: each line must be {\"question\": \"...\", \"answers\": [\"...\", ...]} or {\"context\": \"...\", " \
    "\"answer\": \"...\"} (also \"continuation\", \"aliases\")"

static void rstrip(char *s) {
    size_t k = strlen(s);
    while (k && (s[k - 1] == ' ' || s[k - 1] == '\t' || s[k - 1] == '\n' || s[k - 1] == '\r')) s[--k] = 0;
}

static int add_answer(cpt_qa_item *it, const char *a) {
    for (int i = 0; i < it->n_answers; i++)
        if (!strcmp(it->answers[i], a)) return CPT_OK;
    char **na = realloc(it->answers, sizeof(char *) * (size_t)(it->n_answers + 1));
    if (!na) return CPT_ENOMEM;
    it->answers = na;
    if (!(na[it->n_answers] = strdup(a))) return CPT_ENOMEM;
    it->n_answers++;
    return CPT_OK;
}

/* suffix: appended to a "context" (jeopardy's "\nAnswer:"), NULL for none. */
static int parse_item(cpt_qa_item *it, const char *line, size_t len, const char *path, long ln, const char *suffix,
                      cpt_err *err) {
    json_error_t je;
    json_t *j = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
    if (!j) return cpt_err_set(err, CPT_EFORMAT, "%s:%ld: invalid JSON (%s). " HINT_QA, path, ln, je.text);
    int rc = CPT_OK;
    json_t *q = json_object_get(j, "question"), *c = json_object_get(j, "context");
    if (!json_is_object(j) || (!json_is_string(q) && !json_is_string(c))) {
        rc = cpt_err_set(err, CPT_EFORMAT, "%s:%ld: needs a string \"question\" or \"context\". " HINT_QA, path, ln);
        goto done;
    }
    const char *text = json_is_string(q) ? json_string_value(q) : json_string_value(c);
    size_t tl = strlen(text) + 32 + (suffix ? strlen(suffix) : 0);
    if (!(it->context = malloc(tl))) goto oom;
    if (json_is_string(q)) snprintf(it->context, tl, "Question: %s\nAnswer:", text);
    else snprintf(it->context, tl, "%s%s", text, suffix ? suffix : "");
    rstrip(it->context);
    static const char *const fields[] = {"answer", "continuation", "answers", "aliases"};
    for (int f = 0; f < 4 && !rc; f++) {
        json_t *v = json_object_get(j, fields[f]);
        if (!v) continue;
        if (json_is_string(v)) {
            if (*json_string_value(v) && add_answer(it, json_string_value(v))) goto oom;
        } else if (json_is_array(v)) {
            for (size_t k = 0; k < json_array_size(v); k++) {
                json_t *e = json_array_get(v, k);
                if (!json_is_string(e)) {
                    rc = cpt_err_set(err, CPT_EFORMAT, "%s:%ld: %s[%zu] is not a string. " HINT_QA, path, ln, fields[f], k);
                    break;
                }
                if (*json_string_value(e) && add_answer(it, json_string_value(e))) goto oom;
            }
        } else {
            rc = cpt_err_set(err, CPT_EFORMAT, "%s:%ld: \"%s\" must be a string or an array of strings. " HINT_QA, path, ln,
                             fields[f]);
        }
    }
    if (!rc && it->n_answers == 0)
        rc = cpt_err_set(err, CPT_EFORMAT, "%s:%ld: no gold answer (a non-empty \"answer\", \"answers\", \"aliases\" or "
                                           "\"continuation\"). " HINT_QA, path, ln);
    goto done;
oom:
    rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
done:
    json_decref(j);
    return rc;
}

int cpt_qa_parse(cpt_qa_task *t, const char *text, size_t len, const char *label, const char *suffix, cpt_err *err) {
    size_t ncap = 0, ln = 0;
    int rc = CPT_OK;
    t->items = NULL, t->n = 0;
    for (size_t pos = 0; pos < len && !rc;) {
        const char *line = text + pos, *nl = memchr(line, '\n', len - pos);
        size_t k = nl ? (size_t)(nl - line) : len - pos;
        pos += k + (nl ? 1 : 0), ln++;
        while (k && (line[k - 1] == '\r' || line[k - 1] == ' ' || line[k - 1] == '\t')) k--;
        if (!k) continue;
        if (t->n == ncap) {
            size_t nc = ncap ? 2 * ncap : 64;
            cpt_qa_item *ni = realloc(t->items, nc * sizeof *ni);
            if (!ni) {
                rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
                break;
            }
            t->items = ni, ncap = nc;
        }
        memset(&t->items[t->n], 0, sizeof t->items[t->n]);
        t->n++;
        rc = parse_item(&t->items[t->n - 1], line, k, label, (long)ln, suffix, err);
    }
    if (!rc && t->n == 0) rc = cpt_err_set(err, CPT_EFORMAT, "%s: no items. " HINT_QA, label);
    if (rc) cpt_qa_task_free(t);
    return rc;
}

static int load_file(cpt_qa_task *t, const char *path, const char *suffix, cpt_err *err) {
    char *buf = NULL;
    size_t len = 0;
    int rc = cpt_read_file(path, &buf, &len, err);
    if (rc) return cpt_err_wrap(err, "QA task file. HINT: check the task path or --data-dir");
    rc = cpt_qa_parse(t, buf, len, path, suffix, err);
    free(buf);
    return rc;
}

int cpt_qa_load_jsonl(cpt_qa_task *t, const char *path, cpt_err *err) {
    memset(t, 0, sizeof *t);
    t->until[0] = "\n", t->n_until = 1;
    int rc = load_file(t, path, NULL, err);
    if (rc) cpt_qa_task_free(t);
    return rc;
}

int cpt_qa_load(cpt_qa_task *t, const char *name, const char *data_dir, cpt_err *err) {
    if (!strncmp(name, "qa:", 3)) return cpt_qa_load_jsonl(t, name + 3, err);
    memset(t, 0, sizeof *t);
    const char *file = NULL, *suffix = NULL;
    if (!strcmp(name, "triviaqa")) { /* lm-eval's triviaqa: until "\n", ".", "," */
        file = "llm-foundry/triviaqa_sm_sub.jsonl";
        t->until[0] = "\n", t->until[1] = ".", t->until[2] = ",", t->n_until = 3;
    } else if (!strcmp(name, "jeopardy")) { /* llm-foundry: "CATEGORY: clue" + "\nAnswer: " */
        file = "llm-foundry/jeopardy_all.jsonl", suffix = "\nAnswer:";
        t->until[0] = "\n", t->n_until = 1;
    } else if (!strcmp(name, "pubmedqa")) { /* the abstract, question, options and "Answer: " */
        file = "llm-foundry/pubmed_qa_labeled.jsonl";
        t->until[0] = "\n", t->n_until = 1;
    } else {
        return cpt_err_set(err, CPT_ENOTFOUND, "unknown QA task \"%s\". HINT: triviaqa, jeopardy, pubmedqa or qa:FILE.jsonl", name);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", data_dir, file);
    int rc = load_file(t, path, suffix, err);
    if (rc) cpt_qa_task_free(t);
    return rc;
}

/* ---- running ---- */

void cpt_qa_result_free(cpt_qa_result *r) {
    if (!r) return;
    if (r->replies)
        for (size_t i = 0; i < r->n; i++) free(r->replies[i]);
    free(r->replies), free(r->em_i), free(r->f1_i), free(r->shots);
    memset(r, 0, sizeof *r);
}

/* Few-shot examples, then the item's context. */
static char *build_prompt(const cpt_qa_task *t, size_t i, const int *shots, int k) {
    size_t len = strlen(t->items[i].context) + 1;
    for (int s = 0; s < k; s++) len += strlen(t->items[shots[s]].context) + strlen(t->items[shots[s]].answers[0]) + 3;
    char *p = malloc(len), *w = p;
    if (!p) return NULL;
    for (int s = 0; s < k; s++) w += sprintf(w, "%s %s\n\n", t->items[shots[s]].context, t->items[shots[s]].answers[0]);
    strcpy(w, t->items[i].context);
    return p;
}

int cpt_qa_run(cpt_model *m, const cpt_tok *tok, const cpt_qa_task *t, const cpt_qa_opts *o, FILE *progress,
               cpt_qa_result *r, cpt_err *err) {
    memset(r, 0, sizeof *r);
    size_t n = o->limit && o->limit < t->n ? o->limit : t->n;
    int k = o->fewshot;
    if (o->max_new < 1) return cpt_err_set(err, CPT_EINVAL, "QA: max_new must be positive");
    if (k > 0 && (size_t)k + 1 > t->n)
        return cpt_err_set(err, CPT_EINVAL, "QA: %d few-shot examples need at least %d items (the task has %zu)", k, k + 1, t->n);
    long long ctx = cpt_config_context_len(&m->cfg);
    if (ctx <= o->max_new + 1)
        return cpt_err_set(err, CPT_EINVAL, "QA: max_new %d leaves no room for the prompt in a %lld-token context", o->max_new, ctx);
    r->fewshot = k;
    r->replies = calloc(n ? n : 1, sizeof(char *));
    r->em_i = calloc(n ? n : 1, sizeof(double));
    r->f1_i = calloc(n ? n : 1, sizeof(double));
    r->shots = calloc(n * (size_t)(k > 0 ? k : 0) + 1, sizeof(int));
    if (!r->replies || !r->em_i || !r->f1_i || !r->shots) {
        cpt_qa_result_free(r);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    }
    int32_t stop[2] = {m->cfg.eos_id, cpt_tok_eos(tok)};
    cpt_gen_opts go = {.max_new = o->max_new, .temperature = 0, .top_p = 1, .stop_ids = stop,
                       .n_stop_ids = stop[1] >= 0 && stop[1] != stop[0] ? 2 : 1, .stop_strs = t->until,
                       .n_stop_strs = t->n_until};
    double t0 = cpt_now();
    int rc = CPT_OK, B = o->batch > 1 ? o->batch : 1;
    int32_t **ids = calloc((size_t)B, sizeof *ids);
    size_t *nid = calloc((size_t)B, sizeof *nid);
    const int32_t **starts = calloc((size_t)B, sizeof *starts);
    cpt_gen_out *g = calloc((size_t)B, sizeof *g);
    if (!ids || !nid || !starts || !g) rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
    /* B items at a time: prompts built and encoded, replies decoded together
     * (cpt_generate_batch), then scored in item order */
    for (size_t i0 = 0; i0 < n && !rc; i0 += (size_t)B) {
        int nb = (int)(n - i0 < (size_t)B ? n - i0 : (size_t)B);
        for (int b = 0; b < nb && !rc; b++) {
            size_t i = i0 + (size_t)b;
            int *sh = r->shots + i * (size_t)(k > 0 ? k : 0);
            if (k > 0) cpt_eval_fewshot_pick(t->n, i, k, o->seed, sh);
            char *prompt = build_prompt(t, i, sh, k > 0 ? k : 0);
            if (!prompt) rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
            if (!rc) rc = cpt_tok_encode(tok, prompt, strlen(prompt), 0, &ids[b], &nid[b], NULL, err);
            if (!rc && nid[b] == 0) rc = cpt_err_set(err, CPT_EINVAL, "item %zu: the prompt encodes to no tokens", i + 1);
            free(prompt);
            if (rc) {
                cpt_err_wrap(err, "QA item %zu", i + 1);
                break;
            }
            size_t keep = (size_t)(ctx - o->max_new), off = nid[b] > keep ? nid[b] - keep : 0; /* lm-eval keeps the end */
            starts[b] = ids[b] + off, nid[b] -= off;
        }
        if (!rc) {
            rc = cpt_generate_batch(m, tok, starts, nid, nb, NULL, &go, g, err);
            if (rc) cpt_err_wrap(err, "QA items %zu-%zu", i0 + 1, i0 + (size_t)nb);
        }
        for (int b = 0; b < nb; b++) {
            size_t i = i0 + (size_t)b;
            free(ids[b]);
            ids[b] = NULL;
            if (rc) {
                free(g[b].text);
                g[b].text = NULL;
                continue;
            }
            r->replies[i] = g[b].text;
            g[b].text = NULL;
            r->tokens += g[b].n_tokens;
            const cpt_qa_item *it = &t->items[i];
            for (int a = 0; a < it->n_answers; a++) {
                double em = cpt_qa_exact_match(r->replies[i], it->answers[a]), f1 = cpt_qa_f1(r->replies[i], it->answers[a]);
                if (em > r->em_i[i]) r->em_i[i] = em;
                if (f1 > r->f1_i[i]) r->f1_i[i] = f1;
            }
            r->n = i + 1;
            if (progress)
                fprintf(progress, "QA %zu/%zu: %s (em %.0f, f1 %.2f, %d tokens)\n", i + 1, n, r->replies[i], r->em_i[i],
                        r->f1_i[i], g[b].n_tokens);
        }
    }
    free(ids), free(nid), free(starts), free(g);
    r->seconds = cpt_now() - t0;
    if (!rc) {
        cpt_eval_mean_stderr(r->em_i, r->n, &r->em, &r->em_stderr);
        cpt_eval_mean_stderr(r->f1_i, r->n, &r->f1, &r->f1_stderr);
    } else {
        cpt_qa_result_free(r);
    }
    return rc;
}

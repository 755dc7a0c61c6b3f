/* tasks_builtin.c: the built-in tasks of `cpt eval`: the files of ../shared/data/eval
 * turned into lm-eval's prompts (doc_to_text, doc_to_choice, target delimiter) of the
 * same task (the task yaml under lm_eval/tasks/). The llm-foundry files hold the question in
 * MosaicML's gauntlet form; each loader below says what it changes to get lm-eval's. */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "cpt/eval.h"

const char *const cpt_eval_builtin_names[] = {"hellaswag", "arc_easy",   "arc_challenge", "piqa", "winogrande",
                                              "boolq",     "copa",       "openbookqa",    "lambada_openai", "mmlu_cs",
                                              "fictional_mem", "fictional_gen", "fictional_hard", NULL};

/* ---------------- string helpers ---------------- */

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 64;
        while (nc < b->n + n + 1) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np, b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_puts(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }
static char *sb_take(sbuf *b) {
    if (b->oom) {
        free(b->p);
        return NULL;
    }
    if (!b->p) return strdup("");
    return b->p;
}

/* Python's str.strip() for ASCII whitespace (the datasets' text is ASCII-spaced). */
static int py_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

static char *strip_dup(const char *s) {
    while (*s && py_space((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && py_space((unsigned char)s[n - 1])) n--;
    char *o = malloc(n + 1);
    if (!o) return NULL;
    memcpy(o, s, n);
    o[n] = 0;
    return o;
}

/* Replace every non-overlapping `from` by `to`, left to right (Python's str.replace). */
static char *replace_all(const char *s, const char *from, const char *to) {
    sbuf b = {0};
    size_t fl = strlen(from);
    const char *p = s, *q;
    while ((q = strstr(p, from)) != NULL) {
        sb_add(&b, p, (size_t)(q - p));
        sb_puts(&b, to);
        p = q + fl;
    }
    sb_puts(&b, p);
    return sb_take(&b);
}

char *cpt_eval_hellaswag_preprocess(const char *text) {
    char *a = strip_dup(text);
    if (!a) return NULL;
    char *b = replace_all(a, " [title]", ". ");
    free(a);
    if (!b) return NULL;
    /* re.sub(r"\[.*?\]", "", s): '.' does not match a newline, so a '[' whose next ']'
     * comes after a newline (or never) stays. */
    sbuf o = {0};
    for (const char *p = b; *p;) {
        if (*p == '[') {
            const char *q = p + 1;
            while (*q && *q != ']' && *q != '\n') q++;
            if (*q == ']') {
                p = q + 1;
                continue;
            }
        }
        sb_add(&o, p, 1);
        p++;
    }
    free(b);
    char *c = sb_take(&o);
    if (!c) return NULL;
    char *d = replace_all(c, "  ", " ");
    free(c);
    return d;
}

char *cpt_eval_capitalize(const char *text) {
    sbuf o = {0};
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)text;
    int first = 1;
    while (*p) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(p, -1, &cp);
        if (k <= 0) { /* an invalid byte: keep it as it is */
            sb_add(&o, (const char *)p, 1);
            p++;
            first = 0;
            continue;
        }
        utf8proc_int32_t c2 = first ? utf8proc_totitle(cp) : utf8proc_tolower(cp);
        utf8proc_uint8_t enc[4];
        utf8proc_ssize_t m = utf8proc_encode_char(c2, enc);
        sb_add(&o, (const char *)enc, (size_t)m);
        p += k;
        first = 0;
    }
    return sb_take(&o);
}

/* ---------------- JSONL lines ---------------- */

typedef int (*line_fn)(cpt_mc_item *it, json_t *j, const char *path, long ln, cpt_err *err);

static int load_lines(cpt_mc_task *t, const char *path, line_fn fn, const char *hint, cpt_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return cpt_err_set(err, CPT_EIO, "%s: cannot open. HINT: check --data-dir (or $CPT_EVAL_DATA)", path);
    char *line = NULL;
    size_t cap = 0, ncap = 0;
    ssize_t len;
    long ln = 0;
    int rc = CPT_OK;
    while (!rc && (len = getline(&line, &cap, f)) >= 0) {
        ln++;
        size_t k = (size_t)len;
        while (k && py_space((unsigned char)line[k - 1])) k--;
        if (!k) continue;
        if (t->n == ncap) {
            size_t nc = ncap ? 2 * ncap : 64;
            cpt_mc_item *ni = realloc(t->items, nc * sizeof *ni);
            if (!ni) {
                rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
                break;
            }
            t->items = ni, ncap = nc;
        }
        memset(&t->items[t->n], 0, sizeof t->items[t->n]);
        t->n++;
        json_error_t je;
        json_t *j = json_loadb(line, k, JSON_REJECT_DUPLICATES, &je);
        if (!j || !json_is_object(j))
            rc = cpt_err_set(err, CPT_EFORMAT, "%s:%ld: invalid JSON object (%s). HINT: %s", path, ln,
                             j ? "not an object" : je.text, hint);
        else
            rc = fn(&t->items[t->n - 1], j, path, ln, err);
        json_decref(j);
    }
    if (!rc && t->n == 0) rc = cpt_err_set(err, CPT_EFORMAT, "%s: no items. HINT: %s", path, hint);
    free(line);
    fclose(f);
    return rc;
}

static const char *jstr(json_t *j, const char *key) {
    json_t *v = json_object_get(j, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int set_choices(cpt_mc_item *it, int n, cpt_err *err) {
    it->choices = calloc((size_t)n, sizeof(char *));
    if (!it->choices) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    it->n_choices = n;
    return CPT_OK;
}

#define HINT_HS "a HellaSwag line has activity_label, ctx_a, ctx_b (strings), endings (4 strings) and label"

/* lm-eval hellaswag.yaml + utils.process_docs: query = preprocess(activity_label + ": " +
 * ctx_a + " " + ctx_b.capitalize()), choices = preprocess(ending), target delimiter " ". */
static int hs_line(cpt_mc_item *it, json_t *j, const char *path, long ln, cpt_err *err) {
    const char *al = jstr(j, "activity_label"), *ca = jstr(j, "ctx_a"), *cb = jstr(j, "ctx_b");
    json_t *en = json_object_get(j, "endings"), *lb = json_object_get(j, "label");
    if (!al || !ca || !cb || !json_is_array(en) || json_array_size(en) < 2 || json_array_size(en) > 64)
        return cpt_err_set(err, CPT_EFORMAT, "%s:%ld: missing or mistyped field. HINT: %s", path, ln, HINT_HS);
    long gold = json_is_integer(lb) ? (long)json_integer_value(lb)
                : json_is_string(lb) ? strtol(json_string_value(lb), NULL, 10)
                                     : -1;
    if (gold < 0 || (size_t)gold >= json_array_size(en))
        return cpt_err_set(err, CPT_EFORMAT, "%s:%ld: \"label\" is not an index into \"endings\". HINT: %s", path, ln,
                           HINT_HS);
    int rc = set_choices(it, (int)json_array_size(en), err);
    if (rc) return rc;
    it->gold = (int)gold;
    char *cap = cpt_eval_capitalize(cb);
    sbuf q = {0};
    sb_puts(&q, al), sb_puts(&q, ": "), sb_puts(&q, ca), sb_puts(&q, " "), sb_puts(&q, cap ? cap : "");
    free(cap);
    char *raw = sb_take(&q);
    it->context = raw && cap ? cpt_eval_hellaswag_preprocess(raw) : NULL;
    free(raw);
    if (!it->context) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    for (int c = 0; c < it->n_choices; c++) {
        json_t *e = json_array_get(en, (size_t)c);
        if (!json_is_string(e))
            return cpt_err_set(err, CPT_EFORMAT, "%s:%ld: endings[%d] is not a string. HINT: %s", path, ln, c, HINT_HS);
        if (!(it->choices[c] = cpt_eval_hellaswag_preprocess(json_string_value(e))))
            return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    }
    return CPT_OK;
}

#define HINT_WG "a Winogrande line is {\"context_options\": [STR, STR], \"continuation\": STR, \"gold\": N}"

/* lm-eval winogrande (partial scoring): doc_to_choice = the sentence up to the blank with
 * each option filled in (the file's context_options), doc_to_target = the rest after the
 * blank, stripped (the file's continuation); delimiter " ". */
static int wg_line(cpt_mc_item *it, json_t *j, const char *path, long ln, cpt_err *err) {
    json_t *co = json_object_get(j, "context_options"), *g = json_object_get(j, "gold");
    const char *cont = jstr(j, "continuation");
    if (!json_is_array(co) || json_array_size(co) < 2 || json_array_size(co) > 64 || !cont || !json_is_integer(g) ||
        json_integer_value(g) < 0 || (size_t)json_integer_value(g) >= json_array_size(co))
        return cpt_err_set(err, CPT_EFORMAT, "%s:%ld: missing or mistyped field. HINT: %s", path, ln, HINT_WG);
    int rc = set_choices(it, (int)json_array_size(co), err);
    if (rc) return rc;
    it->gold = (int)json_integer_value(g);
    it->context = strdup("");
    it->suffix = strdup(cont);
    if (!it->context || !it->suffix) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    for (int c = 0; c < it->n_choices; c++) {
        json_t *e = json_array_get(co, (size_t)c);
        if (!json_is_string(e))
            return cpt_err_set(err, CPT_EFORMAT, "%s:%ld: context_options[%d] is not a string. HINT: %s", path, ln, c,
                               HINT_WG);
        if (!(it->choices[c] = strdup(json_string_value(e)))) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    }
    return CPT_OK;
}

#define HINT_LB "a LAMBADA line is {\"context\": STR, \"continuation\": STR} (the last word)"

/* lm-eval lambada_openai: doc_to_text = all but the last word, doc_to_target = " " + the
 * last word, target delimiter "" (the file splits the text the same way). */
static int lb_line(cpt_mc_item *it, json_t *j, const char *path, long ln, cpt_err *err) {
    const char *ctx = jstr(j, "context"), *cont = jstr(j, "continuation");
    if (!ctx || !cont) return cpt_err_set(err, CPT_EFORMAT, "%s:%ld: missing string field. HINT: %s", path, ln, HINT_LB);
    int rc = set_choices(it, 1, err);
    if (rc) return rc;
    it->context = strdup(ctx);
    sbuf c = {0};
    sb_puts(&c, " "), sb_puts(&c, cont);
    it->choices[0] = sb_take(&c);
    if (!it->context || !it->choices[0]) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    return CPT_OK;
}

#define HINT_FK "the file is a JSON list of documents, each with \"<level>_input\" and \"<level>_target\" lists of " \
                "strings of equal length (level mem, gen or hard_gen), as kaistAI's fictional_knowledge.json"

/* The probes of the Fictional Knowledge dataset (Chang et al. 2024, "How do large language
 * models acquire factual knowledge during pretraining?"): for each of 130 fictional
 * documents, 5 probes per level -- memorization (a sentence of the document cut before a
 * fact), semantic generalization (the same sentence paraphrased) and composition ("hard":
 * a new sentence whose completion needs facts of the document combined). The dataset scores
 * a probe by the log probability of its target given its input, per token; the items are
 * cloze requests (input, " " + target) so that cpt_eval_task_run reports that (ll_tok) and
 * whether the target is the greedy continuation (acc). Items are document-major. */
static int load_fictional(cpt_mc_task *t, const char *path, const char *level, cpt_err *err) {
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        if (je.line < 1)
            return cpt_err_set(err, CPT_ENOTFOUND, "%s: cannot read: %s. HINT: the fictional_* tasks read "
                               "../shared/data/knowledge-injection/fictional-knowledge/fictional_knowledge.json "
                               "beside --data-dir (give --data-dir DIR/eval of a data tree that has it)", path, je.text);
        return cpt_err_set(err, CPT_EFORMAT, "%s:%d: invalid JSON (%s). HINT: %s", path, je.line, je.text, HINT_FK);
    }
    char ki[32], kt[32];
    snprintf(ki, sizeof ki, "%s_input", level), snprintf(kt, sizeof kt, "%s_target", level);
    int rc = json_is_array(root) && json_array_size(root) ? CPT_OK
             : cpt_err_set(err, CPT_EFORMAT, "%s: not a non-empty list of documents. HINT: %s", path, HINT_FK);
    size_t cap = 0;
    for (size_t d = 0; !rc && d < json_array_size(root); d++) {
        json_t *doc = json_array_get(root, d), *in = json_object_get(doc, ki), *tg = json_object_get(doc, kt);
        if (!json_is_array(in) || !json_is_array(tg) || json_array_size(in) != json_array_size(tg)) {
            rc = cpt_err_set(err, CPT_EFORMAT, "%s: document %zu: \"%s\" and \"%s\" are not lists of equal length. HINT: %s",
                             path, d, ki, kt, HINT_FK);
            break;
        }
        for (size_t j = 0; !rc && j < json_array_size(in); j++) {
            json_t *a = json_array_get(in, j), *b = json_array_get(tg, j);
            if (!json_is_string(a) || !json_is_string(b) || !json_string_length(b)) {
                rc = cpt_err_set(err, CPT_EFORMAT, "%s: document %zu, probe %zu: input and target must be strings, the "
                                 "target not empty. HINT: %s", path, d, j, HINT_FK);
                break;
            }
            if (t->n == cap) {
                size_t nc = cap ? 2 * cap : 256;
                cpt_mc_item *ni = realloc(t->items, nc * sizeof *ni);
                if (!ni) {
                    rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
                    break;
                }
                t->items = ni, cap = nc;
            }
            cpt_mc_item *it = &t->items[t->n++];
            memset(it, 0, sizeof *it);
            if ((rc = set_choices(it, 1, err))) break;
            sbuf c = {0};
            sb_puts(&c, " "), sb_puts(&c, json_string_value(b));
            it->choices[0] = sb_take(&c);
            it->context = strdup(json_string_value(a));
            if (!it->context || !it->choices[0]) rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
        }
    }
    json_decref(root);
    return rc;
}

/* ---------------- context rewrites of the gauntlet's {query, choices, gold} files ---------------- */

static int set_context(cpt_mc_item *it, const char *drop_prefix, const char *add, cpt_err *err) {
    const char *q = it->context;
    size_t pl = drop_prefix ? strlen(drop_prefix) : 0;
    if (pl && !strncmp(q, drop_prefix, pl)) q += pl;
    sbuf b = {0};
    sb_puts(&b, q);
    if (add) sb_puts(&b, add);
    char *n = sb_take(&b);
    if (!n) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    free(it->context);
    it->context = n;
    return CPT_OK;
}

/* MMLU-style letter answers (lm-eval mmlu default template):
 * "{question.strip()}\nA. {c0}\nB. {c1}...\nAnswer:" with choices "A", "B", ... */
static int to_letters(cpt_mc_item *it, const char *question, cpt_err *err) {
    if (it->n_choices > 26) return cpt_err_set(err, CPT_EINVAL, "letter answers need at most 26 choices, got %d", it->n_choices);
    char *q = strip_dup(question);
    if (!q) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    sbuf b = {0};
    sb_puts(&b, q);
    free(q);
    for (int c = 0; c < it->n_choices; c++) {
        char l[8];
        snprintf(l, sizeof l, "\n%c. ", 'A' + c);
        sb_puts(&b, l), sb_puts(&b, it->choices[c]);
        l[0] = (char)('A' + c), l[1] = 0;
        free(it->choices[c]);
        it->choices[c] = strdup(l);
        if (!it->choices[c]) b.oom = 1;
    }
    sb_puts(&b, "\nAnswer:");
    char *n = sb_take(&b);
    if (!n) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    free(it->context);
    it->context = n;
    return CPT_OK;
}

/* "mem", "gen", "hard" (optionally followed by ":FILE") -> the dataset's key prefix */
static const char *fictional_level(const char *s) {
    size_t n = strcspn(s, ":");
    if (n == 3 && !strncmp(s, "mem", 3)) return "mem";
    if (n == 3 && !strncmp(s, "gen", 3)) return "gen";
    if (n == 4 && !strncmp(s, "hard", 4)) return "hard_gen";
    return NULL;
}

static int path_join(char *out, size_t cap, const char *dir, const char *rel, cpt_err *err) {
    if ((size_t)snprintf(out, cap, "%s/%s", dir, rel) >= cap)
        return cpt_err_set(err, CPT_EINVAL, "data directory path too long: %s", dir);
    return CPT_OK;
}

int cpt_eval_task_load(cpt_mc_task *t, const char *name, const char *data_dir, int letters, cpt_err *err) {
    memset(t, 0, sizeof *t);
    size_t nl = strlen(name);
    char path[4096];
    int rc = CPT_OK;
    if (nl > 6 && !strcmp(name + nl - 6, ".jsonl")) { /* a user's generic file */
        rc = cpt_mc_load_jsonl(t, name, 0, err);
        for (size_t i = 0; !rc && letters && i < t->n; i++) {
            char *q = strdup(t->items[i].context);
            rc = q ? to_letters(&t->items[i], q, err) : cpt_err_set(err, CPT_ENOMEM, "out of memory");
            free(q);
        }
        if (rc) cpt_mc_task_free(t);
        return rc;
    }
    const char *file = NULL;
    if (!strcmp(name, "hellaswag")) {
        if (!(rc = path_join(path, sizeof path, data_dir, "hellaswag/hellaswag_val_1k.jsonl", err)))
            rc = load_lines(t, path, hs_line, HINT_HS, err);
        t->kind = CPT_TASK_MC, t->has_norm = 1;
    } else if (!strcmp(name, "winogrande")) {
        if (!(rc = path_join(path, sizeof path, data_dir, "llm-foundry/winogrande.jsonl", err)))
            rc = load_lines(t, path, wg_line, HINT_WG, err);
        t->kind = CPT_TASK_PARTIAL, t->has_norm = 0;
    } else if (!strcmp(name, "lambada_openai")) {
        if (!(rc = path_join(path, sizeof path, data_dir, "llm-foundry/lambada_openai.jsonl", err)))
            rc = load_lines(t, path, lb_line, HINT_LB, err);
        t->kind = CPT_TASK_CLOZE, t->has_norm = 0;
    } else if (!strncmp(name, "fictional_", 10) && fictional_level(name + 10)) {
        /* fictional_LEVEL, or fictional_LEVEL:FILE for a file of the same form (e.g. the
         * documents a run trained on, or held-out ones) */
        const char *colon = strchr(name, ':');
        if (colon && !colon[1])
            return cpt_err_set(err, CPT_EINVAL, "task '%s': no file after ':'. HINT: fictional_mem:FILE.json", name);
        if (colon) rc = (size_t)snprintf(path, sizeof path, "%s", colon + 1) >= sizeof path
                            ? cpt_err_set(err, CPT_EINVAL, "task '%s': path too long", name) : CPT_OK;
        else rc = path_join(path, sizeof path, data_dir, "../knowledge-injection/fictional-knowledge/fictional_knowledge.json", err);
        if (!rc) rc = load_fictional(t, path, fictional_level(name + 10), err);
        t->kind = CPT_TASK_CLOZE, t->has_norm = 0;
    } else if (!strcmp(name, "arc_easy")) file = "llm-foundry/arc_easy.jsonl";
    else if (!strcmp(name, "arc_challenge")) file = "llm-foundry/arc_challenge.jsonl";
    else if (!strcmp(name, "piqa")) file = "llm-foundry/piqa.jsonl";
    else if (!strcmp(name, "boolq")) file = "llm-foundry/boolq.jsonl";
    else if (!strcmp(name, "copa")) file = "llm-foundry/copa.jsonl";
    else if (!strcmp(name, "openbookqa")) file = "llm-foundry/openbook_qa.jsonl";
    else if (!strcmp(name, "mmlu_cs")) file = "llm-foundry/mmlu_full_cs.jsonl";
    else {
        char list[512] = "";
        for (int i = 0; cpt_eval_builtin_names[i]; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", cpt_eval_builtin_names[i]);
        return cpt_err_set(err, CPT_ENOTFOUND,
                           "unknown task '%s'. HINT: built-in tasks are %s; or give the path of a .jsonl file of "
                           "{\"query\", \"choices\", \"gold\"} lines",
                           name, list);
    }
    if (file) {
        if (!(rc = path_join(path, sizeof path, data_dir, file, err))) rc = cpt_mc_load_jsonl(t, path, 0, err);
        if (rc) return rc;
        for (size_t i = 0; !rc && i < t->n; i++) {
            cpt_mc_item *it = &t->items[i];
            if (!strcmp(name, "arc_easy") || !strcmp(name, "arc_challenge"))
                rc = set_context(it, NULL, "\nAnswer:", err); /* "Question: {{question}}\nAnswer:" */
            else if (!strcmp(name, "piqa")) /* "Question: {{goal}}\nAnswer:"; the file ends the goal with "\n" */
                rc = set_context(it, NULL, it->context[0] && it->context[strlen(it->context) - 1] == '\n' ? "Answer:" : "\nAnswer:", err);
            else if (!strcmp(name, "boolq")) /* "{{passage}}\nQuestion: {{question}}?\nAnswer:"; choices no, yes */
                rc = set_context(it, "Passage: ", "\nAnswer:", err);
            else if (!strcmp(name, "mmlu_cs")) { /* the file's "Question: Q\nChoices\nA. ..." -> lm-eval's mmlu form */
                const char *q = it->context;
                if (!strncmp(q, "Question: ", 10)) q += 10;
                const char *e = strstr(q, "\nChoices");
                char *qq = e ? strndup(q, (size_t)(e - q)) : strdup(q);
                rc = qq ? to_letters(it, qq, err) : cpt_err_set(err, CPT_ENOMEM, "out of memory");
                free(qq);
            }
            /* copa: the file has lm-eval's doc_to_text (premise without its period + " because" /
             * " therefore") and the choices lower-cased at the first letter (lm-eval <= 0.4.2's
             * convert_choice); openbookqa: query = question_stem, choices as they are. */
        }
        if (!strcmp(name, "boolq") || !strcmp(name, "copa")) t->has_norm = 0; /* their yaml: acc only */
        if (!rc && !strcmp(name, "mmlu_cs"))
            t->description = strdup("The following are multiple choice questions (with answers) about high school computer science.\n\n");
        if (!rc && !strcmp(name, "mmlu_cs") && !t->description) rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
    }
    strcpy(t->delim, t->kind == CPT_TASK_CLOZE ? "" : " ");
    if (rc) cpt_mc_task_free(t);
    return rc;
}

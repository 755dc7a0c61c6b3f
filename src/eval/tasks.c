/* tasks.c: item loaders for `cpt eval` (generic multiple-choice JSONL). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/eval.h"

void cpt_mc_task_free(cpt_mc_task *t) {
    if (!t) return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->items[i].context);
        for (int c = 0; c < t->items[i].n_choices; c++) free(t->items[i].choices[c]);
        free(t->items[i].choices);
        free(t->items[i].suffix);
    }
    free(t->items);
    free(t->description);
    t->items = NULL, t->n = 0, t->description = NULL;
}

#define HINT_MC "HINT: each line must be {\"query\": \"...\", \"choices\": [\"...\", ...], \"gold\": N}"

static int parse_item(cpt_mc_item *it, const char *line, size_t len, const char *path, long ln, cpt_err *err) {
    json_error_t je;
    json_t *j = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
    if (!j) return cpt_err_set(err, CPT_EFORMAT, "%s:%ld: invalid JSON (%s). " HINT_MC, path, ln, je.text);
    int rc = CPT_OK;
    json_t *q = json_object_get(j, "query"), *ch = json_object_get(j, "choices"), *g = json_object_get(j, "gold");
    if (!json_is_object(j) || !json_is_string(q))
        rc = cpt_err_set(err, CPT_EFORMAT, "%s:%ld: missing string field \"query\". " HINT_MC, path, ln);
    else if (!json_is_array(ch) || json_array_size(ch) < 2 || json_array_size(ch) > 64)
        rc = cpt_err_set(err, CPT_EFORMAT, "%s:%ld: \"choices\" must be an array of 2 to 64 strings. " HINT_MC, path, ln);
    else if (!json_is_integer(g) || json_integer_value(g) < 0 || (size_t)json_integer_value(g) >= json_array_size(ch))
        rc = cpt_err_set(err, CPT_EFORMAT, "%s:%ld: \"gold\" must be an integer index into \"choices\" (0..%zu). " HINT_MC,
                         path, ln, json_is_array(ch) ? json_array_size(ch) - 1 : 0);
    for (size_t c = 0; !rc && c < json_array_size(ch); c++)
        if (!json_is_string(json_array_get(ch, c)))
            rc = cpt_err_set(err, CPT_EFORMAT, "%s:%ld: choices[%zu] is not a string. " HINT_MC, path, ln, c);
    if (!rc) {
        int n = (int)json_array_size(ch);
        it->context = strdup(json_string_value(q));
        it->choices = calloc((size_t)n, sizeof(char *));
        if (!it->context || !it->choices) rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
        for (int c = 0; !rc && c < n; c++) {
            it->choices[c] = strdup(json_string_value(json_array_get(ch, (size_t)c)));
            if (!it->choices[c]) rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
            else it->n_choices = c + 1;
        }
        it->gold = (int)json_integer_value(g);
    }
    json_decref(j);
    return rc;
}

int cpt_mc_load_jsonl(cpt_mc_task *t, const char *path, size_t limit, cpt_err *err) {
    memset(t, 0, sizeof *t);
    t->kind = CPT_TASK_MC, t->has_norm = 1;
    strcpy(t->delim, " ");
    FILE *f = fopen(path, "rb");
    if (!f) return cpt_err_set(err, CPT_EIO, "%s: cannot open. HINT: check the task path or --data-dir", path);
    char *line = NULL;
    size_t cap = 0, ncap = 0;
    ssize_t len;
    long ln = 0;
    int rc = CPT_OK;
    while (!rc && (limit == 0 || t->n < limit) && (len = getline(&line, &cap, f)) >= 0) {
        ln++;
        size_t k = (size_t)len;
        while (k && (line[k - 1] == '\n' || line[k - 1] == '\r' || line[k - 1] == ' ' || line[k - 1] == '\t')) k--;
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
        rc = parse_item(&t->items[t->n - 1], line, k, path, ln, err);
    }
    if (!rc && ferror(f)) rc = cpt_err_set(err, CPT_EIO, "%s: read error", path);
    if (!rc && t->n == 0) rc = cpt_err_set(err, CPT_EFORMAT, "%s: no items. " HINT_MC, path);
    free(line);
    fclose(f);
    if (rc) cpt_mc_task_free(t);
    return rc;
}

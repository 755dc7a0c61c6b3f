/* ifeval.c: verifiable-instruction evaluation (cpt/ifeval.h): the JSONL loader, the rule
 * checks and the runner (chat template -> greedy reply -> checks). */
#include "cpt/ifeval.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/chat.h"
#include "cpt/eval.h"
#include "cpt/generate.h"
#include "cpt/model.h"
#include "cpt/tokenizer.h"

/* name, argument: 0 none, 1 n, 2 s ("word"/"phrase"/"options" key), 3 s and n */
static const struct {
    const char *name, *skey;
    int arg;
} KINDS[CPT_IF_NKINDS] = {
    [CPT_IF_LOWERCASE] = {"lowercase", NULL, 0},      [CPT_IF_UPPERCASE] = {"uppercase", NULL, 0},
    [CPT_IF_MAX_WORDS] = {"max_words", NULL, 1},      [CPT_IF_MIN_WORDS] = {"min_words", NULL, 1},
    [CPT_IF_BULLETS] = {"bullets", NULL, 1},          [CPT_IF_NUMBERED] = {"numbered", NULL, 1},
    [CPT_IF_INCLUDE] = {"include", "word", 2},        [CPT_IF_EXCLUDE] = {"exclude", "word", 2},
    [CPT_IF_COUNT_MIN] = {"count_min", "word", 3},    [CPT_IF_STARTS_WITH] = {"starts_with", "phrase", 2},
    [CPT_IF_ENDS_WITH] = {"ends_with", "phrase", 2},  [CPT_IF_JSON] = {"json", NULL, 0},
    [CPT_IF_NO_COMMAS] = {"no_commas", NULL, 0},      [CPT_IF_QUOTED] = {"quoted", NULL, 0},
    [CPT_IF_TITLE] = {"title", NULL, 0},              [CPT_IF_PARAGRAPHS] = {"paragraphs", NULL, 1},
    [CPT_IF_POSTSCRIPT] = {"postscript", "phrase", 2}, [CPT_IF_HIGHLIGHTS] = {"highlights", NULL, 1},
    [CPT_IF_PLACEHOLDERS] = {"placeholders", NULL, 1}, [CPT_IF_ONE_OF] = {"one_of", "options", 2},
    [CPT_IF_CAPS_MAX] = {"caps_words_max", NULL, 1},  [CPT_IF_CAPS_MIN] = {"caps_words_min", NULL, 1},
};

const char *cpt_if_kind_name(int kind) { return kind >= 0 && kind < CPT_IF_NKINDS ? KINDS[kind].name : NULL; }

void cpt_if_free(cpt_if_set *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->items[i].id), free(s->items[i].prompt);
        for (int k = 0; k < s->items[i].n_checks; k++) free(s->items[i].checks[k].s);
    }
    free(s->items);
    s->items = NULL, s->n = 0;
}

static int parse_line(cpt_if_item *it, const char *line, size_t n, const char *label, size_t lineno, cpt_err *err) {
    json_error_t je;
    json_t *o = json_loadb(line, n, JSON_REJECT_DUPLICATES, &je);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return cpt_err_set(err, CPT_EFORMAT, "%s:%zu: not a JSON object (%s). HINT: one {\"id\", \"prompt\", \"checks\"} object per line", label,
                           lineno, o ? "another JSON value" : je.text);
    }
    int rc = CPT_OK;
    const char *id = json_string_value(json_object_get(o, "id")), *pr = json_string_value(json_object_get(o, "prompt"));
    json_t *cs = json_object_get(o, "checks");
    char idbuf[32];
    if (!id) snprintf(idbuf, sizeof idbuf, "line-%zu", lineno), id = idbuf;
    if (!pr || !*pr) rc = cpt_err_set(err, CPT_EFORMAT, "%s:%zu: \"prompt\" must be a non-empty string", label, lineno);
    else if (!json_is_array(cs) || json_array_size(cs) == 0 || json_array_size(cs) > CPT_IF_MAX_CHECKS)
        rc = cpt_err_set(err, CPT_EFORMAT, "%s:%zu: \"checks\" must be a list of 1 to %d rules", label, lineno, CPT_IF_MAX_CHECKS);
    memset(it, 0, sizeof *it);
    for (size_t k = 0; !rc && k < json_array_size(cs); k++) {
        json_t *c = json_array_get(cs, k);
        const char *ty = json_string_value(json_object_get(c, "type"));
        int kind = -1;
        for (int j = 0; ty && j < CPT_IF_NKINDS; j++)
            if (!strcmp(ty, KINDS[j].name)) kind = j;
        if (kind < 0) {
            rc = cpt_err_set(err, CPT_EFORMAT, "%s:%zu: checks[%zu]: unknown rule \"%s\". HINT: see cpt/ifeval.h for the rules", label, lineno, k,
                             ty ? ty : "(no \"type\")");
            break;
        }
        cpt_if_check *ck = &it->checks[it->n_checks++];
        ck->kind = kind;
        if (KINDS[kind].arg & 1) {
            json_t *nj = json_object_get(c, "n");
            if (!json_is_integer(nj) || json_integer_value(nj) < 0) {
                rc = cpt_err_set(err, CPT_EFORMAT, "%s:%zu: checks[%zu] (%s) needs \"n\", a non-negative integer", label, lineno, k, ty);
                break;
            }
            ck->n = json_integer_value(nj);
        }
        if (KINDS[kind].arg & 2) {
            const char *sv = json_string_value(json_object_get(c, KINDS[kind].skey));
            if (!sv || !*sv) {
                rc = cpt_err_set(err, CPT_EFORMAT, "%s:%zu: checks[%zu] (%s) needs \"%s\", a non-empty string", label, lineno, k, ty,
                                 KINDS[kind].skey);
                break;
            }
            if (!(ck->s = strdup(sv))) rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
        }
    }
    if (!rc && (!(it->id = strdup(id)) || !(it->prompt = strdup(pr)))) rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
    if (rc) {
        free(it->id), free(it->prompt);
        for (int k = 0; k < it->n_checks; k++) free(it->checks[k].s);
        memset(it, 0, sizeof *it);
    }
    json_decref(o);
    return rc;
}

int cpt_if_parse(cpt_if_set *s, const char *text, size_t len, const char *label, size_t limit, cpt_err *err) {
    memset(s, 0, sizeof *s);
    size_t cap = 0, lineno = 0;
    for (size_t i = 0; i < len && (!limit || s->n < limit);) {
        size_t j = i;
        while (j < len && text[j] != '\n') j++;
        lineno++;
        size_t e = j;
        while (e > i && (text[e - 1] == '\r' || text[e - 1] == ' ' || text[e - 1] == '\t')) e--;
        size_t b = i;
        while (b < e && (text[b] == ' ' || text[b] == '\t')) b++;
        i = j + 1;
        if (b == e) continue;
        if (s->n == cap) {
            cap = cap ? 2 * cap : 64;
            cpt_if_item *ni = realloc(s->items, sizeof *ni * cap);
            if (!ni) {
                cpt_if_free(s);
                return cpt_err_set(err, CPT_ENOMEM, "out of memory");
            }
            s->items = ni;
        }
        int rc = parse_line(&s->items[s->n], text + b, e - b, label, lineno, err);
        if (rc) {
            cpt_if_free(s);
            return rc;
        }
        s->n++;
    }
    if (s->n == 0) return cpt_err_set(err, CPT_EFORMAT, "%s: no prompts. HINT: one JSON object per line", label);
    return CPT_OK;
}

int cpt_if_load(cpt_if_set *s, const char *name, size_t limit, cpt_err *err) {
    if (!strcmp(name, "ifeval")) return cpt_if_parse(s, cpt_ifeval_builtin, cpt_ifeval_builtin_len, "ifeval (built-in)", limit, err);
    FILE *f = fopen(name, "rb");
    if (!f) return cpt_err_set(err, CPT_ENOTFOUND, "%s: cannot open. HINT: give \"ifeval\" or a JSONL file of prompts with checks", name);
    size_t cap = 1 << 16, n = 0, r;
    char *buf = malloc(cap);
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) free(buf);
            buf = nb, cap *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf) return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", name);
    int rc = bad ? cpt_err_set(err, CPT_EIO, "%s: read error", name) : cpt_if_parse(s, buf, n, name, limit, err);
    free(buf);
    return rc;
}

/* ---------------- the rules ---------------- */

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static char lc(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }
static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_alnum(char c) { return is_alpha(c) || (c >= '0' && c <= '9'); }

/* case-insensitive occurrences of w in [t, t+n); whole: only at word boundaries */
static long long count_ci(const char *t, size_t n, const char *w, int whole) {
    size_t wn = strlen(w);
    long long c = 0;
    for (size_t i = 0; wn && i + wn <= n; i++) {
        size_t k = 0;
        while (k < wn && lc(t[i + k]) == lc(w[k])) k++;
        if (k < wn) continue;
        if (whole && ((i > 0 && is_alnum(t[i - 1])) || (i + wn < n && is_alnum(t[i + wn])))) continue;
        c++;
    }
    return c;
}

static long long n_words(const char *t, size_t n) {
    long long w = 0;
    for (size_t i = 0; i < n; i++)
        if (!is_ws(t[i]) && (i == 0 || is_ws(t[i - 1]))) w++;
    return w;
}

/* lines starting with a marker: kind 0 bullets ("* " or "- "), 1 numbered */
static long long n_marked_lines(const char *t, size_t n, int kind) {
    long long c = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && t[j] != '\n') j++;
        size_t b = i;
        while (b < j && (t[b] == ' ' || t[b] == '\t')) b++;
        if (kind == 0 && b + 1 < j && (t[b] == '*' || t[b] == '-') && t[b + 1] == ' ') c++;
        if (kind == 1) {
            size_t d = b;
            while (d < j && t[d] >= '0' && t[d] <= '9') d++;
            if (d > b && d + 1 < j && (t[d] == '.' || t[d] == ')') && t[d + 1] == ' ') c++;
        }
        i = j + 1;
    }
    return c;
}

/* spans open..close on one line with non-empty content */
static long long n_spans(const char *t, size_t n, char open, char close) {
    long long c = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i] != open) continue;
        size_t j = i + 1;
        while (j < n && t[j] != close && t[j] != '\n' && !(open == close ? 0 : t[j] == open)) j++;
        if (j < n && t[j] == close && j > i + 1) {
            c++;
            i = j;
        }
    }
    return c;
}

static long long n_paragraphs(const char *t, size_t n, int *empty) {
    /* split on "***" with the whitespace around it */
    long long c = 0;
    *empty = 0;
    size_t i = 0;
    while (1) {
        size_t j = i;
        while (j + 2 < n && !(t[j] == '*' && t[j + 1] == '*' && t[j + 2] == '*')) j++;
        int last = j + 2 >= n;
        if (last) j = n;
        size_t a = i, b = j;
        while (a < b && is_ws(t[a])) a++;
        while (b > a && is_ws(t[b - 1])) b--;
        if (a == b) *empty = 1;
        else c++;
        if (last) break;
        i = j + 3;
    }
    return c;
}

static int follows(const cpt_if_check *c, const char *t, size_t n) {
    switch (c->kind) {
    case CPT_IF_LOWERCASE:
    case CPT_IF_UPPERCASE: {
        int letters = 0;
        for (size_t i = 0; i < n; i++) {
            if (!is_alpha(t[i])) continue;
            letters = 1;
            if (c->kind == CPT_IF_LOWERCASE ? (t[i] >= 'A' && t[i] <= 'Z') : (t[i] >= 'a' && t[i] <= 'z')) return 0;
        }
        return letters;
    }
    case CPT_IF_MAX_WORDS: return n_words(t, n) <= c->n;
    case CPT_IF_MIN_WORDS: return n_words(t, n) >= c->n;
    case CPT_IF_BULLETS: return n_marked_lines(t, n, 0) == c->n;
    case CPT_IF_NUMBERED: return n_marked_lines(t, n, 1) == c->n;
    case CPT_IF_INCLUDE: return count_ci(t, n, c->s, 0) > 0;
    case CPT_IF_EXCLUDE: return count_ci(t, n, c->s, 0) == 0;
    case CPT_IF_COUNT_MIN: return count_ci(t, n, c->s, 1) >= c->n;
    case CPT_IF_STARTS_WITH: {
        size_t k = strlen(c->s);
        if (k > n) return 0;
        for (size_t i = 0; i < k; i++)
            if (lc(t[i]) != lc(c->s[i])) return 0;
        return 1;
    }
    case CPT_IF_ENDS_WITH: {
        size_t k = strlen(c->s);
        if (k > n) return 0;
        for (size_t i = 0; i < k; i++)
            if (lc(t[n - k + i]) != lc(c->s[i])) return 0;
        return 1;
    }
    case CPT_IF_JSON: {
        size_t a = 0, b = n;
        if (b - a >= 3 && !strncmp(t, "```", 3)) { /* ```json or ``` fence */
            a = 3;
            if (b - a >= 4 && !strncmp(t + a, "json", 4)) a += 4;
            else if (b - a >= 4 && !strncmp(t + a, "JSON", 4)) a += 4;
            if (b - a >= 3 && !strncmp(t + b - 3, "```", 3)) b -= 3;
        }
        json_error_t je;
        json_t *v = json_loadb(t + a, b - a, JSON_DECODE_ANY, &je);
        int ok = v != NULL;
        json_decref(v);
        return ok;
    }
    case CPT_IF_NO_COMMAS: return memchr(t, ',', n) == NULL;
    case CPT_IF_QUOTED: return n >= 2 && t[0] == '"' && t[n - 1] == '"';
    case CPT_IF_TITLE: {
        for (size_t i = 0; i + 1 < n; i++) {
            if (t[i] != '<' || t[i + 1] != '<') continue;
            size_t j = i + 2;
            while (j + 1 < n && t[j] != '\n' && !(t[j] == '>' && t[j + 1] == '>')) j++;
            if (j + 1 < n && t[j] == '>' && t[j + 1] == '>' && j > i + 2) return 1;
        }
        return 0;
    }
    case CPT_IF_PARAGRAPHS: {
        int empty;
        long long p = n_paragraphs(t, n, &empty);
        return !empty && p == c->n;
    }
    case CPT_IF_POSTSCRIPT: {
        size_t k = strlen(c->s);
        for (size_t i = 0; i < n; i++) {
            if (i > 0 && t[i - 1] != '\n') continue;
            size_t b = i;
            while (b < n && (t[b] == ' ' || t[b] == '\t')) b++;
            if (b + k > n) continue;
            size_t q = 0;
            while (q < k && lc(t[b + q]) == lc(c->s[q])) q++;
            if (q == k) return 1;
        }
        return 0;
    }
    case CPT_IF_HIGHLIGHTS: return n_spans(t, n, '*', '*') >= c->n;
    case CPT_IF_PLACEHOLDERS: return n_spans(t, n, '[', ']') >= c->n;
    case CPT_IF_ONE_OF: {
        const char *o = c->s;
        while (*o) {
            const char *bar = strchr(o, '|');
            size_t k = bar ? (size_t)(bar - o) : strlen(o);
            for (size_t i = 0; k && i + k <= n; i++)
                if (!memcmp(t + i, o, k)) return 1;
            if (!bar) break;
            o = bar + 1;
        }
        return 0;
    }
    case CPT_IF_CAPS_MAX:
    case CPT_IF_CAPS_MIN: {
        long long caps = 0;
        for (size_t i = 0; i < n;) {
            while (i < n && !is_alpha(t[i])) i++;
            size_t j = i;
            int up = 1;
            while (j < n && is_alpha(t[j])) up &= t[j] >= 'A' && t[j] <= 'Z', j++;
            if (j - i >= 2 && up) caps++;
            i = j;
        }
        return c->kind == CPT_IF_CAPS_MAX ? caps <= c->n : caps >= c->n;
    }
    }
    return 0;
}

int cpt_if_follows(const cpt_if_check *c, const char *response) {
    size_t a = 0, b = strlen(response);
    while (a < b && is_ws(response[a])) a++;
    while (b > a && is_ws(response[b - 1])) b--;
    return follows(c, response + a, b - a);
}

/* ---------------- the runner ---------------- */

void cpt_if_result_free(cpt_if_result *r) {
    if (!r) return;
    for (size_t i = 0; r->responses && i < r->n; i++) free(r->responses[i]);
    free(r->responses), free(r->follows);
    memset(r, 0, sizeof *r);
}

int cpt_if_run(cpt_model *m, const cpt_tok *tok, const char *template_src, const cpt_if_set *s, int max_new, int batch,
               FILE *progress, cpt_if_result *r, cpt_err *err) {
    memset(r, 0, sizeof *r);
    if (max_new < 1) return cpt_err_set(err, CPT_EINVAL, "ifeval: max_new must be positive");
    cpt_chat *chat = NULL;
    int rc = cpt_chat_open(&chat, tok, template_src, err);
    if (rc) return cpt_err_wrap(err, "ifeval needs a chat template (an instruct model's tokenizer_config.json, or --chat-template)");
    int B = batch > 1 ? batch : 1;
    r->responses = calloc(s->n ? s->n : 1, sizeof(char *));
    r->follows = calloc((s->n ? s->n : 1) * CPT_IF_MAX_CHECKS, sizeof(int));
    double *pa = malloc(sizeof(double) * (s->n ? s->n : 1)), *ia = NULL;
    int32_t **ids = calloc((size_t)B, sizeof *ids);
    size_t *nid = calloc((size_t)B, sizeof *nid);
    cpt_gen_out *g = calloc((size_t)B, sizeof *g);
    size_t n_inst = 0;
    for (size_t i = 0; i < s->n; i++) n_inst += (size_t)s->items[i].n_checks;
    ia = malloc(sizeof(double) * (n_inst ? n_inst : 1));
    if (!r->responses || !r->follows || !pa || !ia || !ids || !nid || !g) rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
    int32_t stop[2] = {m->cfg.eos_id, cpt_tok_eos(tok)};
    int n_stop = stop[1] >= 0 && stop[1] != stop[0] ? 2 : 1;
    cpt_gen_opts go = {.max_new = max_new, .temperature = 0, .top_p = 1, .stop_ids = stop, .n_stop_ids = n_stop};
    double t0 = cpt_now();
    size_t k = 0;
    /* B prompts at a time: rendered and encoded, decoded together (cpt_generate_batch; one
     * prompt: a single-row decode), then checked in prompt order */
    for (size_t i0 = 0; i0 < s->n && !rc; i0 += (size_t)B) {
        int nb = (int)(s->n - i0 < (size_t)B ? s->n - i0 : (size_t)B);
        for (int b = 0; b < nb && !rc; b++) {
            const cpt_if_item *it = &s->items[i0 + (size_t)b];
            json_t *conv = json_pack("{s:[{s:s,s:s}]}", "messages", "role", "user", "content", it->prompt);
            char *cj = conv ? json_dumps(conv, JSON_COMPACT) : NULL, *text = NULL;
            json_decref(conv);
            size_t tl = 0;
            if (!cj) rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
            if (!rc) rc = cpt_chat_render_prompt(chat, cj, strlen(cj), &text, &tl, err);
            /* the template writes the special tokens (BOS): no post-processor */
            if (!rc) rc = cpt_tok_encode(tok, text, tl, 0, &ids[b], &nid[b], NULL, err);
            free(cj), free(text);
            if (rc) cpt_err_wrap(err, "ifeval prompt %s", it->id);
        }
        if (!rc) {
            rc = cpt_generate_batch(m, tok, (const int32_t *const *)ids, nid, nb, NULL, &go, g, err);
            if (rc && nb == 1) cpt_err_wrap(err, "ifeval prompt %s", s->items[i0].id);
            else if (rc) cpt_err_wrap(err, "ifeval prompts %zu-%zu", i0 + 1, i0 + (size_t)nb);
        }
        for (int b = 0; b < nb; b++) {
            size_t i = i0 + (size_t)b;
            const cpt_if_item *it = &s->items[i];
            free(ids[b]);
            ids[b] = NULL;
            char *reply = g[b].text;
            g[b].text = NULL;
            if (rc) {
                free(reply);
                continue;
            }
            r->responses[i] = reply;
            int all = 1;
            for (int c = 0; c < it->n_checks; c++) {
                int f = cpt_if_follows(&it->checks[c], reply);
                r->follows[i * CPT_IF_MAX_CHECKS + (size_t)c] = f;
                ia[k++] = f;
                all &= f;
            }
            pa[i] = all;
            r->n = i + 1;
            if (progress)
                fprintf(progress, "ifeval %zu/%zu %s: %s (%d tokens)\n", i + 1, s->n, it->id, all ? "followed" : "not followed",
                        g[b].n_tokens);
        }
    }
    free(ids), free(nid), free(g);
    r->n_inst = k;
    r->seconds = cpt_now() - t0;
    if (!rc) {
        cpt_eval_mean_stderr(pa, r->n, &r->acc, &r->acc_stderr);
        cpt_eval_mean_stderr(ia, k, &r->inst_acc, &r->inst_acc_stderr);
    }
    free(pa), free(ia);
    cpt_chat_close(chat);
    if (rc) cpt_if_result_free(r);
    return rc;
}

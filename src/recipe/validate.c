/* validate.c: checks flat keys against a schema table (key names, types, bounds,
 * paths, list numbering, defaults, required keys); cross-field rules live in each
 * schema's check callback, not here. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cpt/fileio.h"
#include "recipe/recipe-impl.h"

const char *rcp_type_name(cpt_recipe_type t) {
    switch (t) {
    case CPT_RT_INT: return "int";
    case CPT_RT_FLOAT: return "float";
    case CPT_RT_BOOL: return "bool";
    case CPT_RT_STRING: return "string";
    case CPT_RT_PATH: return "path";
    case CPT_RT_ENUM: return "enum";
    }
    return "?";
}

void rcp_loc(const cpt_recipe *r, const rcp_entry *e, int at_key, char *buf, size_t n) {
    const char *label = r->st.srcs[e->src].label;
    int line = at_key ? e->kline : e->vline, col = at_key ? e->kcol : e->vcol;
    if (e->origin == CPT_RORIG_DEFAULT || e->origin == CPT_RORIG_DERIVED || line <= 0)
        snprintf(buf, n, "%s", label);
    else
        snprintf(buf, n, "%s:%d:%d", label, line, col);
}

size_t cpt_recipe_edit_distance(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    size_t *row = malloc((nb + 1) * sizeof *row);
    if (!row) return (size_t)-1;
    for (size_t j = 0; j <= nb; j++) row[j] = j;
    for (size_t i = 1; i <= na; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    size_t d = row[nb];
    free(row);
    return d;
}

void rcp_free_keys(char **keys, size_t n) {
    for (size_t i = 0; i < n; i++) free(keys[i]);
    free(keys);
}

/* ---- string helpers ---- */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}
static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

/* Number of dot-separated segments and the i-th one. */
static size_t seg_count(const char *k) {
    size_t n = 1;
    for (; *k; k++) n += *k == '.';
    return n;
}
static const char *seg_at(const char *k, size_t i, size_t *len) {
    *len = 0;
    while (i-- > 0) {
        k = strchr(k, '.');
        if (!k) return NULL;
        k++;
    }
    const char *e = strchr(k, '.');
    *len = e ? (size_t)(e - k) : strlen(k);
    return k;
}

/* ---- names and instances ---- */

static int add_unique(char ***v, size_t *n, size_t *cap, const char *s, size_t len) {
    for (size_t i = 0; i < *n; i++)
        if (strlen((*v)[i]) == len && memcmp((*v)[i], s, len) == 0) return CPT_OK;
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 8;
        char **p = realloc(*v, c * sizeof *p);
        if (!p) return CPT_ENOMEM;
        *v = p;
        *cap = c;
    }
    char *d = strndup(s, len);
    if (!d) return CPT_ENOMEM;
    (*v)[(*n)++] = d;
    return CPT_OK;
}

static int cmp_index(const void *a, const void *b) {
    long x = atol(*(char *const *)a), y = atol(*(char *const *)b);
    return (x > y) - (x < y);
}

int rcp_names(const cpt_recipe *r, const char *prefix, char ***names, size_t *n, cpt_err *err) {
    size_t pl = strlen(prefix), cap = 0;
    *names = NULL;
    *n = 0;
    int all_idx = 1;
    for (size_t i = 0; i < r->st.n; i++) {
        const char *k = r->st.e[i].key;
        const char *rest;
        if (pl == 0)
            rest = k;
        else if (strncmp(k, prefix, pl) == 0 && k[pl] == '.')
            rest = k + pl + 1;
        else
            continue;
        const char *dot = strchr(rest, '.');
        size_t len = dot ? (size_t)(dot - rest) : strlen(rest);
        if (add_unique(names, n, &cap, rest, len)) {
            rcp_free_keys(*names, *n);
            *names = NULL;
            *n = 0;
            return cpt_err_set(err, CPT_ENOMEM, "recipe: out of memory");
        }
        if (!rcp_is_index(rest, len)) all_idx = 0;
    }
    if (all_idx && *n > 1) qsort(*names, *n, sizeof **names, cmp_index);
    return CPT_OK;
}

/* Recursively instantiate the wildcards of `rest` below the concrete `prefix`. */
static int inst_rec(const cpt_recipe *r, const char *prefix, const char *rest, char ***out,
                    size_t *n, size_t *cap) {
    const char *w = rest;
    /* find the first wildcard segment */
    for (;;) {
        if ((w[0] == '*' || w[0] == '#') && (w[1] == '.' || w[1] == '\0')) break;
        w = strchr(w, '.');
        if (!w) break;
        w++;
    }
    sbuf b = {0};
    sb_str(&b, prefix);
    if (!w) { /* no wildcard left: one concrete key */
        if (*prefix && *rest) sb_str(&b, ".");
        sb_str(&b, rest);
        if (b.oom) return CPT_ENOMEM;
        int rc = add_unique(out, n, cap, b.p, b.n);
        free(b.p);
        return rc;
    }
    if (w > rest) {
        if (*prefix) sb_str(&b, ".");
        sb_add(&b, rest, (size_t)(w - rest) - 1);
    }
    if (b.oom) return CPT_ENOMEM;
    char **names;
    size_t nn;
    int rc = rcp_names(r, b.p ? b.p : "", &names, &nn, NULL);
    if (rc) {
        free(b.p);
        return CPT_ENOMEM;
    }
    int want_idx = w[0] == '#';
    const char *after = w[1] == '.' ? w + 2 : "";
    for (size_t i = 0; i < nn && rc == 0; i++) {
        size_t len = strlen(names[i]);
        if (want_idx ? !rcp_is_index(names[i], len) : !rcp_is_name(names[i], len)) continue;
        sbuf c = {0};
        if (b.n) {
            sb_str(&c, b.p);
            sb_str(&c, ".");
        }
        sb_str(&c, names[i]);
        if (c.oom) rc = CPT_ENOMEM;
        /* a trailing wildcard stands for the set keys themselves */
        if (!rc && !*after) {
            if (rcp_store_find(&r->st, c.p)) rc = add_unique(out, n, cap, c.p, c.n);
        } else if (!rc) {
            rc = inst_rec(r, c.p, after, out, n, cap);
        }
        free(c.p);
    }
    rcp_free_keys(names, nn);
    free(b.p);
    return rc;
}

int rcp_instances(const cpt_recipe *r, const char *pattern, char ***keys, size_t *n, cpt_err *err) {
    size_t cap = 0;
    *keys = NULL;
    *n = 0;
    int rc = inst_rec(r, "", pattern, keys, n, &cap);
    if (rc) {
        rcp_free_keys(*keys, *n);
        *keys = NULL;
        *n = 0;
        return cpt_err_set(err, CPT_ENOMEM, "recipe: out of memory");
    }
    return CPT_OK;
}

/* ---- classification ---- */

/* Instantiate `pattern` using the segments of `key` at wildcard positions where
 * they fit, else "<name>" / "0". */
static char *instantiate_like(const char *pattern, const char *key) {
    sbuf b = {0};
    size_t np = seg_count(pattern), nk = seg_count(key);
    for (size_t i = 0; i < np; i++) {
        size_t pl = 0, kl = 0;
        const char *ps = seg_at(pattern, i, &pl);
        const char *ks = i < nk ? seg_at(key, i, &kl) : NULL;
        if (i) sb_str(&b, ".");
        if (pl == 1 && ps[0] == '*')
            ks &&rcp_is_name(ks, kl) ? sb_add(&b, ks, kl) : sb_str(&b, "<name>");
        else if (pl == 1 && ps[0] == '#')
            ks &&rcp_is_index(ks, kl) ? sb_add(&b, ks, kl) : sb_str(&b, "0");
        else
            sb_add(&b, ps, pl);
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

char *rcp_nearest_key(const cpt_recipe *r, const char *key) {
    char *best = NULL;
    size_t best_d = (size_t)-1;
    for (size_t i = 0; i < r->schema->n_opts; i++) {
        char *cand = instantiate_like(r->schema->opts[i].pattern, key);
        if (!cand) continue;
        size_t d = cpt_recipe_edit_distance(cand, key);
        if (d < best_d) {
            free(best);
            best = cand;
            best_d = d;
        } else {
            free(cand);
        }
    }
    return best;
}

/* 1 if `key` matches the first segments of `pattern` and the pattern goes on. */
static int match_prefix(const char *pattern, const char *key) {
    size_t nk = seg_count(key), np = seg_count(pattern);
    if (nk >= np) return 0;
    const char *end = pattern;
    for (size_t i = 0; i < nk; i++) end = strchr(end, '.') + 1;
    char *p = strndup(pattern, (size_t)(end - pattern) - 1);
    if (!p) return 0;
    int m = rcp_match(p, key);
    free(p);
    return m;
}

static int classify(cpt_recipe *r, rcp_entry *e, cpt_err *err) {
    const cpt_recipe_schema *s = r->schema;
    for (size_t i = 0; i < s->n_opts; i++) {
        if (rcp_match(s->opts[i].pattern, e->key)) {
            e->opt = &s->opts[i];
            return CPT_OK;
        }
    }
    char loc[512];
    rcp_loc(r, e, 1, loc, sizeof loc);
    /* A leaf given as a mapping or list ("optim.lr: {a: 1}" -> optim.lr.a). */
    for (const char *d = strchr(e->key, '.'); d; d = strchr(d + 1, '.')) {
        char *pre = strndup(e->key, (size_t)(d - e->key));
        if (!pre) return cpt_err_set(err, CPT_ENOMEM, "recipe: out of memory");
        for (size_t i = 0; i < s->n_opts; i++) {
            if (rcp_match(s->opts[i].pattern, pre)) {
                const char *next = d + 1, *nd = strchr(next, '.');
                size_t nl = nd ? (size_t)(nd - next) : strlen(next);
                int rc = cpt_err_set(err, CPT_EINVAL,
                                     "%s: %s: wrong type: expected a %s value, got a %s (key %s). "
                                     "HINT: write \"%s: <%s>\"; %s",
                                     loc, pre, rcp_type_name(s->opts[i].type),
                                     rcp_is_index(next, nl) ? "list" : "mapping", e->key, pre,
                                     rcp_type_name(s->opts[i].type), s->opts[i].help);
                free(pre);
                return rc;
            }
        }
        free(pre);
    }
    /* A section given as a value ("optim: 3"). */
    for (size_t i = 0; i < s->n_opts; i++) {
        if (match_prefix(s->opts[i].pattern, e->key)) {
            char *ex = instantiate_like(s->opts[i].pattern, e->key);
            int rc = cpt_err_set(err, CPT_EINVAL,
                                 "%s: %s: wrong type: this is a section, not a value (it holds "
                                 "keys such as %s). HINT: nest keys under it, e.g. \"%s\"",
                                 loc, e->key, ex ? ex : s->opts[i].pattern,
                                 ex ? ex : s->opts[i].pattern);
            free(ex);
            return rc;
        }
    }
    char *near = rcp_nearest_key(r, e->key);
    int rc = cpt_err_set(err, CPT_EINVAL,
                         "%s: unknown key %s. HINT: the nearest valid key is %s (see `cpt train "
                         "--help` for all keys)",
                         loc, e->key, near ? near : "(none)");
    free(near);
    return rc;
}

int rcp_classify_all(cpt_recipe *r, cpt_err *err) {
    for (size_t i = 0; i < r->st.n; i++) {
        int rc = classify(r, &r->st.e[i], err);
        if (rc) return rc;
    }
    return CPT_OK;
}

/* ---- list numbering ---- */

int rcp_check_lists(cpt_recipe *r, cpt_err *err) {
    for (size_t i = 0; i < r->st.n; i++) {
        rcp_entry *e = &r->st.e[i];
        const char *p = e->opt->pattern;
        size_t np = seg_count(p);
        for (size_t j = 0; j < np; j++) {
            size_t pl = 0, kl = 0;
            const char *ps = seg_at(p, j, &pl);
            if (!(pl == 1 && ps[0] == '#')) continue;
            const char *ks = seg_at(e->key, j, &kl);
            long idx = atol(ks);
            if (idx == 0) continue;
            /* item idx-1 must exist: then by induction 0..idx all do */
            char prev[64];
            snprintf(prev, sizeof prev, "%ld", idx - 1);
            size_t pre_len = (size_t)(ks - e->key);
            char *want = malloc(pre_len + strlen(prev) + 1);
            if (!want) return cpt_err_set(err, CPT_ENOMEM, "recipe: out of memory");
            memcpy(want, e->key, pre_len);
            strcpy(want + pre_len, prev);
            size_t wl = strlen(want);
            int found = 0;
            for (size_t k = 0; k < r->st.n && !found; k++)
                found = strncmp(r->st.e[k].key, want, wl) == 0 &&
                        (r->st.e[k].key[wl] == '.' || r->st.e[k].key[wl] == '\0');
            if (!found) {
                char loc[512];
                rcp_loc(r, e, 1, loc, sizeof loc);
                int rc = cpt_err_set(err, CPT_EINVAL,
                                     "%s: %s: list item %ld is given but item %s is not. HINT: "
                                     "list items are numbered from 0 without gaps (set %s.* "
                                     "first)",
                                     loc, e->key, idx, want, want);
                free(want);
                return rc;
            }
            free(want);
        }
    }
    return CPT_OK;
}

/* ---- typing ---- */

static int expand_env(cpt_recipe *r, rcp_entry *e, cpt_err *err) {
    if (!strchr(e->text, '$')) return CPT_OK;
    sbuf b = {0};
    const char *t = e->text;
    char loc[512];
    while (*t) {
        if (t[0] == '$' && t[1] == '$') {
            sb_str(&b, "$");
            t += 2;
        } else if (t[0] == '$' && t[1] == '{') {
            const char *end = strchr(t + 2, '}');
            size_t n = end ? (size_t)(end - t - 2) : 0;
            int ok = end && rcp_is_name(t + 2, n) && !memchr(t + 2, '-', n);
            if (!ok) {
                free(b.p);
                rcp_loc(r, e, 0, loc, sizeof loc);
                return cpt_err_set(err, CPT_EINVAL,
                                   "%s: %s: malformed environment reference in \"%s\". HINT: "
                                   "write ${NAME} (letters, digits, '_'), or $$ for a literal $",
                                   loc, e->key, e->text);
            }
            char *name = strndup(t + 2, n);
            if (!name) {
                free(b.p);
                return cpt_err_set(err, CPT_ENOMEM, "recipe: out of memory");
            }
            const char *v = getenv(name);
            if (!v || !*v) {
                free(b.p);
                rcp_loc(r, e, 0, loc, sizeof loc);
                int rc = cpt_err_set(err, CPT_EINVAL,
                                     "%s: %s: environment variable %s is %s (in \"%s\"). HINT: "
                                     "export %s=... before running, or override the key "
                                     "(%s=...)",
                                     loc, e->key, name, v ? "empty" : "not set", e->text, name,
                                     e->key);
                free(name);
                return rc;
            }
            free(name);
            sb_str(&b, v);
            t = end + 1;
        } else {
            sb_add(&b, t, 1);
            t++;
        }
    }
    if (b.oom) {
        free(b.p);
        return cpt_err_set(err, CPT_ENOMEM, "recipe: out of memory");
    }
    free(e->text);
    e->text = b.p ? b.p : strdup("");
    return e->text ? CPT_OK : cpt_err_set(err, CPT_ENOMEM, "recipe: out of memory");
}

void rcp_range_str(const cpt_recipe_opt *o, char *buf, size_t n) {
    int lo = o->min > -HUGE_VAL, hi = o->max < HUGE_VAL;
    const char *lb = (o->flags & CPT_ROPT_MIN_EXCL) ? "(" : "[";
    const char *rb = (o->flags & CPT_ROPT_MAX_EXCL) ? ")" : "]";
    if (o->flags & CPT_ROPT_NO_BOUNDS || (!lo && !hi))
        snprintf(buf, n, "any value");
    else if (lo && hi)
        snprintf(buf, n, "in %s%.10g, %.10g%s", lb, o->min, o->max, rb);
    else if (lo)
        snprintf(buf, n, "%s %.10g", (o->flags & CPT_ROPT_MIN_EXCL) ? ">" : ">=", o->min);
    else
        snprintf(buf, n, "%s %.10g", (o->flags & CPT_ROPT_MAX_EXCL) ? "<" : "<=", o->max);
}

static int range_check(cpt_recipe *r, rcp_entry *e, double v, cpt_err *err) {
    const cpt_recipe_opt *o = e->opt;
    if (o->flags & CPT_ROPT_NO_BOUNDS) return CPT_OK;
    int low = v < o->min || ((o->flags & CPT_ROPT_MIN_EXCL) && v == o->min);
    int high = v > o->max || ((o->flags & CPT_ROPT_MAX_EXCL) && v == o->max);
    if (!low && !high) return CPT_OK;
    char loc[512], range[128], hint[160];
    rcp_loc(r, e, 0, loc, sizeof loc);
    rcp_range_str(o, range, sizeof range);
    double bound = low ? o->min : o->max;
    int excl = low ? (o->flags & CPT_ROPT_MIN_EXCL) : (o->flags & CPT_ROPT_MAX_EXCL);
    if (excl)
        snprintf(hint, sizeof hint, "use a value %s %.10g", low ? "above" : "below", bound);
    else
        snprintf(hint, sizeof hint, "the nearest valid value is %.10g", bound);
    return cpt_err_set(err, CPT_EINVAL,
                       "%s: %s = %s is out of range: must be %s (values are never clamped). "
                       "HINT: %s; %s",
                       loc, e->key, e->text, range, hint, o->help);
}

static int parse_bool(const char *t, int *b) {
    static const char *yes[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON",
                                "y", "Y"};
    static const char *no[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF",
                               "n", "N"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        if (!strcmp(t, yes[i])) return *b = 1, 1;
        if (!strcmp(t, no[i])) return *b = 0, 1;
    }
    return 0;
}

static int parse_double(const char *t, double *v) {
    if (!*t || *t == ' ' || *t == '\t' || *t == '\n') return 0;
    char *end;
    errno = 0;
    *v = strtod(t, &end);
    /* ERANGE also flags underflow to a denormal, which is the correctly rounded
     * value; overflow shows up as a non-finite result */
    return *end == '\0' && isfinite(*v);
}

static int type_error(cpt_recipe *r, rcp_entry *e, const char *why, cpt_err *err) {
    char loc[512];
    rcp_loc(r, e, 0, loc, sizeof loc);
    const cpt_recipe_opt *o = e->opt;
    char extra[256] = "";
    if (o->type == CPT_RT_ENUM) snprintf(extra, sizeof extra, " (one of %s)", o->choices);
    return cpt_err_set(err, CPT_EINVAL,
                       "%s: %s: wrong type: expected %s %s%s, got %s\"%s\"%s. HINT: %s%s", loc,
                       e->key, o->type == CPT_RT_INT ? "an" : "a", rcp_type_name(o->type), extra,
                       e->quoted ? "the quoted string " : "", e->text, why,
                       e->quoted ? "remove the quotes; " : "", o->help);
}

/* The enum choice nearest to `t`. */
static void nearest_choice(const char *choices, const char *t, char *out, size_t n) {
    size_t best = (size_t)-1;
    out[0] = '\0';
    const char *c = choices;
    while (*c) {
        const char *bar = strchr(c, '|');
        size_t len = bar ? (size_t)(bar - c) : strlen(c);
        char tmp[128];
        snprintf(tmp, sizeof tmp, "%.*s", (int)len, c);
        size_t d = cpt_recipe_edit_distance(tmp, t);
        if (d < best) {
            best = d;
            snprintf(out, n, "%s", tmp);
        }
        c = bar ? bar + 1 : c + len;
    }
}

static int enum_has(const char *choices, const char *t) {
    size_t tl = strlen(t);
    for (const char *c = choices; *c;) {
        const char *bar = strchr(c, '|');
        size_t len = bar ? (size_t)(bar - c) : strlen(c);
        if (len == tl && memcmp(c, t, len) == 0) return 1;
        c = bar ? bar + 1 : c + len;
    }
    return 0;
}

static int resolve_path(cpt_recipe *r, rcp_entry *e, cpt_err *err) {
    const cpt_recipe_opt *o = e->opt;
    char loc[512];
    rcp_loc(r, e, 0, loc, sizeof loc);
    if (!*e->text)
        return cpt_err_set(err, CPT_EINVAL, "%s: %s: empty path. HINT: %s", loc, e->key, o->help);
    if (o->flags & CPT_ROPT_OUTPUT) {
        struct stat sb;
        if ((o->flags & CPT_ROPT_DIR) && stat(e->text, &sb) == 0 && !S_ISDIR(sb.st_mode))
            return cpt_err_set(err, CPT_EINVAL,
                               "%s: %s: output directory %s exists and is not a directory. "
                               "HINT: choose another path",
                               loc, e->key, e->text);
        return CPT_OK;
    }
    const char *base = r->st.srcs[e->src].base_dir;
    char *full = (e->text[0] == '/' || !base) ? strdup(e->text) : cpt_path_join(base, e->text);
    if (!full) return cpt_err_set(err, CPT_ENOMEM, "recipe: out of memory");
    struct stat sb;
    int rc = CPT_OK;
    if (stat(full, &sb) != 0) {
        rc = cpt_err_set(err, CPT_ENOTFOUND,
                         "%s: %s: %s does not exist (written as \"%s\"%s%s). HINT: %s; fix the "
                         "path or override it (%s=PATH)",
                         loc, e->key, full, e->text, e->text[0] == '/' ? "" : ", relative to ",
                         e->text[0] == '/' ? "" : (base ? base : "."), o->help, e->key);
    } else if ((o->flags & CPT_ROPT_DIR) && !S_ISDIR(sb.st_mode)) {
        rc = cpt_err_set(err, CPT_EINVAL,
                         "%s: %s: %s is not a directory. HINT: %s", loc, e->key, full, o->help);
    } else {
        char *real = realpath(full, NULL);
        if (!real) {
            rc = cpt_err_set(err, CPT_EIO, "%s: %s: cannot resolve %s: %s. HINT: check permissions",
                             loc, e->key, full, strerror(errno));
        } else {
            free(e->text);
            e->text = real;
        }
    }
    free(full);
    return rc;
}

int rcp_type_entry(cpt_recipe *r, rcp_entry *e, int expand, cpt_err *err) {
    CPT_ASSERT(e->opt);
    int rc;
    if (expand && (rc = expand_env(r, e, err))) return rc;
    const cpt_recipe_opt *o = e->opt;
    const char *t = e->text;
    switch (o->type) {
    case CPT_RT_INT: {
        if (e->quoted) return type_error(r, e, "", err);
        char *end;
        errno = 0;
        long long v = strtoll(t, &end, 10);
        if (*t == '\0' || *t == ' ' || *end != '\0' || errno == ERANGE) {
            /* 1e9-style integers are accepted when exact */
            double d;
            if (!parse_double(t, &d) || d != floor(d) || fabs(d) > 9007199254740992.0)
                return type_error(r, e, errno == ERANGE ? " (too large)" : "", err);
            v = (long long)d;
        }
        e->i = v;
        e->f = (double)v;
        return range_check(r, e, (double)v, err);
    }
    case CPT_RT_FLOAT: {
        double v;
        if (e->quoted || !parse_double(t, &v)) return type_error(r, e, "", err);
        e->f = v;
        return range_check(r, e, v, err);
    }
    case CPT_RT_BOOL:
        if (e->quoted || !parse_bool(t, &e->b)) return type_error(r, e, "", err);
        return CPT_OK;
    case CPT_RT_STRING:
        return CPT_OK;
    case CPT_RT_ENUM:
        if (!enum_has(o->choices, t)) {
            char loc[512], near[128];
            rcp_loc(r, e, 0, loc, sizeof loc);
            nearest_choice(o->choices, t, near, sizeof near);
            return cpt_err_set(err, CPT_EINVAL,
                               "%s: %s = \"%s\" is not a valid choice (one of %s). HINT: did you "
                               "mean %s? %s",
                               loc, e->key, t, o->choices, near, o->help);
        }
        return CPT_OK;
    case CPT_RT_PATH:
        return resolve_path(r, e, err);
    }
    return CPT_OK;
}

/* ---- defaults and required keys ---- */

/* Expand a default template: {key}, {recipe.name}, {#}. */
static int expand_default(cpt_recipe *r, const char *key, const char *def, char **out,
                          cpt_err *err) {
    sbuf b = {0};
    for (const char *t = def; *t;) {
        if (*t != '{') {
            sb_add(&b, t, 1);
            t++;
            continue;
        }
        const char *end = strchr(t, '}');
        CPT_ASSERT(end); /* schema tables are code: a bad template is a programming error */
        char ref[128];
        snprintf(ref, sizeof ref, "%.*s", (int)(end - t - 1), t + 1);
        if (!strcmp(ref, "recipe.name")) {
            sb_str(&b, r->name);
        } else if (!strcmp(ref, "#")) {
            /* the last index segment of this instance */
            const char *last = NULL;
            size_t n = seg_count(key), ll = 0;
            for (size_t i = 0; i < n; i++) {
                size_t l = 0;
                const char *s = seg_at(key, i, &l);
                if (rcp_is_index(s, l)) last = s, ll = l;
            }
            CPT_ASSERT(last);
            sb_add(&b, last, ll);
        } else {
            rcp_entry *src = rcp_store_find(&r->st, ref);
            if (!src) {
                free(b.p);
                return cpt_err_set(err, CPT_EINVAL,
                                   "%s: the default (\"%s\") needs %s, which is not set. HINT: "
                                   "set %s or %s explicitly",
                                   key, def, ref, ref, key);
            }
            sb_str(&b, src->text);
        }
        t = end + 1;
    }
    if (b.oom || !b.p) {
        free(b.p);
        if (!b.oom) return (*out = strdup("")) ? CPT_OK : CPT_ENOMEM;
        return cpt_err_set(err, CPT_ENOMEM, "recipe: out of memory");
    }
    *out = b.p;
    return CPT_OK;
}

static int first_loc_under(const cpt_recipe *r, const char *prefix, char *buf, size_t n) {
    size_t pl = strlen(prefix);
    for (size_t i = 0; i < r->st.n; i++) {
        const rcp_entry *e = &r->st.e[i];
        if (strncmp(e->key, prefix, pl) == 0 && e->key[pl] == '.') {
            rcp_loc(r, e, 1, buf, n);
            return 1;
        }
    }
    return 0;
}

int rcp_apply_defaults(cpt_recipe *r, cpt_err *err) {
    const cpt_recipe_schema *s = r->schema;
    for (size_t i = 0; i < s->n_opts; i++) {
        const cpt_recipe_opt *o = &s->opts[i];
        char **keys;
        size_t n;
        int rc = rcp_instances(r, o->pattern, &keys, &n, err);
        if (rc) return rc;
        for (size_t j = 0; j < n && rc == 0; j++) {
            if (rcp_store_find(&r->st, keys[j])) continue;
            if (!o->def) {
                if (!(o->flags & CPT_ROPT_REQUIRED)) continue;
                /* required and missing: name where its parent was declared */
                char where[600] = "";
                const char *last = strrchr(keys[j], '.');
                if (last) {
                    char *parent = strndup(keys[j], (size_t)(last - keys[j]));
                    char loc[512];
                    if (parent && first_loc_under(r, parent, loc, sizeof loc))
                        snprintf(where, sizeof where, "%s: ", loc);
                    free(parent);
                }
                rc = cpt_err_set(err, CPT_EINVAL,
                                 "%s%s: required key is missing (%s). HINT: add it to the "
                                 "recipe or pass %s=<%s>",
                                 where[0] ? where : (r->st.srcs[1].label), keys[j], o->help,
                                 keys[j], rcp_type_name(o->type));
                break;
            }
            rcp_entry e = {0};
            e.key = strdup(keys[j]);
            if (!e.key) {
                rc = cpt_err_set(err, CPT_ENOMEM, "recipe: out of memory");
                break;
            }
            if ((rc = expand_default(r, keys[j], o->def, &e.text, err))) {
                free(e.key);
                break;
            }
            e.opt = o;
            e.src = 0; /* the "(default)" source */
            e.origin = CPT_RORIG_DEFAULT;
            if ((rc = rcp_store_push(&r->st, &e, err))) break;
            rc = rcp_type_entry(r, &r->st.e[r->st.n - 1], 0, err);
            if (rc) cpt_err_wrap(err, "default of %s: ", keys[j]);
        }
        rcp_free_keys(keys, n);
        if (rc) return rc;
    }
    return CPT_OK;
}

/* ---- float maps that sum to 1 ---- */

int rcp_check_sums(cpt_recipe *r, cpt_err *err) {
    const cpt_recipe_schema *s = r->schema;
    for (size_t i = 0; i < s->n_opts; i++) {
        const cpt_recipe_opt *o = &s->opts[i];
        if (!(o->flags & CPT_ROPT_SUM1)) continue;
        size_t pl = strlen(o->pattern);
        CPT_ASSERT(o->type == CPT_RT_FLOAT && pl > 2 && !strcmp(o->pattern + pl - 2, ".*"));
        char *parent = strndup(o->pattern, pl - 2);
        if (!parent) return cpt_err_set(err, CPT_ENOMEM, "recipe: out of memory");
        char **groups;
        size_t ng;
        int rc = rcp_instances(r, parent, &groups, &ng, err);
        free(parent);
        if (rc) return rc;
        for (size_t g = 0; g < ng && !rc; g++) {
            size_t gl = strlen(groups[g]), count = 0;
            double sum = 0;
            const rcp_entry *first = NULL, *largest = NULL;
            sbuf parts = {0};
            for (size_t k = 0; k < r->st.n; k++) {
                const rcp_entry *e = &r->st.e[k];
                if (e->opt != o || strncmp(e->key, groups[g], gl) || e->key[gl] != '.') continue;
                if (!first) first = e;
                if (!largest || e->f > largest->f) largest = e;
                sum += e->f;
                if (count++) sb_str(&parts, " + ");
                char num[64];
                snprintf(num, sizeof num, "%s %.10g", e->key + gl + 1, e->f);
                sb_str(&parts, num);
            }
            /* 1e-6 absolute: weights are written with a few decimals, and a mixture
             * off by more than that is a typo, not rounding */
            if (count > 0 && !(fabs(sum - 1.0) <= 1e-6)) {
                char loc[512];
                rcp_loc(r, first, 1, loc, sizeof loc);
                rc = cpt_err_set(err, CPT_EINVAL,
                                 "%s: %s: the weights sum to %.10g, not 1 (%s). HINT: make them "
                                 "sum to 1, e.g. set %s to %.10g",
                                 loc, groups[g], sum, parts.p ? parts.p : "", largest->key,
                                 largest->f + (1.0 - sum));
            }
            free(parts.p);
        }
        rcp_free_keys(groups, ng);
        if (rc) return rc;
    }
    return CPT_OK;
}

/* recipe.c: loading a recipe (file + overrides -> validated flat store) and the
 * typed getters; the YAML layer, the checks and the dump live in their own files. */
#include <libgen.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/fileio.h"
#include "recipe/recipe-impl.h"

void cpt_recipe_free(cpt_recipe *r) {
    if (!r) return;
    rcp_store_free(&r->st);
    for (size_t i = 0; i < r->n_interned; i++) free(r->interned[i]);
    free(r->interned);
    for (size_t i = 0; i < r->n_warnings; i++) free(r->warnings[i]);
    free(r->warnings);
    free(r->name);
    free(r);
}

/* "dir/demo.yaml" -> "demo" */
static char *base_name(const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    const char *dot = strrchr(b, '.');
    size_t n = (dot && dot != b) ? (size_t)(dot - b) : strlen(b);
    return strndup(b, n);
}

static int add_warning(cpt_recipe *r, const char *msg, cpt_err *err) {
    char **w = realloc(r->warnings, (r->n_warnings + 1) * sizeof *w);
    if (!w) return cpt_err_set(err, CPT_ENOMEM, "recipe: out of memory");
    r->warnings = w;
    if (!(w[r->n_warnings] = strdup(msg))) return cpt_err_set(err, CPT_ENOMEM, "recipe: out of memory");
    r->n_warnings++;
    return CPT_OK;
}

/* Deprecated keys: run after each source (the file, then every override) is flattened,
 * so that "later source wins" holds across the old and the new name alike. An entry under
 * the old key from source `src` becomes the new key; a new-key entry from an earlier
 * source is replaced; both names in the same source is an error. */
static int resolve_aliases(cpt_recipe *r, int src, cpt_err *err) {
    const cpt_recipe_schema *s = r->schema;
    for (size_t a = 0; a < s->n_aliases; a++) {
        const cpt_recipe_alias *al = &s->aliases[a];
        rcp_entry *old = rcp_store_find(&r->st, al->old_key);
        if (!old || old->src != src) continue;
        char loc[400];
        rcp_loc(r, old, 1, loc, sizeof loc);
        rcp_entry *cur = rcp_store_find(&r->st, al->new_key);
        if (cur && cur->src == src)
            return cpt_err_set(err, CPT_EINVAL,
                               "%s: %s: set together with %s, which replaces it. HINT: keep only %s",
                               loc, al->old_key, al->new_key, al->new_key);
        char msg[800];
        snprintf(msg, sizeof msg, "%s: %s is deprecated (%s); read as %s. HINT: rename it to %s",
                 loc, al->old_key, al->why, al->new_key, al->new_key);
        int rc = add_warning(r, msg, err);
        if (rc) return rc;
        char *nk = strdup(al->new_key);
        if (!nk) return cpt_err_set(err, CPT_ENOMEM, "recipe: out of memory");
        if (cur) rcp_store_remove_tree(&r->st, al->new_key);
        old = rcp_store_find(&r->st, al->old_key); /* removal compacts the array */
        free(old->key);
        old->key = nk;
    }
    return CPT_OK;
}

size_t cpt_recipe_n_warnings(const cpt_recipe *r) { return r ? r->n_warnings : 0; }

const char *cpt_recipe_warning(const cpt_recipe *r, size_t i) {
    CPT_ASSERT(r && i < r->n_warnings);
    return r->warnings[i];
}

static int apply_override(cpt_recipe *r, const char *ov, cpt_err *err) {
    size_t lead = (ov[0] == '-' && ov[1] == '-') ? 2 : 0;
    const char *kv = ov + lead;
    const char *eq = strchr(kv, '=');
    char label[300];
    snprintf(label, sizeof label, "override \"%.200s%s\"", ov, strlen(ov) > 200 ? "..." : "");
    if (!eq || eq == kv)
        return cpt_err_set(err, CPT_EINVAL,
                           "%s: expected key=value. HINT: write e.g. optim.lr=3e-4 (keys are "
                           "dotted paths, see `cpt train --help`)",
                           label);
    size_t kn = (size_t)(eq - kv);
    for (size_t i = 0; i < kn; i++) {
        char c = kv[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-' || (c == '.' && i > 0 && i + 1 < kn && kv[i + 1] != '.');
        if (!ok)
            return cpt_err_set(err, CPT_EINVAL,
                               "%s:1:%zu: the key \"%.*s\" has an invalid character. HINT: keys "
                               "are dotted names like data.sources.web.path",
                               label, lead + i + 1, (int)kn, kv);
    }
    char *key = strndup(kv, kn);
    if (!key) return cpt_err_set(err, CPT_ENOMEM, "recipe: out of memory");
    int src = rcp_store_add_src(&r->st, label, ".", err);
    if (src < 0) {
        free(key);
        return src;
    }
    rcp_store_remove_tree(&r->st, key);
    size_t first = r->st.n;
    const char *val = eq + 1;
    int rc = rcp_yaml_flatten(val, strlen(val), key, src, (int)(val - ov), &r->st, err);
    for (size_t i = first; i < r->st.n; i++) {
        r->st.e[i].origin = CPT_RORIG_OVERRIDE;
        if (r->st.e[i].kline == 0 || !strcmp(r->st.e[i].key, key)) {
            r->st.e[i].kline = 1;
            r->st.e[i].kcol = (int)lead + 1;
        }
    }
    free(key);
    if (!rc) rc = resolve_aliases(r, src, err);
    return rc;
}

static int load_impl(const cpt_recipe_schema *schema, const char *text, size_t len,
                     const char *label, const char *name, const char *base_dir,
                     const char *const *overrides, size_t n_over, cpt_recipe **out, cpt_err *err) {
    CPT_ASSERT(schema && out && (overrides || n_over == 0));
    *out = NULL;
    cpt_recipe *r = calloc(1, sizeof *r);
    if (!r) return cpt_err_set(err, CPT_ENOMEM, "recipe: out of memory");
    r->schema = schema;
    r->name = strdup(name);
    int rc = r->name ? CPT_OK : cpt_err_set(err, CPT_ENOMEM, "recipe: out of memory");
    /* source 0: schema defaults and derived values (relative defaults resolve like
     * the recipe's own paths); source 1: the recipe text */
    if (!rc && (rc = rcp_store_add_src(&r->st, "(default)", base_dir, err)) > 0) rc = CPT_OK;
    if (!rc && (rc = rcp_store_add_src(&r->st, label, base_dir, err)) > 0) rc = CPT_OK;
    if (!rc && text) rc = rcp_yaml_flatten(text, len, "", 1, 0, &r->st, err);
    if (!rc) rc = resolve_aliases(r, 1, err);
    for (size_t i = 0; i < n_over && !rc; i++) rc = apply_override(r, overrides[i], err);
    if (!rc) rc = rcp_classify_all(r, err);
    if (!rc) rc = rcp_check_lists(r, err);
    for (size_t i = 0; i < r->st.n && !rc; i++) rc = rcp_type_entry(r, &r->st.e[i], 1, err);
    if (!rc) rc = rcp_apply_defaults(r, err);
    /* cross-field checks first: an undeclared name explains a bad sum */
    if (!rc && schema->check) rc = schema->check(r, err);
    if (!rc) rc = rcp_check_sums(r, err);
    if (rc) {
        cpt_recipe_free(r);
        return rc;
    }
    *out = r;
    return CPT_OK;
}

int cpt_recipe_load_text(const cpt_recipe_schema *schema, const char *text, size_t len,
                         const char *name, const char *base_dir, const char *const *overrides,
                         size_t n_over, cpt_recipe **out, cpt_err *err) {
    CPT_ASSERT(name);
    return load_impl(schema, text, len, name, name, base_dir ? base_dir : ".", overrides, n_over,
                     out, err);
}

int cpt_recipe_load(const cpt_recipe_schema *schema, const char *path, const char *const *overrides,
                    size_t n_over, cpt_recipe **out, cpt_err *err) {
    if (!path)
        return load_impl(schema, NULL, 0, "(no recipe file)", "cpt", ".", overrides, n_over, out,
                         err);
    char *text = NULL;
    size_t len = 0;
    int rc = cpt_read_file(path, &text, &len, err);
    if (rc) {
        cpt_err_wrap(err, "recipe %s: ", path);
        /* a missing recipe is the user's to fix */
        return rc;
    }
    char *dcopy = strdup(path), *name = base_name(path);
    if (!dcopy || !name) {
        free(text);
        free(dcopy);
        free(name);
        return cpt_err_set(err, CPT_ENOMEM, "recipe: out of memory");
    }
    rc = load_impl(schema, text, len, path, name, dirname(dcopy), overrides, n_over, out, err);
    free(text);
    free(dcopy);
    free(name);
    return rc;
}

/* ---- getters ---- */

static const rcp_entry *get(const cpt_recipe *r, const char *key) {
    CPT_ASSERT(r && key);
    return rcp_store_find(&r->st, key);
}

int cpt_recipe_has(const cpt_recipe *r, const char *key) { return get(r, key) != NULL; }

long long cpt_recipe_int(const cpt_recipe *r, const char *key) {
    const rcp_entry *e = get(r, key);
    CPT_ASSERT(e && e->opt->type == CPT_RT_INT);
    return e->i;
}

double cpt_recipe_float(const cpt_recipe *r, const char *key) {
    const rcp_entry *e = get(r, key);
    CPT_ASSERT(e && (e->opt->type == CPT_RT_FLOAT || e->opt->type == CPT_RT_INT));
    return e->f;
}

int cpt_recipe_bool(const cpt_recipe *r, const char *key) {
    const rcp_entry *e = get(r, key);
    CPT_ASSERT(e && e->opt->type == CPT_RT_BOOL);
    return e->b;
}

const char *cpt_recipe_str(const cpt_recipe *r, const char *key) {
    const rcp_entry *e = get(r, key);
    CPT_ASSERT(e && (e->opt->type == CPT_RT_STRING || e->opt->type == CPT_RT_PATH ||
                     e->opt->type == CPT_RT_ENUM));
    return e->text;
}

cpt_recipe_origin cpt_recipe_origin_of(const cpt_recipe *r, const char *key) {
    const rcp_entry *e = get(r, key);
    return e ? e->origin : CPT_RORIG_UNSET;
}

const char *cpt_recipe_name_of(const cpt_recipe *r) { return r->name; }

size_t cpt_recipe_n_names(const cpt_recipe *r, const char *prefix) {
    char **names;
    size_t n;
    if (rcp_names(r, prefix, &names, &n, NULL)) return 0;
    rcp_free_keys(names, n);
    return n;
}

const char *cpt_recipe_name(const cpt_recipe *r, const char *prefix, size_t i) {
    char **names;
    size_t n;
    cpt_recipe *m = (cpt_recipe *)r; /* the intern table is a cache, not state */
    if (rcp_names(r, prefix, &names, &n, NULL)) return NULL;
    CPT_ASSERT(i < n);
    const char *found = NULL;
    for (size_t j = 0; j < m->n_interned && !found; j++)
        if (!strcmp(m->interned[j], names[i])) found = m->interned[j];
    if (!found && m->n_interned == m->cap_interned) {
        size_t cap = m->cap_interned ? 2 * m->cap_interned : 16;
        char **p = realloc(m->interned, cap * sizeof *p);
        if (p) {
            m->interned = p;
            m->cap_interned = cap;
        }
    }
    if (!found && m->n_interned < m->cap_interned) {
        found = m->interned[m->n_interned++] = names[i];
        names[i] = NULL;
    }
    rcp_free_keys(names, n);
    return found;
}

size_t cpt_recipe_list_len(const cpt_recipe *r, const char *prefix) {
    return cpt_recipe_n_names(r, prefix);
}

int cpt_recipe_set_derived(cpt_recipe *r, const char *key, const char *value, cpt_err *err) {
    const cpt_recipe_opt *opt = NULL;
    for (size_t i = 0; i < r->schema->n_opts && !opt; i++)
        if (rcp_match(r->schema->opts[i].pattern, key)) opt = &r->schema->opts[i];
    if (!opt)
        return cpt_err_set(err, CPT_EINVAL, "recipe: derived key %s is not in the %s schema",
                           key, r->schema->name);
    rcp_store_remove_tree(&r->st, key);
    rcp_entry e = {0};
    e.key = strdup(key);
    e.text = strdup(value);
    e.opt = opt;
    e.origin = CPT_RORIG_DERIVED;
    if (!e.key || !e.text) {
        rcp_entry_free(&e);
        return cpt_err_set(err, CPT_ENOMEM, "recipe: out of memory");
    }
    int rc = rcp_store_push(&r->st, &e, err);
    if (rc) return rc;
    rc = rcp_type_entry(r, &r->st.e[r->st.n - 1], 0, err);
    if (rc) cpt_err_wrap(err, "derived value of %s: ", key);
    return rc;
}

/* ---- mixture ---- */

int cpt_recipe_mixture(const cpt_recipe *r, int stage, const double *source_tokens,
                       double *weights, cpt_err *err) {
    size_t ns = cpt_recipe_n_names(r, "data.sources");
    char prefix[64];
    if (stage >= 0) {
        snprintf(prefix, sizeof prefix, "stages.%d.mixture", stage);
        if (cpt_recipe_n_names(r, prefix) == 0) stage = -1;
    }
    if (stage < 0) snprintf(prefix, sizeof prefix, "data.mixture");
    if (cpt_recipe_n_names(r, prefix) > 0) {
        for (size_t i = 0; i < ns; i++) {
            char key[512];
            snprintf(key, sizeof key, "%s.%s", prefix, cpt_recipe_name(r, "data.sources", i));
            weights[i] = cpt_recipe_has(r, key) ? cpt_recipe_float(r, key) : 0.0;
        }
        return CPT_OK;
    }
    if (!cpt_recipe_has(r, "data.replay.source"))
        return cpt_err_set(err, CPT_EINVAL,
                           "data.mixture: the recipe has no top-level mixture (every stage has "
                           "its own). HINT: ask for a stage's mixture (stage >= 0)");
    const char *rs = cpt_recipe_str(r, "data.replay.source");
    double f = cpt_recipe_float(r, "data.replay.fraction"), other = 0;
    for (size_t i = 0; i < ns; i++) {
        if (source_tokens[i] < 0)
            return cpt_err_set(err, CPT_EINVAL, "recipe mixture: source %s has %g tokens",
                               cpt_recipe_name(r, "data.sources", i), source_tokens[i]);
        if (strcmp(cpt_recipe_name(r, "data.sources", i), rs)) other += source_tokens[i];
    }
    if (!(other > 0))
        return cpt_err_set(err, CPT_EINVAL,
                           "data.replay: the sources other than %s hold no tokens, so the "
                           "remaining %g of the mixture cannot be split by size. HINT: give an "
                           "explicit data.mixture",
                           rs, 1 - f);
    for (size_t i = 0; i < ns; i++) {
        const char *nm = cpt_recipe_name(r, "data.sources", i);
        weights[i] = strcmp(nm, rs) ? (1 - f) * source_tokens[i] / other : f;
    }
    return CPT_OK;
}

/* dump.c: the effective-config dump (YAML text that reloads to the same values)
 * and the schema help, both generated from the schema table; no parsing here. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/fileio.h"
#include "recipe/recipe-impl.h"

typedef struct out {
    char *p;
    size_t n, cap;
    int oom;
} out;

static void put(out *o, const char *s, size_t n) {
    if (o->oom) return;
    if (o->n + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 4096;
        while (cap < o->n + n + 1) cap *= 2;
        char *p = realloc(o->p, cap);
        if (!p) {
            o->oom = 1;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
    o->p[o->n] = '\0';
}
static void puts_(out *o, const char *s) { put(o, s, strlen(s)); }
static void indent(out *o, int n) {
    for (int i = 0; i < n; i++) put(o, " ", 1);
}

/* Shortest text that strtod reads back to exactly v, in a form YAML 1.1 tools also
 * read as a float (a '.' in the mantissa, a signed exponent). */
static void fmt_float(double v, char *buf, size_t n) {
    CPT_ASSERT(n >= 40);
    char t[32];
    for (int p = 1; p <= 17; p++) {
        snprintf(t, sizeof t, "%.*g", p, v);
        if (strtod(t, NULL) == v) break;
    }
    /* 10 reads better than 1e+01: plain decimals when they are as exact */
    if (strchr(t, 'e') && fabs(v) >= 1e-4 && fabs(v) < 1e15) {
        for (int d = 0; d <= 20; d++) {
            char f[40];
            snprintf(f, sizeof f, "%.*f", d, v);
            if (strtod(f, NULL) == v) {
                snprintf(t, sizeof t, "%.31s", f);
                break;
            }
        }
    }
    char *e = strchr(t, 'e');
    size_t mant = e ? (size_t)(e - t) : strlen(t);
    memcpy(buf, t, mant);
    size_t k = mant;
    if (!memchr(t, '.', mant)) {
        memcpy(buf + k, ".0", 2);
        k += 2;
    }
    strcpy(buf + k, e ? e : "");
}

/* A double-quoted YAML scalar; '$' is doubled so ${...} is not expanded again. */
static void put_quoted(out *o, const char *s) {
    put(o, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(o, esc, 2);
        } else if (c == '$') {
            put(o, "$$", 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            put(o, esc, 4);
        } else {
            put(o, (const char *)&c, 1);
        }
    }
    put(o, "\"", 1);
}

static void put_value(out *o, const rcp_entry *e) {
    char buf[64];
    switch (e->opt->type) {
    case CPT_RT_INT:
        snprintf(buf, sizeof buf, "%lld", e->i);
        puts_(o, buf);
        break;
    case CPT_RT_FLOAT:
        fmt_float(e->f, buf, sizeof buf);
        puts_(o, buf);
        break;
    case CPT_RT_BOOL:
        puts_(o, e->b ? "true" : "false");
        break;
    case CPT_RT_ENUM:
        puts_(o, e->text); /* choices are plain words by construction of the tables */
        break;
    case CPT_RT_STRING:
    case CPT_RT_PATH:
        put_quoted(o, e->text);
        break;
    }
}

/* One line describing an option: "float in (0, 1], default 0.0003". */
static void describe(const cpt_recipe_opt *opt, char *buf, size_t n) {
    char range[160] = "";
    if (opt->type == CPT_RT_INT || opt->type == CPT_RT_FLOAT) {
        rcp_range_str(opt, range, sizeof range);
        if (!strcmp(range, "any value")) range[0] = '\0';
    } else if (opt->type == CPT_RT_ENUM) {
        snprintf(range, sizeof range, "one of %s", opt->choices);
    } else if (opt->type == CPT_RT_PATH) {
        snprintf(range, sizeof range, "%s",
                 (opt->flags & CPT_ROPT_OUTPUT)
                     ? "output, need not exist"
                     : ((opt->flags & CPT_ROPT_DIR) ? "existing directory" : "must exist"));
    }
    char def[200];
    if (opt->def)
        snprintf(def, sizeof def, "default %s", opt->def);
    else
        snprintf(def, sizeof def, "%s", (opt->flags & CPT_ROPT_REQUIRED) ? "required" : "optional");
    snprintf(buf, n, "%s%s%s%s, %s%s", rcp_type_name(opt->type), range[0] ? " " : "", range,
             (opt->flags & CPT_ROPT_SUM1) ? ", the map sums to 1" : "", def, "");
}

/* ---- the dump: flat keys -> nested YAML ---- */

typedef struct node {
    char *seg;
    struct node **kids;
    size_t nk, cap;
    const rcp_entry *e;          /* leaf value (NULL: unset) */
    const cpt_recipe_opt *opt;   /* leaf option */
} node;

static void node_free(node *n) {
    for (size_t i = 0; i < n->nk; i++) node_free(n->kids[i]);
    free(n->kids);
    free(n->seg);
    free(n);
}

static node *child(node *n, const char *seg, size_t len) {
    for (size_t i = 0; i < n->nk; i++)
        if (strlen(n->kids[i]->seg) == len && !memcmp(n->kids[i]->seg, seg, len)) return n->kids[i];
    if (n->nk == n->cap) {
        size_t cap = n->cap ? 2 * n->cap : 8;
        node **p = realloc(n->kids, cap * sizeof *p);
        if (!p) return NULL;
        n->kids = p;
        n->cap = cap;
    }
    node *c = calloc(1, sizeof *c);
    if (!c || !(c->seg = strndup(seg, len))) {
        free(c);
        return NULL;
    }
    n->kids[n->nk++] = c;
    return c;
}

static int insert(node *root, const char *key, const rcp_entry *e, const cpt_recipe_opt *opt) {
    node *n = root;
    for (const char *s = key;;) {
        const char *d = strchr(s, '.');
        size_t len = d ? (size_t)(d - s) : strlen(s);
        if (!(n = child(n, s, len))) return CPT_ENOMEM;
        if (!d) break;
        s = d + 1;
    }
    n->e = e;
    n->opt = opt;
    return CPT_OK;
}

static int cmp_node_idx(const void *a, const void *b) {
    long x = atol((*(node *const *)a)->seg), y = atol((*(node *const *)b)->seg);
    return (x > y) - (x < y);
}

static void emit(out *o, node *n, int ind) {
    int is_list = n->nk > 0;
    for (size_t i = 0; i < n->nk; i++)
        if (!rcp_is_index(n->kids[i]->seg, strlen(n->kids[i]->seg))) is_list = 0;
    if (is_list) qsort(n->kids, n->nk, sizeof *n->kids, cmp_node_idx);
    for (size_t i = 0; i < n->nk; i++) {
        node *c = n->kids[i];
        if (is_list) {
            indent(o, ind);
            puts_(o, "- # item ");
            puts_(o, c->seg);
            puts_(o, "\n");
            emit(o, c, ind + 2);
            continue;
        }
        if (c->opt) {
            char desc[400];
            describe(c->opt, desc, sizeof desc);
            indent(o, ind);
            puts_(o, "# ");
            puts_(o, c->opt->help);
            puts_(o, " [");
            puts_(o, desc);
            puts_(o, "]\n");
            indent(o, ind);
            puts_(o, c->seg);
            puts_(o, ": ");
            if (c->e) {
                put_value(o, c->e);
                if (c->e->origin == CPT_RORIG_DEFAULT) puts_(o, "  # default");
                if (c->e->origin == CPT_RORIG_DERIVED) puts_(o, "  # derived");
            } else {
                puts_(o, "null  # unset");
            }
            puts_(o, "\n");
        } else {
            indent(o, ind);
            puts_(o, c->seg);
            puts_(o, ":\n");
            emit(o, c, ind + 2);
        }
    }
}

int cpt_recipe_dump(const cpt_recipe *r, char **outp, cpt_err *err) {
    *outp = NULL;
    node *root = calloc(1, sizeof *root);
    if (!root) return cpt_err_set(err, CPT_ENOMEM, "recipe dump: out of memory");
    int rc = CPT_OK;
    for (size_t i = 0; i < r->schema->n_opts && !rc; i++) {
        const cpt_recipe_opt *opt = &r->schema->opts[i];
        char **keys;
        size_t n;
        if ((rc = rcp_instances(r, opt->pattern, &keys, &n, err))) break;
        for (size_t j = 0; j < n && !rc; j++)
            if (insert(root, keys[j], rcp_store_find(&r->st, keys[j]), opt))
                rc = cpt_err_set(err, CPT_ENOMEM, "recipe dump: out of memory");
        rcp_free_keys(keys, n);
    }
    out o = {0};
    if (!rc) {
        puts_(&o, "# Effective config of recipe \"");
        puts_(&o, r->name);
        puts_(&o, "\" (");
        puts_(&o, r->schema->name);
        puts_(&o, "): every key with its value; defaults and derived values are marked.\n"
                  "# Paths are absolute; loading this file gives the same config.\n");
        emit(&o, root, 0);
        if (o.oom) rc = cpt_err_set(err, CPT_ENOMEM, "recipe dump: out of memory");
    }
    node_free(root);
    if (rc) {
        free(o.p);
        return rc;
    }
    *outp = o.p;
    return CPT_OK;
}

int cpt_recipe_save(const cpt_recipe *r, const char *path, cpt_err *err) {
    char *text;
    int rc = cpt_recipe_dump(r, &text, err);
    if (rc) return rc;
    rc = cpt_write_file_atomic(path, text, strlen(text), err);
    free(text);
    return rc;
}

void cpt_recipe_help(FILE *f, const cpt_recipe_schema *s) {
    fprintf(f,
            "Recipe keys for %s. Set them in a YAML recipe (nested mappings) or override them\n"
            "as key=value (e.g. optim.lr=3e-4). '*' is a name you choose, '#' a list index\n"
            "(0, 1, ...). Unknown keys and out-of-range values are errors.\n\n",
            s->name);
    for (size_t i = 0; i < s->n_opts; i++) {
        char desc[400];
        describe(&s->opts[i], desc, sizeof desc);
        fprintf(f, "  %-34s %s\n", s->opts[i].pattern, desc);
        fprintf(f, "  %-34s   %s\n", "", s->opts[i].help);
    }
    if (s->n_aliases) fprintf(f, "\nDeprecated keys (still read, with a warning):\n");
    for (size_t i = 0; i < s->n_aliases; i++)
        fprintf(f, "  %-34s -> %s (%s)\n", s->aliases[i].old_key, s->aliases[i].new_key, s->aliases[i].why);
}

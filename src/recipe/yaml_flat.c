/* yaml_flat.c: YAML text -> flat dotted keys (libyaml event stream) and the flat
 * key store; knows nothing about schemas or types. */
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "recipe/recipe-impl.h"

/* ---- the flat store ---- */

void rcp_entry_free(rcp_entry *e) {
    free(e->key);
    free(e->text);
    e->key = e->text = NULL;
}

void rcp_store_free(rcp_store *s) {
    for (size_t i = 0; i < s->n; i++) rcp_entry_free(&s->e[i]);
    free(s->e);
    for (size_t i = 0; i < s->n_srcs; i++) {
        free(s->srcs[i].label);
        free(s->srcs[i].base_dir);
    }
    free(s->srcs);
    memset(s, 0, sizeof *s);
}

int rcp_store_add_src(rcp_store *s, const char *label, const char *base_dir, cpt_err *err) {
    if (s->n_srcs == s->cap_srcs) {
        size_t cap = s->cap_srcs ? 2 * s->cap_srcs : 4;
        rcp_src *p = realloc(s->srcs, cap * sizeof *p);
        if (!p) return cpt_err_set(err, CPT_ENOMEM, "recipe: out of memory");
        s->srcs = p;
        s->cap_srcs = cap;
    }
    rcp_src *src = &s->srcs[s->n_srcs];
    src->label = strdup(label);
    src->base_dir = base_dir ? strdup(base_dir) : NULL;
    if (!src->label || (base_dir && !src->base_dir)) {
        free(src->label);
        free(src->base_dir);
        return cpt_err_set(err, CPT_ENOMEM, "recipe: out of memory");
    }
    return (int)s->n_srcs++;
}

int rcp_store_push(rcp_store *s, rcp_entry *e, cpt_err *err) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 32;
        rcp_entry *p = realloc(s->e, cap * sizeof *p);
        if (!p) {
            rcp_entry_free(e);
            return cpt_err_set(err, CPT_ENOMEM, "recipe: out of memory");
        }
        s->e = p;
        s->cap = cap;
    }
    s->e[s->n++] = *e;
    return CPT_OK;
}

static int under(const char *key, const char *prefix, size_t n) {
    return strncmp(key, prefix, n) == 0 && (key[n] == '\0' || key[n] == '.');
}

void rcp_store_remove_tree(rcp_store *s, const char *key) {
    size_t n = strlen(key), w = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (under(s->e[i].key, key, n))
            rcp_entry_free(&s->e[i]);
        else
            s->e[w++] = s->e[i];
    }
    s->n = w;
}

rcp_entry *rcp_store_find(const rcp_store *s, const char *key) {
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->e[i].key, key) == 0) return &s->e[i];
    return NULL;
}

/* ---- key syntax ---- */

static int is_key_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

int rcp_is_index(const char *s, size_t n) {
    if (n == 0 || n > 9) return 0; /* 9 digits: an index always fits an int */
    if (n > 1 && s[0] == '0') return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

int rcp_is_name(const char *s, size_t n) {
    if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!is_key_char(s[i])) return 0;
    return 1;
}

int rcp_match(const char *p, const char *k) {
    for (;;) {
        const char *pe = strchr(p, '.'), *ke = strchr(k, '.');
        size_t pn = pe ? (size_t)(pe - p) : strlen(p), kn = ke ? (size_t)(ke - k) : strlen(k);
        int ok;
        if (pn == 1 && p[0] == '*')
            ok = rcp_is_name(k, kn);
        else if (pn == 1 && p[0] == '#')
            ok = rcp_is_index(k, kn);
        else
            ok = pn == kn && memcmp(p, k, pn) == 0;
        if (!ok) return 0;
        if (!pe || !ke) return !pe && !ke;
        p = pe + 1;
        k = ke + 1;
    }
}

/* ---- YAML -> flat ---- */

typedef struct frame {
    int is_map;
    size_t path_len;   /* length of the path before this container's items */
    int want_key;      /* map: next scalar is a key */
    long index;        /* seq: index of the next item */
    char **keys;       /* map: keys seen (duplicate check) */
    int *key_lines;
    size_t n_keys, cap_keys;
    int kline, kcol;   /* position of the current key (or item) */
} frame;

typedef struct flat_ctx {
    rcp_store *s;
    int src;
    int col_shift;
    char *path;
    size_t path_len, path_cap;
    frame st[RCP_MAX_DEPTH + 1];
    int depth;
    cpt_err *err;
} flat_ctx;

static const char *src_label(flat_ctx *c) { return c->s->srcs[c->src].label; }

static int line_of(yaml_mark_t m) { return (int)m.line + 1; }
static int col_of(flat_ctx *c, yaml_mark_t m) {
    return (int)m.column + 1 + (m.line == 0 ? c->col_shift : 0);
}

static int path_push(flat_ctx *c, const char *seg, size_t n) {
    size_t need = c->path_len + 1 + n + 1;
    if (need > c->path_cap) {
        size_t cap = c->path_cap ? c->path_cap : 64;
        while (cap < need) cap *= 2;
        char *p = realloc(c->path, cap);
        if (!p) return cpt_err_set(c->err, CPT_ENOMEM, "recipe: out of memory");
        c->path = p;
        c->path_cap = cap;
    }
    if (c->path_len) c->path[c->path_len++] = '.';
    memcpy(c->path + c->path_len, seg, n);
    c->path_len += n;
    c->path[c->path_len] = '\0';
    return CPT_OK;
}

static void path_pop_to(flat_ctx *c, size_t len) {
    c->path_len = len;
    if (c->path) c->path[len] = '\0';
}

static int is_null_scalar(const yaml_event_t *ev) {
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
    const char *v = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    return n == 0 || (n == 1 && v[0] == '~') ||
           (n == 4 && (!memcmp(v, "null", 4) || !memcmp(v, "Null", 4) || !memcmp(v, "NULL", 4)));
}

static int emit(flat_ctx *c, const yaml_event_t *ev, int kline, int kcol) {
    if (is_null_scalar(ev)) return CPT_OK;
    const char *v = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    if (memchr(v, '\0', n))
        return cpt_err_set(c->err, CPT_EFORMAT,
                           "%s:%d:%d: %s: the value contains a NUL character. HINT: remove the "
                           "\\0 escape",
                           src_label(c), line_of(ev->start_mark), col_of(c, ev->start_mark),
                           c->path_len ? c->path : "(top level)");
    if (c->path_len == 0)
        return cpt_err_set(c->err, CPT_EFORMAT,
                           "%s:%d:%d: the top level is a single value, not a mapping of keys. "
                           "HINT: a recipe looks like \"optim:\\n  lr: 3e-4\"",
                           src_label(c), line_of(ev->start_mark), col_of(c, ev->start_mark));
    rcp_entry e = {0};
    e.key = strdup(c->path);
    e.text = malloc(n + 1);
    if (!e.key || !e.text) {
        rcp_entry_free(&e);
        return cpt_err_set(c->err, CPT_ENOMEM, "recipe: out of memory");
    }
    memcpy(e.text, v, n);
    e.text[n] = '\0';
    e.quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
    e.kline = kline;
    e.kcol = kcol;
    e.vline = line_of(ev->start_mark);
    e.vcol = col_of(c, ev->start_mark);
    e.src = c->src;
    e.origin = CPT_RORIG_FILE;
    return rcp_store_push(c->s, &e, c->err);
}

static void frame_free(frame *f) {
    for (size_t i = 0; i < f->n_keys; i++) free(f->keys[i]);
    free(f->keys);
    free(f->key_lines);
    memset(f, 0, sizeof *f);
}

/* A map key: checks its syntax and uniqueness, then appends it to the path. */
static int map_key(flat_ctx *c, frame *f, const yaml_event_t *ev) {
    const char *k = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    int line = line_of(ev->start_mark), col = col_of(c, ev->start_mark);
    const char *where = c->path_len ? c->path : "(top level)";
    if (n == 0 || n > 128)
        return cpt_err_set(c->err, CPT_EFORMAT,
                           "%s:%d:%d: under %s: a key is empty or longer than 128 characters. "
                           "HINT: keys are short names like \"lr\"",
                           src_label(c), line, col, where);
    for (size_t i = 0; i < n; i++) {
        if (!is_key_char(k[i]))
            return cpt_err_set(c->err, CPT_EFORMAT,
                               "%s:%d:%d: under %s: key \"%.*s\" has the character '%c' (byte "
                               "0x%02x); keys use only letters, digits, '_' and '-'. HINT: %s",
                               src_label(c), line, col, where, (int)n, k,
                               (k[i] >= 32 && k[i] < 127) ? k[i] : '?', (unsigned char)k[i],
                               k[i] == '.' ? "write nested mappings instead of dotted keys "
                                             "(\"optim: {lr: 1}\", not \"optim.lr: 1\")"
                                           : "rename the key");
    }
    for (size_t i = 0; i < f->n_keys; i++) {
        if (strlen(f->keys[i]) == n && memcmp(f->keys[i], k, n) == 0)
            return cpt_err_set(c->err, CPT_EFORMAT,
                               "%s:%d:%d: %s%s%.*s: duplicate key (first set on line %d). HINT: "
                               "keep one of them",
                               src_label(c), line, col, c->path_len ? c->path : "",
                               c->path_len ? "." : "", (int)n, k, f->key_lines[i]);
    }
    if (f->n_keys == f->cap_keys) {
        size_t cap = f->cap_keys ? 2 * f->cap_keys : 8;
        char **p = realloc(f->keys, cap * sizeof *p);
        if (!p) return cpt_err_set(c->err, CPT_ENOMEM, "recipe: out of memory");
        f->keys = p;
        int *q = realloc(f->key_lines, cap * sizeof *q);
        if (!q) return cpt_err_set(c->err, CPT_ENOMEM, "recipe: out of memory");
        f->key_lines = q;
        f->cap_keys = cap;
    }
    char *copy = strndup(k, n);
    if (!copy) return cpt_err_set(c->err, CPT_ENOMEM, "recipe: out of memory");
    f->keys[f->n_keys] = copy;
    f->key_lines[f->n_keys++] = line;
    f->kline = line;
    f->kcol = col;
    return path_push(c, k, n);
}

/* An item of the current sequence: appends its index to the path. */
static int seq_item(flat_ctx *c, frame *f, const yaml_event_t *ev) {
    char idx[24];
    if (f->index >= 100000000)
        return cpt_err_set(c->err, CPT_EFORMAT, "%s:%d:%d: %s: list too long. HINT: shorten it",
                           src_label(c), line_of(ev->start_mark), col_of(c, ev->start_mark),
                           c->path);
    int n = snprintf(idx, sizeof idx, "%ld", f->index);
    f->kline = line_of(ev->start_mark);
    f->kcol = col_of(c, ev->start_mark);
    return path_push(c, idx, (size_t)n);
}

/* After a value (scalar or container) completes inside frame f. */
static void value_done(flat_ctx *c, frame *f) {
    path_pop_to(c, f->path_len);
    if (f->is_map)
        f->want_key = 1;
    else
        f->index++;
}

static int reject_props(flat_ctx *c, const yaml_event_t *ev, const yaml_char_t *anchor,
                        const yaml_char_t *tag, int implicit) {
    const char *where = c->path_len ? c->path : "(top level)";
    if (anchor)
        return cpt_err_set(c->err, CPT_EUNSUPPORTED,
                           "%s:%d:%d: %s: anchors (&%s) and aliases are not supported in recipes. "
                           "HINT: write the values out, or use key=value overrides",
                           src_label(c), line_of(ev->start_mark), col_of(c, ev->start_mark), where,
                           (const char *)anchor);
    if (tag && !implicit)
        return cpt_err_set(c->err, CPT_EUNSUPPORTED,
                           "%s:%d:%d: %s: YAML tags (%s) are not supported in recipes. HINT: "
                           "remove the tag; quote the value if it must be a string",
                           src_label(c), line_of(ev->start_mark), col_of(c, ev->start_mark), where,
                           (const char *)tag);
    return CPT_OK;
}

static int on_event(flat_ctx *c, yaml_event_t *ev, int *docs, int *done) {
    frame *top = c->depth > 0 ? &c->st[c->depth - 1] : NULL;
    switch (ev->type) {
    case YAML_STREAM_START_EVENT:
    case YAML_DOCUMENT_END_EVENT:
    case YAML_NO_EVENT:
        return CPT_OK;
    case YAML_STREAM_END_EVENT:
        *done = 1;
        return CPT_OK;
    case YAML_DOCUMENT_START_EVENT:
        if (++*docs > 1)
            return cpt_err_set(c->err, CPT_EFORMAT,
                               "%s:%d:%d: a second YAML document (\"---\"); a recipe is one "
                               "document. HINT: remove the extra \"---\" and merge the parts",
                               src_label(c), line_of(ev->start_mark), col_of(c, ev->start_mark));
        return CPT_OK;
    case YAML_ALIAS_EVENT:
        return cpt_err_set(c->err, CPT_EUNSUPPORTED,
                           "%s:%d:%d: %s: aliases (*%s) are not supported in recipes. HINT: write "
                           "the value out",
                           src_label(c), line_of(ev->start_mark), col_of(c, ev->start_mark),
                           c->path_len ? c->path : "(top level)",
                           (const char *)ev->data.alias.anchor);
    case YAML_SCALAR_EVENT: {
        int rc = reject_props(c, ev, ev->data.scalar.anchor, ev->data.scalar.tag,
                              ev->data.scalar.plain_implicit || ev->data.scalar.quoted_implicit);
        if (rc) return rc;
        if (!top) /* a top-level scalar: null is an empty recipe */
            return emit(c, ev, line_of(ev->start_mark), col_of(c, ev->start_mark));
        if (top->is_map && top->want_key) {
            top->want_key = 0;
            return map_key(c, top, ev);
        }
        if (!top->is_map && (rc = seq_item(c, top, ev))) return rc;
        rc = emit(c, ev, top->kline, top->kcol);
        value_done(c, top);
        return rc;
    }
    case YAML_MAPPING_START_EVENT:
    case YAML_SEQUENCE_START_EVENT: {
        int is_map = ev->type == YAML_MAPPING_START_EVENT;
        int rc = is_map ? reject_props(c, ev, ev->data.mapping_start.anchor,
                                       ev->data.mapping_start.tag, ev->data.mapping_start.implicit)
                        : reject_props(c, ev, ev->data.sequence_start.anchor,
                                       ev->data.sequence_start.tag,
                                       ev->data.sequence_start.implicit);
        if (rc) return rc;
        if (top && top->is_map && top->want_key)
            return cpt_err_set(c->err, CPT_EFORMAT,
                               "%s:%d:%d: under %s: a mapping key is a %s; keys must be plain "
                               "names. HINT: check the indentation and the '?' marker",
                               src_label(c), line_of(ev->start_mark), col_of(c, ev->start_mark),
                               c->path_len ? c->path : "(top level)", is_map ? "mapping" : "list");
        if (!top && c->path_len == 0 && !is_map)
            return cpt_err_set(c->err, CPT_EFORMAT,
                               "%s:%d:%d: the top level is a list, not a mapping of keys. HINT: a "
                               "recipe looks like \"optim:\\n  lr: 3e-4\"",
                               src_label(c), line_of(ev->start_mark), col_of(c, ev->start_mark));
        if (top && !top->is_map && (rc = seq_item(c, top, ev))) return rc;
        if (c->depth >= RCP_MAX_DEPTH)
            return cpt_err_set(c->err, CPT_EFORMAT,
                               "%s:%d:%d: %s: nesting deeper than %d levels. HINT: recipes are a "
                               "few levels deep; check the indentation",
                               src_label(c), line_of(ev->start_mark), col_of(c, ev->start_mark),
                               c->path_len ? c->path : "(top level)", RCP_MAX_DEPTH);
        frame *f = &c->st[c->depth++];
        memset(f, 0, sizeof *f);
        f->is_map = is_map;
        f->want_key = is_map;
        f->path_len = c->path_len;
        if (top) {
            f->kline = top->kline;
            f->kcol = top->kcol;
        }
        return CPT_OK;
    }
    case YAML_MAPPING_END_EVENT:
    case YAML_SEQUENCE_END_EVENT:
        CPT_ASSERT(top);
        frame_free(top);
        c->depth--;
        if (c->depth > 0) value_done(c, &c->st[c->depth - 1]);
        return CPT_OK;
    }
    return CPT_OK;
}

int rcp_yaml_flatten(const char *text, size_t len, const char *prefix, int src, int col_shift,
                     rcp_store *s, cpt_err *err) {
    CPT_ASSERT(s && src >= 0 && (size_t)src < s->n_srcs && prefix);
    flat_ctx c;
    memset(&c, 0, sizeof c);
    c.s = s;
    c.src = src;
    c.col_shift = col_shift;
    c.err = err;
    if (len > RCP_MAX_BYTES)
        return cpt_err_set(err, CPT_EFORMAT,
                           "%s: %zu bytes; recipes are limited to %u bytes. HINT: is this the "
                           "right file?",
                           s->srcs[src].label, len, RCP_MAX_BYTES);
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) return cpt_err_set(err, CPT_ENOMEM, "recipe: out of memory");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int rc = CPT_OK;
    if (*prefix && (rc = path_push(&c, prefix, strlen(prefix)))) goto out;
    int docs = 0, done = 0;
    while (!done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            yaml_mark_t m = p.problem_mark;
            rc = cpt_err_set(err, CPT_EFORMAT,
                             "%s:%d:%d: YAML syntax error: %s%s%s. HINT: check the indentation "
                             "(spaces, not tabs), the ':' after each key and the quotes near "
                             "this place",
                             s->srcs[src].label, line_of(m), col_of(&c, m),
                             p.problem ? p.problem : "malformed input",
                             p.context ? " " : "", p.context ? p.context : "");
            break;
        }
        rc = on_event(&c, &ev, &docs, &done);
        yaml_event_delete(&ev);
        if (rc) break;
    }
out:
    for (int i = 0; i < c.depth; i++) frame_free(&c.st[i]);
    free(c.path);
    yaml_parser_delete(&p);
    return rc;
}

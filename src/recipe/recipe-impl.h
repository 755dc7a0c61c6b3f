/* recipe-impl.h: private types shared by the recipe layer (flat key store, YAML
 * flattening, schema matching); not part of the public API. */
#ifndef CPT_RECIPE_IMPL_H
#define CPT_RECIPE_IMPL_H

#include "cpt/recipe.h"

#define RCP_MAX_DEPTH 32
#define RCP_MAX_BYTES (16u << 20)

/* One flattened scalar. Locations are 1-based; `src` indexes rcp_store.srcs. */
typedef struct rcp_entry {
    char *key;   /* "optim.lr" */
    char *text;  /* scalar text as written (after ${VAR} expansion once typed) */
    int quoted;  /* non-plain YAML style: always a string */
    int kline, kcol, vline, vcol;
    int src;
    cpt_recipe_origin origin;
    const cpt_recipe_opt *opt; /* matched schema entry, once classified */
    long long i;
    double f;
    int b;
} rcp_entry;

/* Where entries came from: a recipe file or one override. */
typedef struct rcp_src {
    char *label;    /* "recipes/demo.yaml" or "override \"optim.lr=1\"" */
    char *base_dir; /* anchor of relative input paths */
} rcp_src;

typedef struct rcp_store {
    rcp_entry *e;
    size_t n, cap;
    rcp_src *srcs;
    size_t n_srcs, cap_srcs;
} rcp_store;

void rcp_store_free(rcp_store *s);
void rcp_entry_free(rcp_entry *e);
/* Append a copy of the source label; returns its index or a negative status. */
int rcp_store_add_src(rcp_store *s, const char *label, const char *base_dir, cpt_err *err);
/* Append an entry (takes ownership of key and text, also on failure). */
int rcp_store_push(rcp_store *s, rcp_entry *e, cpt_err *err);
/* Remove `key` and everything under "key." */
void rcp_store_remove_tree(rcp_store *s, const char *key);
rcp_entry *rcp_store_find(const rcp_store *s, const char *key);

/* Flatten YAML text into `s` with every key under `prefix` ("" for a recipe file,
 * whose top level must be a mapping; "a.b" for an override, whose value may be a
 * scalar, a mapping or a sequence). Entries get source `src`. Positions on line 1
 * are shifted by `col_shift` (an override's value starts after "key="). Null
 * scalars are dropped. Errors name the source label, line and column. */
int rcp_yaml_flatten(const char *text, size_t len, const char *prefix, int src, int col_shift,
                     rcp_store *s, cpt_err *err);

/* 1 if `key` matches `pattern` segment by segment (`*`: a name, `#`: an index). */
int rcp_match(const char *pattern, const char *key);
/* 1 if `s` is a valid name for a `*` segment / a list index. */
int rcp_is_name(const char *s, size_t n);
int rcp_is_index(const char *s, size_t n);

struct cpt_recipe {
    const cpt_recipe_schema *schema;
    rcp_store st;
    char *name;
    /* Interned name strings handed out by cpt_recipe_name (live as long as r;
     * filled lazily, so getters are not thread-safe). */
    char **interned;
    size_t n_interned, cap_interned;
    /* Deprecation warnings recorded by the loader (cpt_recipe_warning). */
    char **warnings;
    size_t n_warnings;
};

/* Format a location prefix "<label>:<line>:<col>" for entry `e` (key position if
 * `at_key`, else the value) into buf. */
void rcp_loc(const cpt_recipe *r, const rcp_entry *e, int at_key, char *buf, size_t n);

/* Short type name for messages ("int", "float", ...). */
const char *rcp_type_name(cpt_recipe_type t);

#endif

/* ---- validate.c ---- */
/* Match every entry to a schema option; unknown keys fail with the nearest key. */
int rcp_classify_all(cpt_recipe *r, cpt_err *err);
/* Expand ${VAR} (if `expand`), parse the text as the option's type, check bounds
 * and, for paths, resolve and check existence. */
int rcp_type_entry(cpt_recipe *r, rcp_entry *e, int expand, cpt_err *err);
/* List items are numbered 0..n-1 without gaps. */
int rcp_check_lists(cpt_recipe *r, cpt_err *err);
/* Add defaults (per instance) in table order, then check required keys. */
int rcp_apply_defaults(cpt_recipe *r, cpt_err *err);
/* Float maps flagged CPT_ROPT_SUM1 sum to 1 within 1e-6 (per map instance). */
int rcp_check_sums(cpt_recipe *r, cpt_err *err);
/* The concrete keys a pattern stands for, given the names present in the store
 * (malloc'ed array of malloc'ed strings; free with rcp_free_keys). */
int rcp_instances(const cpt_recipe *r, const char *pattern, char ***keys, size_t *n, cpt_err *err);
void rcp_free_keys(char **keys, size_t n);
/* The schema key (instantiated like `key`) nearest to `key` by edit distance. */
char *rcp_nearest_key(const cpt_recipe *r, const char *key);
/* Format the allowed range of an int/float option ("in (0, 1]", ">= 0"). */
void rcp_range_str(const cpt_recipe_opt *o, char *buf, size_t n);
/* Names directly under prefix (distinct, appearance order; indices sorted). */
int rcp_names(const cpt_recipe *r, const char *prefix, char ***names, size_t *n, cpt_err *err);

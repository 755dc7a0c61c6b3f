/* cpt/recipe.h: YAML recipes with key=value overrides, validated against one
 * declarative schema table (docs/style.md practice 9).
 *
 * The schema table drives everything: which keys exist, their types, defaults,
 * bounds and help; `cpt train --help` (cpt_recipe_help), validation, and the
 * effective-config dump (cpt_recipe_dump) are all generated from it.
 *
 * ---------------------------------------------------------------------------------
 * Recipes are YAML (block or flow style, comments allowed). A recipe is flattened
 * to dotted keys: mapping keys join with '.', sequence items by their 0-based index:
 *
 *   optim: {lr: 3e-4}                     -> optim.lr = 3e-4
 *   data: {sources: {web: {path: d/}}}    -> data.sources.web.path = d/
 *   stages: [{steps: 10}, {steps: 20}]    -> stages.0.steps = 10, stages.1.steps = 20
 *
 * Rejected with an error naming file:line:col: syntax errors, anchors/aliases and
 * tags, duplicate keys, non-scalar keys, keys with '.' or characters other than
 * [A-Za-z0-9_-], more than one document, a top level that is not a mapping,
 * nesting deeper than 32, files over 16 MiB. A null value (`key:`, `~`, `null`)
 * means "not set" (the default applies).
 *
 * Overrides are "a.b.c=value" strings (a leading "--" is accepted), applied in
 * order after the file. The value is parsed as YAML, so `optim.lr=3e-4` is a
 * float, `x='3e-4'` a string, `data.mixture={a: 0.9, b: 0.1}` replaces the whole
 * map, `tokenizer=` or `tokenizer=null` unsets a key. Overrides may create keys
 * the schema allows (e.g. "stages.1.steps=50", "data.sources.new.path=dir").
 *
 * Schema patterns use `*` for a user-chosen name segment (a source or validation
 * set name: [A-Za-z_][A-Za-z0-9_-]*) and `#` for a list index. Names under a `*`
 * are "instances": defaults and required flags apply once per instance (each
 * declared source gets its own max_epochs default; each stage must set steps).
 *
 * Values: int (decimal with optional sign, or an exactly integral 1e9-style
 * number), float (strtod syntax, finite), bool
 * (true/false, yes/no, on/off in YAML 1.1 spellings), string, enum (one of the
 * choices), path. Quoted scalars are strings: `lr: "3e-4"` is a type error for a
 * float key. `${VAR}` in any value expands from the environment (an unset or empty
 * variable is an error naming it; `$$` is a literal `$`). Out-of-range values are
 * rejected with the bound, never clamped; bad enum values and unknown keys come
 * with the nearest valid choice/key (edit distance).
 *
 * Paths: an input path (must exist) given in the recipe file is relative to the
 * recipe file's directory; given in an override, relative to the working
 * directory. It is stored as an absolute canonical path (realpath), so a dumped
 * config reloads the same from anywhere. An output path (CPT_ROPT_OUTPUT) need not
 * exist and is kept as written (relative to the working directory).
 *
 * Deprecated keys: a schema may list aliases (old key -> new key). A recipe or override
 * that sets the old key sets the new one and records a deprecation warning (library code
 * does not print; the caller shows cpt_recipe_warning); setting both in one source is an
 * error, and a later source (an override) replaces what an earlier one set under either
 * name. Dumps and saved configs use the new key only.
 *
 * Errors: the first problem found is reported (negative status + cpt_err), with
 * "<file>:<line>:<col>: <key>: <problem>. HINT: <fix>". Overrides are located as
 * `override "a.b=c"` with the column inside the override text.
 * ---------------------------------------------------------------------------------
 */
#ifndef CPT_RECIPE_H
#define CPT_RECIPE_H

#include <stdio.h>

#include "cpt/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cpt_recipe_type {
    CPT_RT_INT,
    CPT_RT_FLOAT,
    CPT_RT_BOOL,
    CPT_RT_STRING,
    CPT_RT_PATH,
    CPT_RT_ENUM,
} cpt_recipe_type;

/* Option flags. */
enum {
    CPT_ROPT_REQUIRED = 1u << 0, /* must be set (per instance for patterns with * or #) */
    CPT_ROPT_OUTPUT = 1u << 1,   /* path: an output, need not exist, kept as written */
    CPT_ROPT_DIR = 1u << 2,      /* path: must be a directory */
    CPT_ROPT_MIN_EXCL = 1u << 3, /* int/float: value must be > min (default >= min) */
    CPT_ROPT_MAX_EXCL = 1u << 4, /* int/float: value must be < max (default <= max) */
    CPT_ROPT_SUM1 = 1u << 5,     /* float map (pattern ends in .*): the values under one
                                    map instance sum to 1 within 1e-6 */
    CPT_ROPT_NO_BOUNDS = 1u << 6 /* int/float: min/max are not checked */
};

/* One schema entry. `def` is the default as YAML text (NULL: no default, the key
 * is unset unless given). A default may reference other keys as `{key}` (their
 * effective value, keys earlier in the table), `{recipe.name}` (the recipe file's
 * base name without extension) or `{#}` (the list index of this instance). */
typedef struct cpt_recipe_opt {
    const char *pattern;  /* "optim.lr", "data.sources.*.path", "stages.#.steps" */
    cpt_recipe_type type;
    const char *def;      /* default value text, or NULL */
    double min, max;      /* bounds for int/float (see flags) */
    const char *choices;  /* enum: "constant|linear|cosine" */
    const char *help;     /* one line; what `--help` and the dump print */
    unsigned flags;       /* CPT_ROPT_* */
} cpt_recipe_opt;

typedef struct cpt_recipe cpt_recipe;

/* A deprecated key still accepted: `old_key` is read as `new_key` (both concrete keys,
 * no patterns), with a warning that says `why`. */
typedef struct cpt_recipe_alias {
    const char *old_key; /* "eval.batches" */
    const char *new_key; /* "eval.sequences" */
    const char *why;     /* "it counts sequences, not batches" */
} cpt_recipe_alias;

/* A schema: the option table plus a cross-field check that runs after every
 * key has been typed, range-checked and defaulted. The check may add derived
 * values with cpt_recipe_set_derived (shown in the dump as "derived"). */
typedef struct cpt_recipe_schema {
    const char *name;            /* "cpt train" */
    const cpt_recipe_opt *opts;
    size_t n_opts;
    int (*check)(cpt_recipe *r, cpt_err *err);
    const cpt_recipe_alias *aliases; /* deprecated keys (may be NULL) */
    size_t n_aliases;
} cpt_recipe_schema;

/* The `cpt train` schema (src/recipe/train_schema.c). */
const cpt_recipe_schema *cpt_recipe_train_schema(void);

/* Load `path` (NULL: no file, overrides only; relative input paths then resolve
 * against the working directory), apply `n_over` overrides, validate everything
 * against `schema`. On success *out is a recipe to free with cpt_recipe_free. */
int cpt_recipe_load(const cpt_recipe_schema *schema, const char *path, const char *const *overrides,
                    size_t n_over, cpt_recipe **out, cpt_err *err);
/* The same from YAML text in memory; `name` is used in messages and as
 * {recipe.name}; `base_dir` (NULL: the working directory) anchors relative paths. */
int cpt_recipe_load_text(const cpt_recipe_schema *schema, const char *text, size_t len,
                         const char *name, const char *base_dir, const char *const *overrides,
                         size_t n_over, cpt_recipe **out, cpt_err *err);
void cpt_recipe_free(cpt_recipe *r);

/* ---- typed getters: `key` is a concrete key ("stages.0.lr") ---- */

/* 1 if the key has a value (given, defaulted or derived), 0 if unset. */
int cpt_recipe_has(const cpt_recipe *r, const char *key);
/* The getters assert (programming error) that the key is set and has a matching
 * type: check cpt_recipe_has first for keys without a default. cpt_recipe_float
 * also reads int keys. cpt_recipe_str reads string, path (absolute for inputs)
 * and enum keys; the pointer lives as long as the recipe. */
long long cpt_recipe_int(const cpt_recipe *r, const char *key);
double cpt_recipe_float(const cpt_recipe *r, const char *key);
int cpt_recipe_bool(const cpt_recipe *r, const char *key);
const char *cpt_recipe_str(const cpt_recipe *r, const char *key);

/* Where a value came from. */
typedef enum cpt_recipe_origin {
    CPT_RORIG_UNSET = 0,
    CPT_RORIG_FILE,
    CPT_RORIG_OVERRIDE,
    CPT_RORIG_DEFAULT,
    CPT_RORIG_DERIVED,
} cpt_recipe_origin;
cpt_recipe_origin cpt_recipe_origin_of(const cpt_recipe *r, const char *key);

/* Names directly under `prefix` ("data.sources" -> the source names, in the order
 * they first appear; "stages" -> "0", "1", ...). The pointer lives as long as r. */
size_t cpt_recipe_n_names(const cpt_recipe *r, const char *prefix);
const char *cpt_recipe_name(const cpt_recipe *r, const char *prefix, size_t i);
/* Number of items of the list at `prefix` ("stages"). */
size_t cpt_recipe_list_len(const cpt_recipe *r, const char *prefix);

/* The recipe's name (file base name without extension, or the `name` given to
 * cpt_recipe_load_text). */
const char *cpt_recipe_name_of(const cpt_recipe *r);

/* Warnings recorded while loading (deprecated keys), each "<file>:<line>:<col>: <key>:
 * ... HINT: ..." like an error; the caller prints them. Pointers live as long as r. */
size_t cpt_recipe_n_warnings(const cpt_recipe *r);
const char *cpt_recipe_warning(const cpt_recipe *r, size_t i);

/* For schema check callbacks: set `key` (which must match a schema pattern) to the
 * YAML scalar text `value`, typed and range-checked like a user value, marked
 * as derived. Fails (with the key named) if the value does not fit the schema. */
int cpt_recipe_set_derived(cpt_recipe *r, const char *key, const char *value, cpt_err *err);

/* The effective config as YAML text (malloc'ed, NUL-terminated; caller frees):
 * every key with its effective value, defaults and derived values included (and
 * marked "# default" / "# derived"), each preceded by a help comment; unset
 * optional keys appear as `key: null`. Loading the dump with the same schema gives
 * the same values; its own dump differs only in those markers (values read from a
 * file are explicit), and from then on dump(load(dump)) is a fixed point. */
int cpt_recipe_dump(const cpt_recipe *r, char **out, cpt_err *err);
/* Dump atomically to `path` (the copy saved with a run). */
int cpt_recipe_save(const cpt_recipe *r, const char *path, cpt_err *err);

/* Print the schema (what `cpt train --help` shows): every key pattern with its
 * type, default, bounds or choices and help, generated from the table. */
void cpt_recipe_help(FILE *f, const cpt_recipe_schema *schema);

/* Data mixture helper (the trainer calls it with the sources' token counts).
 * Writes one weight per source, in cpt_recipe_name(r, "data.sources", i) order,
 * for `stage` (-1: the top level; a stage without its own mixture uses the top
 * level). An explicit mixture is returned as is (absent names weigh 0). With
 * data.replay.{source,fraction} = (s, f): weight f for s, and 1-f split over the
 * other sources in proportion to `source_tokens`. Fails if those are all 0. */
int cpt_recipe_mixture(const cpt_recipe *r, int stage, const double *source_tokens, double *weights,
                       cpt_err *err);

/* Levenshtein distance between two strings (exposed for tests). */
size_t cpt_recipe_edit_distance(const char *a, const char *b);

#ifdef __cplusplus
}
#endif
#endif /* CPT_RECIPE_H */

/* safetensors_set.c: a model directory's weights (model.safetensors or index + shards) as one tensor set; not the file parser. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/fileio.h"
#include "cpt/safetensors.h"

#define ST_SINGLE "model.safetensors"
#define ST_INDEX "model.safetensors.index.json"

typedef struct set_entry {
    const cpt_st_file *f;
    const cpt_st_tensor *t;
} set_entry;

struct cpt_st_set {
    cpt_st_file **files; /* [nfiles], shards sorted by file name */
    size_t nfiles;
    set_entry *e;        /* [n] file order, then header order */
    set_entry *by_name;  /* [n] sorted by tensor name */
    size_t n;
};

void cpt_st_set_close(cpt_st_set *s) {
    if (!s) return;
    for (size_t i = 0; i < s->nfiles; i++) cpt_st_close(s->files[i]);
    free(s->files);
    free(s->e);
    free(s->by_name);
    free(s);
}

static int cmp_entry_name(const void *a, const void *b) {
    return strcmp(((const set_entry *)a)->t->name, ((const set_entry *)b)->t->name);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Fill the tensor tables from s->files; reject a name that appears in two files. */
static int build_tables(cpt_st_set *s, const char *where, cpt_err *err) {
    size_t n = 0;
    for (size_t i = 0; i < s->nfiles; i++) n += cpt_st_count(s->files[i]);
    s->e = calloc(n ? n : 1, sizeof *s->e);
    s->by_name = calloc(n ? n : 1, sizeof *s->by_name);
    if (!s->e || !s->by_name) return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", where);
    for (size_t i = 0; i < s->nfiles; i++)
        for (size_t j = 0; j < cpt_st_count(s->files[i]); j++)
            s->e[s->n++] = (set_entry){s->files[i], cpt_st_get(s->files[i], j)};
    memcpy(s->by_name, s->e, n * sizeof *s->e);
    if (n > 1) qsort(s->by_name, n, sizeof *s->by_name, cmp_entry_name);
    for (size_t i = 1; i < n; i++)
        if (strcmp(s->by_name[i - 1].t->name, s->by_name[i].t->name) == 0)
            return cpt_err_set(err, CPT_EFORMAT,
                               "%s: tensor '%s' appears in both %s and %s. HINT: every tensor "
                               "must live in exactly one shard; re-save the model",
                               where, s->by_name[i].t->name, cpt_st_path(s->by_name[i - 1].f),
                               cpt_st_path(s->by_name[i].f));
    return CPT_OK;
}

/* A shard name from an index must be a plain file name inside the model directory. */
static int plain_name(const char *s) {
    return s[0] && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

static int open_index(cpt_st_set *s, const char *dir, const char *ipath, cpt_err *err) {
    char *text = NULL;
    size_t size = 0;
    const char **shards = NULL;
    json_t *root = NULL;
    int rc = cpt_read_file(ipath, &text, &size, err);
    if (rc) return rc;
    json_error_t je;
    root = json_loadb(text, size, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        rc = cpt_err_set(err, CPT_EFORMAT,
                         "%s: line %d column %d: invalid JSON: %s. HINT: the index must be UTF-8 "
                         "JSON with unique keys",
                         ipath, je.line, je.column, je.text);
        goto out;
    }
    json_t *wm = json_is_object(root) ? json_object_get(root, "weight_map") : NULL;
    if (!json_is_object(wm)) {
        rc = cpt_err_set(err, CPT_EFORMAT,
                         "%s: field weight_map is missing or not an object. HINT: the index is "
                         "{\"metadata\": {...}, \"weight_map\": {\"tensor\": \"shard file\"}}",
                         ipath);
        goto out;
    }
    json_t *md = json_object_get(root, "metadata");
    if (md && !json_is_object(md)) {
        rc = cpt_err_set(err, CPT_EFORMAT, "%s: field metadata is not an object. HINT: the index is "
                         "{\"metadata\": {...}, \"weight_map\": {...}}", ipath);
        goto out;
    }
    size_t nmap = json_object_size(wm), nsh = 0;
    shards = calloc(nmap ? nmap : 1, sizeof *shards);
    if (!shards) {
        rc = cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", ipath);
        goto out;
    }
    const char *name;
    json_t *v;
    json_object_foreach(wm, name, v) {
        if (!json_is_string(v) || !plain_name(json_string_value(v))) {
            rc = cpt_err_set(err, CPT_EFORMAT,
                             "%s: weight_map['%s'] is not a shard file name. HINT: values are "
                             "file names in the same directory, e.g. "
                             "\"model-00001-of-00002.safetensors\"",
                             ipath, name);
            goto out;
        }
        shards[nsh++] = json_string_value(v);
    }
    qsort(shards, nsh, sizeof *shards, cmp_str);
    size_t nd = 0;
    for (size_t i = 0; i < nsh; i++)
        if (nd == 0 || strcmp(shards[nd - 1], shards[i])) shards[nd++] = shards[i];
    s->files = calloc(nd ? nd : 1, sizeof *s->files);
    if (!s->files) {
        rc = cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", ipath);
        goto out;
    }
    for (size_t i = 0; i < nd; i++) {
        char *p = cpt_path_join(dir, shards[i]);
        if (!p) {
            rc = cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", ipath);
            goto out;
        }
        if (!cpt_is_file(p)) {
            const char *who = "?";
            json_object_foreach(wm, name, v) if (strcmp(json_string_value(v), shards[i]) == 0) {
                who = name;
                break;
            }
            rc = cpt_err_set(err, CPT_ENOTFOUND,
                             "%s: weight_map['%s'] names shard '%s', but %s does not exist. HINT: "
                             "the download is incomplete; fetch every shard the index lists",
                             ipath, who, shards[i], p);
            free(p);
            goto out;
        }
        rc = cpt_st_open(&s->files[s->nfiles], p, err);
        free(p);
        if (rc) goto out;
        s->nfiles++;
    }
    /* Every mapped tensor is in its shard ... */
    json_object_foreach(wm, name, v) {
        const char *sh = json_string_value(v);
        const cpt_st_file *f = NULL;
        for (size_t i = 0; i < s->nfiles && !f; i++)
            if (strcmp(shards[i], sh) == 0) f = s->files[i];
        if (!cpt_st_find(f, name)) {
            rc = cpt_err_set(err, CPT_EFORMAT,
                             "%s: weight_map['%s'] names shard '%s', but %s has no tensor '%s'. "
                             "HINT: the index and the shards are out of sync; re-download or "
                             "re-save the model",
                             ipath, name, sh, cpt_st_path(f), name);
            goto out;
        }
    }
    if ((rc = build_tables(s, ipath, err))) goto out;
    /* ... and every shard tensor is mapped (it cannot be mapped elsewhere: names are unique). */
    for (size_t i = 0; i < s->n; i++)
        if (!json_object_get(wm, s->e[i].t->name)) {
            rc = cpt_err_set(err, CPT_EFORMAT,
                             "%s: tensor '%s' in %s is not listed in weight_map. HINT: the index "
                             "and the shards are out of sync; re-download or re-save the model",
                             ipath, s->e[i].t->name, cpt_st_path(s->e[i].f));
            goto out;
        }
out:
    json_decref(root);
    free(shards);
    free(text);
    return rc;
}

/* Precedence as in transformers: model.safetensors wins over the index when both exist
 * (cpt_st_write_dir never leaves both behind). */
int cpt_st_set_open(cpt_st_set **out, const char *dir, cpt_err *err) {
    CPT_ASSERT(out && dir);
    *out = NULL;
    cpt_st_set *s = calloc(1, sizeof *s);
    char *single = cpt_path_join(dir, ST_SINGLE), *index = cpt_path_join(dir, ST_INDEX);
    int rc = CPT_OK;
    if (!s || !single || !index) {
        rc = cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", dir);
    } else if (cpt_is_file(single)) {
        s->files = calloc(1, sizeof *s->files);
        if (!s->files)
            rc = cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", dir);
        else if (!(rc = cpt_st_open(&s->files[0], single, err))) {
            s->nfiles = 1;
            rc = build_tables(s, single, err);
        }
    } else if (cpt_is_file(index)) {
        rc = open_index(s, dir, index, err);
    } else {
        rc = cpt_err_set(err, CPT_ENOTFOUND,
                         "%s: neither %s nor %s exists. HINT: point at a Hugging Face model "
                         "directory with safetensors weights (convert .bin checkpoints first)",
                         dir, ST_SINGLE, ST_INDEX);
    }
    free(single);
    free(index);
    if (rc) {
        cpt_st_set_close(s);
        return rc;
    }
    *out = s;
    return CPT_OK;
}

size_t cpt_st_set_count(const cpt_st_set *s) { return s->n; }

const cpt_st_tensor *cpt_st_set_get(const cpt_st_set *s, size_t i, const cpt_st_file **file) {
    CPT_ASSERT(i < s->n);
    if (file) *file = s->e[i].f;
    return s->e[i].t;
}

const cpt_st_tensor *cpt_st_set_find(const cpt_st_set *s, const char *name,
                                     const cpt_st_file **file) {
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, s->by_name[mid].t->name);
        if (c == 0) {
            if (file) *file = s->by_name[mid].f;
            return s->by_name[mid].t;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    if (file) *file = NULL;
    return NULL;
}

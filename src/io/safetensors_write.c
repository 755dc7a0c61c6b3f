/* safetensors_write.c: atomic safetensors writer and save_pretrained-style sharding; not the reader. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpt/fileio.h"
#include "cpt/safetensors.h"

#define ST_SINGLE "model.safetensors"
#define ST_INDEX "model.safetensors.index.json"

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Byte size of one tensor to write; validates the descriptor. `label` is the target. */
static int wtensor_bytes(const char *label, const cpt_st_wtensor *t, uint64_t *bytes,
                         cpt_err *err) {
    const char *name = t->name ? t->name : "(null)";
    if (!t->name || !t->name[0] || strcmp(t->name, "__metadata__") == 0)
        return cpt_err_set(err, CPT_EINVAL,
                           "%s: tensor '%s': invalid tensor name. HINT: names must be non-empty "
                           "and not \"__metadata__\"",
                           label, name);
    if ((int)t->dtype < 0 || t->dtype >= CPT_DT_COUNT)
        return cpt_err_set(err, CPT_EINVAL, "%s: tensor '%s': dtype %d is not a cpt_dtype", label,
                           name, (int)t->dtype);
    if (t->ndim < 0 || t->ndim > CPT_ST_MAX_DIMS)
        return cpt_err_set(err, CPT_EINVAL,
                           "%s: tensor '%s': ndim %d out of range. HINT: 0..%d dimensions", label,
                           name, t->ndim, CPT_ST_MAX_DIMS);
    uint64_t numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0 || __builtin_mul_overflow(numel, (uint64_t)t->shape[i], &numel))
            return cpt_err_set(err, CPT_EINVAL,
                               "%s: tensor '%s': shape[%d] = %lld is negative or overflows. "
                               "HINT: fix the shape",
                               label, name, i, (long long)t->shape[i]);
    }
    if (__builtin_mul_overflow(numel, (uint64_t)cpt_dtype_size(t->dtype), bytes) ||
        *bytes > (uint64_t)INT64_MAX)
        return cpt_err_set(err, CPT_EINVAL, "%s: tensor '%s': byte size overflows", label, name);
    if (t->src_f32 && t->src_raw)
        return cpt_err_set(err, CPT_EINVAL,
                           "%s: tensor '%s': both src_f32 and src_raw are set. HINT: set one", label,
                           name);
    if (t->src_f32 && t->dtype != CPT_DT_F32 && t->dtype != CPT_DT_BF16 && t->dtype != CPT_DT_F16)
        return cpt_err_set(err, CPT_EINVAL,
                           "%s: tensor '%s': cannot convert fp32 to %s. HINT: fp32 sources write "
                           "as F32, BF16 or F16; pass other dtypes through src_raw",
                           label, name, cpt_dtype_name(t->dtype));
    if (!t->src_f32 && !t->src_raw && *bytes)
        return cpt_err_set(err, CPT_EINVAL, "%s: tensor '%s': no source data. HINT: set src_f32 or src_raw",
                           label, name);
    return CPT_OK;
}

/* Validate all descriptors (and that names are unique); sums sizes into *total. */
static int validate_all(const char *label, const cpt_st_wtensor *t, size_t n, uint64_t *bytes,
                        uint64_t *total, cpt_err *err) {
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = wtensor_bytes(label, &t[i], &bytes[i], err);
        if (rc) return rc;
        if (__builtin_add_overflow(sum, bytes[i], &sum) || sum > (uint64_t)INT64_MAX)
            return cpt_err_set(err, CPT_EINVAL, "%s: total tensor size overflows", label);
    }
    if (n > 1) {
        const char **names = malloc(n * sizeof *names);
        if (!names) return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", label);
        for (size_t i = 0; i < n; i++) names[i] = t[i].name;
        qsort(names, n, sizeof *names, cmp_str);
        for (size_t i = 1; i < n; i++)
            if (strcmp(names[i - 1], names[i]) == 0) {
                int rc = cpt_err_set(err, CPT_EINVAL,
                                     "%s: tensor '%s' is given twice. HINT: tensor names must be "
                                     "unique",
                                     label, names[i]);
                free(names);
                return rc;
            }
        free(names);
    }
    if (total) *total = sum;
    return CPT_OK;
}

/* Build the compact header: __metadata__ first (as the Python library writes it), then
 * the tensors in the given order with contiguous offsets. jansson keeps insertion order. */
static int build_header(const char *path, const cpt_st_wtensor *t, size_t n, const uint64_t *bytes,
                        const char *const *meta, char **out, cpt_err *err) {
    json_t *root = json_object();
    if (!root) return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", path);
    int rc = CPT_OK;
    if (meta && meta[0]) {
        json_t *m = json_object();
        if (!m || json_object_set_new(root, "__metadata__", m)) {
            rc = cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", path);
            goto out;
        }
        for (size_t i = 0; meta[i]; i += 2) {
            if (!meta[i + 1]) {
                rc = cpt_err_set(err, CPT_EINVAL,
                                 "%s: metadata key '%s' has no value. HINT: meta is a "
                                 "NULL-terminated list of key, value pairs",
                                 path, meta[i]);
                goto out;
            }
            json_t *v = json_string(meta[i + 1]);
            if (json_object_get(m, meta[i]) || !v || json_object_set_new(m, meta[i], v)) {
                rc = cpt_err_set(err, CPT_EINVAL,
                                 "%s: metadata key '%s' is repeated or not valid UTF-8. HINT: "
                                 "metadata keys are unique UTF-8 strings",
                                 path, meta[i]);
                goto out;
            }
        }
    }
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_object(), *shape = json_array(), *offs = json_array();
        if (!e || !shape || !offs) {
            json_decref(e);
            json_decref(shape);
            json_decref(offs);
            rc = cpt_err_set(err, CPT_ENOMEM, "%s: out of memory building the header", path);
            goto out;
        }
        /* the *_new calls steal their value even on failure, so only e is left to free */
        int bad = json_object_set_new(e, "dtype", json_string(cpt_dtype_name(t[i].dtype)));
        for (int d = 0; d < t[i].ndim; d++)
            bad |= json_array_append_new(shape, json_integer((json_int_t)t[i].shape[d]));
        bad |= json_array_append_new(offs, json_integer((json_int_t)at));
        bad |= json_array_append_new(offs, json_integer((json_int_t)(at + bytes[i])));
        bad |= json_object_set_new(e, "shape", shape);
        bad |= json_object_set_new(e, "data_offsets", offs);
        if (bad) {
            json_decref(e);
            rc = cpt_err_set(err, CPT_ENOMEM, "%s: out of memory building the header", path);
            goto out;
        }
        if (json_object_set_new(root, t[i].name, e)) {
            rc = cpt_err_set(err, CPT_EINVAL,
                             "%s: tensor '%s': name is not valid UTF-8. HINT: safetensors names "
                             "are UTF-8 strings",
                             path, t[i].name);
            goto out;
        }
        at += bytes[i];
    }
    *out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!*out) rc = cpt_err_set(err, CPT_ENOMEM, "%s: out of memory serialising the header", path);
out:
    json_decref(root);
    return rc;
}

/* Stream one tensor's payload, converting fp32 sources in fixed-size chunks. */
static int write_payload(FILE *f, const char *tmp, const cpt_st_wtensor *t, uint64_t bytes,
                         cpt_err *err) {
    if (bytes == 0) return CPT_OK;
    if (t->src_raw || t->dtype == CPT_DT_F32) {
        const void *p = t->src_raw ? t->src_raw : (const void *)t->src_f32;
        return cpt_fwrite_all(f, p, (size_t)bytes, tmp, err);
    }
    enum { CHUNK = 8192 };
    uint16_t buf[CHUNK];
    size_t n = (size_t)(bytes / 2);
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t m = n - i < CHUNK ? n - i : CHUNK;
        for (size_t j = 0; j < m; j++)
            buf[j] = t->dtype == CPT_DT_BF16 ? cpt_f32_to_bf16(t->src_f32[i + j])
                                             : cpt_f32_to_f16(t->src_f32[i + j]);
        int rc = cpt_fwrite_all(f, buf, m * 2, tmp, err);
        if (rc) return rc;
    }
    return CPT_OK;
}

/* Write an already validated tensor list (bytes[i] = size of t[i]). */
static int write_file(const char *path, const cpt_st_wtensor *t, size_t n, const uint64_t *bytes,
                      const char *const *meta, cpt_err *err) {
    char *hdr = NULL;
    int rc = build_header(path, t, n, bytes, meta, &hdr, err);
    if (rc) return rc;
    /* Pad with spaces (allowed by the format) so the data section starts at a multiple of 8. */
    size_t hlen = strlen(hdr), padded = (hlen + 7) & ~(size_t)7;
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    static const char spaces[8] = "        ";
    cpt_awrite w;
    rc = cpt_awrite_open(&w, path, err);
    if (rc) {
        free(hdr);
        return rc;
    }
    rc = cpt_fwrite_all(w.f, len8, 8, w.tmp, err);
    if (!rc) rc = cpt_fwrite_all(w.f, hdr, hlen, w.tmp, err);
    if (!rc) rc = cpt_fwrite_all(w.f, spaces, padded - hlen, w.tmp, err);
    free(hdr);
    for (size_t i = 0; !rc && i < n; i++) rc = write_payload(w.f, w.tmp, &t[i], bytes[i], err);
    if (rc) {
        cpt_awrite_abort(&w);
        return rc;
    }
    return cpt_awrite_commit(&w, err);
}

int cpt_st_write(const char *path, const cpt_st_wtensor *t, size_t n, const char *const *meta,
                 cpt_err *err) {
    CPT_ASSERT(path && (t || n == 0));
    uint64_t *bytes = calloc(n ? n : 1, sizeof *bytes);
    if (!bytes) return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", path);
    int rc = validate_all(path, t, n, bytes, NULL, err);
    if (!rc) rc = write_file(path, t, n, bytes, meta, err);
    free(bytes);
    return rc;
}

/* Remove dir/name if it exists (a stale file that would shadow what we just wrote). */
static int remove_stale(const char *dir, const char *name, cpt_err *err) {
    char *p = cpt_path_join(dir, name);
    if (!p) return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", dir);
    int rc = CPT_OK;
    if (unlink(p) != 0 && errno != ENOENT)
        rc = cpt_err_set(err, CPT_EIO,
                         "%s: cannot remove the stale file: %s. HINT: delete it by hand, or "
                         "loaders will read it instead of the new weights",
                         p, strerror(errno));
    else
        rc = cpt_fsync_dir(dir, err);
    free(p);
    return rc;
}

/* Shard assignment, identical to huggingface_hub's split_state_dict_into_shards_factory
 * (used by transformers 4.46 save_pretrained): walk tensors in order; a tensor larger
 * than the limit gets a shard of its own, appended immediately; otherwise it joins the
 * current shard unless that would exceed the limit, which closes the current shard. */
static size_t plan_shards(const uint64_t *bytes, size_t n, uint64_t max, size_t *shard_of) {
    size_t nshards = 0, cur = (size_t)-1; /* index of the open shard, none yet */
    uint64_t cur_size = 0;
    for (size_t i = 0; i < n; i++) {
        if (bytes[i] > max) {
            shard_of[i] = nshards++;
            continue;
        }
        if (cur != (size_t)-1 && cur_size + bytes[i] > max) {
            cur = (size_t)-1;
            cur_size = 0;
        }
        if (cur == (size_t)-1) cur = nshards++;
        shard_of[i] = cur;
        cur_size += bytes[i];
    }
    return nshards;
}

static int write_index(const char *dir, const cpt_st_wtensor *t, size_t n, const size_t *shard_of,
                       size_t nshards, uint64_t total, cpt_err *err) {
    char *path = cpt_path_join(dir, ST_INDEX);
    json_t *root = json_object(), *md = json_object(), *wm = json_object();
    int rc = CPT_OK;
    if (!path || !root || !md || !wm) {
        json_decref(md);
        json_decref(wm);
        rc = cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", dir);
        goto out;
    }
    int bad = json_object_set_new(md, "total_size", json_integer((json_int_t)total));
    bad |= json_object_set_new(root, "metadata", md);
    bad |= json_object_set_new(root, "weight_map", wm);
    for (size_t i = 0; !bad && i < n; i++) {
        char fname[64];
        snprintf(fname, sizeof fname, "model-%05zu-of-%05zu.safetensors", shard_of[i] + 1, nshards);
        bad |= json_object_set_new(wm, t[i].name, json_string(fname));
    }
    char *s = bad ? NULL : json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (!s) {
        rc = cpt_err_set(err, CPT_ENOMEM, "%s: out of memory building the index", path);
        goto out;
    }
    /* transformers writes json.dumps(index, indent=2, sort_keys=True) + "\n" */
    size_t len = strlen(s);
    char *s2 = realloc(s, len + 2);
    if (!s2) {
        free(s);
        rc = cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    s2[len] = '\n';
    s2[len + 1] = '\0';
    rc = cpt_write_file_atomic(path, s2, len + 1, err);
    free(s2);
out:
    json_decref(root);
    free(path);
    return rc;
}

int cpt_st_write_dir(const char *dir, const cpt_st_wtensor *t, size_t n, const char *const *meta,
                     uint64_t max_shard_bytes, cpt_err *err) {
    CPT_ASSERT(dir && (t || n == 0));
    size_t cap = n ? n : 1;
    uint64_t *bytes = calloc(cap, sizeof *bytes), total = 0;
    size_t *shard_of = calloc(cap, sizeof *shard_of);
    cpt_st_wtensor *sub = calloc(cap, sizeof *sub);
    uint64_t *subbytes = calloc(cap, sizeof *subbytes);
    char *path = NULL;
    int rc = CPT_OK;
    if (!bytes || !shard_of || !sub || !subbytes) {
        rc = cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", dir);
        goto out;
    }
    if ((rc = validate_all(dir, t, n, bytes, &total, err))) goto out;
    if ((rc = cpt_mkdirs(dir, err))) goto out;
    size_t nshards = max_shard_bytes ? plan_shards(bytes, n, max_shard_bytes, shard_of) : 1;
    if (nshards <= 1) {
        if (!(path = cpt_path_join(dir, ST_SINGLE))) {
            rc = cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", dir);
            goto out;
        }
        if ((rc = write_file(path, t, n, bytes, meta, err))) goto out;
        /* A leftover index would make transformers load the old shards' layout. */
        rc = remove_stale(dir, ST_INDEX, err);
        goto out;
    }
    for (size_t s = 0; s < nshards; s++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (shard_of[i] == s) {
                sub[m] = t[i];
                subbytes[m++] = bytes[i];
            }
        char fname[64];
        snprintf(fname, sizeof fname, "model-%05zu-of-%05zu.safetensors", s + 1, nshards);
        free(path);
        if (!(path = cpt_path_join(dir, fname))) {
            rc = cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", dir);
            goto out;
        }
        if ((rc = write_file(path, sub, m, subbytes, meta, err))) goto out;
    }
    if ((rc = write_index(dir, t, n, shard_of, nshards, total, err))) goto out;
    /* transformers prefers model.safetensors over the index when both exist, so a stale
     * single file would silently shadow the shards just written. */
    rc = remove_stale(dir, ST_SINGLE, err);
out:
    free(path);
    free(bytes);
    free(shard_of);
    free(sub);
    free(subbytes);
    return rc;
}

/* safetensors.c: strict safetensors reader (validate header, look up, convert to fp32); not the writer or model-dir sets. */
#include "cpt/safetensors.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/fileio.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; cpt reads it in place and needs a little-endian host"
#endif

/* The reference implementation refuses headers above 100 MB; so do we, which also
 * bounds what jansson is asked to parse. */
#define ST_MAX_HEADER 100000000ull

struct cpt_st_file {
    char *label;         /* path or caller label, used in every message */
    cpt_map map;         /* owned mapping when opened from a path */
    const uint8_t *base; /* start of the data section */
    cpt_st_tensor *t;    /* [n] in header order */
    size_t n;
    size_t *by_name;     /* [n] indices into t sorted by name (for bsearch) */
    char **meta;         /* [2*nmeta] key, value, key, value ... */
    size_t nmeta;
};

/* "label: <message>" into err, returning CPT_EFORMAT (or `code`). */

void cpt_st_close(cpt_st_file *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n; i++) free(f->t[i].name);
    for (size_t i = 0; i < 2 * f->nmeta; i++) free(f->meta[i]);
    free(f->t);
    free(f->by_name);
    free(f->meta);
    cpt_map_close(&f->map);
    free(f->label);
    free(f);
}

/* Render a shape as "[2, 3]" for messages. */
static void shape_str(char *buf, size_t cap, const int64_t *shape, int ndim) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, cap - k, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

/* Read a JSON integer >= 0 into *out; 0 if it is not one. */
static int json_u64(const json_t *v, uint64_t *out) {
    if (!json_is_integer(v)) return 0;
    json_int_t x = json_integer_value(v);
    if (x < 0) return 0;
    *out = (uint64_t)x;
    return 1;
}

/* Validate one tensor entry and fill *t (name not yet set). dsize: data section bytes. */
static int parse_tensor(const char *label, const char *name, json_t *v, uint64_t dsize,
                        cpt_st_tensor *t, cpt_err *err) {
    if (!json_is_object(v))
        return cpt_err_set_at(err, CPT_EFORMAT, label,
                       "tensor '%s': entry is not a JSON object. HINT: each tensor must be "
                       "{\"dtype\": ..., \"shape\": [...], \"data_offsets\": [begin, end]}",
                       name);
    const char *key;
    json_t *fv;
    json_object_foreach(v, key, fv) {
        if (strcmp(key, "dtype") && strcmp(key, "shape") && strcmp(key, "data_offsets"))
            return cpt_err_set_at(err, CPT_EFORMAT, label,
                           "tensor '%s': unknown field '%s'. HINT: a tensor entry has exactly "
                           "dtype, shape and data_offsets",
                           name, key);
    }
    static const char *const need[3] = {"dtype", "shape", "data_offsets"};
    for (int i = 0; i < 3; i++)
        if (!json_object_get(v, need[i]))
            return cpt_err_set_at(err, CPT_EFORMAT, label,
                           "tensor '%s': missing field '%s'. HINT: a tensor entry has exactly "
                           "dtype, shape and data_offsets",
                           name, need[i]);

    json_t *jd = json_object_get(v, "dtype");
    if (!json_is_string(jd))
        return cpt_err_set_at(err, CPT_EFORMAT, label,
                       "tensor '%s': field dtype is not a string. HINT: use a name such as \"F32\"",
                       name);
    int dt = cpt_dtype_from_name(json_string_value(jd));
    if (dt < 0)
        return cpt_err_set_at(err, CPT_EFORMAT, label,
                       "tensor '%s': field dtype: unknown dtype '%s'. HINT: cpt reads F64 F32 F16 "
                       "BF16 I64 I32 I16 I8 U8 BOOL; convert the checkpoint to one of these",
                       name, json_string_value(jd));
    t->dtype = (cpt_dtype)dt;

    json_t *js = json_object_get(v, "shape");
    if (!json_is_array(js))
        return cpt_err_set_at(err, CPT_EFORMAT, label,
                       "tensor '%s': field shape is not an array. HINT: shape is a list of "
                       "non-negative integers, [] for a scalar",
                       name);
    size_t nd = json_array_size(js);
    if (nd > CPT_ST_MAX_DIMS)
        return cpt_err_set_at(err, CPT_EFORMAT, label,
                       "tensor '%s': field shape has %zu dimensions, more than %d. HINT: cpt "
                       "supports at most %d dimensions",
                       name, nd, CPT_ST_MAX_DIMS, CPT_ST_MAX_DIMS);
    t->ndim = (int)nd;
    uint64_t numel = 1;
    for (size_t i = 0; i < nd; i++) {
        uint64_t d;
        if (!json_u64(json_array_get(js, i), &d))
            return cpt_err_set_at(err, CPT_EFORMAT, label,
                           "tensor '%s': field shape[%zu] is not a non-negative integer. HINT: "
                           "shape entries are integers >= 0",
                           name, i);
        t->shape[i] = (int64_t)d;
        if (__builtin_mul_overflow(numel, d, &numel))
            return cpt_err_set_at(err, CPT_EFORMAT, label,
                           "tensor '%s': field shape: element count overflows 64 bits. HINT: the "
                           "header is corrupt",
                           name);
    }
    t->numel = numel;
    uint64_t need_bytes;
    if (__builtin_mul_overflow(numel, (uint64_t)cpt_dtype_size(t->dtype), &need_bytes))
        return cpt_err_set_at(err, CPT_EFORMAT, label,
                       "tensor '%s': field shape: byte size overflows 64 bits. HINT: the header "
                       "is corrupt",
                       name);

    json_t *jo = json_object_get(v, "data_offsets");
    uint64_t b, e;
    if (!json_is_array(jo) || json_array_size(jo) != 2 || !json_u64(json_array_get(jo, 0), &b) ||
        !json_u64(json_array_get(jo, 1), &e))
        return cpt_err_set_at(err, CPT_EFORMAT, label,
                       "tensor '%s': field data_offsets is not [begin, end] with non-negative "
                       "integers. HINT: the header is corrupt",
                       name);
    if (b > e)
        return cpt_err_set_at(err, CPT_EFORMAT, label,
                       "tensor '%s': field data_offsets [%llu, %llu] has begin > end. HINT: the "
                       "header is corrupt",
                       name, (unsigned long long)b, (unsigned long long)e);
    if (e - b != need_bytes) {
        char sh[256];
        shape_str(sh, sizeof sh, t->shape, t->ndim);
        return cpt_err_set_at(err, CPT_EFORMAT, label,
                       "tensor '%s': data_offsets [%llu, %llu] but shape %s of %s needs %llu "
                       "bytes. HINT: the header is corrupt or was written by a buggy tool",
                       name, (unsigned long long)b, (unsigned long long)e, sh,
                       cpt_dtype_name(t->dtype), (unsigned long long)need_bytes);
    }
    if (e > dsize)
        return cpt_err_set_at(err, CPT_EFORMAT, label,
                       "tensor '%s': data_offsets [%llu, %llu] run past the end of the data "
                       "section (%llu bytes). HINT: the file is truncated; copy it again",
                       name, (unsigned long long)b, (unsigned long long)e,
                       (unsigned long long)dsize);
    t->begin = b;
    t->end = e;
    return CPT_OK;
}

static int parse_metadata(const char *label, json_t *v, cpt_st_file *f, cpt_err *err) {
    if (!json_is_object(v))
        return cpt_err_set_at(err, CPT_EFORMAT, label,
                       "field __metadata__ is not an object. HINT: __metadata__ maps strings to "
                       "strings");
    size_t n = json_object_size(v);
    f->meta = calloc(2 * n + 1, sizeof *f->meta);
    if (!f->meta) return cpt_err_set_at(err, CPT_ENOMEM, label, "out of memory reading __metadata__");
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val) {
        if (!json_is_string(val))
            return cpt_err_set_at(err, CPT_EFORMAT, label,
                           "field __metadata__['%s'] is not a string. HINT: safetensors metadata "
                           "values must be strings (quote numbers)",
                           key);
        char *k = strdup(key), *s = strdup(json_string_value(val));
        if (!k || !s) {
            free(k);
            free(s);
            return cpt_err_set_at(err, CPT_ENOMEM, label, "out of memory reading __metadata__");
        }
        f->meta[2 * f->nmeta] = k;
        f->meta[2 * f->nmeta + 1] = s;
        f->nmeta++;
    }
    return CPT_OK;
}

/* C11 qsort has no context argument; rather than a global tensor-table pointer, index
 * arrays are sorted with this small stable merge sort (tmp has n entries). */
typedef int (*idx_cmp)(const cpt_st_tensor *t, size_t a, size_t b);

static int cmp_offsets(const cpt_st_tensor *t, size_t a, size_t b) {
    if (t[a].begin != t[b].begin) return t[a].begin < t[b].begin ? -1 : 1;
    if (t[a].end != t[b].end) return t[a].end < t[b].end ? -1 : 1;
    return 0;
}

static int cmp_names(const cpt_st_tensor *t, size_t a, size_t b) {
    return strcmp(t[a].name, t[b].name);
}

static void idx_sort(size_t *idx, size_t *tmp, size_t n, const cpt_st_tensor *t, idx_cmp cmp) {
    if (n < 2) return;
    size_t h = n / 2;
    idx_sort(idx, tmp, h, t, cmp);
    idx_sort(idx + h, tmp, n - h, t, cmp);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = cmp(t, idx[j], idx[i]) < 0 ? idx[j++] : idx[i++];
    while (i < h) tmp[k++] = idx[i++];
    while (j < n) tmp[k++] = idx[j++];
    memcpy(idx, tmp, n * sizeof *idx);
}

/* Tensors must tile [0, dsize) exactly, as in the reference implementation: no
 * overlap (two views of the same bytes), no gap, no trailing bytes. */
static int check_layout(const char *label, cpt_st_file *f, uint64_t dsize, size_t *idx,
                        size_t *tmp, cpt_err *err) {
    for (size_t i = 0; i < f->n; i++) idx[i] = i;
    idx_sort(idx, tmp, f->n, f->t, cmp_offsets);
    uint64_t at = 0;
    const cpt_st_tensor *prev = NULL;
    for (size_t i = 0; i < f->n; i++) {
        const cpt_st_tensor *t = &f->t[idx[i]];
        if (t->begin < at)
            return cpt_err_set_at(err, CPT_EFORMAT, label,
                           "tensor '%s': data_offsets [%llu, %llu] overlap tensor '%s' [%llu, "
                           "%llu]. HINT: the header is corrupt; tensors must not share bytes",
                           t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                           prev->name, (unsigned long long)prev->begin,
                           (unsigned long long)prev->end);
        if (t->begin > at)
            return cpt_err_set_at(err, CPT_EFORMAT, label,
                           "tensor '%s': data_offsets [%llu, %llu] leave a gap of %llu bytes "
                           "after %s%s%s (offset %llu). HINT: the safetensors format requires the "
                           "tensors to cover the data section contiguously; rewrite the file",
                           t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                           (unsigned long long)(t->begin - at), prev ? "tensor '" : "",
                           prev ? prev->name : "the start of the data section", prev ? "'" : "",
                           (unsigned long long)at);
        at = t->end;
        prev = t;
    }
    if (at != dsize)
        return cpt_err_set_at(err, CPT_EFORMAT, label,
                       "data section is %llu bytes but the tensors cover only %llu (%llu "
                       "trailing bytes). HINT: the safetensors format requires the tensors to "
                       "cover the data section contiguously; the file is corrupt",
                       (unsigned long long)dsize, (unsigned long long)at,
                       (unsigned long long)(dsize - at));
    return CPT_OK;
}

static int parse_header(cpt_st_file *f, const uint8_t *buf, size_t size, cpt_err *err) {
    const char *label = f->label;
    if (size < 8)
        return cpt_err_set_at(err, CPT_EFORMAT, label,
                       "file is %zu bytes, too short for the 8-byte header length. HINT: the file "
                       "is truncated or not a safetensors file",
                       size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];
    if (hlen == 0)
        return cpt_err_set_at(err, CPT_EFORMAT, label,
                       "header length (offset 0) is 0. HINT: not a safetensors file");
    if (hlen > (uint64_t)(size - 8))
        return cpt_err_set_at(err, CPT_EFORMAT, label,
                       "header length (offset 0) is %llu but only %zu bytes follow it. HINT: the "
                       "file is truncated or not a safetensors file",
                       (unsigned long long)hlen, size - 8);
    if (hlen > ST_MAX_HEADER)
        return cpt_err_set_at(err, CPT_EFORMAT, label,
                       "header length (offset 0) is %llu, above the format's limit of %llu. "
                       "HINT: the file is corrupt",
                       (unsigned long long)hlen, ST_MAX_HEADER);
    const char *hdr = (const char *)buf + 8;
    if (hdr[0] != '{')
        return cpt_err_set_at(err, CPT_EFORMAT, label,
                       "header (offset 8) starts with byte 0x%02x, not '{'. HINT: not a "
                       "safetensors file",
                       (unsigned)(uint8_t)hdr[0]);
    uint64_t dsize = (uint64_t)(size - 8) - hlen;
    f->base = buf + 8 + hlen;

    json_error_t je;
    json_t *root = json_loadb(hdr, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return cpt_err_set_at(err, CPT_EFORMAT, label,
                       "header JSON is invalid at header byte %d (file offset %llu): %s. HINT: "
                       "the header must be UTF-8 JSON with unique tensor names, optionally "
                       "padded with spaces",
                       je.position, (unsigned long long)(8 + (uint64_t)je.position), je.text);
    int rc = CPT_OK;
    size_t *idx = NULL, *tmp = NULL;
    if (!json_is_object(root)) {
        rc = cpt_err_set_at(err, CPT_EFORMAT, label,
                     "header JSON is not an object. HINT: not a safetensors file");
        goto out;
    }
    size_t total = json_object_size(root);
    json_t *jm = json_object_get(root, "__metadata__");
    size_t n = total - (jm ? 1 : 0);
    f->t = calloc(n ? n : 1, sizeof *f->t);
    f->by_name = calloc(n ? n : 1, sizeof *f->by_name);
    idx = calloc(n ? n : 1, sizeof *idx);
    tmp = calloc(n ? n : 1, sizeof *tmp);
    if (!f->t || !f->by_name || !idx || !tmp) {
        rc = cpt_err_set_at(err, CPT_ENOMEM, label, "out of memory for %zu tensor entries", n);
        goto out;
    }
    if (jm && (rc = parse_metadata(label, jm, f, err))) goto out;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) continue;
        cpt_st_tensor *t = &f->t[f->n];
        if ((rc = parse_tensor(label, key, v, dsize, t, err))) goto out;
        if (!(t->name = strdup(key))) {
            rc = cpt_err_set_at(err, CPT_ENOMEM, label, "out of memory");
            goto out;
        }
        t->data = f->base + t->begin;
        f->n++;
    }
    if ((rc = check_layout(label, f, dsize, idx, tmp, err))) goto out;
    for (size_t i = 0; i < f->n; i++) f->by_name[i] = i;
    idx_sort(f->by_name, tmp, f->n, f->t, cmp_names);
out:
    free(idx);
    free(tmp);
    json_decref(root);
    return rc;
}

static int st_open_impl(cpt_st_file **out, const uint8_t *buf, size_t size, const char *label,
                        cpt_map *map, cpt_err *err) {
    cpt_st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->label = strdup(label ? label : "<buffer>"))) {
        free(f);
        if (map) cpt_map_close(map);
        return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", label ? label : "<buffer>");
    }
    if (map) f->map = *map; /* owned from here on: cpt_st_close unmaps */
    int rc = parse_header(f, buf, size, err);
    if (rc) {
        cpt_st_close(f);
        return rc;
    }
    *out = f;
    return CPT_OK;
}

int cpt_st_open_buffer(cpt_st_file **out, const uint8_t *buf, size_t size, const char *label,
                       cpt_err *err) {
    CPT_ASSERT(out && (buf || size == 0));
    *out = NULL;
    return st_open_impl(out, buf, size, label, NULL, err);
}

int cpt_st_open(cpt_st_file **out, const char *path, cpt_err *err) {
    CPT_ASSERT(out && path);
    *out = NULL;
    cpt_map m;
    int rc = cpt_map_open(&m, path, err);
    if (rc) return rc;
    return st_open_impl(out, m.data, m.size, path, &m, err);
}

size_t cpt_st_count(const cpt_st_file *f) { return f->n; }

const cpt_st_tensor *cpt_st_get(const cpt_st_file *f, size_t i) {
    CPT_ASSERT(i < f->n);
    return &f->t[i];
}

const cpt_st_tensor *cpt_st_find(const cpt_st_file *f, const char *name) {
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const cpt_st_tensor *t = &f->t[f->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0) return t;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *cpt_st_path(const cpt_st_file *f) { return f->label; }

const char *cpt_st_metadata(const cpt_st_file *f, const char *key) {
    for (size_t i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta[2 * i], key) == 0) return f->meta[2 * i + 1];
    return NULL;
}

/* Offsets are only byte-aligned, so every element is fetched with memcpy. Large tensors
 * (checkpoint loads: hundreds of MB of bf16) are converted by the OpenMP team; the
 * threshold keeps small tensors off the thread pool. */
#define ST_PAR_MIN (1u << 16)
int cpt_st_read_f32(const cpt_st_file *f, const cpt_st_tensor *t, float *dst, cpt_err *err) {
    CPT_ASSERT(f && t);
    CPT_ASSERT((uintptr_t)t >= (uintptr_t)f->t && (uintptr_t)t < (uintptr_t)(f->t + f->n));
    const uint8_t *p = t->data;
    size_t n = (size_t)t->numel;
    switch (t->dtype) {
    case CPT_DT_F32:
        if (n) memcpy(dst, p, n * 4);
        return CPT_OK;
    case CPT_DT_BF16:
#pragma omp parallel for schedule(static) if (n >= ST_PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = cpt_bf16_to_f32(h);
        }
        return CPT_OK;
    case CPT_DT_F16:
#pragma omp parallel for schedule(static) if (n >= ST_PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = cpt_f16_to_f32(h);
        }
        return CPT_OK;
    case CPT_DT_F64:
#pragma omp parallel for schedule(static) if (n >= ST_PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            dst[i] = (float)d; /* round to nearest; out of range -> inf (IEEE, Annex F) */
        }
        return CPT_OK;
    default:
        return cpt_err_set_at(err, CPT_EUNSUPPORTED, f->label,
                       "tensor '%s': dtype %s cannot be read as fp32. HINT: only F32, F16, BF16 "
                       "and F64 tensors convert to fp32; read integer tensors from t->data",
                       t->name, cpt_dtype_name(t->dtype));
    }
}

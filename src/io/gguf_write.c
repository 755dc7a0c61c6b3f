/* gguf_write.c: GGUF v3 writer (metadata, tensor infos, aligned data, atomic file write) and
 * the fp32 -> F16/BF16/Q8_0 quantizers; the layout is specified in cpt/gguf.h, the reader is
 * gguf_read.c. Values are copied in host byte order: cpt builds only for little-endian
 * hosts (as ggml does), which is GGUF's byte order. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/fileio.h"
#include "cpt/gguf.h"
#include "cpt/safetensors.h" /* cpt_f32_to_f16 */

/* ---- quantizers ---- */

/* ggml_compute_fp32_to_bf16 / gguf.quants: round to nearest even; a NaN keeps its sign and
 * high mantissa bits and is forced quiet (bit 6 of the bf16 mantissa). */
static uint16_t f32_to_bf16_ggml(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
}

int cpt_ggml_quant(uint32_t type, const float *src, void *dst, uint64_t n, cpt_err *err) {
    uint8_t *d = dst;
    switch (type) {
    case CPT_GGML_F32: memcpy(d, src, (size_t)n * 4); return CPT_OK;
    case CPT_GGML_F16:
        for (uint64_t i = 0; i < n; i++) {
            uint16_t h = cpt_f32_to_f16(src[i]);
            memcpy(d + 2 * i, &h, 2);
        }
        return CPT_OK;
    case CPT_GGML_BF16:
        for (uint64_t i = 0; i < n; i++) {
            uint16_t h = f32_to_bf16_ggml(src[i]);
            memcpy(d + 2 * i, &h, 2);
        }
        return CPT_OK;
    case CPT_GGML_Q8_0:
        CPT_ASSERT(n % 32 == 0);
        for (uint64_t b = 0; b < n / 32; b++) {
            const float *x = src + 32 * b;
            uint8_t *blk = d + 34 * b;
            float amax = 0.0f;
            for (int j = 0; j < 32; j++) {
                float a = fabsf(x[j]);
                if (a > amax) amax = a;
            }
            /* quantize_row_q8_0_ref: the fp32 d (not its fp16 rounding) scales the values */
            float dd = amax / 127.0f;
            float id = dd != 0.0f ? 1.0f / dd : 0.0f;
            uint16_t h = cpt_f32_to_f16(dd);
            memcpy(blk, &h, 2);
            for (int j = 0; j < 32; j++) {
                float v = x[j] * id;
                blk[2 + j] = (uint8_t)(int8_t)roundf(v);
            }
        }
        return CPT_OK;
    default:
        return cpt_err_set(err, CPT_EUNSUPPORTED, "cpt cannot quantize to ggml type %s. HINT: use f32, f16, bf16 or q8_0",
                           cpt_ggml_type_name(type) ? cpt_ggml_type_name(type) : "(unknown)");
    }
}

/* ---- writer ---- */

typedef struct wtensor {
    char *name;
    uint32_t n_dims, type;
    uint64_t ne[4], nbytes, offset;
    const void *data;
    int own;
} wtensor;

struct cpt_gguf_writer {
    uint32_t alignment;
    uint8_t *kv; /* serialized key/value entries */
    size_t kv_len, kv_cap;
    uint64_t n_kv;
    char **keys;
    wtensor *t;
    size_t n_t, t_cap;
    uint64_t data_len; /* sum of aligned tensor sizes */
};

static size_t vsize(uint32_t t) {
    switch (t) {
    case CPT_GGUF_U8: case CPT_GGUF_I8: case CPT_GGUF_BOOL: return 1;
    case CPT_GGUF_U16: case CPT_GGUF_I16: return 2;
    case CPT_GGUF_U32: case CPT_GGUF_I32: case CPT_GGUF_F32: return 4;
    case CPT_GGUF_U64: case CPT_GGUF_I64: case CPT_GGUF_F64: return 8;
    default: return 0;
    }
}

int cpt_gguf_writer_new(cpt_gguf_writer **out, uint32_t alignment, cpt_err *err) {
    *out = NULL;
    if (!alignment) alignment = 32;
    if (alignment & (alignment - 1))
        return cpt_err_set(err, CPT_EINVAL, "GGUF alignment %u is not a power of two", alignment);
    cpt_gguf_writer *w = calloc(1, sizeof *w);
    if (!w) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    w->alignment = alignment;
    *out = w;
    if (alignment != 32) return cpt_gguf_w_u32(w, "general.alignment", alignment, err);
    return CPT_OK;
}

void cpt_gguf_writer_free(cpt_gguf_writer *w) {
    if (!w) return;
    for (uint64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    for (size_t i = 0; i < w->n_t; i++) {
        free(w->t[i].name);
        if (w->t[i].own) free((void *)w->t[i].data);
    }
    free(w->keys);
    free(w->t);
    free(w->kv);
    free(w);
}

static int put(cpt_gguf_writer *w, const void *p, size_t n, cpt_err *err) {
    if (w->kv_len + n > w->kv_cap) {
        size_t cap = w->kv_cap ? w->kv_cap : 4096;
        while (cap < w->kv_len + n) cap *= 2;
        uint8_t *nb = realloc(w->kv, cap);
        if (!nb) return cpt_err_set(err, CPT_ENOMEM, "out of memory for GGUF metadata");
        w->kv = nb;
        w->kv_cap = cap;
    }
    memcpy(w->kv + w->kv_len, p, n);
    w->kv_len += n;
    return CPT_OK;
}
static int put_u32(cpt_gguf_writer *w, uint32_t v, cpt_err *err) { return put(w, &v, 4, err); }
static int put_u64(cpt_gguf_writer *w, uint64_t v, cpt_err *err) { return put(w, &v, 8, err); }
static int put_str(cpt_gguf_writer *w, const char *s, size_t n, cpt_err *err) {
    int rc = put_u64(w, n, err);
    return rc ? rc : put(w, s, n, err);
}

/* Starts an entry: checks the key is new, records it, writes key and type. */
static int begin_kv(cpt_gguf_writer *w, const char *key, uint32_t type, cpt_err *err) {
    if (!key || !*key) return cpt_err_set(err, CPT_EINVAL, "GGUF metadata key is empty");
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->keys[i], key)) return cpt_err_set(err, CPT_EINVAL, "GGUF metadata key \"%s\" given twice", key);
    char **nk = realloc(w->keys, sizeof *nk * (size_t)(w->n_kv + 1));
    if (!nk) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    w->keys = nk;
    if (!(nk[w->n_kv] = strdup(key))) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    w->n_kv++;
    int rc = put_str(w, key, strlen(key), err);
    return rc ? rc : put_u32(w, type, err);
}

int cpt_gguf_w_scalar(cpt_gguf_writer *w, const char *key, uint32_t type, const void *val, cpt_err *err) {
    size_t n = vsize(type);
    if (!n) return cpt_err_set(err, CPT_EINVAL, "GGUF key \"%s\": type %u is not a fixed-size scalar", key, type);
    if (type == CPT_GGUF_BOOL && *(const uint8_t *)val > 1)
        return cpt_err_set(err, CPT_EINVAL, "GGUF key \"%s\": bool value %u is not 0 or 1", key, *(const uint8_t *)val);
    int rc = begin_kv(w, key, type, err);
    return rc ? rc : put(w, val, n, err);
}
int cpt_gguf_w_u32(cpt_gguf_writer *w, const char *key, uint32_t v, cpt_err *err) {
    return cpt_gguf_w_scalar(w, key, CPT_GGUF_U32, &v, err);
}
int cpt_gguf_w_i32(cpt_gguf_writer *w, const char *key, int32_t v, cpt_err *err) {
    return cpt_gguf_w_scalar(w, key, CPT_GGUF_I32, &v, err);
}
int cpt_gguf_w_f32(cpt_gguf_writer *w, const char *key, float v, cpt_err *err) {
    return cpt_gguf_w_scalar(w, key, CPT_GGUF_F32, &v, err);
}
int cpt_gguf_w_bool(cpt_gguf_writer *w, const char *key, int v, cpt_err *err) {
    uint8_t b = v ? 1 : 0;
    return cpt_gguf_w_scalar(w, key, CPT_GGUF_BOOL, &b, err);
}
int cpt_gguf_w_str(cpt_gguf_writer *w, const char *key, const char *s, size_t len, cpt_err *err) {
    int rc = begin_kv(w, key, CPT_GGUF_STRING, err);
    return rc ? rc : put_str(w, s, len, err);
}

int cpt_gguf_w_arr(cpt_gguf_writer *w, const char *key, uint32_t et, const void *data, uint64_t n, cpt_err *err) {
    size_t es = vsize(et);
    if (!es) return cpt_err_set(err, CPT_EINVAL, "GGUF key \"%s\": array element type %u is not fixed-size", key, et);
    if (et == CPT_GGUF_BOOL)
        for (uint64_t i = 0; i < n; i++)
            if (((const uint8_t *)data)[i] > 1)
                return cpt_err_set(err, CPT_EINVAL, "GGUF key \"%s\": bool element %llu is not 0 or 1", key,
                                   (unsigned long long)i);
    int rc = begin_kv(w, key, CPT_GGUF_ARRAY, err);
    if (!rc) rc = put_u32(w, et, err);
    if (!rc) rc = put_u64(w, n, err);
    if (!rc && n) rc = put(w, data, (size_t)n * es, err);
    return rc;
}

int cpt_gguf_w_arr_str(cpt_gguf_writer *w, const char *key, const char *const *s, const size_t *lens, uint64_t n,
                       cpt_err *err) {
    int rc = begin_kv(w, key, CPT_GGUF_ARRAY, err);
    if (!rc) rc = put_u32(w, CPT_GGUF_STRING, err);
    if (!rc) rc = put_u64(w, n, err);
    for (uint64_t i = 0; !rc && i < n; i++) rc = put_str(w, s[i], lens ? lens[i] : strlen(s[i]), err);
    return rc;
}

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

int cpt_gguf_w_tensor(cpt_gguf_writer *w, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                      const void *data, uint64_t nbytes, int own, cpt_err *err) {
    int rc = CPT_OK;
    uint64_t be, bb, numel = 1;
    if (!name || !*name || strlen(name) > 63) {
        /* ggml's GGML_MAX_NAME is 64 including the NUL */
        rc = cpt_err_set(err, CPT_EINVAL, "GGUF tensor name \"%s\" is empty or longer than 63 bytes", name ? name : "");
        goto fail;
    }
    if (n_dims < 1 || n_dims > 4 || !cpt_ggml_type_block(type, &be, &bb)) {
        rc = cpt_err_set(err, CPT_EINVAL, "GGUF tensor \"%s\": n_dims %u or type %u is invalid", name, n_dims, type);
        goto fail;
    }
    for (uint32_t k = 0; k < n_dims; k++) numel *= ne[k];
    if (!numel || ne[0] % be || numel / be * bb != nbytes) {
        rc = cpt_err_set(err, CPT_EINVAL, "GGUF tensor \"%s\": %llu bytes do not fit its shape and type %s", name,
                         (unsigned long long)nbytes, cpt_ggml_type_name(type));
        goto fail;
    }
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name)) {
            rc = cpt_err_set(err, CPT_EINVAL, "GGUF tensor \"%s\" given twice", name);
            goto fail;
        }
    if (w->n_t == w->t_cap) {
        size_t cap = w->t_cap ? 2 * w->t_cap : 64;
        wtensor *nt = realloc(w->t, cap * sizeof *nt);
        if (!nt) {
            rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
            goto fail;
        }
        w->t = nt;
        w->t_cap = cap;
    }
    wtensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name))) {
        rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
        goto fail;
    }
    t->n_dims = n_dims;
    t->type = type;
    for (uint32_t k = 0; k < 4; k++) t->ne[k] = k < n_dims ? ne[k] : 1;
    t->nbytes = nbytes;
    t->offset = w->data_len;
    t->data = data;
    t->own = own;
    w->data_len += align_up(nbytes, w->alignment);
    w->n_t++;
    return CPT_OK;
fail:
    if (own) free((void *)data);
    return rc;
}

int cpt_gguf_writer_write(cpt_gguf_writer *w, const char *path, cpt_err *err) {
    /* header + tensor infos in one buffer, then the data */
    cpt_gguf_writer h = {0};
    h.alignment = w->alignment;
    int rc = put(&h, "GGUF", 4, err);
    if (!rc) rc = put_u32(&h, 3, err);
    if (!rc) rc = put_u64(&h, w->n_t, err);
    if (!rc) rc = put_u64(&h, w->n_kv, err);
    if (!rc && w->kv_len) rc = put(&h, w->kv, w->kv_len, err);
    for (size_t i = 0; !rc && i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        rc = put_str(&h, t->name, strlen(t->name), err);
        if (!rc) rc = put_u32(&h, t->n_dims, err);
        for (uint32_t k = 0; !rc && k < t->n_dims; k++) rc = put_u64(&h, t->ne[k], err);
        if (!rc) rc = put_u32(&h, t->type, err);
        if (!rc) rc = put_u64(&h, t->offset, err);
    }
    static const uint8_t zeros[256] = {0};
    size_t pad = (size_t)(align_up(h.kv_len, w->alignment) - h.kv_len);
    while (!rc && pad) {
        size_t k = pad < sizeof zeros ? pad : sizeof zeros;
        rc = put(&h, zeros, k, err);
        pad -= k;
    }
    if (rc) {
        free(h.kv);
        return rc;
    }
    cpt_awrite aw = {0};
    rc = cpt_awrite_open(&aw, path, err);
    if (rc) {
        free(h.kv);
        return rc;
    }
    rc = cpt_fwrite_all(aw.f, h.kv, h.kv_len, path, err);
    for (size_t i = 0; !rc && i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        rc = cpt_fwrite_all(aw.f, t->data, (size_t)t->nbytes, path, err);
        for (size_t p = (size_t)(align_up(t->nbytes, w->alignment) - t->nbytes); !rc && p;) {
            size_t k = p < sizeof zeros ? p : sizeof zeros;
            rc = cpt_fwrite_all(aw.f, zeros, k, path, err);
            p -= k;
        }
    }
    free(h.kv);
    if (rc) {
        cpt_awrite_abort(&aw);
        return rc;
    }
    return cpt_awrite_commit(&aw, err);
}

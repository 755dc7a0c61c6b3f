/* gguf_read.c: strict GGUF v2/v3 parser (header, metadata, tensor infos, bounds); the block
 * formats are in gguf_quant.c and the model mapping in src/model/gguf_import.c. */
#include "cpt/gguf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/fileio.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "GGUF is little-endian; cpt reads it in place and needs a little-endian host"
#endif

/* Nested arrays deeper than this are refused: no real file nests more than once, and the
 * bound keeps a hostile file from driving the recursion. */
#define GGUF_MAX_DEPTH 8
#define GGUF_DEFAULT_ALIGNMENT 32u

struct cpt_gguf {
    char *label;
    cpt_map map; /* owned when opened from a path */
    const uint8_t *d;
    size_t size;
    uint32_t version, alignment;
    uint64_t data_off;
    cpt_gguf_kv *kv;
    size_t n_kv;
    cpt_gguf_tensor *t;
    size_t n_t;
};

/* A read cursor; every read checks the remaining bytes first. */
typedef struct cur {
    const uint8_t *d;
    size_t size, pos;
    const char *label;
    cpt_err *err;
} cur;

static int bad(cur *c, uint64_t at, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int bad(cur *c, uint64_t at, const char *field, const char *fmt, ...) {
    char where[512], what[1024];
    snprintf(where, sizeof where, "%s: offset %llu: %s", c->label, (unsigned long long)at, field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return cpt_err_set_at(c->err, CPT_EFORMAT, where, "%s", what);
}

static int need(cur *c, uint64_t n, const char *field) {
    if (n > c->size - c->pos)
        return bad(c, c->pos, field, "needs %llu bytes but only %zu remain (file truncated?)",
                   (unsigned long long)n, c->size - c->pos);
    return CPT_OK;
}

static int rd_u32(cur *c, uint32_t *v, const char *field) {
    int rc = need(c, 4, field);
    if (rc) return rc;
    memcpy(v, c->d + c->pos, 4);
    c->pos += 4;
    return CPT_OK;
}

static int rd_u64(cur *c, uint64_t *v, const char *field) {
    int rc = need(c, 8, field);
    if (rc) return rc;
    memcpy(v, c->d + c->pos, 8);
    c->pos += 8;
    return CPT_OK;
}

/* A string: u64 length, bytes. Returns a pointer into the buffer. */
static int rd_str(cur *c, const char **s, uint64_t *len, const char *field) {
    uint64_t at = c->pos;
    int rc = rd_u64(c, len, field);
    if (rc) return rc;
    if (*len > c->size - c->pos)
        return bad(c, at, field, "string length %llu runs past the end of the file (%zu bytes remain)",
                   (unsigned long long)*len, c->size - c->pos);
    *s = (const char *)c->d + c->pos;
    c->pos += (size_t)*len;
    return CPT_OK;
}

static char *dup_name(cur *c, uint64_t at, const char *s, uint64_t len, const char *field) {
    if (memchr(s, 0, (size_t)len)) {
        bad(c, at, field, "contains a NUL byte");
        return NULL;
    }
    char *r = malloc((size_t)len + 1);
    if (!r) {
        cpt_err_set_at(c->err, CPT_ENOMEM, c->label, "out of memory reading %s", field);
        return NULL;
    }
    memcpy(r, s, (size_t)len);
    r[len] = 0;
    return r;
}

static size_t scalar_size(uint32_t t) {
    switch (t) {
    case CPT_GGUF_U8: case CPT_GGUF_I8: case CPT_GGUF_BOOL: return 1;
    case CPT_GGUF_U16: case CPT_GGUF_I16: return 2;
    case CPT_GGUF_U32: case CPT_GGUF_I32: case CPT_GGUF_F32: return 4;
    case CPT_GGUF_U64: case CPT_GGUF_I64: case CPT_GGUF_F64: return 8;
    default: return 0;
    }
}

const char *cpt_gguf_vtype_name(uint32_t t) {
    static const char *n[CPT_GGUF_VTYPE_COUNT] = {"uint8", "int8", "uint16", "int16", "uint32",
                                                  "int32", "float32", "bool", "string", "array",
                                                  "uint64", "int64", "float64"};
    return t < CPT_GGUF_VTYPE_COUNT ? n[t] : "unknown";
}

/* Decode a fixed-size scalar at p into kv->v. */
static void decode_scalar(uint32_t t, const uint8_t *p, cpt_gguf_kv *kv) {
    uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32; float f32;
    switch (t) {
    case CPT_GGUF_U8: case CPT_GGUF_BOOL: memcpy(&u8, p, 1); kv->v.u = u8; break;
    case CPT_GGUF_I8: memcpy(&i8, p, 1); kv->v.i = i8; break;
    case CPT_GGUF_U16: memcpy(&u16, p, 2); kv->v.u = u16; break;
    case CPT_GGUF_I16: memcpy(&i16, p, 2); kv->v.i = i16; break;
    case CPT_GGUF_U32: memcpy(&u32, p, 4); kv->v.u = u32; break;
    case CPT_GGUF_I32: memcpy(&i32, p, 4); kv->v.i = i32; break;
    case CPT_GGUF_F32: memcpy(&f32, p, 4); kv->v.f = f32; break;
    case CPT_GGUF_U64: memcpy(&kv->v.u, p, 8); break;
    case CPT_GGUF_I64: memcpy(&kv->v.i, p, 8); break;
    case CPT_GGUF_F64: memcpy(&kv->v.f, p, 8); break;
    default: break;
    }
}

/* Skip (validate) one array value whose u32 type has been read: used for nested arrays,
 * which cpt parses for bounds but exposes only as raw bytes. */
static int skip_array(cur *c, int depth, const char *field) {
    uint64_t at = c->pos;
    uint32_t et;
    uint64_t n;
    int rc = rd_u32(c, &et, field);
    if (!rc) rc = rd_u64(c, &n, field);
    if (rc) return rc;
    if (et >= CPT_GGUF_VTYPE_COUNT) return bad(c, at, field, "unknown array element type %u", et);
    if (et == CPT_GGUF_ARRAY) {
        if (depth >= GGUF_MAX_DEPTH)
            return bad(c, at, field, "arrays nested deeper than %d", GGUF_MAX_DEPTH);
        for (uint64_t i = 0; i < n; i++)
            if ((rc = skip_array(c, depth + 1, field))) return rc;
    } else if (et == CPT_GGUF_STRING) {
        for (uint64_t i = 0; i < n; i++) {
            const char *s;
            uint64_t len;
            if ((rc = rd_str(c, &s, &len, field))) return rc;
        }
    } else {
        uint64_t bytes;
        if (__builtin_mul_overflow(n, (uint64_t)scalar_size(et), &bytes) || bytes > c->size - c->pos)
            return bad(c, at, field, "array of %llu %s runs past the end of the file",
                       (unsigned long long)n, cpt_gguf_vtype_name(et));
        c->pos += (size_t)bytes;
    }
    return CPT_OK;
}

static int read_value(cur *c, cpt_gguf_kv *kv, const char *field) {
    uint64_t at = c->pos;
    int rc;
    kv->offset = at;
    if (kv->type >= CPT_GGUF_VTYPE_COUNT) return bad(c, at - 4, field, "unknown value type %u", kv->type);
    if (kv->type == CPT_GGUF_STRING) return rd_str(c, &kv->str, &kv->str_len, field);
    if (kv->type != CPT_GGUF_ARRAY) {
        size_t sz = scalar_size(kv->type);
        if ((rc = need(c, sz, field))) return rc;
        decode_scalar(kv->type, c->d + c->pos, kv);
        if (kv->type == CPT_GGUF_BOOL && kv->v.u > 1)
            return bad(c, at, field, "bool value %llu is neither 0 nor 1", (unsigned long long)kv->v.u);
        c->pos += sz;
        return CPT_OK;
    }
    if ((rc = rd_u32(c, &kv->arr_type, field)) || (rc = rd_u64(c, &kv->arr_n, field))) return rc;
    if (kv->arr_type >= CPT_GGUF_VTYPE_COUNT)
        return bad(c, at, field, "unknown array element type %u", kv->arr_type);
    kv->arr_data = c->d + c->pos;
    if (kv->arr_type == CPT_GGUF_STRING) {
        /* each string takes at least its 8-byte length: bound the count before allocating */
        if (kv->arr_n > (c->size - c->pos) / 8)
            return bad(c, at, field, "array of %llu strings runs past the end of the file",
                       (unsigned long long)kv->arr_n);
        kv->str_off = malloc((kv->arr_n ? kv->arr_n : 1) * sizeof(uint64_t));
        if (!kv->str_off) return cpt_err_set_at(c->err, CPT_ENOMEM, c->label, "out of memory reading %s", field);
        for (uint64_t i = 0; i < kv->arr_n; i++) {
            const char *s;
            uint64_t len;
            kv->str_off[i] = c->pos;
            if ((rc = rd_str(c, &s, &len, field))) return rc;
        }
        return CPT_OK;
    }
    if (kv->arr_type == CPT_GGUF_ARRAY) {
        if (kv->arr_n > (c->size - c->pos) / 12)
            return bad(c, at, field, "array of %llu arrays runs past the end of the file",
                       (unsigned long long)kv->arr_n);
        for (uint64_t i = 0; i < kv->arr_n; i++)
            if ((rc = skip_array(c, 1, field))) return rc;
        return CPT_OK;
    }
    uint64_t bytes;
    if (__builtin_mul_overflow(kv->arr_n, (uint64_t)scalar_size(kv->arr_type), &bytes) ||
        bytes > c->size - c->pos)
        return bad(c, at, field, "array of %llu %s runs past the end of the file",
                   (unsigned long long)kv->arr_n, cpt_gguf_vtype_name(kv->arr_type));
    if (kv->arr_type == CPT_GGUF_BOOL)
        for (uint64_t i = 0; i < kv->arr_n; i++)
            if (kv->arr_data[i] > 1) return bad(c, at, field, "bool element %llu is neither 0 nor 1", (unsigned long long)i);
    c->pos += (size_t)bytes;
    return CPT_OK;
}

void cpt_gguf_close(cpt_gguf *g) {
    if (!g) return;
    for (size_t i = 0; i < g->n_kv; i++) {
        free(g->kv[i].key);
        free(g->kv[i].str_off);
    }
    for (size_t i = 0; i < g->n_t; i++) free(g->t[i].name);
    free(g->kv);
    free(g->t);
    cpt_map_close(&g->map);
    free(g->label);
    free(g);
}

static int parse(cpt_gguf *g, cpt_err *err) {
    cur c = {g->d, g->size, 0, g->label, err};
    cur *cp = &c;
    int rc;
    if (g->size < 4 || memcmp(g->d, "GGUF", 4) != 0)
        return bad(cp, 0, "magic", "not a GGUF file (the first 4 bytes are not \"GGUF\")");
    c.pos = 4;
    if ((rc = rd_u32(cp, &g->version, "version"))) return rc;
    if (g->version != 2 && g->version != 3)
        return bad(cp, 4, "version", "GGUF version %u is not supported (cpt reads 2 and 3)%s", g->version,
                   g->version == 1 ? "; HINT: re-convert the model with a current llama.cpp" : "");
    uint64_t n_t, n_kv;
    if ((rc = rd_u64(cp, &n_t, "tensor_count")) || (rc = rd_u64(cp, &n_kv, "metadata_kv_count"))) return rc;
    /* a key/value takes at least 8 (key length) + 4 (type) + 1 bytes, a tensor info 8+4+8+4+8 */
    if (n_kv > (g->size - c.pos) / 13)
        return bad(cp, 16, "metadata_kv_count", "%llu entries cannot fit in a %zu-byte file",
                   (unsigned long long)n_kv, g->size);
    if (n_t > (g->size - c.pos) / 32)
        return bad(cp, 8, "tensor_count", "%llu tensors cannot fit in a %zu-byte file",
                   (unsigned long long)n_t, g->size);
    g->kv = calloc(n_kv ? n_kv : 1, sizeof *g->kv);
    g->t = calloc(n_t ? n_t : 1, sizeof *g->t);
    if (!g->kv || !g->t) return cpt_err_set_at(err, CPT_ENOMEM, g->label, "out of memory for the metadata table");
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    for (uint64_t i = 0; i < n_kv; i++) {
        char field[96];
        snprintf(field, sizeof field, "metadata entry %llu key", (unsigned long long)i);
        cpt_gguf_kv *kv = &g->kv[i];
        uint64_t at = c.pos;
        const char *s;
        uint64_t len;
        if ((rc = rd_str(cp, &s, &len, field))) return rc;
        if (!(kv->key = dup_name(cp, at, s, len, field))) return err ? err->code : CPT_EFORMAT;
        g->n_kv = i + 1;
        for (uint64_t j = 0; j < i; j++)
            if (!strcmp(g->kv[j].key, kv->key)) return bad(cp, at, field, "duplicate key \"%s\"", kv->key);
        char vfield[160];
        snprintf(vfield, sizeof vfield, "value of \"%.100s\"", kv->key);
        if ((rc = rd_u32(cp, &kv->type, vfield)) || (rc = read_value(cp, kv, vfield))) return rc;
        if (!strcmp(kv->key, "general.alignment")) {
            if (kv->type != CPT_GGUF_U32)
                return bad(cp, kv->offset, vfield, "must be a uint32, not %s", cpt_gguf_vtype_name(kv->type));
            if (kv->v.u == 0 || (kv->v.u & (kv->v.u - 1)))
                return bad(cp, kv->offset, vfield, "alignment %llu is not a power of two", (unsigned long long)kv->v.u);
            g->alignment = (uint32_t)kv->v.u;
        }
    }
    for (uint64_t i = 0; i < n_t; i++) {
        char field[96];
        snprintf(field, sizeof field, "tensor info %llu name", (unsigned long long)i);
        cpt_gguf_tensor *t = &g->t[i];
        uint64_t at = c.pos;
        const char *s;
        uint64_t len;
        if ((rc = rd_str(cp, &s, &len, field))) return rc;
        if (!(t->name = dup_name(cp, at, s, len, field))) return err ? err->code : CPT_EFORMAT;
        g->n_t = i + 1;
        char tf[160];
        snprintf(tf, sizeof tf, "tensor \"%.100s\"", t->name);
        for (uint64_t j = 0; j < i; j++)
            if (!strcmp(g->t[j].name, t->name)) return bad(cp, at, tf, "duplicate tensor name");
        uint64_t dat = c.pos;
        if ((rc = rd_u32(cp, &t->n_dims, tf))) return rc;
        if (t->n_dims < 1 || t->n_dims > 4)
            return bad(cp, dat, tf, "n_dims %u is outside 1..4", t->n_dims);
        t->numel = 1;
        for (uint32_t k = 0; k < 4; k++) t->ne[k] = 1;
        for (uint32_t k = 0; k < t->n_dims; k++) {
            uint64_t nat = c.pos;
            if ((rc = rd_u64(cp, &t->ne[k], tf))) return rc;
            if (t->ne[k] == 0) return bad(cp, nat, tf, "dimension %u is 0", k);
            if (__builtin_mul_overflow(t->numel, t->ne[k], &t->numel) || t->numel > (1ull << 62))
                return bad(cp, nat, tf, "element count overflows");
        }
        uint64_t tat = c.pos;
        if ((rc = rd_u32(cp, &t->type, tf))) return rc;
        uint64_t be, bb;
        if (!cpt_ggml_type_block(t->type, &be, &bb))
            return bad(cp, tat, tf, "unknown ggml tensor type id %u", t->type);
        if (t->ne[0] % be)
            return bad(cp, tat, tf, "ne[0] = %llu is not a multiple of the %s block size %llu",
                       (unsigned long long)t->ne[0], cpt_ggml_type_name(t->type), (unsigned long long)be);
        if (__builtin_mul_overflow(t->numel / be, bb, &t->nbytes))
            return bad(cp, tat, tf, "byte size overflows");
        uint64_t oat = c.pos;
        if ((rc = rd_u64(cp, &t->offset, tf))) return rc;
        if (t->offset % g->alignment)
            return bad(cp, oat, tf, "data offset %llu is not a multiple of the alignment %u",
                       (unsigned long long)t->offset, g->alignment);
    }
    /* the data section starts at the next multiple of the alignment */
    uint64_t pad = (g->alignment - c.pos % g->alignment) % g->alignment;
    g->data_off = c.pos + pad;
    if (n_t && g->data_off > g->size)
        return bad(cp, c.pos, "data section", "padding to the alignment %u runs past the end of the file", g->alignment);
    for (size_t i = 0; i < g->n_t; i++) {
        cpt_gguf_tensor *t = &g->t[i];
        uint64_t begin, end;
        char tf[160];
        snprintf(tf, sizeof tf, "tensor \"%.100s\"", t->name);
        if (__builtin_add_overflow(g->data_off, t->offset, &begin) ||
            __builtin_add_overflow(begin, t->nbytes, &end) || end > g->size)
            return bad(cp, g->data_off, tf,
                       "tensor data [%llu, +%llu bytes) extends past the end of the file (%zu bytes)",
                       (unsigned long long)t->offset, (unsigned long long)t->nbytes, g->size);
        t->data = g->d + begin;
    }
    /* tensors must not overlap (ggml lays them out in order; a file that overlaps is corrupt) */
    for (size_t i = 0; i < g->n_t; i++)
        for (size_t j = i + 1; j < g->n_t && g->n_t <= 4096; j++) {
            const cpt_gguf_tensor *a = &g->t[i], *b = &g->t[j];
            if (a->offset < b->offset + b->nbytes && b->offset < a->offset + a->nbytes && a->nbytes && b->nbytes) {
                char tf[160];
                snprintf(tf, sizeof tf, "tensor \"%.100s\"", b->name);
                return bad(cp, g->data_off + b->offset, tf, "tensor data overlaps tensor \"%s\"", a->name);
            }
        }
    return CPT_OK;
}

int cpt_gguf_open_buffer(cpt_gguf **out, const uint8_t *data, size_t size, const char *label,
                         cpt_err *err) {
    *out = NULL;
    cpt_gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->label = strdup(label ? label : "<buffer>"))) {
        free(g);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory opening %s", label ? label : "<buffer>");
    }
    g->d = data;
    g->size = size;
    int rc = parse(g, err);
    if (rc) {
        cpt_gguf_close(g);
        return rc;
    }
    *out = g;
    return CPT_OK;
}

int cpt_gguf_open(cpt_gguf **out, const char *path, cpt_err *err) {
    *out = NULL;
    cpt_map m = {0};
    int rc = cpt_map_open(&m, path, err);
    if (rc) return rc;
    static const uint8_t empty[1] = {0};
    cpt_gguf *g = NULL;
    rc = cpt_gguf_open_buffer(&g, m.data ? m.data : empty, m.size, path, err);
    if (rc) {
        cpt_map_close(&m);
        return rc;
    }
    g->map = m;
    *out = g;
    return CPT_OK;
}

uint32_t cpt_gguf_version(const cpt_gguf *g) { return g->version; }
uint32_t cpt_gguf_alignment(const cpt_gguf *g) { return g->alignment; }
uint64_t cpt_gguf_data_offset(const cpt_gguf *g) { return g->data_off; }
const char *cpt_gguf_label(const cpt_gguf *g) { return g->label; }
size_t cpt_gguf_n_kv(const cpt_gguf *g) { return g->n_kv; }
size_t cpt_gguf_n_tensors(const cpt_gguf *g) { return g->n_t; }

const cpt_gguf_kv *cpt_gguf_kv_at(const cpt_gguf *g, size_t i) {
    CPT_ASSERT(i < g->n_kv);
    return &g->kv[i];
}

const cpt_gguf_tensor *cpt_gguf_tensor_at(const cpt_gguf *g, size_t i) {
    CPT_ASSERT(i < g->n_t);
    return &g->t[i];
}

const cpt_gguf_kv *cpt_gguf_find(const cpt_gguf *g, const char *key) {
    for (size_t i = 0; i < g->n_kv; i++)
        if (!strcmp(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

const cpt_gguf_tensor *cpt_gguf_find_tensor(const cpt_gguf *g, const char *name) {
    for (size_t i = 0; i < g->n_t; i++)
        if (!strcmp(g->t[i].name, name)) return &g->t[i];
    return NULL;
}

static int is_int_type(uint32_t t) {
    return t == CPT_GGUF_U8 || t == CPT_GGUF_I8 || t == CPT_GGUF_U16 || t == CPT_GGUF_I16 ||
           t == CPT_GGUF_U32 || t == CPT_GGUF_I32 || t == CPT_GGUF_U64 || t == CPT_GGUF_I64;
}
static int is_signed(uint32_t t) {
    return t == CPT_GGUF_I8 || t == CPT_GGUF_I16 || t == CPT_GGUF_I32 || t == CPT_GGUF_I64;
}

static const cpt_gguf_kv *lookup(const cpt_gguf *g, const char *key, cpt_err *err) {
    const cpt_gguf_kv *kv = cpt_gguf_find(g, key);
    if (!kv) cpt_err_set_at(err, CPT_ENOTFOUND, g->label, "metadata key \"%s\" is missing", key);
    return kv;
}

static int type_err(const cpt_gguf *g, const cpt_gguf_kv *kv, const char *want, cpt_err *err) {
    return cpt_err_set_at(err, CPT_EFORMAT, g->label, "offset %llu: metadata \"%s\" is a %s, expected %s",
                          (unsigned long long)kv->offset, kv->key, cpt_gguf_vtype_name(kv->type), want);
}

int cpt_gguf_get_int(const cpt_gguf *g, const char *key, int64_t *out, cpt_err *err) {
    const cpt_gguf_kv *kv = lookup(g, key, err);
    if (!kv) return CPT_ENOTFOUND;
    if (!is_int_type(kv->type)) return type_err(g, kv, "an integer", err);
    if (!is_signed(kv->type) && kv->v.u > (uint64_t)INT64_MAX)
        return cpt_err_set_at(err, CPT_EFORMAT, g->label, "metadata \"%s\" = %llu does not fit int64", key,
                              (unsigned long long)kv->v.u);
    *out = is_signed(kv->type) ? kv->v.i : (int64_t)kv->v.u;
    return CPT_OK;
}

int cpt_gguf_get_float(const cpt_gguf *g, const char *key, double *out, cpt_err *err) {
    const cpt_gguf_kv *kv = lookup(g, key, err);
    if (!kv) return CPT_ENOTFOUND;
    if (kv->type == CPT_GGUF_F32 || kv->type == CPT_GGUF_F64) *out = kv->v.f;
    else if (is_int_type(kv->type)) *out = is_signed(kv->type) ? (double)kv->v.i : (double)kv->v.u;
    else return type_err(g, kv, "a number", err);
    return CPT_OK;
}

int cpt_gguf_get_bool(const cpt_gguf *g, const char *key, int *out, cpt_err *err) {
    const cpt_gguf_kv *kv = lookup(g, key, err);
    if (!kv) return CPT_ENOTFOUND;
    if (kv->type != CPT_GGUF_BOOL) return type_err(g, kv, "a bool", err);
    *out = (int)kv->v.u;
    return CPT_OK;
}

int cpt_gguf_get_str(const cpt_gguf *g, const char *key, const char **s, size_t *len, cpt_err *err) {
    const cpt_gguf_kv *kv = lookup(g, key, err);
    if (!kv) return CPT_ENOTFOUND;
    if (kv->type != CPT_GGUF_STRING) return type_err(g, kv, "a string", err);
    *s = kv->str;
    *len = (size_t)kv->str_len;
    return CPT_OK;
}

int cpt_gguf_get_strdup(const cpt_gguf *g, const char *key, char **out, cpt_err *err) {
    const char *s = NULL;
    size_t n = 0;
    int rc = cpt_gguf_get_str(g, key, &s, &n, err);
    if (rc) return rc;
    if (memchr(s, 0, n)) return cpt_err_set_at(err, CPT_EFORMAT, g->label, "metadata \"%s\" contains a NUL byte", key);
    char *r = malloc(n + 1);
    if (!r) return cpt_err_set(err, CPT_ENOMEM, "out of memory copying \"%s\"", key);
    memcpy(r, s, n);
    r[n] = 0;
    *out = r;
    return CPT_OK;
}

int cpt_gguf_get_arr(const cpt_gguf *g, const char *key, int elem_type, const cpt_gguf_kv **out,
                     cpt_err *err) {
    const cpt_gguf_kv *kv = lookup(g, key, err);
    if (!kv) return CPT_ENOTFOUND;
    if (kv->type != CPT_GGUF_ARRAY) return type_err(g, kv, "an array", err);
    if (elem_type >= 0 && kv->arr_type != (uint32_t)elem_type) {
        /* integer arrays are accepted for any integer element type the caller asks for */
        if (!(is_int_type((uint32_t)elem_type) && (is_int_type(kv->arr_type) || kv->arr_type == CPT_GGUF_BOOL)) &&
            !(elem_type == CPT_GGUF_F32 && kv->arr_type == CPT_GGUF_F64))
            return cpt_err_set_at(err, CPT_EFORMAT, g->label, "metadata \"%s\" is an array of %s, expected %s", key,
                                  cpt_gguf_vtype_name(kv->arr_type), cpt_gguf_vtype_name((uint32_t)elem_type));
    }
    *out = kv;
    return CPT_OK;
}

void cpt_gguf_arr_str(const cpt_gguf *g, const cpt_gguf_kv *kv, uint64_t i, const char **s, size_t *len) {
    CPT_ASSERT(kv->type == CPT_GGUF_ARRAY && kv->arr_type == CPT_GGUF_STRING && i < kv->arr_n);
    uint64_t n;
    memcpy(&n, g->d + kv->str_off[i], 8);
    *s = (const char *)g->d + kv->str_off[i] + 8;
    *len = (size_t)n;
}

int64_t cpt_gguf_arr_int(const cpt_gguf_kv *kv, uint64_t i) {
    CPT_ASSERT(kv->type == CPT_GGUF_ARRAY && i < kv->arr_n);
    CPT_ASSERT(is_int_type(kv->arr_type) || kv->arr_type == CPT_GGUF_BOOL);
    cpt_gguf_kv tmp = {0};
    decode_scalar(kv->arr_type, kv->arr_data + i * scalar_size(kv->arr_type), &tmp);
    return is_signed(kv->arr_type) ? tmp.v.i : (int64_t)tmp.v.u;
}

double cpt_gguf_arr_float(const cpt_gguf_kv *kv, uint64_t i) {
    CPT_ASSERT(kv->type == CPT_GGUF_ARRAY && i < kv->arr_n);
    if (kv->arr_type == CPT_GGUF_F32 || kv->arr_type == CPT_GGUF_F64) {
        cpt_gguf_kv tmp = {0};
        decode_scalar(kv->arr_type, kv->arr_data + i * scalar_size(kv->arr_type), &tmp);
        return tmp.v.f;
    }
    return (double)cpt_gguf_arr_int(kv, i);
}

int cpt_gguf_tensor_f32(const cpt_gguf *g, const cpt_gguf_tensor *t, float *dst, cpt_err *err) {
    if (!cpt_ggml_type_supported(t->type))
        return cpt_err_set_at(err, CPT_EUNSUPPORTED, g->label,
                              "tensor \"%s\" has type %s, which cpt cannot dequantize; HINT: supported are F32, "
                              "F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K (re-quantize with llama-quantize)",
                              t->name, cpt_ggml_type_name(t->type));
    return cpt_ggml_dequant(t->type, t->data, dst, t->numel, err);
}

/* cpt/gguf.h: strict reader for GGUF files (llama.cpp's model format, versions 2 and 3)
 * and fp32 dequantization of its tensor types; the GGUF v3 writer and the F16/BF16/Q8_0
 * quantizers are at the end (gguf_write.c).
 *
 * Layout (methods.md 14.4; ggml docs/gguf.md), all little-endian:
 *   "GGUF" | u32 version (2 or 3) | u64 n_tensors | u64 n_kv
 *   n_kv x { string key | u32 value type | value }
 *   n_tensors x { string name | u32 n_dims (1..4) | u64 ne[n_dims] | u32 ggml type | u64 offset }
 *   zero padding to general.alignment (default 32) | tensor data
 * A string is u64 length + bytes (no NUL). An array value is u32 element type, u64
 * count, elements (arrays of arrays allowed). ne[0] is the fastest-varying dimension, so
 * PyTorch's shape is ne reversed. Tensor offsets are relative to the data section and
 * multiples of the alignment.
 *
 * Every length and offset is checked against the real file size with overflow-safe
 * arithmetic before it is used; a malformed file gives CPT_EFORMAT with a message
 * "<file>: offset N: <field>: <what is wrong>". The reader never asserts on input.
 * The file is memory-mapped; strings and tensor data point into the mapping and stay
 * valid until cpt_gguf_close. Keys and tensor names are NUL-terminated copies.
 */
#ifndef CPT_GGUF_H
#define CPT_GGUF_H

#include "cpt/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Metadata value types (the ids stored in the file). */
typedef enum {
    CPT_GGUF_U8 = 0,
    CPT_GGUF_I8 = 1,
    CPT_GGUF_U16 = 2,
    CPT_GGUF_I16 = 3,
    CPT_GGUF_U32 = 4,
    CPT_GGUF_I32 = 5,
    CPT_GGUF_F32 = 6,
    CPT_GGUF_BOOL = 7,
    CPT_GGUF_STRING = 8,
    CPT_GGUF_ARRAY = 9,
    CPT_GGUF_U64 = 10,
    CPT_GGUF_I64 = 11,
    CPT_GGUF_F64 = 12,
    CPT_GGUF_VTYPE_COUNT
} cpt_gguf_vtype;

/* ggml tensor type ids that cpt dequantizes (others are recognised by name and refused). */
enum {
    CPT_GGML_F32 = 0,
    CPT_GGML_F16 = 1,
    CPT_GGML_Q4_0 = 2,
    CPT_GGML_Q4_1 = 3,
    CPT_GGML_Q5_0 = 6,
    CPT_GGML_Q5_1 = 7,
    CPT_GGML_Q8_0 = 8,
    CPT_GGML_Q2_K = 10,
    CPT_GGML_Q3_K = 11,
    CPT_GGML_Q4_K = 12,
    CPT_GGML_Q5_K = 13,
    CPT_GGML_Q6_K = 14,
    CPT_GGML_BF16 = 30,
};

/* One metadata entry. Scalars are decoded into the union; a string points into the file;
 * an array keeps its element type, count and the file bytes of its elements (for string
 * arrays, str_off[i] is the file offset of element i's u64 length, built at open). */
typedef struct cpt_gguf_kv {
    char *key;
    uint32_t type;   /* cpt_gguf_vtype */
    uint64_t offset; /* file offset of the value (for messages) */
    union {
        uint64_t u;
        int64_t i;
        double f;
    } v;             /* integer / bool / float scalars */
    const char *str; /* CPT_GGUF_STRING: bytes (not NUL-terminated) */
    uint64_t str_len;
    uint32_t arr_type;        /* CPT_GGUF_ARRAY: element type */
    uint64_t arr_n;           /* element count */
    const uint8_t *arr_data;  /* first element (fixed-size element types) */
    uint64_t *str_off;        /* string arrays only: [arr_n] file offsets */
} cpt_gguf_kv;

typedef struct cpt_gguf_tensor {
    char *name;
    uint32_t n_dims;
    uint64_t ne[4];      /* ggml order, unused dims are 1 */
    uint32_t type;       /* ggml type id */
    uint64_t offset;     /* relative to the data section */
    uint64_t numel;
    uint64_t nbytes;
    const uint8_t *data; /* into the mapping */
} cpt_gguf_tensor;

typedef struct cpt_gguf cpt_gguf;

/* Open and validate a file (mmap) or a caller-owned buffer (kept, not copied; `label`
 * names it in messages). On failure *out is NULL and err says where and why. */
int cpt_gguf_open(cpt_gguf **out, const char *path, cpt_err *err);
int cpt_gguf_open_buffer(cpt_gguf **out, const uint8_t *data, size_t size, const char *label,
                         cpt_err *err);
void cpt_gguf_close(cpt_gguf *g);

uint32_t cpt_gguf_version(const cpt_gguf *g);
uint32_t cpt_gguf_alignment(const cpt_gguf *g);
uint64_t cpt_gguf_data_offset(const cpt_gguf *g); /* file offset of the data section */
const char *cpt_gguf_label(const cpt_gguf *g);

/* ---- metadata ---- */
size_t cpt_gguf_n_kv(const cpt_gguf *g);
const cpt_gguf_kv *cpt_gguf_kv_at(const cpt_gguf *g, size_t i);
const cpt_gguf_kv *cpt_gguf_find(const cpt_gguf *g, const char *key); /* NULL if absent */
const char *cpt_gguf_vtype_name(uint32_t type);                       /* "uint32", ... */

/* Typed getters: CPT_ENOTFOUND if the key is absent, CPT_EFORMAT if its type does not fit
 * (messages name the file, key and type). get_int accepts any integer type and checks
 * the value fits int64; get_float accepts f32/f64 (and integers); get_str returns the
 * bytes and length (not NUL-terminated); get_strdup a malloc'ed NUL-terminated copy
 * (an embedded NUL is an error). */
int cpt_gguf_get_int(const cpt_gguf *g, const char *key, int64_t *out, cpt_err *err);
int cpt_gguf_get_float(const cpt_gguf *g, const char *key, double *out, cpt_err *err);
int cpt_gguf_get_bool(const cpt_gguf *g, const char *key, int *out, cpt_err *err);
int cpt_gguf_get_str(const cpt_gguf *g, const char *key, const char **s, size_t *len, cpt_err *err);
int cpt_gguf_get_strdup(const cpt_gguf *g, const char *key, char **out, cpt_err *err);
/* An array key: CPT_EFORMAT unless it is an array of `elem_type` (-1: any). */
int cpt_gguf_get_arr(const cpt_gguf *g, const char *key, int elem_type, const cpt_gguf_kv **out,
                     cpt_err *err);
/* Array elements (i < kv->arr_n, asserted; element type asserted). */
void cpt_gguf_arr_str(const cpt_gguf *g, const cpt_gguf_kv *kv, uint64_t i, const char **s,
                      size_t *len);
int64_t cpt_gguf_arr_int(const cpt_gguf_kv *kv, uint64_t i);   /* any integer/bool type */
double cpt_gguf_arr_float(const cpt_gguf_kv *kv, uint64_t i);  /* f32/f64/integer */

/* ---- tensors ---- */
size_t cpt_gguf_n_tensors(const cpt_gguf *g);
const cpt_gguf_tensor *cpt_gguf_tensor_at(const cpt_gguf *g, size_t i);
const cpt_gguf_tensor *cpt_gguf_find_tensor(const cpt_gguf *g, const char *name);
/* Dequantize a whole tensor to dst[numel] fp32. CPT_EUNSUPPORTED (naming the type) for a
 * type cpt does not dequantize. */
int cpt_gguf_tensor_f32(const cpt_gguf *g, const cpt_gguf_tensor *t, float *dst, cpt_err *err);

/* ---- ggml types (gguf_quant.c) ---- */
/* ggml's name of a type id ("Q4_K"), or NULL for an id ggml does not define. */
const char *cpt_ggml_type_name(uint32_t type);
/* Elements per block and bytes per block; 0 for an unknown id. */
int cpt_ggml_type_block(uint32_t type, uint64_t *block_elems, uint64_t *block_bytes);
/* 1 if cpt_ggml_dequant handles the type. */
int cpt_ggml_type_supported(uint32_t type);
/* Dequantize n elements (a multiple of the block size, asserted) of `src` into dst.
 * CPT_EUNSUPPORTED with the type's name for a type cpt does not handle. */
int cpt_ggml_dequant(uint32_t type, const void *src, float *dst, uint64_t n, cpt_err *err);

/* Quantize n fp32 values (a multiple of the type's block size, asserted) into dst, exactly as
 * ggml's reference quantizers and the `gguf` package's gguf.quants.quantize do: F32 (copy),
 * F16 (round to nearest even), BF16 (round to nearest even, NaN quieted), Q8_0 (per block of
 * 32: d = amax/127 stored as fp16, q = roundf(x / d), as quantize_row_q8_0_ref).
 * CPT_EUNSUPPORTED naming the type for any other type. dst holds n/block*block_bytes. */
int cpt_ggml_quant(uint32_t type, const float *src, void *dst, uint64_t n, cpt_err *err);

/* ---- writer (gguf_write.c) ----
 * Collects metadata and tensors in memory (metadata serialized as added; tensor data either
 * borrowed, valid until cpt_gguf_writer_free, or owned and freed by the writer), then writes
 * a GGUF v3 file atomically: "<path>.tmp.<pid>", fsync, rename. A failure (a missing or
 * read-only directory, a full disk) is CPT_EIO naming the file and leaves no OUT file.
 * general.alignment is written as a uint32 key when it is not the default 32. Keys and tensor
 * names must be unique (CPT_EINVAL otherwise). */
typedef struct cpt_gguf_writer cpt_gguf_writer;

int cpt_gguf_writer_new(cpt_gguf_writer **out, uint32_t alignment, cpt_err *err); /* 0: 32 */
void cpt_gguf_writer_free(cpt_gguf_writer *w);
/* A scalar of any fixed-size type (U8..F64, BOOL): `val` points to the value in its C type
 * (uint8_t, int8_t, ..., float, double; bool as uint8_t 0/1). */
int cpt_gguf_w_scalar(cpt_gguf_writer *w, const char *key, uint32_t type, const void *val, cpt_err *err);
int cpt_gguf_w_u32(cpt_gguf_writer *w, const char *key, uint32_t v, cpt_err *err);
int cpt_gguf_w_i32(cpt_gguf_writer *w, const char *key, int32_t v, cpt_err *err);
int cpt_gguf_w_f32(cpt_gguf_writer *w, const char *key, float v, cpt_err *err);
int cpt_gguf_w_bool(cpt_gguf_writer *w, const char *key, int v, cpt_err *err);
int cpt_gguf_w_str(cpt_gguf_writer *w, const char *key, const char *s, size_t len, cpt_err *err);
/* An array of n fixed-size elements stored contiguously in their C type. */
int cpt_gguf_w_arr(cpt_gguf_writer *w, const char *key, uint32_t elem_type, const void *data, uint64_t n,
                   cpt_err *err);
/* An array of n strings (lens[i] bytes each; lens NULL: NUL-terminated). */
int cpt_gguf_w_arr_str(cpt_gguf_writer *w, const char *key, const char *const *s, const size_t *lens, uint64_t n,
                       cpt_err *err);
/* A tensor: ne in ggml order (PyTorch's shape reversed), n_dims 1..4, data holding exactly the
 * type's byte size for ne. own = 1: the writer frees data (malloc'ed) even on failure. */
int cpt_gguf_w_tensor(cpt_gguf_writer *w, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                      const void *data, uint64_t nbytes, int own, cpt_err *err);
int cpt_gguf_writer_write(cpt_gguf_writer *w, const char *path, cpt_err *err);

#ifdef __cplusplus
}
#endif
#endif /* CPT_GGUF_H */

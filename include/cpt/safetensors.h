/* cpt/safetensors.h: strict reader and atomic writer for Hugging Face safetensors.
 *
 * Format (https://huggingface.co/docs/safetensors): an 8-byte little-endian u64 N,
 * then N bytes of UTF-8 JSON: {"<name>": {"dtype": "F32", "shape": [..],
 * "data_offsets": [begin, end]}, ..., "__metadata__": {"k": "v", ...}} (optional),
 * then the data section; offsets are relative to the start of the data section.
 *
 * The reader validates everything before any tensor is touched and reports the file
 * and the field on failure: header length past the end of the file, malformed or
 * non-UTF-8 JSON, duplicate names, unknown dtypes, shapes whose byte size does not
 * match the offsets, offsets out of range, overlapping tensors, truncated data.
 * The file is memory-mapped; tensor data is read in place.
 */
#ifndef CPT_SAFETENSORS_H
#define CPT_SAFETENSORS_H

#include "cpt/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cpt_dtype {
    CPT_DT_F32 = 0,
    CPT_DT_F16,
    CPT_DT_BF16,
    CPT_DT_F64,
    CPT_DT_I64,
    CPT_DT_I32,
    CPT_DT_I16,
    CPT_DT_I8,
    CPT_DT_U8,
    CPT_DT_BOOL,
    CPT_DT_COUNT
} cpt_dtype;

#define CPT_ST_MAX_DIMS 8

/* "F32" <-> CPT_DT_F32; returns -1 for an unknown name. */
int cpt_dtype_from_name(const char *name);
const char *cpt_dtype_name(cpt_dtype dt);
size_t cpt_dtype_size(cpt_dtype dt);

typedef struct cpt_st_tensor {
    char *name;
    cpt_dtype dtype;
    int ndim;
    int64_t shape[CPT_ST_MAX_DIMS];
    uint64_t numel;
    uint64_t begin, end; /* byte offsets inside the data section */
    const uint8_t *data; /* points into the mapped file */
} cpt_st_tensor;

typedef struct cpt_st_file cpt_st_file;

/* Open and fully validate one .safetensors file. Beyond the checks above: the header
 * must start with '{' and be at most 100 MB, trailing spaces after the JSON are
 * allowed, every entry other than "__metadata__" has exactly dtype, shape (at most
 * CPT_ST_MAX_DIMS non-negative integers) and data_offsets, "__metadata__" maps
 * strings to strings, and the tensors must cover the data section contiguously
 * (no gaps or trailing bytes, as the reference implementation requires). Every
 * format error is CPT_EFORMAT with a message "<path>: tensor '<name>': ..." or
 * "<path>: <field> ...". cpt_st_get/cpt_st_count follow header order. */
int cpt_st_open(cpt_st_file **out, const char *path, cpt_err *err);
/* Validate an in-memory image (used by the fuzzer and by cpt_st_open). `label`
 * names the source in messages. The buffer must outlive the handle. */
int cpt_st_open_buffer(cpt_st_file **out, const uint8_t *buf, size_t size, const char *label,
                       cpt_err *err);
void cpt_st_close(cpt_st_file *f);

size_t cpt_st_count(const cpt_st_file *f);
const cpt_st_tensor *cpt_st_get(const cpt_st_file *f, size_t i);
const cpt_st_tensor *cpt_st_find(const cpt_st_file *f, const char *name); /* NULL if absent */
const char *cpt_st_path(const cpt_st_file *f);
/* Value of a "__metadata__" string entry, or NULL. */
const char *cpt_st_metadata(const cpt_st_file *f, const char *key);

/* Convert a F32/F16/BF16/F64 tensor to fp32 (n = numel elements). Other dtypes
 * are CPT_EUNSUPPORTED with the tensor and file named. `t` must be one of `f`'s
 * tensors (asserted); dst holds numel floats (may be NULL when numel is 0). bf16/f16
 * widen exactly, F64 rounds to nearest. Tensors of 65536+ elements use OpenMP threads. */
int cpt_st_read_f32(const cpt_st_file *f, const cpt_st_tensor *t, float *dst, cpt_err *err);

/* A set of files: a model directory with model.safetensors, or with
 * model.safetensors.index.json and its shards (every name in the index's
 * weight_map must exist in the named shard; every shard must exist). When both are
 * present model.safetensors wins, as in transformers. Each distinct shard is opened
 * once; shard names must be plain file names in `dir`. Errors: CPT_ENOTFOUND when
 * neither file exists or a named shard is missing; CPT_EFORMAT for a malformed index,
 * a tensor missing from its shard, a shard tensor absent from weight_map, or a name
 * present in two shards; errors from cpt_st_open for a bad shard. Shards are ordered
 * by file name. */
typedef struct cpt_st_set cpt_st_set;
int cpt_st_set_open(cpt_st_set **out, const char *dir, cpt_err *err);
void cpt_st_set_close(cpt_st_set *s);
size_t cpt_st_set_count(const cpt_st_set *s);
/* i-th tensor across all files (order: file order, then header order). `file`, if not
 * NULL, receives the file holding it (needed for cpt_st_read_f32); find returns NULL
 * (and *file = NULL) for an unknown name. */
const cpt_st_tensor *cpt_st_set_get(const cpt_st_set *s, size_t i, const cpt_st_file **file);
const cpt_st_tensor *cpt_st_set_find(const cpt_st_set *s, const char *name, const cpt_st_file **file);

/* Writing. Each tensor's source is fp32 (converted to `dtype`, F32, BF16 or F16,
 * with round-to-nearest-even) or raw bytes already in `dtype` (src_raw). */
typedef struct cpt_st_wtensor {
    const char *name;
    cpt_dtype dtype;
    int ndim;
    int64_t shape[CPT_ST_MAX_DIMS];
    const float *src_f32;  /* one of src_f32 / src_raw */
    const void *src_raw;
} cpt_st_wtensor;

/* Write one file atomically (tmp + fsync + rename). `meta` is a NULL-terminated
 * list of key, value string pairs for "__metadata__" (may be NULL). Header keys and
 * tensor data follow the given order; the header is padded with spaces so the data
 * section starts at a multiple of 8, and tensors follow each other contiguously (the
 * format forbids gaps, so a tensor is only as aligned as the sizes before it make it;
 * readers must not assume alignment). Errors: CPT_EINVAL for a bad descriptor
 * (empty, repeated or non-UTF-8 name, negative shape, fp32 source with a dtype other
 * than F32/BF16/F16, missing source), CPT_EIO for write failures. */
int cpt_st_write(const char *path, const cpt_st_wtensor *t, size_t n, const char *const *meta,
                 cpt_err *err);

/* Write a model directory's weights (creating `dir`), as transformers' save_pretrained
 * does: tensors are assigned to shards exactly like huggingface_hub's
 * split_state_dict_into_shards (in order; a tensor larger than `max_shard_bytes` gets a
 * shard of its own; otherwise a new shard starts when the current one would exceed the
 * limit). One shard (always the case when the total is at most `max_shard_bytes`, or
 * when it is 0 = never shard) is written as model.safetensors; more as
 * model-0000i-of-0000N.safetensors plus model.safetensors.index.json
 * ({"metadata": {"total_size": bytes}, "weight_map": {...}}, sorted keys, indent 2).
 * `meta` goes into every file written.
 * Stale files: other files are left alone, except that writing model.safetensors
 * deletes an existing model.safetensors.index.json and writing shards deletes an
 * existing model.safetensors, because loaders would otherwise read the stale one
 * (transformers prefers model.safetensors over the index). Old shards with other
 * names are left in place (unreferenced). */
int cpt_st_write_dir(const char *dir, const cpt_st_wtensor *t, size_t n, const char *const *meta,
                     uint64_t max_shard_bytes, cpt_err *err);

/* fp32 <-> bf16 / f16 conversions (round to nearest even; NaN preserved). */
uint16_t cpt_f32_to_bf16(float x);
float cpt_bf16_to_f32(uint16_t x);
uint16_t cpt_f32_to_f16(float x);
float cpt_f16_to_f32(uint16_t x);

#ifdef __cplusplus
}
#endif
#endif

/* fuzz_safetensors.c: libFuzzer target for the safetensors reader (header validation and
 * fp32 conversion). Invariants checked beyond "no crash": every accepted tensor lies inside
 * the input, byte sizes match shapes, tensors tile the data section, lookups by name find
 * the same entry, and a rejected input always carries a message. */
#include <stdlib.h>
#include <string.h>

#include "cpt/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cpt_st_file *f = NULL;
    cpt_err err = {0};
    int rc = cpt_st_open_buffer(&f, data, size, "fuzz.safetensors", &err);
    if (rc != CPT_OK) {
        if (f != NULL || err.code != rc || err.msg[0] == '\0') abort();
        return 0;
    }
    uint64_t covered = 0;
    for (size_t i = 0; i < cpt_st_count(f); i++) {
        const cpt_st_tensor *t = cpt_st_get(f, i);
        if (cpt_st_find(f, t->name) != t) abort();
        uint64_t bytes = t->end - t->begin;
        if (t->end < t->begin || bytes != t->numel * cpt_dtype_size(t->dtype)) abort();
        if (t->data < data || t->data + bytes > data + size) abort();
        covered += bytes;
        if (t->dtype == CPT_DT_F32 || t->dtype == CPT_DT_F16 || t->dtype == CPT_DT_BF16 ||
            t->dtype == CPT_DT_F64) {
            float *dst = malloc((size_t)t->numel * sizeof(float) + 1);
            if (!dst) abort();
            if (cpt_st_read_f32(f, t, dst, &err) != CPT_OK) abort();
            free(dst);
        } else if (cpt_st_read_f32(f, t, NULL, &err) != CPT_EUNSUPPORTED) {
            abort();
        }
    }
    /* no overlap + no gap means the sizes add up to exactly the data section */
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | data[i];
    if (covered != size - 8 - hlen) abort();
    cpt_st_close(f);
    return 0;
}

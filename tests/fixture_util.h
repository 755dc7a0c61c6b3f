/* fixture_util.h: reading the oracle fixtures (tests/oracle/make_fixtures.py) from C. */
#ifndef CPT_FIXTURE_UTIL_H
#define CPT_FIXTURE_UTIL_H

#include <stdlib.h>

#include "cpt/safetensors.h"

/* Read a float tensor as fp32 (malloc'ed), or NULL. *numel set if non-NULL. */
static inline float *fx_f32(const cpt_st_file *f, const char *name, size_t *numel) {
    const cpt_st_tensor *t = cpt_st_find(f, name);
    if (!t) return NULL;
    float *d = malloc(sizeof(float) * (t->numel ? t->numel : 1));
    cpt_err e = {0};
    if (cpt_st_read_f32(f, t, d, &e)) {
        free(d);
        return NULL;
    }
    if (numel) *numel = t->numel;
    return d;
}

/* Read an I64 tensor as int32 (malloc'ed), or NULL. */
static inline int32_t *fx_i32(const cpt_st_file *f, const char *name, const cpt_st_tensor **info) {
    const cpt_st_tensor *t = cpt_st_find(f, name);
    if (!t || t->dtype != CPT_DT_I64) return NULL;
    int32_t *d = malloc(sizeof(int32_t) * (t->numel ? t->numel : 1));
    for (uint64_t i = 0; i < t->numel; i++) {
        int64_t v;
        memcpy(&v, t->data + 8 * i, 8);
        d[i] = (int32_t)v;
    }
    if (info) *info = t;
    return d;
}

/* Shift HF labels (position t predicts token t+1) into per-position targets;
 * the last position of each row and label -100 become -1 (ignored). */
static inline void fx_shift_labels(int32_t *targets, const int32_t *labels, int B, int T) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int32_t y = t + 1 < T ? labels[b * T + t + 1] : -1;
            targets[b * T + t] = y < 0 ? -1 : y;
        }
}

#endif

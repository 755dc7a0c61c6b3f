/* fuzz_gguf.c: libFuzzer target for the GGUF reader (header, metadata of every type, nested
 * arrays, tensor infos, alignment, bounds). Invariants beyond "no crash": a rejected input
 * carries a message; an accepted one has every tensor inside the input, aligned, with a byte
 * size that matches its shape; lookups by key and name find the same entries; every typed
 * getter and array accessor works on every entry; supported types dequantize. Seeds:
 * tests/fuzz/make_gguf_seeds.py. */
#include <stdlib.h>
#include <string.h>

#include "cpt/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cpt_gguf *g = NULL;
    cpt_err err = {0};
    int rc = cpt_gguf_open_buffer(&g, data, size, "fuzz.gguf", &err);
    if (rc != CPT_OK) {
        if (g != NULL || err.code != rc || err.msg[0] == '\0') abort();
        return 0;
    }
    for (size_t i = 0; i < cpt_gguf_n_kv(g); i++) {
        const cpt_gguf_kv *kv = cpt_gguf_kv_at(g, i);
        if (cpt_gguf_find(g, kv->key) != kv) abort();
        int64_t iv;
        double fv;
        int bv;
        char *s = NULL;
        cpt_err e = {0};
        (void)cpt_gguf_get_int(g, kv->key, &iv, &e);
        (void)cpt_gguf_get_float(g, kv->key, &fv, &e);
        (void)cpt_gguf_get_bool(g, kv->key, &bv, &e);
        if (cpt_gguf_get_strdup(g, kv->key, &s, &e) == CPT_OK) free(s);
        if (kv->type == CPT_GGUF_ARRAY) {
            for (uint64_t j = 0; j < kv->arr_n && j < 1000; j++) {
                if (kv->arr_type == CPT_GGUF_STRING) {
                    const char *p;
                    size_t n;
                    cpt_gguf_arr_str(g, kv, j, &p, &n);
                    if ((const uint8_t *)p < data || (const uint8_t *)p + n > data + size) abort();
                } else if (kv->arr_type != CPT_GGUF_ARRAY) {
                    (void)cpt_gguf_arr_float(kv, j);
                }
            }
        }
    }
    for (size_t i = 0; i < cpt_gguf_n_tensors(g); i++) {
        const cpt_gguf_tensor *t = cpt_gguf_tensor_at(g, i);
        if (cpt_gguf_find_tensor(g, t->name) != t) abort();
        uint64_t be, bb;
        if (!cpt_ggml_type_block(t->type, &be, &bb)) abort();
        if (t->nbytes != t->numel / be * bb || t->offset % cpt_gguf_alignment(g)) abort();
        if (t->data < data || t->data + t->nbytes > data + size) abort();
        if (cpt_ggml_type_supported(t->type) && t->numel <= (1u << 20)) {
            float *y = malloc(t->numel * sizeof(float));
            if (!y) abort();
            if (cpt_gguf_tensor_f32(g, t, y, &err) != CPT_OK) abort();
            free(y);
        }
    }
    cpt_gguf_close(g);
    return 0;
}

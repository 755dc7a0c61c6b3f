/* hfio.c: Hugging Face model directories in and out: config.json + safetensors
 * (single or sharded), fp32 masters from F32/BF16/F16 files, HF tensor names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/fileio.h"
#include "cpt/model.h"
#include "cpt/safetensors.h"

int cpt_model_load_hf(cpt_model **out, const char *dir, cpt_err *err) {
    *out = NULL;
    if (!cpt_is_dir(dir))
        return cpt_err_set(err, CPT_ENOTFOUND, "%s: not a directory. HINT: --model takes a Hugging Face model directory (config.json + *.safetensors)", dir);
    char *cpath = cpt_path_join(dir, "config.json");
    if (!cpath) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    cpt_config cfg;
    int rc = cpt_config_load(&cfg, cpath, err);
    free(cpath);
    if (rc) return rc;
    cpt_model *m = NULL;
    rc = cpt_model_create(&m, &cfg, err);
    cpt_config_free(&cfg);
    if (rc) return rc;
    cpt_st_set *set = NULL;
    if ((rc = cpt_st_set_open(&set, dir, err))) goto fail;
    /* Every expected tensor, with its shape. */
    for (int i = 0; i < m->n_tensors; i++) {
        const cpt_tensor *t = &m->tensors[i];
        const cpt_st_file *f = NULL;
        const cpt_st_tensor *st = cpt_st_set_find(set, t->name, &f);
        if (!st) {
            rc = cpt_err_set(err, CPT_EFORMAT, "%s: tensor '%s' is missing. HINT: the checkpoint does not match config.json (architecture, layer count, bias or tie_word_embeddings)", dir, t->name);
            goto fail;
        }
        int shape_ok = st->ndim == t->ndim && st->shape[0] == t->shape[0] && (t->ndim == 1 || st->shape[1] == t->shape[1]);
        if (!shape_ok) {
            char got[128] = "";
            size_t k = 0;
            for (int d = 0; d < st->ndim && k < sizeof got - 24; d++)
                k += (size_t)snprintf(got + k, sizeof got - k, "%s%lld", d ? ", " : "", (long long)st->shape[d]);
            char want[64];
            if (t->ndim > 1) snprintf(want, sizeof want, "%lld, %lld", (long long)t->shape[0], (long long)t->shape[1]);
            else snprintf(want, sizeof want, "%lld", (long long)t->shape[0]);
            rc = cpt_err_set(err, CPT_EFORMAT, "%s: tensor '%s' has shape [%s] but config.json implies [%s]",
                             cpt_st_path(f), t->name, got, want);
            goto fail;
        }
        if ((rc = cpt_st_read_f32(f, st, m->params + t->off, err))) goto fail;
    }
    /* Nothing unexpected (rotary buffers and a duplicate tied head are tolerated). */
    for (size_t i = 0; i < cpt_st_set_count(set); i++) {
        const cpt_st_file *f = NULL;
        const cpt_st_tensor *st = cpt_st_set_get(set, i, &f);
        if (cpt_model_find(m, st->name)) continue;
        if (strstr(st->name, "rotary_emb.inv_freq")) continue;
        if (m->cfg.tie_embeddings && !strcmp(st->name, "lm_head.weight")) continue;
        rc = cpt_err_set(err, CPT_EFORMAT, "%s: unexpected tensor '%s' for %s. HINT: the checkpoint does not match config.json",
                         cpt_st_path(f), st->name, m->cfg.architecture);
        goto fail;
    }
    cpt_st_set_close(set);
    *out = m;
    return CPT_OK;
fail:
    cpt_st_set_close(set);
    cpt_model_free(m);
    return rc;
}

static int copy_file(const char *src, const char *dst, cpt_err *err) {
    char *buf = NULL;
    size_t n = 0;
    int rc = cpt_read_file(src, &buf, &n, err);
    if (rc) return rc;
    rc = cpt_write_file_atomic(dst, buf, n, err);
    free(buf);
    return rc;
}

int cpt_model_save_hf(const cpt_model *m, const char *dir, int dtype, uint64_t max_shard_bytes,
                      const char *tokenizer_src_dir, cpt_err *err) {
    if (dtype != CPT_DT_F32 && dtype != CPT_DT_BF16)
        return cpt_err_set(err, CPT_EINVAL, "export dtype must be F32 or BF16");
    int rc = cpt_mkdirs(dir, err);
    if (rc) return rc;
    char *json = cpt_config_to_json(&m->cfg, dtype == CPT_DT_F32 ? "float32" : "bfloat16");
    char *cpath = cpt_path_join(dir, "config.json");
    if (!json || !cpath) {
        free(json), free(cpath);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    }
    rc = cpt_write_file_atomic(cpath, json, strlen(json), err);
    free(json);
    free(cpath);
    if (rc) return rc;
    cpt_st_wtensor *ts = calloc((size_t)m->n_tensors, sizeof *ts);
    if (!ts) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    for (int i = 0; i < m->n_tensors; i++) {
        const cpt_tensor *t = &m->tensors[i];
        ts[i].name = t->name;
        ts[i].dtype = (cpt_dtype)dtype;
        ts[i].ndim = t->ndim;
        ts[i].shape[0] = t->shape[0];
        ts[i].shape[1] = t->shape[1];
        ts[i].src_f32 = m->params + t->off;
    }
    const char *meta[] = {"format", "pt", NULL};
    rc = cpt_st_write_dir(dir, ts, (size_t)m->n_tensors, meta, max_shard_bytes, err);
    free(ts);
    if (rc) return rc;
    if (tokenizer_src_dir) {
        static const char *names[] = {"tokenizer.json", "tokenizer_config.json", "tokenizer.model",
                                      "special_tokens_map.json", "generation_config.json"};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            char *s = cpt_path_join(tokenizer_src_dir, names[i]), *d = cpt_path_join(dir, names[i]);
            if (s && d && cpt_is_file(s) && strcmp(s, d) != 0) rc = copy_file(s, d, err);
            free(s);
            free(d);
            if (rc) return rc;
        }
    }
    return CPT_OK;
}

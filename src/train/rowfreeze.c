/* rowfreeze.c: train only rows [lo, hi) of embed_tokens / lm_head (cpt/rowfreeze.h). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/backend.h"
#include "cpt/fileio.h"
#include "cpt/rowfreeze.h"

struct cpt_rowfreeze {
    int lo, hi;
    int n_t;
    size_t off[2];   /* tensor offsets in the parameter layout (embed, untied head) */
    int64_t rows, D;
    float *keep[2];  /* host copies of rows [0, lo) and [hi, rows): (rows - hi + lo) * D */
    int have;
};

int cpt_rowfreeze_create(cpt_rowfreeze **out, const cpt_model *m, int lo, int hi, cpt_err *err) {
    *out = NULL;
    if (lo < 0 || hi <= lo || hi > m->cfg.vocab_size)
        return cpt_err_set(err, CPT_EINVAL, "train_only new_embeddings: rows [%d, %d) do not fit the model's %d rows. HINT: train the model `cpt vocab extend` wrote", lo, hi, m->cfg.vocab_size);
    cpt_rowfreeze *r = calloc(1, sizeof *r);
    if (!r) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    r->lo = lo, r->hi = hi;
    const char *names[2] = {"model.embed_tokens.weight", "lm_head.weight"};
    for (int i = 0; i < 2; i++) {
        const cpt_tensor *t = cpt_model_find(m, names[i]);
        if (!t) continue;
        r->off[r->n_t] = t->off;
        r->rows = t->shape[0], r->D = t->shape[1];
        size_t n = (size_t)(r->rows - hi + lo) * (size_t)r->D;
        if (!(r->keep[r->n_t] = malloc((n ? n : 1) * sizeof(float)))) {
            cpt_rowfreeze_free(r);
            return cpt_err_set(err, CPT_ENOMEM, "out of memory");
        }
        r->n_t++;
    }
    *out = r;
    return CPT_OK;
}

void cpt_rowfreeze_free(cpt_rowfreeze *r) {
    if (!r) return;
    free(r->keep[0]), free(r->keep[1]);
    free(r);
}

/* Offset of the model's parameter range that m (a trained-tensor view, or the model) starts at. */
static size_t base_off(const cpt_model *m) { return m->view_of ? (size_t)(m->params - m->view_of->params) : 0; }

int cpt_rowfreeze_grads(cpt_rowfreeze *r, const cpt_model *m, float *grads, cpt_err *err) {
    size_t D = (size_t)r->D, a = (size_t)r->lo * D, b = (size_t)(r->rows - r->hi) * D, o = base_off(m);
    for (int i = 0; i < r->n_t; i++)
        if (r->off[i] < o || r->off[i] - o >= m->n_params)
            return cpt_err_set(err, CPT_EINVAL, "row freezing: the embedding rows lie outside the trained tensors");
    for (int i = 0; i < r->n_t; i++) {
        float *g = grads + (r->off[i] - o), *p = m->params + (r->off[i] - o);
        if (a) m->be->zero(g, a * sizeof(float));
        if (b) m->be->zero(g + (size_t)r->hi * D, b * sizeof(float));
        if (!r->have) {
            if (a) m->be->copy_to_host(r->keep[i], p, a * sizeof(float));
            if (b) m->be->copy_to_host(r->keep[i] + a, p + (size_t)r->hi * D, b * sizeof(float));
        }
    }
    r->have = 1;
    return CPT_OK;
}

void cpt_rowfreeze_restore(const cpt_rowfreeze *r, cpt_model *m) {
    if (!r->have) return;
    size_t D = (size_t)r->D, a = (size_t)r->lo * D, b = (size_t)(r->rows - r->hi) * D, o = base_off(m);
    for (int i = 0; i < r->n_t; i++) {
        float *p = m->params + (r->off[i] - o);
        if (a) m->be->copy_to_device(p, r->keep[i], a * sizeof(float));
        if (b) m->be->copy_to_device(p + (size_t)r->hi * D, r->keep[i] + a, b * sizeof(float));
    }
}

int cpt_rowfreeze_range_from_dir(const char *dir, int *lo, int *hi, cpt_err *err) {
    char *path = cpt_path_join(dir, "vocab_extend.json");
    if (!path) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    json_error_t je;
    json_t *root = cpt_is_file(path) ? json_load_file(path, 0, &je) : NULL;
    int rc = CPT_OK;
    json_t *a = json_object_get(root, "first_new_id"), *n = json_object_get(root, "n_new");
    if (!root)
        rc = cpt_err_set(err, CPT_ENOTFOUND, "%s: missing or not JSON. HINT: train_only: new_embeddings needs a model written by `cpt vocab extend`; use train_only: embeddings otherwise", path);
    else if (!json_is_integer(a) || !json_is_integer(n) || json_integer_value(a) < 0 || json_integer_value(n) <= 0)
        rc = cpt_err_set(err, CPT_EFORMAT, "%s: first_new_id / n_new: expected integers (>= 0, >= 1). HINT: rewrite it with `cpt vocab extend`", path);
    else {
        *lo = (int)json_integer_value(a);
        *hi = *lo + (int)json_integer_value(n);
    }
    json_decref(root);
    free(path);
    return rc;
}

uint8_t *cpt_rowfreeze_mask_embeddings_only(const cpt_model *m) {
    uint8_t *f = malloc((size_t)m->n_tensors);
    if (!f) return NULL;
    for (int i = 0; i < m->n_tensors; i++) {
        const char *n = m->tensors[i].name;
        f[i] = strcmp(n, "model.embed_tokens.weight") && strcmp(n, "lm_head.weight");
    }
    return f;
}

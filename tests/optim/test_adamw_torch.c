/* test_adamw_torch.c: ten AdamW steps with weight decay (per-group), gradient clipping
 * and gradient accumulation 2 against torch (fixture "adamw" of make_fixtures.py).
 * cpt-test: needs-oracle
 * Tolerances: loss trajectory 1e-5 relative per step; pre-clip gradient norm 1e-4
 * relative; final parameters 1e-4 relative per tensor (max|a-b| / max|b|). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cpt/optim.h"
#include "fixture_util.h"
#include "testutil.h"

int main(void) {
    const char *fx = tu_env("CPT_FIXTURES");
    if (!fx) TEST_SKIP("CPT_FIXTURES not set");
    char path[1024];
    cpt_err err = {0};
    cpt_model *m = NULL;
    snprintf(path, sizeof path, "%s/adamw/model", fx);
    CHECK_OK(cpt_model_load_hf(&m, path, &err), &err);
    snprintf(path, sizeof path, "%s/adamw/ref.safetensors", fx);
    cpt_st_file *ref = NULL;
    CHECK_OK(cpt_st_open(&ref, path, &err), &err);
    if (!m || !ref) TEST_END();
    const cpt_st_tensor *ti = NULL;
    int32_t *ids = fx_i32(ref, "input_ids", &ti), *labels = fx_i32(ref, "labels", NULL);
    float *rlosses = fx_f32(ref, "losses", NULL), *rnorms = fx_f32(ref, "grad_norms", NULL);
    CHECK(ids && labels && rlosses && rnorms);
    int S = (int)ti->shape[0], A = (int)ti->shape[1], B = (int)ti->shape[2], T = (int)ti->shape[3];
    cpt_adamw_cfg cfg = {atof(cpt_st_metadata(ref, "lr")), atof(cpt_st_metadata(ref, "beta1")),
                         atof(cpt_st_metadata(ref, "beta2")), atof(cpt_st_metadata(ref, "eps")),
                         atof(cpt_st_metadata(ref, "weight_decay"))};
    double max_norm = atof(cpt_st_metadata(ref, "max_norm"));
    cpt_adamw *opt = NULL;
    CHECK_OK(cpt_adamw_create(&opt, m, &err), &err);
    cpt_acts *a = NULL;
    CHECK_OK(cpt_acts_create(&a, m, B, T, 1, &err), &err);
    float *grads = cpt_alloc_aligned(sizeof(float) * m->n_params);
    int32_t *targets = malloc(sizeof(int32_t) * (size_t)A * B * T);
    for (int s = 0; s < S; s++) {
        memset(grads, 0, sizeof(float) * m->n_params);
        long long ntot = 0;
        for (int k = 0; k < A; k++) {
            fx_shift_labels(targets + (size_t)k * B * T, labels + ((size_t)s * A + k) * B * T, B, T);
            for (int i = 0; i < B * T; i++) ntot += targets[(size_t)k * B * T + i] >= 0;
        }
        double loss = 0;
        for (int k = 0; k < A; k++) {
            cpt_batch b = {B, T, ids + ((size_t)s * A + k) * B * T, targets + (size_t)k * B * T, NULL, NULL};
            double ls = 0;
            long long nv = 0;
            CHECK_OK(cpt_model_step(m, a, &b, grads, 1.0f / (float)ntot, NULL, &ls, &nv, NULL, &err), &err);
            loss += ls;
        }
        loss /= (double)ntot;
        double norm = cpt_grad_clip(m, grads, max_norm);
        double le = fabs(loss - rlosses[s]) / fabs(rlosses[s]), ne = fabs(norm - rnorms[s]) / rnorms[s];
        CHECKF(le < 1e-5, "step %d: loss %.9g vs torch %.9g (rel %.3g)", s, loss, rlosses[s], le);
        CHECKF(ne < 1e-4, "step %d: grad norm %.7g vs torch %.7g (rel %.3g)", s, norm, rnorms[s], ne);
        fprintf(stderr, "step %d loss %.7f (torch %.7f, rel %.1e) norm %.5f (torch %.5f)\n", s, loss, rlosses[s], le, norm, rnorms[s]);
        cpt_adamw_step(opt, m, grads, &cfg, cfg.lr, NULL, NULL);
    }
    double worst = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        char name[128];
        snprintf(name, sizeof name, "final.%s", m->tensors[i].name);
        size_t n = 0;
        float *rf = fx_f32(ref, name, &n);
        CHECKF(rf && n == m->tensors[i].numel, "missing final.%s", m->tensors[i].name);
        if (!rf) continue;
        double e = tu_rel_err(m->params + m->tensors[i].off, rf, n);
        CHECKF(e < 1e-4, "final %s rel err %.3g", m->tensors[i].name, e);
        if (e > worst) worst = e;
        free(rf);
    }
    fprintf(stderr, "final parameters: worst rel err %.2e\n", worst);
    cpt_free_aligned(grads);
    free(targets), free(ids), free(labels), free(rlosses), free(rnorms);
    cpt_acts_free(a);
    cpt_adamw_free(opt);
    cpt_st_close(ref);
    cpt_model_free(m);
    TEST_END();
}

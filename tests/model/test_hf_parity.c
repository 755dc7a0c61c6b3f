/* test_hf_parity.c: logits, loss and every parameter gradient of cpt's forward/backward
 * against Hugging Face transformers (fp32) on random-init models of each supported
 * architecture (fixtures from tests/oracle/make_fixtures.py).
 * cpt-test: needs-oracle
 * Tolerances (relative = max|a-b| / max|b| per tensor): logits 1e-4, loss 1e-5,
 * every gradient 1e-4. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cpt/model.h"
#include "fixture_util.h"
#include "testutil.h"

static const char *NAMES[] = {"llama_gqa_tied", "llama_mha_untied", "llama_headdim", "mistral", "qwen2", "qwen3"};

static void check_one(const char *fxdir, const char *name) {
    char path[1024];
    cpt_err err = {0};
    cpt_model *m = NULL;
    snprintf(path, sizeof path, "%s/%s/model", fxdir, name);
    CHECK_OK(cpt_model_load_hf(&m, path, &err), &err);
    if (!m) return;
    snprintf(path, sizeof path, "%s/%s/ref.safetensors", fxdir, name);
    cpt_st_file *ref = NULL;
    CHECK_OK(cpt_st_open(&ref, path, &err), &err);
    if (!ref) { cpt_model_free(m); return; }
    const cpt_st_tensor *ti = NULL;
    int32_t *ids = fx_i32(ref, "input_ids", &ti), *labels = fx_i32(ref, "labels", NULL);
    CHECK(ids && labels);
    int B = (int)ti->shape[0], T = (int)ti->shape[1], V = m->cfg.vocab_size;
    int32_t *targets = malloc(sizeof(int32_t) * B * T);
    fx_shift_labels(targets, labels, B, T);
    long long nvalid = 0;
    for (int i = 0; i < B * T; i++) nvalid += targets[i] >= 0;
    float *grads = calloc(m->n_params, sizeof(float));
    float *logits = malloc(sizeof(float) * (size_t)B * T * V);
    cpt_acts *a = NULL;
    CHECK_OK(cpt_acts_create(&a, m, B, T, 1, &err), &err);
    cpt_batch b = {B, T, ids, targets, NULL, NULL};
    double ls = 0;
    long long nv = 0;
    CHECK_OK(cpt_model_step(m, a, &b, grads, 1.0f / (float)nvalid, NULL, &ls, &nv, logits, &err), &err);
    CHECK(nv == nvalid);
    float *rl = fx_f32(ref, "logits", NULL), *rloss = fx_f32(ref, "loss", NULL);
    double le = tu_rel_err(logits, rl, (size_t)B * T * V);
    double loss = ls / (double)nv, lerr = fabs(loss - rloss[0]) / fabs(rloss[0]);
    CHECKF(le < 1e-4, "%s: logits rel err %.3g", name, le);
    CHECKF(lerr < 1e-5, "%s: loss %.9g vs %.9g (rel %.3g)", name, loss, rloss[0], lerr);
    double worst = 0;
    const char *worst_name = "";
    int ngrads = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        char gname[128];
        snprintf(gname, sizeof gname, "grad.%s", m->tensors[i].name);
        size_t n = 0;
        float *rg = fx_f32(ref, gname, &n);
        CHECKF(rg != NULL, "%s: no reference gradient for %s", name, m->tensors[i].name);
        if (!rg) continue;
        CHECK(n == m->tensors[i].numel);
        double e = tu_rel_err(grads + m->tensors[i].off, rg, n);
        CHECKF(e < 1e-4, "%s: gradient of %s rel err %.3g", name, m->tensors[i].name, e);
        if (e > worst) worst = e, worst_name = m->tensors[i].name;
        ngrads++;
        free(rg);
    }
    fprintf(stderr, "%-17s logits %.2e  loss %.2e  %d grads, worst %.2e (%s)\n", name, le, lerr, ngrads, worst, worst_name);
    free(rl), free(rloss), free(ids), free(labels), free(targets), free(grads), free(logits);
    cpt_acts_free(a);
    cpt_st_close(ref);
    cpt_model_free(m);
}

int main(void) {
    const char *fx = tu_env("CPT_FIXTURES");
    if (!fx) TEST_SKIP("CPT_FIXTURES not set");
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++) check_one(fx, NAMES[i]);
    TEST_END();
}

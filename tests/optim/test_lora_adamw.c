/* test_lora_adamw.c: ten AdamW steps on a LoRA adapter (cpt_adamw over the adapter's
 * parameter set lo->pm, clipping with cpt_grad_clip, as the trainer steps a model)
 * against PEFT + torch.optim.AdamW (tests/oracle/peft_lora.py adamw: lr 1e-3, betas
 * (0.9, 0.95), eps 1e-8, weight decay 0.1 on every adapter matrix, clip_grad_norm_ 7,
 * a fresh random batch per step, loss = mean CE over valid shifted labels), on the
 * oracle fixtures llama_gqa_tied (GQA, tied; q/v/o/down + embed_tokens) and qwen3
 * (untied; all linears + lm_head, rsLoRA).
 * cpt-test: needs-oracle
 * Tolerances (as tests/optim/test_adamw_torch.c): loss 1e-5 relative per step; pre-clip
 * gradient norm 1e-4 relative; every final adapter tensor 1e-4 relative
 * (max|a-b| / max|b|), and it must have moved from its start (else vacuous). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "cpt/backend.h"
#include "cpt/fileio.h"
#include "cpt/lora.h"
#include "cpt/optim.h"
#include "fixture_util.h"
#include "testutil.h"

static const char *fx_root, *src, *tmp;

static int run_case(const char *name, const char *targets, const char *mts, int r, double alpha, int rslora) {
    char fx[1024], out[1024], path[1200], cmd[4096];
    snprintf(fx, sizeof fx, "%s/%s", fx_root, name);
    snprintf(out, sizeof out, "%s/lora_adamw_%s", tmp, name);
    cpt_err e = {0};
    CHECK_OK(cpt_mkdirs(out, &e), &e);
    snprintf(cmd, sizeof cmd, "python3 %s/tests/oracle/peft_lora.py adamw %s %s %d %g %s %s %d", src, fx, out, r, alpha, targets,
             mts, rslora);
    int prc = system(cmd);
    prc = prc != -1 && WIFEXITED(prc) ? WEXITSTATUS(prc) : -1;
    if (prc == 77) return 77;
    CHECKF(prc == 0, "%s: peft_lora.py adamw failed (%d)", name, prc);
    if (prc) return 0;
    cpt_model *m = NULL;
    snprintf(path, sizeof path, "%s/model", fx);
    CHECK_OK(cpt_model_load_hf(&m, path, &e), &e);
    if (!m) return 0;
    cpt_lora *lo = NULL;
    snprintf(path, sizeof path, "%s/adamw_init", out);
    CHECK_OK(cpt_lora_load_peft(&lo, m, path, &e), &e);
    snprintf(path, sizeof path, "%s/adamw_ref.safetensors", out);
    cpt_st_file *ref = NULL;
    CHECK_OK(cpt_st_open(&ref, path, &e), &e);
    if (!lo || !ref) {
        cpt_st_close(ref);
        cpt_lora_free(lo);
        cpt_model_free(m);
        return 0;
    }
    cpt_model *pm = lo->pm;
    const cpt_st_tensor *ti = NULL;
    int32_t *ids = fx_i32(ref, "input_ids", &ti), *labels = fx_i32(ref, "labels", NULL);
    float *rl = fx_f32(ref, "losses", NULL), *rn = fx_f32(ref, "grad_norms", NULL);
    int S = (int)ti->shape[0], B = (int)ti->shape[1], T = (int)ti->shape[2];
    float *start = malloc(sizeof(float) * pm->n_params), *g = calloc(pm->n_params, sizeof(float));
    int32_t *tgt = malloc(sizeof(int32_t) * B * T);
    memcpy(start, pm->params, sizeof(float) * pm->n_params);
    cpt_adamw *opt = NULL;
    CHECK_OK(cpt_adamw_create(&opt, pm, &e), &e);
    cpt_acts *a = NULL;
    CHECK_OK(cpt_acts_create(&a, m, B, T, 1, &e), &e);
    cpt_adamw_cfg oc = {1e-3, 0.9, 0.95, 1e-8, 0.1};
    int clipped = 0;
    for (int s = 0; s < S && opt && a; s++) {
        fx_shift_labels(tgt, labels + (size_t)s * B * T, B, T);
        long long nvalid = 0;
        for (int i = 0; i < B * T; i++) nvalid += tgt[i] >= 0;
        cpt_batch b = {B, T, ids + (size_t)s * B * T, tgt, NULL, NULL};
        memset(g, 0, sizeof(float) * pm->n_params);
        lo->grads = g;
        double ls = 0;
        long long nv = 0;
        CHECK_OK(cpt_model_step(m, a, &b, NULL, 1.0f / (float)nvalid, NULL, &ls, &nv, NULL, &e), &e);
        lo->grads = NULL;
        double loss = ls / (double)nv, le = fabs(loss - rl[s]) / fabs(rl[s]);
        double norm = cpt_grad_clip(pm, g, 7.0), ne = fabs(norm - rn[s]) / rn[s];
        clipped += norm > 7.0;
        CHECKF(le < 1e-5, "%s step %d: loss %.9g vs PEFT %.9g (rel %.3g)", name, s, loss, rl[s], le);
        CHECKF(ne < 1e-4, "%s step %d: grad norm %.7g vs PEFT %.7g (rel %.3g)", name, s, norm, rn[s], ne);
        cpt_adamw_step(opt, pm, g, &oc, oc.lr, NULL, NULL);
    }
    double worst = 0;
    for (int i = 0; i < pm->n_tensors; i++) {
        const cpt_tensor *t = &pm->tensors[i];
        char fname[160];
        snprintf(fname, sizeof fname, "final.%s", t->name);
        size_t n = 0;
        float *rf = fx_f32(ref, fname, &n);
        CHECKF(rf && n == t->numel, "%s: no PEFT final value for %s", name, t->name);
        if (!rf) continue;
        double fe = tu_rel_err(pm->params + t->off, rf, n), moved = 0;
        for (size_t j = 0; j < n; j++) moved = fmax(moved, fabs(pm->params[t->off + j] - start[t->off + j]));
        CHECKF(fe < 1e-4, "%s: final %s rel err %.3g vs PEFT + torch AdamW (tol 1e-4)", name, t->name, fe);
        CHECKF(moved > 1e-4, "%s: %s did not move (%.3g): vacuous", name, t->name, moved);
        worst = fmax(worst, fe);
        free(rf);
    }
    printf("%-15s %d AdamW steps (%d clipped): loss %.5f -> %.5f, worst final rel err %.2e over %d tensors\n", name, S, clipped,
           rl[0], rl[S - 1], worst, pm->n_tensors);
    cpt_acts_free(a);
    cpt_adamw_free(opt);
    free(start), free(g), free(tgt), free(ids), free(labels), free(rl), free(rn);
    cpt_st_close(ref);
    cpt_lora_free(lo);
    cpt_model_free(m);
    return 0;
}

int main(void) {
    fx_root = tu_env("CPT_FIXTURES");
    src = tu_env("CPT_SRC");
    tmp = tu_env("CPT_TMP");
    if (!fx_root || !src || !tmp) TEST_SKIP("CPT_FIXTURES / CPT_SRC / CPT_TMP not set");
    if (run_case("llama_gqa_tied", "q_proj,v_proj,o_proj,down_proj", "embed_tokens", 4, 8, 0) == 77 ||
        run_case("qwen3", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", "lm_head", 3, 6, 1) == 77)
        TEST_SKIP("peft is not installed (pip install -r tests/requirements.txt)");
    TEST_END();
}

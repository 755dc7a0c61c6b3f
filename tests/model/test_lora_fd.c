/* test_lora_fd.c: the LoRA backward (forward.c lora_bwd: dB, dA and the dx it adds)
 * and the modules_to_save gradients, checked against central finite differences of the
 * whole model's loss, on the float64 reference backend (cpt_backend_ref: float64 inside
 * every kernel, fp32 between them) for small random models: Llama (GQA, tied, LoRA on
 * all seven linears + embed_tokens), Qwen3 (q/k RMSNorm, GQA, untied, LoRA on a subset
 * + embed_tokens + lm_head). B is set to random values (PEFT's zero init would make dA
 * vanish). Also: with B = 0 the adapted model's logits equal the base model's bit for
 * bit, the base model gets no gradient (grads = NULL), and the merged model
 * (W += s B A) gives the adapted logits. Dropout (p = 0.3): with a fixed key the loss is
 * one function of the parameters and the FD holds for it, the key fixes the mask and another
 * key changes it, no key means no dropout, and recompute full gives the same gradients bitwise.
 *
 * FD: loss = sum of token losses, step h = 1e-2 (the actual step (p+h)-(p-h) as the
 * divisor). Error per tensor: max |num - ana| over the sampled entries / max |ana| over
 * the tensor, must be < 5e-3. The fp32 storage between kernels gives the loss (~40) a
 * noise of ~1e-5 absolute, i.e. ~1e-3 on a difference quotient over 2e-2, and the
 * O(h^2) truncation is ~1e-4 here; a wrong or missing term is O(1). Merge: logits max
 * abs difference < 1e-4 (fp32 rounding of W + s B A vs the two-path sum). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/backend.h"
#include "cpt/lora.h"
#include "testutil.h"

#define FD_H 1e-2
#define FD_TOL 5e-3
#define N_SAMPLE 5

static int make(cpt_model **out, int arch, uint64_t seed) {
    cpt_config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 29, c.hidden_size = 16, c.n_layers = 2, c.head_dim = 8, c.intermediate_size = 20;
    c.max_pos = 64, c.rms_eps = 1e-6, c.rope_theta = 10000, c.partial_rotary_factor = 1;
    c.bos_id = 1, c.eos_id = 2;
    if (arch == 0) {
        c.arch = CPT_ARCH_LLAMA, c.n_heads = 4, c.n_kv_heads = 2, c.tie_embeddings = 1;
        snprintf(c.architecture, sizeof c.architecture, "LlamaForCausalLM");
        snprintf(c.model_type, sizeof c.model_type, "llama");
    } else {
        c.arch = CPT_ARCH_QWEN3, c.n_heads = 4, c.n_kv_heads = 2, c.qk_norm = 1;
        snprintf(c.architecture, sizeof c.architecture, "Qwen3ForCausalLM");
        snprintf(c.model_type, sizeof c.model_type, "qwen3");
    }
    cpt_err e = {0};
    *out = NULL;
    int rc = cpt_model_create(out, &c, &e);
    if (rc) {
        fprintf(stderr, "model: %s\n", e.msg);
        return rc;
    }
    cpt_model_init_random(*out, seed, 0.3f);
    if ((rc = cpt_model_set_backend(*out, cpt_backend_ref(), &e))) fprintf(stderr, "backend: %s\n", e.msg);
    return rc;
}

static double loss_of(cpt_model *m, cpt_acts *a, const cpt_batch *b, float *logits) {
    double ls = 0;
    long long nv = 0;
    cpt_err e = {0};
    if (cpt_model_step(m, a, b, NULL, 1.0f, NULL, &ls, &nv, logits, &e)) {
        fprintf(stderr, "step: %s\n", e.msg);
        return NAN;
    }
    return ls;
}

static uint64_t rng = 12345;
static double urand(void) { return (cpt_splitmix64(&rng) >> 11) * 0x1.0p-53; }

static void run_case(int arch, unsigned targets, int save_embed, int save_lm_head, int rslora, double dropout) {
    cpt_model *m = NULL;
    if (make(&m, arch, 7 + arch)) {
        CHECK(0);
        return;
    }
    const int B = 2, T = 6, N = B * T, V = m->cfg.vocab_size;
    int32_t ids[12], tgt[12];
    for (int i = 0; i < N; i++) ids[i] = (int32_t)(cpt_splitmix64(&rng) % (uint64_t)V);
    for (int i = 0; i < N; i++) tgt[i] = (i % T == T - 1) ? -1 : ids[i + 1];
    cpt_batch b = {B, T, ids, tgt, NULL, NULL};
    float *base_logits = malloc(sizeof(float) * (size_t)N * V), *logits = malloc(sizeof(float) * (size_t)N * V);
    cpt_err e = {0};
    cpt_acts *a0 = NULL;
    CHECK_OK(cpt_acts_create(&a0, m, B, T, 0, &e), &e);
    double base_loss = loss_of(m, a0, &b, base_logits);
    cpt_acts_free(a0);

    cpt_lora_cfg lc = {.rank = 3, .alpha = 5, .targets = targets, .save_embed = save_embed,
                       .save_lm_head = save_lm_head, .use_rslora = rslora, .dropout = dropout};
    cpt_lora *lo = NULL;
    CHECK_OK(cpt_lora_create(&lo, m, &lc, 99, &e), &e);
    if (!lo) return;
    CHECK(fabsf(lo->scale - (float)(rslora ? 5 / sqrt(3.0) : 5 / 3.0)) < 1e-6f);
    cpt_model *pm = lo->pm;
    cpt_acts *a = NULL;
    CHECK_OK(cpt_acts_create(&a, m, B, T, 1, &e), &e);
    /* B = 0 (PEFT init): the adapted model is the base model exactly. */
    double l0 = loss_of(m, a, &b, logits);
    CHECKF(l0 == base_loss && !memcmp(logits, base_logits, sizeof(float) * (size_t)N * V),
           "B = 0 changes the model: loss %.9g vs %.9g", l0, base_loss);
    /* A's init bound 1/sqrt(in) and B = 0. */
    for (int i = 0; i < pm->n_tensors; i++) {
        const cpt_tensor *t = &pm->tensors[i];
        if (!strstr(t->name, "lora_")) continue;
        double mx = 0;
        for (size_t j = 0; j < t->numel; j++) mx = fmax(mx, fabs(pm->params[t->off + j]));
        if (strstr(t->name, "lora_B")) CHECKF(mx == 0, "%s not zero at init", t->name);
        else CHECKF(mx > 0.5 / sqrt((double)t->shape[1]) && mx <= 1 / sqrt((double)t->shape[1]),
                    "%s init max %.4f outside (0.5, 1] / sqrt(%lld)", t->name, mx, (long long)t->shape[1]);
    }
    /* Random B, and perturbed modules_to_save copies (so they differ from the base). */
    for (int i = 0; i < pm->n_tensors; i++) {
        const cpt_tensor *t = &pm->tensors[i];
        int isB = strstr(t->name, "lora_B") != NULL, isA = strstr(t->name, "lora_A") != NULL;
        for (size_t j = 0; j < t->numel; j++)
            if (isB) pm->params[t->off + j] = (float)(0.6 * (urand() - 0.5));
            else if (!isA) pm->params[t->off + j] += (float)(0.1 * (urand() - 0.5));
    }
    float *g = calloc(pm->n_params, sizeof(float));
    if (dropout > 0) {
        /* Dropout: a fixed key for every evaluation below, so the loss is a fixed function of
         * the parameters (one mask) and the FD checks the backward of that function. Without a
         * key (or in inference) it is off: the loss is the undropped one. */
        double l_nokey = loss_of(m, a, &b, NULL);
        lo->drop_key = 0xD0D0;
        double l_key = loss_of(m, a, &b, NULL), l_key2 = loss_of(m, a, &b, NULL);
        lo->drop_key = 0xD0D1;
        double l_other = loss_of(m, a, &b, NULL);
        lo->drop_key = 0xD0D0;
        CHECKF(l_key == l_key2 && l_key != l_nokey && l_other != l_key,
               "dropout: the key fixes the mask (%.9g %.9g), changes the loss (%.9g without) and another key another mask (%.9g)", l_key,
               l_key2, l_nokey, l_other);
        /* recompute rebuilds the same masks: the gradients equal the stored run's bitwise */
        float *g2 = calloc(pm->n_params, sizeof(float));
        cpt_acts *ar = NULL;
        CHECK_OK(cpt_acts_create_ex(&ar, m, B, T, 1, CPT_RECOMPUTE_FULL, &e), &e);
        double l1 = 0, l2 = 0;
        long long n1 = 0, n2 = 0;
        lo->grads = g;
        CHECK_OK(cpt_model_step(m, a, &b, NULL, 1.0f, NULL, &l1, &n1, NULL, &e), &e);
        lo->grads = g2;
        if (ar) CHECK_OK(cpt_model_step(m, ar, &b, NULL, 1.0f, NULL, &l2, &n2, NULL, &e), &e);
        lo->grads = NULL;
        CHECKF(l1 == l2 && !memcmp(g, g2, sizeof(float) * pm->n_params), "dropout + recompute full: loss %.9g vs %.9g, gradients differ",
               l1, l2);
        memset(g, 0, sizeof(float) * pm->n_params);
        cpt_acts_free(ar);
        free(g2);
    }
    lo->grads = g;
    double ls = 0;
    long long nv = 0;
    CHECK_OK(cpt_model_step(m, a, &b, NULL, 1.0f, NULL, &ls, &nv, logits, &e), &e);
    lo->grads = NULL;
    CHECK(nv == N - B);
    for (int i = 0; i < pm->n_tensors; i++) {
        const cpt_tensor *t = &pm->tensors[i];
        double amax = 0;
        for (size_t j = 0; j < t->numel; j++) amax = fmax(amax, fabs(g[t->off + j]));
        double md = 0;
        for (int k = 0; k < N_SAMPLE; k++) {
            size_t j = (size_t)(urand() * (double)t->numel);
            if (strstr(t->name, "embed_tokens")) j = (size_t)ids[k] * (size_t)m->cfg.hidden_size + (size_t)k; /* rows in use */
            float *p = pm->params + t->off + j, s0 = *p, up = (float)(s0 + FD_H), dn = (float)(s0 - FD_H);
            *p = up;
            double lp = loss_of(m, a, &b, NULL);
            *p = dn;
            double lm = loss_of(m, a, &b, NULL);
            *p = s0;
            double num = (lp - lm) / ((double)up - (double)dn);
            md = fmax(md, fabs(num - g[t->off + j]));
        }
        double rel = md / (amax > 1e-12 ? amax : 1e-12);
        CHECKF(rel < FD_TOL, "arch %d%s %s: FD rel err %.3e (tol %.0e)", arch, dropout > 0 ? " dropout" : "", t->name, rel, FD_TOL);
        CHECKF(amax > 1e-3, "arch %d %s: gradient ~0 (max %.3e), the check would be vacuous", arch, t->name, amax);
        if (i < 3 || rel > FD_TOL) printf("  arch %d%s %-62s FD rel err %.2e (max |g| %.3f)\n", arch, dropout > 0 ? " dropout" : "", t->name, rel, amax);
    }
    lo->drop_key = 0;
    /* Merge: W + s B A (and the copies) in the base weights gives the adapted logits. */
    double la = loss_of(m, a, &b, logits);
    cpt_acts_free(a);
    if (m->cfg.tie_embeddings && save_embed) {
        /* the trained embedding copy and the frozen tied LM head cannot be one tensor */
        CHECK(cpt_lora_merge(lo, &e) == CPT_EUNSUPPORTED && strstr(e.msg, "HINT"));
        e = (cpt_err){0};
        for (int i = 0; i < pm->n_tensors; i++)
            if (strstr(pm->tensors[i].name, "embed_tokens"))
                memcpy(pm->params + pm->tensors[i].off, lo->base_embed, sizeof(float) * pm->tensors[i].numel);
        CHECK_OK(cpt_acts_create(&a, m, B, T, 0, &e), &e);
        la = loss_of(m, a, &b, logits); /* the copy equal to the base again: now mergeable */
        cpt_acts_free(a);
    }
    CHECK_OK(cpt_lora_merge(lo, &e), &e);
    cpt_lora_free(lo);
    CHECK(m->lora == NULL);
    CHECK_OK(cpt_acts_create(&a, m, B, T, 0, &e), &e);
    double lmg = loss_of(m, a, &b, base_logits);
    double md = 0;
    for (int i = 0; i < N * V; i++) md = fmax(md, fabs(logits[i] - base_logits[i]));
    CHECKF(md < 1e-4, "arch %d: merged logits differ by %.3e (tol 1e-4); loss %.6f vs %.6f", arch, md, lmg, la);
    printf("arch %d: merge max |logit diff| %.2e\n", arch, md);
    cpt_acts_free(a);
    free(g), free(logits), free(base_logits);
    cpt_model_free(m);
}

static void bad_configs(void) {
    cpt_model *m = NULL;
    if (make(&m, 0, 3)) return;
    cpt_err e = {0};
    cpt_lora *lo = NULL;
    cpt_lora_cfg c = {.rank = 0, .alpha = 8, .targets = CPT_LORA_ALL_LINEAR};
    CHECK(cpt_lora_create(&lo, m, &c, 1, &e) == CPT_EINVAL && strstr(e.msg, "lora.rank"));
    c.rank = 4, c.save_lm_head = 1;
    e = (cpt_err){0};
    CHECK(cpt_lora_create(&lo, m, &c, 1, &e) == CPT_EINVAL && strstr(e.msg, "HINT"));
    c.save_lm_head = 0, c.dropout = 1.0;
    e = (cpt_err){0};
    CHECK(cpt_lora_create(&lo, m, &c, 1, &e) == CPT_EINVAL && strstr(e.msg, "lora.dropout"));
    c.dropout = 0, c.targets = 0;
    e = (cpt_err){0};
    CHECK(cpt_lora_create(&lo, m, &c, 1, &e) == CPT_EINVAL && strstr(e.msg, "lora.targets"));
    CHECK(lo == NULL && m->lora == NULL);
    CHECK(cpt_lora_target_bits("all-linear") == CPT_LORA_ALL_LINEAR && cpt_lora_target_bits("o_proj") == 1u << CPT_LORA_O &&
          cpt_lora_target_bits("lm_head") == 0);
    cpt_model_free(m);
}

int main(void) {
    bad_configs();
    run_case(0, CPT_LORA_ALL_LINEAR, 1, 0, 0, 0.0);
    run_case(1, (1u << CPT_LORA_Q) | (1u << CPT_LORA_V) | (1u << CPT_LORA_O) | (1u << CPT_LORA_DOWN), 1, 1, 1, 0.0);
    run_case(0, CPT_LORA_ALL_LINEAR, 0, 0, 0, 0.3); /* dropout */
    run_case(1, (1u << CPT_LORA_Q) | (1u << CPT_LORA_K) | (1u << CPT_LORA_GATE) | (1u << CPT_LORA_DOWN), 0, 1, 0, 0.3);
    TEST_END();
}

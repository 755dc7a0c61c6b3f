/* tiny_models.h: the small random model shapes the model tests share (GQA tied, biases
 * untied, the Qwen3 q/k norm, MHA with every bias and partial RoPE) and a builder. */
#ifndef CPT_TESTS_TINY_MODELS_H
#define CPT_TESTS_TINY_MODELS_H

#include <stdio.h>
#include <string.h>

#include "cpt/model.h"
#include "testutil.h"

typedef struct {
    const char *name;
    int V, D, L, H, KV, hd, I, tied, qkv_bias, o_bias, mlp_bias, qk_norm;
    double prf;
} tcfg;

static const tcfg CFGS[] = {
    {"llama-gqa-tied", 53, 32, 3, 4, 2, 8, 48, 1, 0, 0, 0, 0, 1.0},
    {"qwen2-bias-untied", 61, 24, 2, 6, 2, 4, 40, 0, 1, 0, 0, 0, 1.0},
    {"qwen3-qknorm", 47, 32, 2, 4, 1, 16, 36, 0, 0, 0, 0, 1, 1.0},
    {"all-bias-mha-partial-rope", 40, 16, 2, 2, 2, 8, 24, 1, 1, 1, 1, 0, 0.5},
};

/* A model of shape t with weights drawn from (seed, std); NULL (and a failed check) on error. */
static inline cpt_model *tiny_model(const tcfg *t, uint64_t seed, float std) {
    cpt_config c;
    memset(&c, 0, sizeof c);
    c.arch = t->qk_norm ? CPT_ARCH_QWEN3 : (t->qkv_bias ? CPT_ARCH_QWEN2 : CPT_ARCH_LLAMA);
    snprintf(c.architecture, sizeof c.architecture, "%s", t->qk_norm ? "Qwen3ForCausalLM" : "LlamaForCausalLM");
    snprintf(c.model_type, sizeof c.model_type, "%s", t->qk_norm ? "qwen3" : "llama");
    c.vocab_size = t->V, c.hidden_size = t->D, c.n_layers = t->L, c.n_heads = t->H, c.n_kv_heads = t->KV;
    c.head_dim = t->hd, c.intermediate_size = t->I, c.max_pos = 256, c.rms_eps = 1e-6, c.rope_theta = 10000;
    c.partial_rotary_factor = t->prf, c.tie_embeddings = t->tied, c.qkv_bias = t->qkv_bias, c.o_bias = t->o_bias;
    c.mlp_bias = t->mlp_bias, c.qk_norm = t->qk_norm, c.bos_id = c.eos_id = -1;
    cpt_model *m = NULL;
    cpt_err e = {0};
    CHECK_OK(cpt_model_create(&m, &c, &e), &e);
    if (m) cpt_model_init_random(m, seed, std);
    return m;
}

#endif

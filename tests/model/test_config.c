/* test_config.c: config.json parsing (defaults per architecture, bias/norm flags) and the
 * must-reject table: each bad config gives the right status and a message naming the
 * file and the field; plus bad llama2.c files and HF directories whose tensors do not
 * match their config. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cpt/fileio.h"
#include "cpt/model.h"
#include "cpt/safetensors.h"
#include "testutil.h"

#define BASE "\"vocab_size\": 32, \"hidden_size\": 16, \"intermediate_size\": 24, \"num_hidden_layers\": 1, "

static void reject(const char *json, int code, const char *needle) {
    cpt_config c;
    cpt_err e = {0};
    int rc = cpt_config_parse(&c, json, strlen(json), "dir/config.json", &e);
    CHECKF(rc == code, "expected %d got %d for %s (%s)", code, rc, json, e.msg);
    CHECKF(strstr(e.msg, "dir/config.json") != NULL, "message lacks the file: %s", e.msg);
    CHECKF(strstr(e.msg, needle) != NULL, "message lacks '%s': %s", needle, e.msg);
    if (rc == 0) cpt_config_free(&c);
}

static void accept(const char *json, cpt_config *c) {
    cpt_err e = {0};
    CHECK_OK(cpt_config_parse(c, json, strlen(json), "ok/config.json", &e), &e);
}

int main(void) {
    cpt_config c;
    /* Defaults and flags per architecture. */
    accept("{\"architectures\": [\"LlamaForCausalLM\"], " BASE "\"num_attention_heads\": 4}", &c);
    CHECK(c.arch == CPT_ARCH_LLAMA && c.n_kv_heads == 4 && c.head_dim == 4 && c.rms_eps == 1e-6);
    CHECK(c.rope_theta == 10000.0 && !c.tie_embeddings && !c.qkv_bias && !c.qk_norm && c.max_pos == 2048);
    cpt_config_free(&c);
    accept("{\"architectures\": [\"Qwen2ForCausalLM\"], " BASE "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"tie_word_embeddings\": true, \"eos_token_id\": [7, 8]}", &c);
    CHECK(c.arch == CPT_ARCH_QWEN2 && c.qkv_bias && !c.o_bias && c.tie_embeddings && c.n_kv_heads == 2 && c.eos_id == 7);
    cpt_config_free(&c);
    accept("{\"architectures\": [\"Qwen3ForCausalLM\"], " BASE "\"num_attention_heads\": 4, \"head_dim\": 8}", &c);
    CHECK(c.qk_norm && c.head_dim == 8 && !c.qkv_bias);
    cpt_config_free(&c);
    accept("{\"architectures\": [\"MistralForCausalLM\"], " BASE "\"num_attention_heads\": 2, \"sliding_window\": 4096}", &c);
    CHECK(c.arch == CPT_ARCH_MISTRAL && c.sliding_window == 4096);
    cpt_config_free(&c);
    accept("{\"model_type\": \"llama\", " BASE "\"num_attention_heads\": 4, \"attention_bias\": true, \"rope_scaling\": null, \"head_dim\": null}", &c);
    CHECK(c.qkv_bias && c.o_bias && c.head_dim == 4);
    cpt_config_free(&c);

    /* Must reject. */
    reject("{\"architectures\": [\"LlamaForCausalLM\"], " BASE "\"rope_theta\": 10000.0}", CPT_EFORMAT, "num_attention_heads");
    reject("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 16, \"intermediate_size\": 24, \"num_hidden_layers\": 1, \"num_attention_heads\": 4}", CPT_EFORMAT, "vocab_size");
    reject("{\"architectures\": [\"GPT2LMHeadModel\"], " BASE "\"num_attention_heads\": 4}", CPT_EUNSUPPORTED, "architectures");
    reject("{" BASE "\"num_attention_heads\": 4}", CPT_EFORMAT, "architectures");
    reject("{\"architectures\": [\"LlamaForCausalLM\"], " BASE "\"num_attention_heads\": 6, \"num_key_value_heads\": 4}", CPT_EFORMAT, "num_key_value_heads");
    reject("{\"architectures\": [\"LlamaForCausalLM\"], " BASE "\"num_attention_heads\": 3}", CPT_EFORMAT, "num_attention_heads");
    reject("{\"architectures\": [\"LlamaForCausalLM\"], " BASE "\"num_attention_heads\": 4, \"head_dim\": 5}", CPT_EFORMAT, "head_dim");
    reject("{\"architectures\": [\"LlamaForCausalLM\"], " BASE "\"num_attention_heads\": \"4\"}", CPT_EFORMAT, "num_attention_heads");
    reject("{\"architectures\": [\"LlamaForCausalLM\"], " BASE "\"num_attention_heads\": 4, \"num_hidden_layers\": 0}", CPT_EFORMAT, "num_hidden_layers");
    reject("{\"architectures\": [\"LlamaForCausalLM\"], " BASE "\"num_attention_heads\": 4, \"hidden_act\": \"gelu\"}", CPT_EUNSUPPORTED, "hidden_act");
    reject("{\"architectures\": [\"LlamaForCausalLM\"], " BASE "\"num_attention_heads\": 4, \"rms_norm_eps\": -1}", CPT_EFORMAT, "rms_norm_eps");
    reject("{\"architectures\": [\"LlamaForCausalLM\"], " BASE "\"num_attention_heads\": 4, \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0, \"attention_factor\": 0}}", CPT_EFORMAT, "attention_factor");
    reject("{\"architectures\": [\"LlamaForCausalLM\"], " BASE "\"num_attention_heads\": 4, \"rope_scaling\": {\"rope_type\": \"longrope\", \"factor\": 4.0, \"short_factor\": [1, 1], \"long_factor\": [1]}}", CPT_EFORMAT, "long_factor");
    reject("{\"architectures\": [\"LlamaForCausalLM\"], " BASE "\"num_attention_heads\": 4, \"rope_scaling\": {\"rope_type\": \"longrope\", \"short_factor\": [1, 1], \"long_factor\": [1, 2]}}", CPT_EFORMAT, "factor");
    reject("{\"architectures\": [\"LlamaForCausalLM\"], " BASE "\"num_attention_heads\": 4, \"partial_rotary_factor\": 0.3}", CPT_EFORMAT, "partial_rotary_factor");
    {
        /* Every type parses; the legacy "type" key wins over "rope_type" for Llama (LlamaConfig copies it). */
        accept("{\"architectures\": [\"LlamaForCausalLM\"], " BASE "\"num_attention_heads\": 4, \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0, \"beta_fast\": 16, \"mscale\": 0.7, \"mscale_all_dim\": 0.5}}", &c);
        CHECK(c.rope_scaling.type == CPT_ROPE_YARN && c.rope_scaling.beta_fast == 16 && c.rope_scaling.beta_slow == 0 && c.rope_scaling.mscale == 0.7);
        CHECK(cpt_config_context_len(&c) == 4 * 2048);
        cpt_config_free(&c);
        accept("{\"architectures\": [\"LlamaForCausalLM\"], " BASE "\"num_attention_heads\": 4, \"rope_scaling\": {\"rope_type\": \"linear\", \"type\": \"dynamic\", \"factor\": 2}}", &c);
        CHECK(c.rope_scaling.type == CPT_ROPE_DYNAMIC && c.rope_scaling.factor == 2.0);
        cpt_config_free(&c);
        accept("{\"architectures\": [\"MistralForCausalLM\"], " BASE "\"num_attention_heads\": 4, \"rope_scaling\": {\"rope_type\": \"linear\", \"type\": \"dynamic\", \"factor\": 2}}", &c);
        CHECK(c.rope_scaling.type == CPT_ROPE_LINEAR);
        cpt_config_free(&c);
        accept("{\"architectures\": [\"LlamaForCausalLM\"], " BASE "\"num_attention_heads\": 2, \"partial_rotary_factor\": 0.5, \"rope_scaling\": {\"rope_type\": \"longrope\", \"factor\": 4.0, \"short_factor\": [1, 1], \"long_factor\": [1, 2]}}", &c);
        CHECK(cpt_config_rot_dim(&c) == 4 && c.rope_scaling.n_factors == 2 && c.rope_scaling.long_factor[1] == 2.0);
        cpt_config_free(&c);
    }
    reject("{\"architectures\": [\"LlamaForCausalLM\"], " BASE "\"num_attention_heads\": 4, \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0}}", CPT_EFORMAT, "low_freq_factor");
    reject("{\"architectures\": [\"LlamaForCausalLM\"], " BASE "\"num_attention_heads\": 4, \"rope_scaling\": {\"rope_type\": \"bogus\"}}", CPT_EFORMAT, "bogus");
    reject("{\"architectures\": [\"LlamaForCausalLM\"], " BASE "\"num_attention_heads\": 4, \"rope_scaling\": {\"type\": \"linear\", \"factor\": 0.5}}", CPT_EFORMAT, "factor");
    reject("{\"architectures\": [\"LlamaForCausalLM\"], " BASE "\"num_attention_heads\": 4,}", CPT_EFORMAT, "line 1");
    reject("{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 3, \"vocab_size\": 4}", CPT_EFORMAT, "duplicate");
    reject("[1, 2]", CPT_EFORMAT, "object");
    reject("{\"architectures\": [\"Llama\xff\"]}", CPT_EFORMAT, "0xff");

    /* A HF directory whose tensors do not match its config. */
    const char *tmp = tu_env("CPT_TMP");
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/test_config_%d", tmp ? tmp : "/tmp", (int)getpid());
    cpt_err e = {0};
    CHECK_OK(cpt_mkdirs(dir, &e), &e);
    accept("{\"architectures\": [\"LlamaForCausalLM\"], " BASE "\"num_attention_heads\": 4, \"tie_word_embeddings\": true}", &c);
    cpt_model *m = NULL;
    CHECK_OK(cpt_model_create(&m, &c, &e), &e);
    cpt_model_init_random(m, 1, 0.02f);
    CHECK_OK(cpt_model_save_hf(m, dir, CPT_DT_F32, 0, NULL, &e), &e);
    cpt_model *back = NULL;
    CHECK_OK(cpt_model_load_hf(&back, dir, &e), &e);
    if (back) CHECK(memcmp(back->params, m->params, sizeof(float) * m->n_params) == 0);
    cpt_model_free(back);
    /* Now claim 2 layers in config.json: tensors of layer 1 are missing. */
    snprintf(path, sizeof path, "%s/config.json", dir);
    const char *two = "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 32, \"hidden_size\": 16, \"intermediate_size\": 24, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"tie_word_embeddings\": true}";
    CHECK_OK(cpt_write_file_atomic(path, two, strlen(two), &e), &e);
    cpt_err e2 = {0};
    CHECK(cpt_model_load_hf(&back, dir, &e2) == CPT_EFORMAT);
    CHECKF(strstr(e2.msg, "model.layers.1.") != NULL, "%s", e2.msg);
    /* Wrong shape: intermediate size 20 instead of 24. */
    const char *shape = "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 32, \"hidden_size\": 16, \"intermediate_size\": 20, \"num_hidden_layers\": 1, \"num_attention_heads\": 4, \"tie_word_embeddings\": true}";
    CHECK_OK(cpt_write_file_atomic(path, shape, strlen(shape), &e), &e);
    cpt_err e3 = {0};
    CHECK(cpt_model_load_hf(&back, dir, &e3) == CPT_EFORMAT);
    CHECKF(strstr(e3.msg, "model.safetensors") && strstr(e3.msg, "mlp.") && strstr(e3.msg, "shape"), "%s", e3.msg);
    /* Untied config over a tied checkpoint: lm_head.weight missing. */
    const char *untied = "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 32, \"hidden_size\": 16, \"intermediate_size\": 24, \"num_hidden_layers\": 1, \"num_attention_heads\": 4}";
    CHECK_OK(cpt_write_file_atomic(path, untied, strlen(untied), &e), &e);
    cpt_err e4 = {0};
    CHECK(cpt_model_load_hf(&back, dir, &e4) == CPT_EFORMAT);
    CHECKF(strstr(e4.msg, "lm_head.weight") != NULL, "%s", e4.msg);
    cpt_err e5 = {0};
    CHECK(cpt_model_load_hf(&back, "/nonexistent/model", &e5) == CPT_ENOTFOUND);
    CHECKF(strstr(e5.msg, "/nonexistent/model") != NULL, "%s", e5.msg);

    /* llama2.c: truncated file and implausible header. */
    snprintf(path, sizeof path, "%s/bad.bin", dir);
    int32_t hdr[7] = {64, 172, 5, 8, 4, 512, 512};
    CHECK_OK(cpt_write_file_atomic(path, hdr, sizeof hdr, &e), &e);
    cpt_err e6 = {0};
    CHECK(cpt_model_load_llama2c(&back, path, &e6) == CPT_EFORMAT);
    CHECKF(strstr(e6.msg, "bad.bin") && strstr(e6.msg, "truncated"), "%s", e6.msg);
    int32_t hdr2[7] = {64, 172, 5, 7, 4, 512, 512};
    CHECK_OK(cpt_write_file_atomic(path, hdr2, sizeof hdr2, &e), &e);
    cpt_err e7 = {0};
    CHECK(cpt_model_load_llama2c(&back, path, &e7) == CPT_EFORMAT);
    CHECKF(strstr(e7.msg, "implausible") != NULL, "%s", e7.msg);
    CHECK_OK(cpt_write_file_atomic(path, "ab", 2, &e), &e);
    cpt_err e8 = {0};
    CHECK(cpt_model_load_llama2c(&back, path, &e8) == CPT_EFORMAT);

    cpt_model_free(m);
    cpt_config_free(&c);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    TEST_END();
}

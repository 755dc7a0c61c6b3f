/* llama2c.c: import of llama2.c checkpoints (the version-0 "legacy" .bin of run.c:
 * seven int32 header fields, then fp32 weights). Rows of wq/wk are permuted from
 * llama2.c's interleaved RoPE pairs to the HF rotate_half layout (methods.md 1.8):
 *   hf_row(h, c*hd/2 + j) = meta_row(h, 2j + c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/fileio.h"
#include "cpt/model.h"

static void permute_rows(float *dst, const float *src, int n_heads, int hd, int cols) {
    int half = hd / 2;
    for (int h = 0; h < n_heads; h++)
        for (int j = 0; j < half; j++)
            for (int c = 0; c < 2; c++)
                memcpy(dst + ((size_t)h * hd + (size_t)c * half + j) * cols,
                       src + ((size_t)h * hd + 2 * (size_t)j + c) * cols, sizeof(float) * (size_t)cols);
}

int cpt_model_load_llama2c(cpt_model **out, const char *path, cpt_err *err) {
    *out = NULL;
    cpt_map map;
    int rc = cpt_map_open(&map, path, err);
    if (rc) return rc;
    if (map.size < 28) {
        cpt_map_close(&map);
        return cpt_err_set(err, CPT_EFORMAT, "%s: %zu bytes is too short for a llama2.c header (28 bytes)", path, map.size);
    }
    int32_t h[7];
    memcpy(h, map.data, sizeof h);
    if ((uint32_t)h[0] == 0x616b3432u) {
        cpt_map_close(&map);
        return cpt_err_set(err, CPT_EUNSUPPORTED, "%s: llama2.c export format version 1/2 ('ak42' magic) is not supported. HINT: export with llama2.c's legacy_export (version 0)", path);
    }
    int D = h[0], I = h[1], L = h[2], H = h[3], KV = h[4], V = h[5] < 0 ? -h[5] : h[5], S = h[6];
    int shared = h[5] > 0;
    if (D <= 0 || I <= 0 || L <= 0 || H <= 0 || KV <= 0 || V <= 0 || S <= 0 || D % H || H % KV || (D / H) % 2 ||
        D > (1 << 16) || I > (1 << 18) || L > 1024 || V > (1 << 22) || S > (1 << 22)) {
        cpt_map_close(&map);
        return cpt_err_set(err, CPT_EFORMAT, "%s: implausible llama2.c header (dim %d, hidden %d, layers %d, heads %d, kv heads %d, vocab %d, seq %d). HINT: is this a llama2.c .bin checkpoint?",
                           path, D, I, L, H, KV, V, S);
    }
    int hd = D / H, kd = KV * hd;
    /* Expected size in floats, computed in 64 bits. */
    uint64_t n = (uint64_t)V * D + (uint64_t)L * D + (uint64_t)L * D * D + 2ull * L * kd * D + (uint64_t)L * D * D +
                 (uint64_t)L * D + 3ull * L * I * D + D + (uint64_t)S * hd + (shared ? 0 : (uint64_t)V * D);
    uint64_t expect = 28 + 4 * n;
    if (map.size != expect) {
        cpt_map_close(&map);
        return cpt_err_set(err, CPT_EFORMAT, "%s: file is %zu bytes but its header implies %llu. HINT: the file is truncated or not a version-0 llama2.c checkpoint",
                           path, map.size, (unsigned long long)expect);
    }
    cpt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.arch = CPT_ARCH_LLAMA;
    snprintf(cfg.architecture, sizeof cfg.architecture, "LlamaForCausalLM");
    snprintf(cfg.model_type, sizeof cfg.model_type, "llama");
    cfg.vocab_size = V, cfg.hidden_size = D, cfg.intermediate_size = I, cfg.n_layers = L;
    cfg.n_heads = H, cfg.n_kv_heads = KV, cfg.head_dim = hd, cfg.max_pos = S;
    cfg.rms_eps = 1e-5, cfg.rope_theta = 10000.0, cfg.partial_rotary_factor = 1.0;
    cfg.tie_embeddings = shared, cfg.bos_id = 1, cfg.eos_id = 2;
    cpt_model *m = NULL;
    if ((rc = cpt_model_create(&m, &cfg, err))) {
        cpt_map_close(&map);
        return rc;
    }
    /* The file is only 4-byte aligned after the header: copy through a float buffer. */
    float *all = malloc(sizeof(float) * n);
    if (!all) {
        cpt_map_close(&map);
        cpt_model_free(m);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory reading %s", path);
    }
    memcpy(all, map.data + 28, 4 * n);
    cpt_map_close(&map);
    const float *p = all;
    cpt_view *w = &m->w;
    memcpy(w->embed, p, sizeof(float) * (size_t)V * D), p += (size_t)V * D;
    for (int l = 0; l < L; l++) memcpy(w->layers[l].attn_norm, p + (size_t)l * D, sizeof(float) * D);
    p += (size_t)L * D;
    for (int l = 0; l < L; l++) permute_rows(w->layers[l].wq, p + (size_t)l * D * D, H, hd, D);
    p += (size_t)L * D * D;
    for (int l = 0; l < L; l++) permute_rows(w->layers[l].wk, p + (size_t)l * kd * D, KV, hd, D);
    p += (size_t)L * kd * D;
    for (int l = 0; l < L; l++) memcpy(w->layers[l].wv, p + (size_t)l * kd * D, sizeof(float) * (size_t)kd * D);
    p += (size_t)L * kd * D;
    for (int l = 0; l < L; l++) memcpy(w->layers[l].wo, p + (size_t)l * D * D, sizeof(float) * (size_t)D * D);
    p += (size_t)L * D * D;
    for (int l = 0; l < L; l++) memcpy(w->layers[l].mlp_norm, p + (size_t)l * D, sizeof(float) * D);
    p += (size_t)L * D;
    for (int l = 0; l < L; l++) memcpy(w->layers[l].wg, p + (size_t)l * I * D, sizeof(float) * (size_t)I * D);
    p += (size_t)L * I * D;
    for (int l = 0; l < L; l++) memcpy(w->layers[l].wd, p + (size_t)l * D * I, sizeof(float) * (size_t)D * I);
    p += (size_t)L * D * I;
    for (int l = 0; l < L; l++) memcpy(w->layers[l].wu, p + (size_t)l * I * D, sizeof(float) * (size_t)I * D);
    p += (size_t)L * I * D;
    memcpy(w->final_norm, p, sizeof(float) * D), p += D;
    p += (size_t)S * hd; /* freq_cis_real and freq_cis_imag: recomputed, not read */
    if (!shared) memcpy(w->lm_head, p, sizeof(float) * (size_t)V * D);
    free(all);
    *out = m;
    return CPT_OK;
}

/* ckpt_bench.c: checkpoint save and load time and size for a random-init model of a
 * real shape (weights + AdamW moments + trainer state, fsync'ed), and the same for a
 * plain HF export. Usage: ckpt_bench [stories15m|smollm135m] [dir] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cpt/checkpoint.h"
#include "cpt/safetensors.h"

static double dir_mib(const char *dir) {
    const char *files[] = {"model.safetensors", "optim.safetensors", "config.json", "trainer_state.json"};
    double t = 0;
    for (int i = 0; i < 4; i++) {
        char p[4200];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        if (stat(p, &st) == 0) t += (double)st.st_size;
    }
    return t / 1048576.0;
}

int main(int argc, char **argv) {
    const char *shape = argc > 1 ? argv[1] : "smollm135m", *dir = argc > 2 ? argv[2] : "/tmp/cpt-ckpt-bench";
    int smol = !strcmp(shape, "smollm135m");
    cpt_config c;
    memset(&c, 0, sizeof c);
    c.arch = CPT_ARCH_LLAMA;
    snprintf(c.architecture, sizeof c.architecture, "LlamaForCausalLM");
    snprintf(c.model_type, sizeof c.model_type, "llama");
    c.vocab_size = smol ? 49152 : 32000, c.hidden_size = smol ? 576 : 288, c.n_layers = smol ? 30 : 6;
    c.n_heads = smol ? 9 : 6, c.n_kv_heads = smol ? 3 : 6, c.head_dim = 64 - (smol ? 0 : 16);
    c.intermediate_size = smol ? 1536 : 768, c.max_pos = 2048, c.rms_eps = 1e-5, c.rope_theta = 1e4;
    c.partial_rotary_factor = 1, c.tie_embeddings = smol, c.bos_id = c.eos_id = -1;
    cpt_err e = {0};
    cpt_model *m = NULL;
    cpt_adamw *o = NULL;
    if (cpt_model_create(&m, &c, &e) || cpt_adamw_create(&o, m, &e)) { fprintf(stderr, "%s\n", e.msg); return 1; }
    cpt_model_init_random(m, 1, 0.02f);
    cpt_ckpt_state st = {0};
    st.step = 1;
    double t0 = cpt_now();
    char *out = NULL;
    if (cpt_ckpt_save(dir, m, o, &st, 1, NULL, &out, &e)) { fprintf(stderr, "%s\n", e.msg); return 1; }
    double ts = cpt_now() - t0;
    cpt_ckpt_state ls;
    t0 = cpt_now();
    if (cpt_ckpt_load(out, m, o, &ls, &e)) { fprintf(stderr, "%s\n", e.msg); return 1; }
    double tl = cpt_now() - t0;
    char ex[4200];
    snprintf(ex, sizeof ex, "%s/export-bf16", dir);
    t0 = cpt_now();
    if (cpt_model_save_hf(m, ex, CPT_DT_BF16, 0, NULL, &e)) { fprintf(stderr, "%s\n", e.msg); return 1; }
    double te = cpt_now() - t0;
    size_t np = 0;
    for (int i = 0; i < m->n_tensors; i++) np += m->tensors[i].numel;
    printf("{\"shape\": \"%s\", \"params\": %zu, \"ckpt_mib\": %.1f, \"save_s\": %.3f, \"load_s\": %.3f, "
           "\"save_mib_per_s\": %.0f, \"export_bf16_mib\": %.1f, \"export_bf16_s\": %.3f}\n",
           shape, np, dir_mib(out), ts, tl, dir_mib(out) / ts, dir_mib(ex), te);
    cpt_ckpt_state_free(&ls);
    free(out);
    cpt_adamw_free(o);
    cpt_model_free(m);
    return 0;
}

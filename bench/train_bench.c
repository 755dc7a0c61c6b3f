/* train_bench.c: throughput of full training steps (forward + backward + clip + AdamW)
 * on random-init models of real shapes; prints one JSON line like the PyTorch peer
 * (../shared/bench/peer_torch_llama.py) plus MFU against the measured FMA peak and
 * peak RSS. bench/run_train_bench.sh runs both side by side.
 * Usage: train_bench --shape stories15m|smollm135m|tiny [--seq T] [--batch B] [--steps S] [--threads N]
 *                    [--recompute none|full|selective] [--warmup W] [--lora R]
 * --precision bf16 multiplies the decoder's linears in bf16 (cpt_model_set_precision; the copy
 * re-rounded after every AdamW step, as cpt train does); the path that ran is printed.
 * --lora R trains a LoRA adapter instead (rank R, alpha 2R, on all seven linears, as
 * `cpt train` with lora.rank: R): gradients and AdamW moments exist only for the adapter.
 * It also times the attention kernels alone on the step's shapes (forward and backward of
 * one layer, times the layers and the forward recomputations the mode does) to report
 * attention's share of the step, and gives MFU twice: with PaLM's attention FLOPs
 * (12*L*H*hd*T per token, full attention) and with causal attention's (half of that, what
 * a kernel that skips masked tiles has to do). Recomputation is never counted. With
 * --lora the weight term is 4N + 6 N_adapter (no weight gradients for the frozen base). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "cpt/backend.h"
#include "cpt/lora.h"
#include "cpt/ops.h"
#include "cpt/optim.h"

typedef struct { const char *name; int dim, layers, heads, kv, ffn, vocab, tied; } shape;
static const shape SHAPES[] = {
    {"tiny", 64, 2, 4, 4, 172, 512, 0},
    {"stories15m", 288, 6, 6, 6, 768, 32000, 0},
    {"stories110m", 768, 12, 12, 12, 2048, 32000, 0},
    {"smollm135m", 576, 30, 9, 3, 1536, 49152, 1},
};

int main(int argc, char **argv) {
    cpt_backend_cpu_select_core(argv);
    const char *sname = "stories15m";
    int T = 256, B = 4, steps = 5, threads = 2, recompute = CPT_RECOMPUTE_NONE, warmup = 1, lora_r = 0, bf16 = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--shape")) sname = argv[i + 1];
        else if (!strcmp(argv[i], "--seq")) T = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) B = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--warmup")) warmup = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--lora")) lora_r = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--precision")) bf16 = !strcmp(argv[i + 1], "bf16");
        else if (!strcmp(argv[i], "--recompute")) {
            const char *v = argv[i + 1];
            recompute = !strcmp(v, "none") ? CPT_RECOMPUTE_NONE : !strcmp(v, "full") ? CPT_RECOMPUTE_FULL
                      : !strcmp(v, "selective") ? CPT_RECOMPUTE_SELECTIVE : -1;
            if (recompute < 0) { fprintf(stderr, "train_bench: --recompute none|full|selective\n"); return 2; }
        }
        else { fprintf(stderr, "train_bench: unknown option %s\n", argv[i]); return 2; }
    }
    const shape *s = NULL;
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++)
        if (!strcmp(SHAPES[i].name, sname)) s = &SHAPES[i];
    if (!s || T < 2 || B < 1 || steps < 1 || threads < 1 || warmup < 0 || lora_r < 0) { fprintf(stderr, "train_bench: bad arguments\n"); return 2; }
    omp_set_num_threads(threads);
    cpt_config c;
    memset(&c, 0, sizeof c);
    c.arch = CPT_ARCH_LLAMA;
    snprintf(c.architecture, sizeof c.architecture, "LlamaForCausalLM");
    snprintf(c.model_type, sizeof c.model_type, "llama");
    c.vocab_size = s->vocab, c.hidden_size = s->dim, c.n_layers = s->layers, c.n_heads = s->heads;
    c.n_kv_heads = s->kv, c.head_dim = s->dim / s->heads, c.intermediate_size = s->ffn, c.max_pos = T;
    c.rms_eps = 1e-5, c.rope_theta = 10000, c.partial_rotary_factor = 1, c.tie_embeddings = s->tied;
    c.bos_id = c.eos_id = -1;
    cpt_err err = {0};
    cpt_model *m = NULL;
    cpt_adamw *opt = NULL;
    cpt_acts *acts = NULL;
    cpt_lora *lo = NULL;
    cpt_lora_cfg lc = {.rank = lora_r, .alpha = 2.0 * lora_r, .targets = CPT_LORA_ALL_LINEAR};
    if (cpt_model_create(&m, &c, &err)) {
        fprintf(stderr, "train_bench: %s\n", err.msg);
        return 1;
    }
    cpt_model_init_random(m, 0, 0.02f);
    /* P: what is trained (the model, or the adapter's parameter set) */
    if (lora_r > 0 && cpt_lora_create(&lo, m, &lc, 1, &err)) {
        fprintf(stderr, "train_bench: %s\n", err.msg);
        return 1;
    }
    cpt_model *P = lo ? lo->pm : m;
    if (bf16 && cpt_model_set_precision(m, CPT_PREC_BF16, &err)) {
        fprintf(stderr, "train_bench: %s\n", err.msg);
        return 1;
    }
    if (cpt_adamw_create(&opt, P, &err) || cpt_acts_create_ex(&acts, m, B, T, 1, recompute, &err)) {
        fprintf(stderr, "train_bench: %s\n", err.msg);
        return 1;
    }
    size_t nparam = 0;
    for (int i = 0; i < m->n_tensors; i++) nparam += m->tensors[i].numel;
    float *grads = cpt_alloc_aligned(sizeof(float) * P->n_params);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)B * T), *tg = malloc(sizeof(int32_t) * (size_t)B * T);
    uint64_t r = 12345;
    for (int i = 0; i < B * T; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((r >> 33) % (uint64_t)s->vocab);
    }
    for (int i = 0; i < B * T; i++) tg[i] = (i % T == T - 1) ? -1 : ids[i + 1];
    cpt_adamw_cfg oc = {1e-4, 0.9, 0.999, 1e-8, 0.01};
    double loss = 0;
    double t0 = 0;
    for (int st = 0; st < warmup + steps; st++) { /* the first `warmup` steps are not timed */
        if (st == warmup) t0 = cpt_now();
        memset(grads, 0, sizeof(float) * P->n_params);
        cpt_batch b = {B, T, ids, tg, NULL, NULL};
        double ls = 0;
        long long nv = 0;
        if (lo) lo->grads = grads;
        if (cpt_model_step(m, acts, &b, lo ? NULL : grads, 1.0f / (float)(B * (T - 1)), NULL, &ls, &nv, NULL, &err)) {
            fprintf(stderr, "train_bench: %s\n", err.msg);
            return 1;
        }
        if (lo) lo->grads = NULL;
        cpt_grad_clip(P, grads, 1.0);
        cpt_adamw_step(opt, P, grads, &oc, oc.lr, NULL, NULL);
        if (!lo) cpt_model_refresh_lowp(m);
        loss = ls / (double)nv;
    }
    double dt = (cpt_now() - t0) / steps, tok = (double)B * T;
    double g6n = 6.0 * (double)nparam * tok / dt / 1e9;
    /* Model FLOPs per token as in PaLM (Chowdhery et al. 2022, appendix B): 6N + 12*L*H*hd*T,
     * where N excludes the input embedding (a lookup, no matmul) unless it is tied to
     * the LM head. This is the MFU numerator; gflops_6N is kept to compare with the peer. */
    double n_mm = (double)nparam - (s->tied ? 0.0 : (double)s->vocab * s->dim);
    /* LoRA: the frozen weights need no weight gradient (2N of the 6N), the adapter's full 6 */
    double w_flops = lo ? 4.0 * n_mm + 6.0 * (double)cpt_lora_n_trainable(lo) : 6.0 * n_mm;
    double flops_tok = w_flops + 12.0 * s->layers * s->heads * (double)(s->dim / s->heads) * T;
    double gmodel = flops_tok * tok / dt / 1e9;
    double flops_tok_causal = w_flops + 6.0 * s->layers * s->heads * (double)(s->dim / s->heads) * T;
    double gmodel_causal = flops_tok_causal * tok / dt / 1e9;
    /* Attention alone: one layer's forward and backward on the step's shapes (causal), with
     * the kernels the step used (bf16 ones in bf16 precision). */
    const cpt_backend *be = m->be;
    int H = s->heads, KV = s->kv, hd = s->dim / s->heads, a16 = m->lowp != NULL;
    size_t nq = (size_t)B * T * H * hd, nk = (size_t)B * T * KV * hd;
    size_t wsb = a16 ? be->attn_workspace_bytes_bf16(B, T, T, H, KV, hd, threads) : be->attn_workspace_bytes(T, T, hd, threads);
    __typeof__(be->attn_fwd) afwd = a16 ? be->attn_fwd_bf16 : be->attn_fwd;
    __typeof__(be->attn_bwd) abwd = a16 ? be->attn_bwd_bf16 : be->attn_bwd;
    float *q = cpt_alloc_aligned(4 * nq), *o = cpt_alloc_aligned(4 * nq), *dq = cpt_alloc_aligned(4 * nq),
          *dO = cpt_alloc_aligned(4 * nq), *k = cpt_alloc_aligned(4 * nk), *v = cpt_alloc_aligned(4 * nk),
          *dk = cpt_alloc_aligned(4 * nk), *dv = cpt_alloc_aligned(4 * nk), *lse = cpt_alloc_aligned(4 * (size_t)B * H * T);
    void *ws = cpt_alloc_aligned(wsb);
    for (size_t i = 0; i < nq; i++) q[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f, dO[i] = q[i] * 0.1f;
    for (size_t i = 0; i < nk; i++) k[i] = (float)((i * 40503u) % 997) * 1e-3f - 0.5f, v[i] = k[i];
    float sc = 1.0f / sqrtf((float)hd);
    afwd(o, lse, q, k, v, NULL, NULL, B, T, T, 0, H, KV, hd, sc, ws, wsb); /* warm */
    double ta = cpt_now();
    afwd(o, lse, q, k, v, NULL, NULL, B, T, T, 0, H, KV, hd, sc, ws, wsb);
    double t_fwd = cpt_now() - ta;
    ta = cpt_now();
    abwd(dq, dk, dv, dO, o, lse, q, k, v, NULL, NULL, B, T, T, 0, H, KV, hd, sc, ws, wsb);
    double t_bwd = cpt_now() - ta;
    int n_fwd = recompute == CPT_RECOMPUTE_FULL ? 2 : 1;
    double attn_share = s->layers * (n_fwd * t_fwd + t_bwd) / dt;
    cpt_free_aligned(q), cpt_free_aligned(o), cpt_free_aligned(dq), cpt_free_aligned(dO), cpt_free_aligned(k);
    cpt_free_aligned(v), cpt_free_aligned(dk), cpt_free_aligned(dv), cpt_free_aligned(lse), cpt_free_aligned(ws);
    double peak = cpt_bench_fma_peak_impl(threads);
    double peak16 = bf16 ? cpt_bench_bf16_peak_impl(threads) : 0.0; /* bf16: MFU against the bf16 dot-product peak too */
    printf("{\"impl\": \"cpt\", \"shape\": \"%s\", \"params\": %zu, \"seq\": %d, \"batch\": %d, \"threads\": %d, "
           "\"recompute\": \"%s\", \"step_s\": %.4f, \"tokens_per_s\": %.1f, \"gflops_6N\": %.1f, \"gflops_model\": %.1f, \"fma_peak_gflops\": %.1f, \"mfu\": %.3f, \"mfu_causal\": %.3f, "
           "\"attn_fwd_s\": %.4f, \"attn_bwd_s\": %.4f, \"attn_share\": %.3f, "
           "\"peak_rss_mib\": %.0f, \"activations_mib\": %.0f, \"last_loss\": %.4f, \"blas_core\": \"%s\", \"lora_rank\": %d, \"trainable\": %zu, \"precision\": \"%s\", \"bf16_peak_gflops\": %.1f, \"mfu_bf16\": %.3f, \"mfu_causal_bf16\": %.3f}\n",
           s->name, nparam, T, B, threads, recompute == CPT_RECOMPUTE_FULL ? "full" : recompute == CPT_RECOMPUTE_SELECTIVE ? "selective" : "none",
           dt, tok / dt, g6n, gmodel, peak, gmodel / peak, gmodel_causal / peak, t_fwd, t_bwd, attn_share, cpt_bench_peak_rss_mib(),
           (double)cpt_acts_bytes(acts) / 1048576.0, loss, getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "default", lora_r,
           lo ? cpt_lora_n_trainable(lo) : nparam, bf16 ? cpt_bf16_isa_name(cpt_cpu_bf16_isa()) : "fp32", peak16,
           peak16 > 0 ? gmodel / peak16 : 0.0, peak16 > 0 ? gmodel_causal / peak16 : 0.0);
    free(ids), free(tg);
    cpt_free_aligned(grads);
    cpt_acts_free(acts);
    cpt_adamw_free(opt);
    cpt_lora_free(lo);
    cpt_model_free(m);
    return 0;
}

/* cpu.c: the CPU backend table: the fp32 kernels of src/ops/ behind cpt_backend. */
#include "cpt/backend.h"

#include "cpt/common.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Backend memory is host memory: copies are memcpy, nothing is ever queued. */
static void cpu_copy(void *dst, const void *src, size_t bytes) {
    if (bytes) memcpy(dst, src, bytes);
}
/* Zeroing is spread over the threads that later work on the memory, so that its pages
 * are first touched (and placed) by them, not all by one thread. */
static void cpu_zero(void *p, size_t bytes) {
    if (!bytes) return;
    const size_t chunk = (size_t)1 << 20;
    long long nchunks = (long long)((bytes + chunk - 1) / chunk);
    char *c = p;
#pragma omp parallel for schedule(static) if (nchunks > 1)
    for (long long i = 0; i < nchunks; i++) {
        size_t off = (size_t)i * chunk, n = bytes - off < chunk ? bytes - off : chunk;
        memset(c + off, 0, n);
    }
}

/* 64-byte aligned, zeroed memory (the table promises zeroed allocations). */
static void *cpu_alloc(size_t bytes) {
    if (bytes == 0) bytes = 64;
    size_t rounded;
    if (!cpt_add_size(bytes, 63, &rounded)) return NULL;
    rounded &= ~(size_t)63;
    void *p = aligned_alloc(64, rounded);
    if (p) cpu_zero(p, rounded);
    return p;
}
static void cpu_sync(void) {}

static int cpu_supports(const char *op) {
    /* the bf16 products need oneDNN and AVX-512 (src/ops/gemm_bf16.c) */
    if (!strcmp(op, "linear_bf16")) return cpt_bf16_gemm_available();
    return 1;
}

static const cpt_backend cpu_backend = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpt_free_aligned,
    .copy_to_device = cpu_copy,
    .copy_to_host = cpu_copy,
    .copy = cpu_copy,
    .zero = cpu_zero,
    .sync = cpu_sync,
    .supports = cpu_supports,
    .linear_fwd = cpt_linear_fwd,
    .linear_bwd = cpt_linear_bwd,
    .rmsnorm_fwd = cpt_rmsnorm_fwd,
    .rmsnorm_bwd = cpt_rmsnorm_bwd,
    .rope_fwd = cpt_rope_fwd,
    .rope_bwd = cpt_rope_bwd,
    .attn_workspace_bytes = cpt_attn_workspace_bytes,
    .attn_fwd = cpt_attn_fwd,
    .attn_bwd = cpt_attn_bwd,
    .attn_merge = cpt_attn_merge,
    .swiglu_fwd = cpt_swiglu_fwd,
    .swiglu_bwd = cpt_swiglu_bwd,
    .embed_fwd = cpt_embed_fwd,
    .embed_bwd = cpt_embed_bwd,
    .xent_fwd_bwd = cpt_xent_fwd_bwd,
    .xent_workspace_bytes = cpt_xent_workspace_bytes,
    .adamw_update = cpt_adamw_update,
    .sumsq = cpt_sumsq,
    .scale = cpt_scale,
    .add_inplace = cpt_add_inplace,
    .reg_quad = cpt_quad_penalty,
    .sq_accum = cpt_sq_accum,
    .dropout = cpt_dropout,
    .linear_fwd_bf16 = cpt_linear_fwd_bf16,
    .linear_bwd_bf16 = cpt_linear_bwd_bf16,
    .to_bf16 = cpt_f32_to_bf16_n,
    .xent_fwd_bwd_bf16 = cpt_xent_fwd_bwd_bf16,
    .xent_workspace_bytes_bf16 = cpt_xent_workspace_bytes_bf16,
    .attn_workspace_bytes_bf16 = cpt_attn_workspace_bytes_bf16,
    .attn_fwd_bf16 = cpt_attn_fwd_bf16,
    .attn_bwd_bf16 = cpt_attn_bwd_bf16,
};

const cpt_backend *cpt_backend_cpu(void) { return &cpu_backend; }

const cpt_backend *cpt_backend_default(void) { return &cpu_backend; }

void cpt_backend_cpu_select_core(char **argv) {
#if defined(__x86_64__)
    if (getenv("OPENBLAS_CORETYPE") || getenv("CPT_NO_REEXEC")) return;
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
          __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")))
        return;
    setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
    setenv("CPT_NO_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the default kernels */
#else
    (void)argv;
#endif
}

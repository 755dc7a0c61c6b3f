/* cpt/backend.h: the compute backend as a small table of function pointers.
 * The model and the trainer call kernels only through this table, so a CUDA backend
 * slots in by filling the same table (device pointers in, device pointers out) with no
 * change to the trainer. `supports` lets a backend decline an op/shape (ggml-style). */
#ifndef CPT_BACKEND_H
#define CPT_BACKEND_H

#include "cpt/common.h"
#include "cpt/ops.h"

typedef struct cpt_backend {
    const char *name;
    /* Memory the kernels read and write (parameters, gradients, moments, activations):
     * device memory on an accelerator. alloc: zeroed, 64-byte aligned; NULL on failure. */
    void *(*alloc)(size_t bytes);
    void (*free)(void *p);
    /* Host <-> backend-memory copies (the CPU backend: memcpy), and zero-fill of backend
     * memory. Copies may be asynchronous; `sync` waits for every queued copy and kernel,
     * and is called before the host reads a value a kernel produced (loss, grad norm)
     * or reuses a host buffer it handed to copy_to_device. */
    void (*copy_to_device)(void *dst, const void *src, size_t bytes);
    void (*copy_to_host)(void *dst, const void *src, size_t bytes);
    /* Backend memory -> backend memory (both pointers from alloc), bit for bit; queued like
     * the other copies (a CUDA backend: cudaMemcpyAsync device-to-device). */
    void (*copy)(void *dst, const void *src, size_t bytes);
    void (*zero)(void *p, size_t bytes);
    void (*sync)(void);
    int (*supports)(const char *op);
    void (*linear_fwd)(float *y, const float *x, const float *W, const float *b, int N, int K, int O);
    void (*linear_bwd)(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W,
                       int N, int K, int O, int accum_dx);
    void (*rmsnorm_fwd)(float *y, float *rstd, const float *x, const float *w, int N, int D, float eps);
    void (*rmsnorm_bwd)(float *dx, float *dw, const float *dy, const float *x, const float *w,
                        const float *rstd, int N, int D, int accum_dx);
    void (*rope_fwd)(float *x, const float *cos_t, const float *sin_t, const int32_t *pos, int N, int nh,
                     int hd, int rot);
    void (*rope_bwd)(float *dx, const float *cos_t, const float *sin_t, const int32_t *pos, int N, int nh,
                     int hd, int rot);
    size_t (*attn_workspace_bytes)(int Tq, int Tk, int hd, int nthreads);
    int (*attn_fwd)(float *out, float *lse, const float *q, const float *k, const float *v, const int32_t *seg_q,
                    const int32_t *seg_k, int B, int Tq, int Tk, int q_pos0, int H, int KV, int hd, float scale,
                    void *ws, size_t ws_bytes);
    int (*attn_bwd)(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                    const float *q, const float *k, const float *v, const int32_t *seg_q, const int32_t *seg_k,
                    int B, int Tq, int Tk, int q_pos0, int H, int KV, int hd, float scale, void *ws,
                    size_t ws_bytes);
    /* cpt_attn_merge: fold a partial attention result over other keys into out / lse
     * (ring attention, src/model/context_parallel.c) */
    void (*attn_merge)(float *out, float *lse, const float *out_p, const float *lse_p, int Tq, int H, int hd, int lse_ld);
    void (*swiglu_fwd)(float *h, const float *g, const float *u, size_t n);
    void (*swiglu_bwd)(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n);
    void (*embed_fwd)(float *x, const float *E, const int32_t *ids, int N, int D);
    void (*embed_bwd)(float *dE, const float *dx, const int32_t *ids, int N, int D, int V);
    double (*xent_fwd_bwd)(float *dhf, float *dW, float *logits_out, float *losses_out, const float *hf,
                           const float *W, const int32_t *targets, int N, int D, int V, float grad_scale,
                           long long *n_valid, void *ws, size_t ws_bytes);
    size_t (*xent_workspace_bytes)(int N, int V, int nthreads);
    void (*adamw_update)(float *p, const float *g, float *m, float *v, size_t n, float lr, double b1,
                         double b2, float eps, float wd, double bc1, double bc2);
    double (*sumsq)(const float *x, size_t n);
    void (*scale)(float *x, size_t n, float s);
    void (*add_inplace)(float *y, const float *x, size_t n);
    /* Regularizers (cpt/regularize.h). reg_quad: returns (coef/2) sum_i w_i (theta_i - c_i)^2
     * (w_i = weight[i], or 1 when weight is NULL) and, when grad != NULL, grad_i += coef w_i
     * (theta_i - c_i), float64 per element; the sum is over fixed blocks of
     * CPT_REDUCE_BLOCK elements added in index order, so it is bitwise independent of the
     * thread count. sq_accum: acc_i += g_i^2 in fp32 (the Fisher accumulation). */
    double (*reg_quad)(const float *theta, const float *center, const float *weight, float *grad, size_t n,
                       double coef);
    void (*sq_accum)(float *acc, const float *g, size_t n);
    /* Inverted dropout with the counter-based mask of cpt/ops.h (cpt_dropout_keep): y_i =
     * x_i / (1 - p) where element i is kept for `seed`, else 0; y may be x (LoRA dropout). */
    void (*dropout)(float *y, const float *x, size_t n, float p, uint64_t seed);
    /* bf16 mode (cpt_model_set_precision): linear_fwd / linear_bwd with the weights' bf16
     * copy Wb and x (and dy) rounded to bf16 into the scratch xs [N*K] (and dys [N*O]):
     * bf16 products, fp32 accumulation, fp32 outputs (y =, dx = or +=, dW and db +=, db from
     * the fp32 dy). to_bf16 rounds n values to nearest even (the weight copies). A backend
     * without a bf16 kernel on this CPU answers supports("linear_bf16") with 0. */
    void (*linear_fwd_bf16)(float *y, const float *x, const uint16_t *Wb, const float *b, int N, int K, int O, uint16_t *xs);
    void (*linear_bwd_bf16)(float *dx, float *dW, float *db, const float *dy, const float *x, const uint16_t *Wb, int N, int K,
                            int O, int accum_dx, uint16_t *xs, uint16_t *dys);
    void (*to_bf16)(uint16_t *dst, const float *src, size_t n);
    /* The LM head + cross-entropy in bf16 precision: xent_fwd_bwd with the bf16 copy Wb and
     * hf, dz rounded to bf16 per chunk (cpt_xent_fwd_bwd_bf16); its workspace size. */
    double (*xent_fwd_bwd_bf16)(float *dhf, float *dW, float *logits_out, float *losses_out, const float *hf, const uint16_t *Wb,
                                const int32_t *targets, int N, int D, int V, float grad_scale, long long *n_valid, void *ws,
                                size_t ws_bytes);
    size_t (*xent_workspace_bytes_bf16)(int N, int D, int V, int nthreads);
    /* Attention in bf16 precision: attn_fwd / attn_bwd with the tile products' operands (q, k,
     * v, dout, P, dS) rounded to bf16 and fp32 accumulation (cpt_attn_fwd_bf16); the same
     * masks and contract; ws_bytes >= attn_workspace_bytes_bf16 (the packed operands). On a
     * CPU without bf16 dot products these are the fp32 entries. */
    size_t (*attn_workspace_bytes_bf16)(int B, int Tq, int Tk, int H, int KV, int hd, int nthreads);
    int (*attn_fwd_bf16)(float *out, float *lse, const float *q, const float *k, const float *v, const int32_t *seg_q,
                         const int32_t *seg_k, int B, int Tq, int Tk, int q_pos0, int H, int KV, int hd, float scale, void *ws,
                         size_t ws_bytes);
    int (*attn_bwd_bf16)(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                         const float *q, const float *k, const float *v, const int32_t *seg_q, const int32_t *seg_k, int B,
                         int Tq, int Tk, int q_pos0, int H, int KV, int hd, float scale, void *ws, size_t ws_bytes);
} cpt_backend;

/* Block size of the fixed-order reductions (sumsq, reg_quad). */
#define CPT_REDUCE_BLOCK 4096

/* Number of entries in cpt_backend after `name` (all function pointers): tests iterate
 * the table and fail when an entry has no test (tests/ops/test_backend_ops.c). */
#define CPT_BACKEND_N_ENTRIES ((sizeof(cpt_backend) - sizeof(const char *)) / sizeof(void (*)(void)))

/* The CPU backend (OpenMP + BLAS). Only src/backend and the default pick call it;
 * everything else uses the model's backend (cpt_model.be, cpt_model_set_backend). */
const cpt_backend *cpt_backend_cpu(void);
/* The backend a new model gets when CPT_BACKEND is not set (the CPU backend). */
const cpt_backend *cpt_backend_default(void);
/* The float64 reference backend (src/backend/ref.c): the cpt_ref_* kernels behind the
 * same fp32 ABI, host memory, one thread. Slow; it proves the seam (tests/backend). */
const cpt_backend *cpt_backend_ref(void);

/* Every backend cpt knows ("cpu", "ref"); *n gets their count. Static storage. */
const cpt_backend *const *cpt_backend_list(int *n);
/* The backend called `name`, or NULL with an error listing the known names. */
const cpt_backend *cpt_backend_by_name(const char *name, cpt_err *err);
/* The backend for this run: the environment variable CPT_BACKEND names it (e.g.
 * CPT_BACKEND=ref), unset or empty gives cpt_backend_default(); an unknown name is
 * CPT_EINVAL with the known names. cpt_model_create calls it, so every model of a run
 * (trained, base for evaluation, EWC) and its optimizer use the same backend. */
int cpt_backend_select(const cpt_backend **out, cpt_err *err);

/* Call first thing in main() of an executable: on CPUs with AVX-512 it re-executes the
 * program once with OPENBLAS_CORETYPE=SkylakeX (unless that variable is already set),
 * because OpenBLAS 0.3.21 reads it only when it loads and otherwise runs its AVX2
 * kernels here (bench/blas_pick.c: 1.7-4x slower on LM-head and attention shapes). */
void cpt_backend_cpu_select_core(char **argv);

#endif

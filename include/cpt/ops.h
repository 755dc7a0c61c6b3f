/* cpt/ops.h: the compute kernels of a Llama-family decoder, forward beside backward.
 *
 * Two implementations of every op:
 *  - cpt_<op>_*: the shipped fp32 CPU kernels (OpenMP + BLAS), used through the CPU
 *    backend table (cpt/backend.h);
 *  - cpt_ref_<op>_*: naive float64 reference kernels, the oracle. Tests check the
 *    reference against central finite differences and each shipped kernel against
 *    the reference at odd sizes (tests/ops/).
 * Kernels are pure functions of raw pointers and sizes; they keep no state.
 * Layout: row-major; N = number of token rows (B*T); linear weights are [out, in]
 * (PyTorch convention, y = x W^T + b). Backward kernels document whether they
 * overwrite (=) or accumulate (+=) each output.
 * Formulas: docs/methods.md section 2 (forward, backward).
 */
#ifndef CPT_OPS_H
#define CPT_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "cpt/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- sgemm: C[M,N] = alpha op(A) op(B) + beta C, row-major, op = transpose if ta / tb ----
 * Every product in the kernels goes through this (src/ops/gemm.c): the work is split into
 * tiles by the shape alone, so the result is bit-identical for any thread count. */
void cpt_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
               float beta, float *C, int ldc);

/* ---- linear: y[N,O] = x[N,K] W[O,K]^T + b[O] (b may be NULL) ---- */
void cpt_linear_fwd(float *y, const float *x, const float *W, const float *b, int N, int K, int O);
/* dx[N,K] = dy W (or += if accum_dx; dx may be NULL); dW[O,K] += dy^T x; db[O] += colsum(dy)
 * (db may be NULL; dW may be NULL for frozen weights). */
void cpt_linear_bwd(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W,
                    int N, int K, int O, int accum_dx);
void cpt_ref_linear_fwd(double *y, const double *x, const double *W, const double *b, int N, int K, int O);
void cpt_ref_linear_bwd(double *dx, double *dW, double *db, const double *dy, const double *x,
                        const double *W, int N, int K, int O);

/* ---- RMSNorm (fp32 statistics): y = w * x * rstd, rstd = 1/sqrt(mean(x^2) + eps) ---- */
void cpt_rmsnorm_fwd(float *y, float *rstd, const float *x, const float *w, int N, int D, float eps);
/* dx[N,D] = ... (or += if accum_dx); dw[D] += sum_rows dy * xhat (dw may be NULL). */
void cpt_rmsnorm_bwd(float *dx, float *dw, const float *dy, const float *x, const float *w,
                     const float *rstd, int N, int D, int accum_dx);
void cpt_ref_rmsnorm_fwd(double *y, const double *x, const double *w, int N, int D, double eps);
void cpt_ref_rmsnorm_bwd(double *dx, double *dw, const double *dy, const double *x, const double *w,
                         int N, int D, double eps); /* dx =, dw = */
/* The same from a saved rstd[N] (the reference backend's rmsnorm_bwd entry gets rstd, not
 * eps); dx =, dw = ; either may be NULL. */
void cpt_ref_rmsnorm_bwd_rstd(double *dx, double *dw, const double *dy, const double *x, const double *w,
                              const double *rstd, int N, int D);

/* ---- RoPE, rotate_half convention, in place on x[N, nh, hd] ----
 * The first `rot` dims of each head rotate (rot = hd unless partial rotary), pairs
 * (i, i + rot/2). cos/sin tables are [n_pos, rot/2] (already scaled by the
 * attention factor where a scaling type has one); pos[N] gives each row's position. */
void cpt_rope_fwd(float *x, const float *cos_t, const float *sin_t, const int32_t *pos, int N, int nh,
                  int hd, int rot);
/* Backward is the inverse rotation applied to the incoming gradient, in place. */
void cpt_rope_bwd(float *dx, const float *cos_t, const float *sin_t, const int32_t *pos, int N, int nh,
                  int hd, int rot);
void cpt_ref_rope_fwd(double *x, const double *inv_freq, double attn_factor, const int32_t *pos, int N,
                      int nh, int hd, int rot);
void cpt_ref_rope_bwd(double *dx, const double *inv_freq, double attn_factor, const int32_t *pos, int N,
                      int nh, int hd, int rot);
/* The same rotation from given cos/sin tables [n_pos, rot/2] (as cpt_rope_fwd/bwd take
 * them), in float64: the reference backend's rope entries. */
void cpt_ref_rope_tab_fwd(double *x, const double *cos_t, const double *sin_t, const int32_t *pos, int N, int nh,
                          int hd, int rot);
void cpt_ref_rope_tab_bwd(double *dx, const double *cos_t, const double *sin_t, const int32_t *pos, int N,
                          int nh, int hd, int rot);
/* Build the fp32 tables the way transformers does (inv_freq and angles in fp32). */
void cpt_rope_tables(float *cos_t, float *sin_t, const float *inv_freq, float attn_factor, int n_pos,
                     int rot);

/* ---- causal (optionally block-causal) GQA attention, O(T) memory (methods.md 14.1) ----
 * q[B,Tq,H,hd], k,v[B,Tk,KV,hd], out[B,Tq,H,hd]; lse[B,H,Tq] the row log-sum-exp of the
 * scaled scores, saved for the backward (-inf for a row that sees no key; its output is 0).
 * Query row i sits at key position q_pos0 + i: key j is visible iff j <= q_pos0 + i and
 * (seg_q == NULL or seg_q[b*Tq+i] == seg_k[b*Tk+j]); training uses Tq == Tk, q_pos0 = 0,
 * seg_q == seg_k (document ids of a packed row); decoding uses Tq = 1, q_pos0 = p, Tk = p+1.
 * seg_q and seg_k are both NULL or both given. Query head h uses kv head h / (H/KV).
 * ws: caller's scratch of ws_bytes >= cpt_attn_workspace_bytes(Tq, Tk, hd, nthreads); the
 * kernel uses at most as many threads as the workspace has slots. Results are bitwise
 * independent of the thread count. Returns CPT_OK, or CPT_EINVAL (bad sizes, workspace
 * too small) without touching the outputs. */
size_t cpt_attn_workspace_bytes(int Tq, int Tk, int hd, int nthreads);
int cpt_attn_fwd(float *out, float *lse, const float *q, const float *k, const float *v, const int32_t *seg_q,
                 const int32_t *seg_k, int B, int Tq, int Tk, int q_pos0, int H, int KV, int hd, float scale,
                 void *ws, size_t ws_bytes);
/* dq, dk, dv are overwritten (keys no query sees get 0). out and lse are used, not
 * recomputed: P = exp(S - lse), D = rowsum(dout * out). So with the out / lse merged over
 * more keys than k, v hold (ring attention), the result is these keys' share of dq and
 * their whole dk, dv. */
int cpt_attn_bwd(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                 const float *q, const float *k, const float *v, const int32_t *seg_q, const int32_t *seg_k, int B,
                 int Tq, int Tk, int q_pos0, int H, int KV, int hd, float scale, void *ws, size_t ws_bytes);
/* The same attention with its tile products in bf16 (src/ops/attention_bf16.c): q, k, v,
 * dout, P and dS rounded to bf16 as the products' operands, fp32 accumulation, softmax,
 * lse and outputs in fp32. Same arguments, masks and thread-count independence; ws_bytes >=
 * cpt_attn_workspace_bytes_bf16 (it holds the packed operands). Without AVX512-BF16 (or
 * with head_dim > 512) these run the fp32 kernels. */
size_t cpt_attn_workspace_bytes_bf16(int B, int Tq, int Tk, int H, int KV, int hd, int nthreads);
int cpt_attn_fwd_bf16(float *out, float *lse, const float *q, const float *k, const float *v, const int32_t *seg_q,
                      const int32_t *seg_k, int B, int Tq, int Tk, int q_pos0, int H, int KV, int hd, float scale, void *ws,
                      size_t ws_bytes);
int cpt_attn_bwd_bf16(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse, const float *q,
                      const float *k, const float *v, const int32_t *seg_q, const int32_t *seg_k, int B, int Tq, int Tk,
                      int q_pos0, int H, int KV, int hd, float scale, void *ws, size_t ws_bytes);
/* The backward from the forward's saved out and lse, as cpt_attn_bwd computes it: row i's
 * probabilities are exp(s_ij - lse_i) and D_i = dout_i . out_i. Equal to cpt_ref_attn_bwd
 * when out and lse come from the same keys; with the out / lse of a larger key set (ring
 * attention merges) it gives this key block's share of the gradient. */
void cpt_ref_attn_bwd_saved(double *dq, double *dk, double *dv, const double *dout, const double *out,
                            const double *lse, const double *q, const double *k, const double *v, const int32_t *seg_q,
                            const int32_t *seg_k, int B, int Tq, int Tk, int q_pos0, int H, int KV, int hd,
                            double scale);
/* Merge a partial result over other keys into (out, lse) (methods.md 14.2; ring
 * attention): out[Tq,H,hd] and lse[h*lse_ld + i] (lse_ld >= Tq: a column block of the
 * forward's [B,H,T] lse) hold the result so far, out_p[Tq,H,hd] and lse_p[H,Tq] the
 * partial, as cpt_attn_fwd writes them (B = 1). A row with lse -inf saw no key; merging
 * it changes nothing. In place on out and lse. */
void cpt_attn_merge(float *out, float *lse, const float *out_p, const float *lse_p, int Tq, int H, int hd, int lse_ld);
void cpt_ref_attn_merge(double *out, double *lse, const double *out_p, const double *lse_p, int Tq, int H, int hd,
                        int lse_ld);
/* float64 references, same masks; lse may be NULL. */
void cpt_ref_attn_fwd(double *out, double *lse, const double *q, const double *k, const double *v,
                      const int32_t *seg_q, const int32_t *seg_k, int B, int Tq, int Tk, int q_pos0, int H, int KV,
                      int hd, double scale);
void cpt_ref_attn_bwd(double *dq, double *dk, double *dv, const double *dout, const double *q, const double *k,
                      const double *v, const int32_t *seg_q, const int32_t *seg_k, int B, int Tq, int Tk, int q_pos0,
                      int H, int KV, int hd, double scale);

/* ---- SwiGLU: h = silu(g) * u, elementwise over n ---- */
void cpt_swiglu_fwd(float *h, const float *g, const float *u, size_t n);
void cpt_swiglu_bwd(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n); /* = */
void cpt_ref_swiglu_fwd(double *h, const double *g, const double *u, size_t n);
void cpt_ref_swiglu_bwd(double *dg, double *du, const double *dh, const double *g, const double *u, size_t n);

/* ---- embedding: x[N,D] = E[ids] ; dE[ids] += dx ---- */
void cpt_embed_fwd(float *x, const float *E, const int32_t *ids, int N, int D);
void cpt_embed_bwd(float *dE, const float *dx, const int32_t *ids, int N, int D, int V);
void cpt_ref_embed_fwd(double *x, const double *E, const int32_t *ids, int N, int D);
void cpt_ref_embed_bwd(double *dE, const double *dx, const int32_t *ids, int N, int D);

/* ---- LM head fused with cross-entropy ----
 * z = hf[N,D] W[V,D]^T, processed in row chunks so [N,V] is never materialised
 * unless logits_out is given. For each row with target >= 0:
 *   loss_t = logsumexp(z_t) - z_t[target]
 *   dz_t = grad_scale * (softmax(z_t) - onehot(target))   (targets < 0: dz_t = 0)
 * and dhf = dz W (=), dW += dz^T hf. Any of dhf, dW, logits_out [N,V], losses_out [N]
 * may be NULL (no backward when both dhf and dW are NULL). Returns the sum of loss_t
 * over valid rows (double), and the number of valid rows in *n_valid.
 * ws: caller's scratch of ws_bytes >= cpt_xent_workspace_bytes(N, V, nthreads) (the
 * kernel allocates nothing); when it is missing or too small the call does nothing,
 * returns NaN and sets *n_valid = -(bytes needed). Targets must be < V (checked by the
 * caller). */
size_t cpt_xent_workspace_bytes(int N, int V, int nthreads);
double cpt_xent_fwd_bwd(float *dhf, float *dW, float *logits_out, float *losses_out, const float *hf,
                        const float *W, const int32_t *targets, int N, int D, int V, float grad_scale,
                        long long *n_valid, void *ws, size_t ws_bytes);
/* The same in bf16 precision: the LM head products take the weights' bf16 copy Wb and the
 * chunk's hf and dz rounded to bf16 (fp32 accumulation; softmax, loss and dz in fp32 as
 * above); dW += in fp32. ws >= cpt_xent_workspace_bytes_bf16(N, D, V, nthreads). */
size_t cpt_xent_workspace_bytes_bf16(int N, int D, int V, int nthreads);
double cpt_xent_fwd_bwd_bf16(float *dhf, float *dW, float *logits_out, float *losses_out, const float *hf, const uint16_t *Wb,
                             const int32_t *targets, int N, int D, int V, float grad_scale, long long *n_valid, void *ws,
                             size_t ws_bytes);
double cpt_ref_xent(double *dhf, double *dW, const double *hf, const double *W, const int32_t *targets,
                    int N, int D, int V, double grad_scale); /* dhf =, dW = ; returns loss sum */

/* ---- AdamW, exactly torch.optim.AdamW (methods.md 3.1), one tensor ----
 * p *= (1 - lr*wd); m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
 * p -= (lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps), with bc1 = 1-b1^t, bc2 = 1-b2^t. */
void cpt_adamw_update(float *p, const float *g, float *m, float *v, size_t n, float lr, double b1,
                      double b2, float eps, float wd, double bc1, double bc2);
/* float64 reference: the formula above evaluated in double (not torch's fp32 order). */
void cpt_ref_adamw_update(double *p, const double *g, double *m, double *v, size_t n, double lr, double b1,
                          double b2, double eps, double wd, double bc1, double bc2);

/* ---- small vector helpers ---- */
double cpt_sumsq(const float *x, size_t n); /* deterministic for a fixed thread count */
void cpt_scale(float *x, size_t n, float s);
void cpt_add_inplace(float *y, const float *x, size_t n); /* y += x */

/* ---- bf16 products (src/ops/gemm_bf16.c): bf16 inputs, fp32 accumulation and output ----
 * bf16 = the upper 16 bits of an fp32 (8-bit mantissa); conversions round to nearest even.
 * cpt_gemm_bf16: C[M,N] = alpha op(A) op(B) + beta C, row-major like cpt_sgemm, with the same
 * shape-only tiling (bitwise independent of the thread count); 0 on success, -1 when no bf16
 * kernel exists (cpt built without oneDNN, or the CPU has no AVX-512) or oneDNN refused. */
enum { CPT_BF16_ISA_NONE = 0, CPT_BF16_ISA_AVX512 = 1, CPT_BF16_ISA_AVX512_BF16 = 2, CPT_BF16_ISA_AMX = 3 };
int cpt_cpu_bf16_isa(void);              /* the best bf16 path this CPU (and OS) has, capped by $CPT_BF16_ISA */
const char *cpt_bf16_isa_name(int isa);
int cpt_bf16_gemm_available(void);       /* a kernel exists: built with oneDNN and AVX-512 at least */
/* The bf16 linears of the CPU backend (src/ops/linear.c; cpt/backend.h linear_*_bf16): y = x W^T + b
 * with x rounded into xs and Wb the weights' bf16 copy; the backward as cpt_linear_bwd. On a
 * failing product (no kernel) the outputs are NaN, so a non-finite loss surfaces it. */
void cpt_linear_fwd_bf16(float *y, const float *x, const uint16_t *Wb, const float *b, int N, int K, int O, uint16_t *xs);
void cpt_linear_bwd_bf16(float *dx, float *dW, float *db, const float *dy, const float *x, const uint16_t *Wb, int N, int K, int O,
                         int accum_dx, uint16_t *xs, uint16_t *dys);
/* n values at once, as cpt_f32_to_bf16 (cpt/safetensors.h) each */
void cpt_f32_to_bf16_n(uint16_t *dst, const float *src, size_t n);
int cpt_gemm_bf16(int ta, int tb, int M, int N, int K, float alpha, const uint16_t *A, int lda, const uint16_t *B, int ldb,
                  float beta, float *C, int ldc);

/* ---- inverted dropout (src/ops/dropout.c) ----
 * y_i = x_i / (1 - p) where kept, else 0 (y may be x). Element i of a call with `seed` is
 * kept when the top 32 bits of cpt_mix64(seed + i * golden) are at or above p * 2^32:
 * a pure function of (seed, i), so a backward (or recompute) rebuilds the same mask, and
 * the keep rate is 1 - p to within 2^-32. */
static inline uint64_t cpt_dropout_threshold(float p) { return (uint64_t)((double)p * 4294967296.0); }
static inline int cpt_dropout_keep(uint64_t seed, size_t i, uint64_t thr) {
    return (cpt_mix64(seed + (uint64_t)i * 0x9e3779b97f4a7c15ull) >> 32) >= thr;
}
void cpt_dropout(float *y, const float *x, size_t n, float p, uint64_t seed);
/* float64: elements first .. first + n - 1 of the call's mask */
void cpt_ref_dropout(double *y, const double *x, size_t n, double p, uint64_t seed, size_t first);

/* ---- regularizer kernels (cpt/regularize.h; src/ops/regularize.c) ----
 * Returns (coef/2) sum_i w_i (theta_i - center_i)^2 (w_i = weight[i], 1 when weight is
 * NULL) and, when grad != NULL, grad_i += coef w_i (theta_i - center_i), float64 per
 * element; fixed-order block sum, bitwise independent of the thread count. */
double cpt_quad_penalty(const float *theta, const float *center, const float *weight, float *grad, size_t n,
                        double coef);
void cpt_sq_accum(float *acc, const float *g, size_t n); /* acc += g*g (fp32) */
double cpt_ref_quad_penalty(const double *theta, const double *center, const double *weight, double *grad,
                            size_t n, double coef); /* grad += */
void cpt_ref_sq_accum(double *acc, const double *g, size_t n);

#ifdef __cplusplus
}
#endif
#endif

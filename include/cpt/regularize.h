/* cpt/regularize.h: forgetting regularizers for continued pretraining (methods.md §6.1-6.2):
 * L2 toward the base weights (L2-SP) and Elastic Weight Consolidation (EWC) with a diagonal
 * empirical Fisher, plus the Fisher's safetensors cache.
 *
 * Both penalties are quadratic pulls toward the weights before CPT and are applied
 * COUPLED: the penalty gradient is added to the loss gradient before clipping and AdamW
 * (methods.md §6.1 asks to state which; the decoupled form theta -= lr*alpha*(theta-theta0)
 * is not implemented). Call them after the backward passes of a step, on the same grads
 * buffer, with the same frozen flags as cpt_model_step:
 *     L2-SP:  Omega = (alpha/2)  * sum_i (theta_i - theta0_i)^2,        g_i += alpha * (theta_i - theta0_i)
 *     EWC:    Omega = (lambda/2) * sum_i F_i (theta_i - theta*_i)^2,    g_i += lambda * F_i * (theta_i - theta*_i)
 * with the sums over the parameters of non-frozen tensors (frozen tensors neither add to
 * the penalty nor receive gradient). The L2-SP pull applies to every non-frozen tensor,
 * norms and biases included; it is not weight decay (which pulls toward 0, methods.md §3.3).
 * Gradients are elementwise and exact in float64 before the final rounding to fp32; the
 * returned penalty is a float64 sum over fixed blocks in index order: bitwise the same at
 * any OpenMP thread count (the backend's reg_quad entry).
 *
 * Fisher. F_i = (1/N) sum_n (d log p(x_n) / d theta_i)^2 at the base weights theta*,
 * with log p(x_n) the SUMMED log-likelihood of sequence n (every next-token prediction
 * in it) and one backward per sequence: squaring the gradient of a batch mean would
 * underestimate F by about the batch size. F is then divided by its mean over all
 * parameters (every tensor, frozen or not, so the cache does not depend on what a run
 * freezes), so mean(F) = 1 and the EWC penalty is on the scale of L2-SP with alpha = lambda:
 * tune lambda on a log grid (1 ... 1e4). The raw mean is kept (fisher_raw_mean).
 */
#ifndef CPT_REGULARIZE_H
#define CPT_REGULARIZE_H

#include "cpt/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The kernel behind both penalties, on raw buffers of n floats:
 *     returns (coef/2) * sum_i w_i (theta_i - center_i)^2 and, when grad != NULL,
 *     grad_i += coef * w_i * (theta_i - center_i),
 * with w_i = weight[i], or 1 when weight is NULL. Float64 arithmetic per element. */
double cpt_reg_quad(size_t n, const float *theta, const float *center, const float *weight, float *grad,
                    double coef);

/* L2-SP over the model's non-frozen tensors. theta0 [n_params] holds the base weights in
 * the parameter layout; grads [n_params] may be NULL (penalty only); frozen may be NULL.
 * Returns the penalty. alpha >= 0 (asserted). */
double cpt_reg_l2sp(const cpt_model *m, const float *theta0, float *grads, double alpha, const uint8_t *frozen);

/* EWC state: the normalised Fisher and the base weights, in the parameter layout. */
typedef struct cpt_ewc {
    size_t n;               /* == the model's n_params */
    float *fisher;          /* [n] F / mean(F); backend memory (be->alloc), owned */
    float *theta_star;      /* [n] base weights; backend memory (be->alloc), owned */
    long long n_sequences;  /* N */
    double fisher_raw_mean; /* mean of the unnormalised F over all n parameters */
    uint64_t config_hash;   /* cpt_reg_config_hash of the model it was estimated on */
    /* The model's backend when made (last, so positional initializers stay valid):
     * fisher and theta_star are its memory; NULL: host memory from cpt_alloc_aligned. */
    const struct cpt_backend *be;
} cpt_ewc;

/* Estimate F at the model's current parameters (which become theta*) from n_seqs token
 * rows tokens[n_seqs * seq_len]. Row n is one sequence: the model reads tokens[0..L-2]
 * and predicts tokens[1..L-1]. A row may end in padding: -1 from some position to the end
 * of the row (those positions are neither read nor predicted; causal attention keeps the
 * earlier positions exact). Each row is one cpt_model_step with B = 1, grad_scale 1, no
 * frozen tensors, on a zeroed gradient buffer; the squares accumulate in fp32.
 * Errors (CPT_EINVAL, naming the row and position): n_seqs < 1, seq_len < 2, a row with
 * fewer than 2 tokens, a token after padding, an id outside the vocabulary; a Fisher that
 * is zero everywhere. Memory: three fp32 copies of the parameters plus activations for
 * (1, seq_len - 1). The parameters are what is trained: the model's, or its attached LoRA
 * adapter's (m->lora); the state has that layout. */
int cpt_ewc_estimate(cpt_ewc **out, cpt_model *m, const int32_t *tokens, int n_seqs, int seq_len, cpt_err *err);

/* EWC penalty (and gradient into grads when not NULL) with strength lambda >= 0 (asserted),
 * over non-frozen tensors. The model must have the layout of e (asserted: same n_params), or
 * be a view of the trained tensors of such a model (cpt_model_view_range; grads in the view's
 * layout): the penalty is then over the view's range of e. */
double cpt_ewc_penalty(const cpt_ewc *e, const cpt_model *m, float *grads, double lambda, const uint8_t *frozen);

/* Cache file (safetensors, written atomically):
 *   tensors   "fisher.<name>" then "base.<name>" for every tensor of the table, F32, with
 *             the table's shapes (in table order);
 *   metadata  "format": "cpt-ewc", "version": "1", "config_hash": 16 lowercase hex digits,
 *             "n_sequences": decimal, "fisher_raw_mean": "%.17g".
 * Loading checks the file against `m`: format and version (CPT_EFORMAT), config hash, the
 * tensor set (a missing or extra tensor), every dtype and shape (CPT_ESTATE, the message
 * names the cache file and the tensor or field), and that F is finite and >= 0 (CPT_EFORMAT).
 * Errors from cpt_st_open / cpt_st_write pass through. */
int cpt_ewc_save(const cpt_ewc *e, const cpt_model *m, const char *path, cpt_err *err);
int cpt_ewc_load(cpt_ewc **out, const cpt_model *m, const char *path, cpt_err *err);
void cpt_ewc_free(cpt_ewc *e);
/* Bytes an EWC state holds for model m (fisher + theta_star; the memory plan counts
 * this). The L2-SP base weights are one cpt_model_buffer_bytes(m). */
size_t cpt_ewc_state_bytes(const cpt_model *m);
/* Bytes cpt_ewc_estimate(m, ..., seq_len) allocates besides the state it returns: a
 * gradient buffer, the (1, seq_len - 1) training activations (recompute none) and one
 * row's ids and targets. CPT_EINVAL for seq_len < 2, CPT_ENOMEM on overflow. */
int cpt_ewc_estimate_plan_bytes(const cpt_model *m, int seq_len, size_t *bytes);

/* On a fresh run (not a resume) the model should start at theta*: CPT_ESTATE naming the
 * first tensor whose parameters differ bitwise from e->theta_star (a cache estimated on
 * another checkpoint of the same architecture). */
int cpt_ewc_check_base(const cpt_ewc *e, const cpt_model *m, cpt_err *err);

/* FNV-1a 64 of the config fields that fix the parameter layout (architecture, vocab,
 * hidden, layers, heads, kv heads, head_dim, intermediate, tying, biases, qk_norm). RoPE
 * and eps are left out on purpose: a context-extension run changes them on the same weights. */
uint64_t cpt_reg_config_hash(const cpt_config *cfg);

#ifdef __cplusplus
}
#endif
#endif

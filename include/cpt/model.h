/* cpt/model.h: Llama-family decoder models (Llama, Mistral, Qwen2, Qwen3): config,
 * parameters in one flat fp32 buffer behind a tensor table, Hugging Face directory
 * load/save, llama2.c import, and the training / scoring / generation passes.
 *
 * Parameters, gradients and AdamW moments share one layout: tensor i lives at
 * [off, off + numel) in each flat buffer, so zero-grad is one memset, the optimizer one
 * loop and a checkpoint one write. Tensor names are the Hugging Face names.
 */
#ifndef CPT_MODEL_H
#define CPT_MODEL_H

#include "cpt/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { CPT_ARCH_LLAMA, CPT_ARCH_MISTRAL, CPT_ARCH_QWEN2, CPT_ARCH_QWEN3 } cpt_arch;

typedef enum {
    CPT_ROPE_DEFAULT = 0,
    CPT_ROPE_LINEAR,
    CPT_ROPE_DYNAMIC,
    CPT_ROPE_YARN,
    CPT_ROPE_LLAMA3,
    CPT_ROPE_LONGROPE,
} cpt_rope_type;

/* Longest short_factor / long_factor list (rotary dim / 2) cpt accepts for longrope. */
#define CPT_ROPE_MAX_FACTORS 512

/* config.json "rope_scaling" as transformers 4.51 reads it (methods.md 1.2-1.7). Fields a
 * type does not use stay 0. The exact use of each field is in cpt/rope.h. */
typedef struct cpt_rope_scaling {
    cpt_rope_type type;
    double factor;                             /* 0 = absent (allowed for longrope only) */
    double low_freq_factor, high_freq_factor;  /* llama3 */
    double beta_fast, beta_slow;               /* yarn; 0 = absent (transformers: `or 32`, `or 1`) */
    double mscale, mscale_all_dim;             /* yarn (DeepSeek style); 0 = absent */
    double attention_factor;                   /* yarn/longrope; 0 = absent: derive it */
    long long original_max_pos;                /* rope_scaling.original_max_position_embeddings; 0 = absent */
    long long top_original_max_pos;            /* top-level original_max_position_embeddings (Phi-3 style,
                                                  read by longrope only); 0 = absent */
    int n_factors;                             /* longrope: length of both lists */
    double short_factor[CPT_ROPE_MAX_FACTORS], long_factor[CPT_ROPE_MAX_FACTORS];
} cpt_rope_scaling;

typedef struct cpt_config {
    cpt_arch arch;
    char architecture[64]; /* "LlamaForCausalLM" */
    char model_type[32];   /* "llama" */
    int vocab_size, hidden_size, n_layers, n_heads, n_kv_heads, head_dim, intermediate_size;
    int max_pos;
    double rms_eps;
    double rope_theta;
    double partial_rotary_factor; /* 1.0 unless given */
    cpt_rope_scaling rope_scaling;
    int tie_embeddings;
    int qkv_bias, o_bias, mlp_bias;
    int qk_norm; /* Qwen3 */
    long long sliding_window; /* 0 = none */
    int bos_id, eos_id;       /* -1 if absent */
    char *raw_json;           /* the original config.json text (kept for export), may be NULL */
} cpt_config;

/* Parse and validate a config.json (path for messages). Unknown architectures, missing
 * or inconsistent fields, non-silu activations and RoPE scaling types that cpt does not
 * implement yet are errors naming the file and the field. */
int cpt_config_parse(cpt_config *cfg, const char *json_text, size_t len, const char *path, cpt_err *err);
int cpt_config_load(cpt_config *cfg, const char *path, cpt_err *err);
void cpt_config_free(cpt_config *cfg);
/* Serialize to config.json text (malloc'ed), as transformers writes it; `dtype` is
 * "float32" or "bfloat16". Keys of the original config are preserved. */
char *cpt_config_to_json(const cpt_config *cfg, const char *dtype);
/* Replace top-level config.json fields (a JSON object, e.g. {"rope_theta": 1e6,
 * "rope_scaling": {"rope_type": "yarn", "factor": 4}, "max_position_embeddings": 8192})
 * and validate the result exactly as cpt_config_parse does (messages start with
 * `where`). On error *cfg is unchanged. The new values are what cpt_config_to_json
 * writes. A model built from the config must drop its RoPE tables (m->rope_built = 0). */
int cpt_config_override(cpt_config *cfg, const char *overrides_json, const char *where, cpt_err *err);
/* Number of rotary dims (int(head_dim * partial_rotary_factor), as transformers). */
int cpt_config_rot_dim(const cpt_config *cfg);
/* The longest sequence the model is made for: max_position_embeddings, times the factor
 * for linear and dynamic scaling and for yarn without original_max_position_embeddings
 * (there max_position_embeddings is the pre-extension length); yarn with it, llama3 and
 * longrope configs already give the extended length as max_position_embeddings. */
long long cpt_config_context_len(const cpt_config *cfg);

/* One entry of the tensor table. */
typedef struct cpt_tensor {
    char name[96];
    int ndim;
    int64_t shape[2];
    size_t off, numel;
    int decay; /* 1: weight decay applies (matrices and embeddings); 0: norms, biases */
} cpt_tensor;

/* Per-layer views into a flat buffer (params or grads); NULL where absent. */
typedef struct cpt_layer_view {
    float *attn_norm;               /* [D] */
    float *wq, *wk, *wv, *wo;       /* [H*hd, D], [KV*hd, D], [KV*hd, D], [D, H*hd] */
    float *bq, *bk, *bv, *bo;       /* [H*hd], [KV*hd], [KV*hd], [D] */
    float *q_norm, *k_norm;         /* [hd] (Qwen3) */
    float *mlp_norm;                /* [D] */
    float *wg, *wu, *wd;            /* [I, D], [I, D], [D, I] */
    float *bg, *bu, *bd;            /* [I], [I], [D] */
} cpt_layer_view;

typedef struct cpt_view {
    float *embed;      /* [V, D] */
    float *final_norm; /* [D] */
    float *lm_head;    /* [V, D]; == embed when tied */
    cpt_layer_view *layers;
} cpt_view;

struct cpt_backend;

typedef struct cpt_model {
    cpt_config cfg;
    /* Compute backend (cpt/backend.h): every pass, the optimizer and the regularizers of
     * this model go through it. Set at creation to cpt_backend_default(); change it with
     * cpt_model_set_backend before creating activations, caches or optimizer state. */
    const struct cpt_backend *be;
    cpt_tensor *tensors;
    int n_tensors;
    size_t n_params;
    float *params; /* [n_params], 64-byte aligned */
    cpt_view w;    /* views into params */
    /* RoPE tables [rope_n_pos, rot/2] (attention factor folded in), built by src/model/rope.c
     * from the frequencies for rope_key (see cpt_model_rope_update); backend memory. */
    float *rope_cos, *rope_sin;
    int rope_n_pos;
    long long rope_key;    /* seq_len the frequencies were computed for (0: transformers' init) */
    long long rope_cached; /* dynamic NTK: transformers' max_seq_len_cached */
    int rope_built;        /* 1 once the tables exist for rope_key */
    /* 1: positions past cpt_config_context_len are allowed (the user extends the context
     * on purpose, e.g. continued pretraining at a longer length); 0: they are an error. */
    int allow_long_context;
    /* LoRA adapter applied in cpt_model_step's linears (cpt/lora.h); NULL = none. */
    struct cpt_lora *lora;
    /* Non-NULL: this "model" is that adapter's parameter set (lo->pm: a tensor table and
     * one buffer, no layers); checkpoints hold it as a PEFT adapter (cpt/checkpoint.h). */
    struct cpt_lora *adapter;
    /* Non-NULL: this model is a view of a contiguous tensor range of that model
     * (cpt_model_view_range): params point into its buffer, tensors[i].off count from the
     * range's start, and there are no layer views. A trainer that keeps gradients and AdamW
     * moments only for what it trains works on it; checkpoints then save the whole model's
     * weights and the view's optimizer state. cpt_model_free frees only the view. */
    struct cpt_model *view_of;
    /* Precision bf16 (cpt_model_set_precision): the bf16 copy of params (same layout; backend
     * memory) the linear layers multiply with; NULL: fp32. The fp32 params stay the master
     * copy: whoever changes them calls cpt_model_refresh_lowp (the trainer after each step). */
    uint16_t *lowp;
} cpt_model;

/* Precision of the linear layers' products (forward and backward of training, scoring,
 * prefill): CPT_PREC_FP32, or CPT_PREC_BF16 = bf16 copies of the weights and of the
 * activations going into each product, fp32 accumulation, fp32 everything else (norms,
 * softmax, RoPE, the loss, reductions, gradients, AdamW); the LM head too (its fused
 * cross-entropy, xent_fwd_bwd_bf16) and attention's tile products (attn_fwd_bf16 / attn_bwd_bf16;
 * context parallelism and single-token decoding stay fp32). bf16 needs a backend with bf16
 * kernels (supports("linear_bf16")): CPT_EUNSUPPORTED with a HINT otherwise. Setting fp32 frees the copy. */
enum { CPT_PREC_FP32 = 0, CPT_PREC_BF16 = 1 };
int cpt_model_set_precision(cpt_model *m, int precision, cpt_err *err);
/* Re-round the bf16 copy from the fp32 parameters (no-op in fp32). */
void cpt_model_refresh_lowp(cpt_model *m);
/* Bytes of the bf16 copy (what cpt_model_set_precision allocates). */
size_t cpt_model_lowp_bytes(const cpt_model *m);

/* Build an empty model (parameters zeroed) for a validated config. */
int cpt_model_create(cpt_model **out, const cpt_config *cfg, cpt_err *err);
void cpt_model_free(cpt_model *m);
/* Move the parameters (and the RoPE tables) to backend `be` (allocated with be->alloc,
 * copied through the host) and use it from now on. Call before cpt_acts_create /
 * cpt_adamw_create / EWC state / cpt_kvcache_create: those allocate from the backend the
 * model has then (a KV cache refuses a model that changed backend since). */
int cpt_model_set_backend(cpt_model *m, const struct cpt_backend *be, cpt_err *err);
/* Bytes of one fp32 buffer in the parameter layout (the parameters, the gradients, each
 * AdamW moment, each regularizer copy): every such allocation is sized by this, and the
 * memory plan (cpt/memplan.h) counts it from the same function. */
size_t cpt_model_buffer_bytes(const cpt_model *m);
/* Views into another buffer with the same layout (grads, moments). */
int cpt_model_view(const cpt_model *m, float *base, cpt_view *v, cpt_err *err);
void cpt_view_free(cpt_view *v);
const cpt_tensor *cpt_model_find(const cpt_model *m, const char *name);
/* The smallest contiguous range of m's tensors (in layout order) holding every tensor with
 * trained[i] != 0, as a view (*out, see cpt_model.view_of): NULL when that range is the
 * whole model or nothing is trained. *first (may be NULL) gets the range's first tensor
 * index in m, so a per-tensor mask of m maps to the view by an offset. */
int cpt_model_view_range(cpt_model *m, const uint8_t *trained, cpt_model **out, int *first, cpt_err *err);
/* Fill parameters like transformers' init (normal(0, std) for matrices, ones for
 * norms, zeros for biases) from a seed. */
void cpt_model_init_random(cpt_model *m, uint64_t seed, float std);
/* RoPE for one forward whose largest position is seq_len - 1, as transformers'
 * dynamic_rope_update does it: dynamic NTK recomputes its frequencies when seq_len grows
 * past the cached maximum and resets them when seq_len falls below
 * max_position_embeddings; longrope picks long_factor when seq_len exceeds the original
 * context, short_factor otherwise. The tables then cover positions [0, seq_len).
 * Training and scoring call this once per batch. A seq_len past cpt_config_context_len
 * is an error (with a HINT naming the rope options) unless m->allow_long_context. */
int cpt_model_rope_update(cpt_model *m, int n_pos, cpt_err *err);
/* Same, for one decoding step at position n_pos - 1 of a sequence whose earlier tokens
 * went through cpt_model_rope_update (the prompt, as transformers prefills it in one
 * forward): frequencies only grow (dynamic: past the cached length; longrope: to
 * long_factor), so the tokens of one generation see what transformers' generate() gives
 * them with a KV cache. Tables cover positions [0, n_pos). */
int cpt_model_ensure_rope(cpt_model *m, int n_pos, cpt_err *err);
/* Bytes of the RoPE tables (cos and sin) for positions [0, n_pos): what the model
 * allocates when a pass needs n_pos positions. */
size_t cpt_model_rope_bytes(const cpt_config *c, int n_pos);

/* Load a Hugging Face model directory (config.json + safetensors, single or sharded;
 * F32/BF16/F16 tensors become fp32 masters). Every expected tensor must be present
 * with its shape; unexpected tensors are an error (rotary inv_freq buffers excepted). */
int cpt_model_load_hf(cpt_model **out, const char *dir, cpt_err *err);
/* Save config.json + model.safetensors (sharded above max_shard_bytes; 0 = never) with
 * HF names; dtype CPT_DT_F32 or CPT_DT_BF16 (values from cpt/safetensors.h). Also copies
 * tokenizer files from `tokenizer_src_dir` when it is not NULL. */
int cpt_model_save_hf(const cpt_model *m, const char *dir, int dtype, uint64_t max_shard_bytes,
                      const char *tokenizer_src_dir, cpt_err *err);
/* Import a llama2.c checkpoint (.bin, version 0 "legacy" format): rows of wq/wk are
 * permuted from the interleaved to the rotate_half layout (methods.md 1.8). */
int cpt_model_load_llama2c(cpt_model **out, const char *path, cpt_err *err);

/* ---- passes ---- */

/* Activations and scratch for a (B, T) batch, sized up front; reports its bytes. */
typedef struct cpt_acts cpt_acts;
int cpt_acts_create(cpt_acts **out, const cpt_model *m, int B, int T, int training, cpt_err *err);
/* Activation recomputation in the backward (training only; inference ignores it):
 * NONE keeps every layer's activations; FULL keeps only the residual stream entering
 * each layer and re-runs that layer's forward (up to the MLP's swiglu) into a
 * one-layer buffer before its backward; SELECTIVE also keeps each layer's attention
 * output and lse, so the recompute skips the attention kernel. All three give
 * bitwise identical losses and gradients (same kernels, same order). */
enum { CPT_RECOMPUTE_NONE = 0, CPT_RECOMPUTE_FULL = 1, CPT_RECOMPUTE_SELECTIVE = 2 };
int cpt_acts_create_ex(cpt_acts **out, const cpt_model *m, int B, int T, int training, int recompute,
                       cpt_err *err);
/* The exact bytes cpt_acts_create_ex would allocate for (c, B, T, training, recompute)
 * on a model with a LoRA adapter of rank lora_rank attached (0: none), in bf16 precision
 * when bf16 (the products' rounded inputs; cpt_model_set_precision) (the same plan;
 * attention, cross-entropy and adapter scratch included), without allocating.
 * CPT_EINVAL for bad arguments, CPT_ENOMEM when the size overflows. */
int cpt_acts_plan_bytes(const cpt_config *c, int B, int T, int training, int recompute, int lora_rank, int bf16, size_t *bytes);
void cpt_acts_free(cpt_acts *a);
/* From now on the gradient buffer given to cpt_model_step with these activations holds only
 * the parameter range [off, off + n) (the trained tensors' range, cpt_model_view_range):
 * tensors inside it accumulate at grads + (t->off - off), tensors outside it get no
 * gradient (as if frozen). n = 0: the whole layout (the default). */
void cpt_acts_set_grad_window(cpt_acts *a, size_t off, size_t n);
/* Context parallelism (cpt/cp.h): from now on the batches given with these activations
 * are this rank's zigzag rows (T = the local length, pos = global positions) and
 * attention runs on the ring `cp` (not owned; NULL turns it off). Training only. */
struct cpt_cp;
int cpt_acts_set_cp(cpt_acts *a, struct cpt_cp *cp, cpt_err *err);
size_t cpt_acts_bytes(const cpt_acts *a);

/* One batch: ids[B*T] inputs, targets[B*T] (the next token, or -1 to ignore),
 * optional pos[B*T] positions (NULL: 0..T-1 per row) and seg[B*T] document ids for
 * block-causal attention (NULL: plain causal). */
typedef struct cpt_batch {
    int B, T;
    const int32_t *ids, *targets, *pos, *seg;
} cpt_batch;

/* Forward (and backward when grads != NULL). Gradients of
 * grad_scale * sum_t loss_t accumulate (+=) into grads (same layout as params);
 * grad_scale is typically 1 / (valid targets in the whole optimizer step).
 * Returns through *loss_sum the summed loss over valid targets and *n_valid their count.
 * logits_out [B*T, V] (may be NULL) receives the logits. frozen (may be NULL) is a
 * per-tensor flag array: frozen tensors get no gradient. */
int cpt_model_step(cpt_model *m, cpt_acts *a, const cpt_batch *b, float *grads, float grad_scale,
                   const uint8_t *frozen, double *loss_sum, long long *n_valid, float *logits_out,
                   cpt_err *err);

/* Forward only (inference or training activations, no gradient): losses[B*T] receives
 * each position's cross-entropy (0 where the target is -1); loss_sum / n_valid as
 * cpt_model_step (either may be NULL). For loss by position (cpt eval-long). */
int cpt_model_token_losses(cpt_model *m, cpt_acts *a, const cpt_batch *b, float *losses, double *loss_sum,
                           long long *n_valid, cpt_err *err);

/* ---- incremental decoding with a KV cache ---- */
typedef struct cpt_kvcache cpt_kvcache;
int cpt_kvcache_create(cpt_kvcache **out, const cpt_model *m, int max_len, cpt_err *err);
void cpt_kvcache_free(cpt_kvcache *c);
/* The bytes cpt_kvcache_create(m, max_len) allocates (the memory plan's eval.long term). */
size_t cpt_kvcache_plan_bytes(const cpt_model *m, int max_len);
/* Feed one token at position c->len; writes logits [V]. */
int cpt_model_decode(cpt_model *m, cpt_kvcache *c, int32_t token, float *logits, cpt_err *err);
int cpt_kvcache_len(const cpt_kvcache *c);
/* Several sequences, one new token each, in one step: the linear layers and the LM head
 * see n rows (each weight read once for all of them), attention runs per sequence against
 * its own cache (any lengths). A batch holds the scratch for up to B sequences. The logits
 * [n, V] equal n cpt_model_decode calls up to the rounding of B-row matrix products
 * (tests/model/test_decode_batch.c: within 1e-4 relative). */
typedef struct cpt_decode_batch cpt_decode_batch;
int cpt_decode_batch_create(cpt_decode_batch **out, const cpt_model *m, int B, cpt_err *err);
void cpt_decode_batch_free(cpt_decode_batch *d);
int cpt_model_decode_batch(cpt_model *m, cpt_decode_batch *d, cpt_kvcache *const *kc, int n, const int32_t *tokens,
                           float *logits, cpt_err *err);
/* Fill an empty KV cache with a prompt of n tokens in one forward (the same kernels as
 * training, so a long prompt costs a batched forward instead of n decode steps); writes
 * the logits [V] of the prompt's last token. a: inference activations for (1, n). Decode
 * then continues at position n. */
int cpt_model_prefill(cpt_model *m, cpt_acts *a, cpt_kvcache *c, const int32_t *ids, int n, float *logits,
                      cpt_err *err);

#ifdef __cplusplus
}
#endif
#endif

/* cpt/lora.h: LoRA adapters (Hu et al. 2021) on the decoder's linear layers, laid out
 * and initialised as Hugging Face PEFT does, and saved / loaded as a PEFT adapter.
 *
 * For a targeted linear y = x W^T + b the forward is y + s * (x A^T) B^T with
 * A [r, in], B [out, r] and s = alpha / r (rsLoRA: alpha / sqrt(r)). The base weights
 * stay frozen. The adapter is its own parameter set: `pm` is a cpt_model holding only
 * a tensor table and one flat buffer of every A and B (PEFT names,
 * "base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight") followed by full
 * trainable copies of the modules in modules_to_save (embed_tokens, lm_head), so the
 * optimizer, clipping and checkpoints treat it exactly like a model's parameters
 * (cpt_adamw_create(pm), cpt_grad_clip(pm, ...)).
 *
 * Attached to a model (m->lora), cpt_model_step applies the adapters in every
 * targeted linear and, when lora->grads is set, accumulates the adapter gradients
 * there (same layout as pm->params); the base model then needs no gradient buffer
 * (grads may be NULL in cpt_model_step). The modules_to_save copies replace the
 * model's embedding / LM head views while attached, as PEFT's ModulesToSaveWrapper
 * does (on a tied model a trained embed_tokens copy leaves the LM head on the frozen
 * original, as in PEFT).
 */
#ifndef CPT_LORA_H
#define CPT_LORA_H

#include "cpt/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The seven linears of a decoder layer, in the order cpt_lora_target_name gives. */
enum { CPT_LORA_Q, CPT_LORA_K, CPT_LORA_V, CPT_LORA_O, CPT_LORA_GATE, CPT_LORA_UP, CPT_LORA_DOWN, CPT_LORA_NT };
#define CPT_LORA_ALL_LINEAR ((1u << CPT_LORA_NT) - 1u)

/* "q_proj", ..., "down_proj"; NULL outside [0, CPT_LORA_NT). */
const char *cpt_lora_target_name(int t);
/* Bit for a target name ("q_proj" ... "down_proj"; "all-linear" gives every bit); 0 if unknown. */
unsigned cpt_lora_target_bits(const char *name);

typedef struct cpt_lora_cfg {
    int rank;          /* r >= 1 */
    double alpha;      /* lora_alpha */
    double dropout;    /* lora_dropout on the adapter input, in [0, 1): training steps only */
    unsigned targets;  /* bit t = CPT_LORA_* targeted */
    int save_embed;    /* modules_to_save contains embed_tokens */
    int save_lm_head;  /* modules_to_save contains lm_head (untied models only) */
    int use_rslora;    /* s = alpha / sqrt(r) instead of alpha / r */
} cpt_lora_cfg;

typedef struct cpt_lora {
    cpt_lora_cfg cfg;
    float scale;        /* s */
    cpt_model *pm;      /* the trainable parameter set (tensor table + flat buffer only) */
    int n_layers;
    int *ta;            /* [n_layers * CPT_LORA_NT] pm tensor index of A (B is ta + 1), -1 if not targeted */
    int in[CPT_LORA_NT], out[CPT_LORA_NT]; /* in / out features of each linear */
    int embed_t, lm_head_t; /* pm tensor index of the modules_to_save copies, -1 if absent */
    /* Gradient buffer in pm's layout for the next training step (NULL: the step computes
     * no adapter gradients). Owned by the caller. */
    float *grads;
    /* Dropout (cfg.dropout > 0): non-zero = training steps apply it, with masks that are a
     * pure function of this key, the layer and the linear (counter-based, cpt/ops.h
     * cpt_dropout_keep), so the backward and a recompute rebuild them. The trainer sets a
     * new key for every micro-batch (from the seed, step, micro-batch and rank) and clears
     * it after; 0 (the default, e.g. evaluation or a Fisher estimate): no dropout. */
    uint64_t drop_key;
    uint64_t seed;      /* cpt_lora_create's seed (the trainer derives the dropout keys from it) */
    cpt_model *base;    /* the model it is attached to */
    float *base_embed, *base_lm_head; /* the model's own views, restored by cpt_lora_free */
} cpt_lora;

/* Validate cfg against the model (HINTs name the recipe keys), build the adapter,
 * initialise it as PEFT's default (A ~ kaiming_uniform(a = sqrt(5)) over fan_in, i.e.
 * U(-1/sqrt(in), 1/sqrt(in)) from `seed`; B = 0; modules_to_save copies = the base
 * tensors) and attach it to m (m->lora). Call after cpt_model_set_backend. */
int cpt_lora_create(cpt_lora **out, cpt_model *m, const cpt_lora_cfg *cfg, uint64_t seed, cpt_err *err);
/* Detach from the model (restores its embedding / LM head views) and free. */
void cpt_lora_free(cpt_lora *lo);
/* Merge into the attached model's parameters, as PEFT's merge_and_unload:
 * W += s * B A for every targeted linear, modules_to_save copies written over the base
 * tensors. The adapter stays attached but no longer applies (cpt_lora_free it). */
int cpt_lora_merge(cpt_lora *lo, cpt_err *err);

/* Write `dir`/adapter_config.json and `dir`/adapter_model.safetensors (fp32) as
 * PEFT's save_pretrained does; base_model_name_or_path is recorded (may be NULL). */
int cpt_lora_save_peft(const cpt_lora *lo, const char *dir, const char *base_model_name_or_path, cpt_err *err);
/* Read a PEFT adapter directory (adapter_config.json + adapter_model.safetensors)
 * and attach it to m: rank, alpha, rsLoRA, targets and modules_to_save from the
 * config, tensors by PEFT's names (every one must be present with its shape, and no
 * other tensor may be; F32/BF16/F16 read as fp32). lora_dropout is not applied (it acts
 * only in training) and the loaded cfg has dropout 0. What cpt cannot apply is refused
 * with the field named: DoRA, fan_in_fan_out, bias other than "none", rank_pattern /
 * alpha_pattern, layers_to_transform, regex target_modules, other modules_to_save. */
int cpt_lora_load_peft(cpt_lora **out, cpt_model *m, const char *dir, cpt_err *err);
/* Read the adapter tensors of a PEFT directory into an existing adapter with the same
 * layout (resume). */
int cpt_lora_read_tensors(cpt_lora *lo, const char *dir, cpt_err *err);

/* CPT_OK when `dir`/adapter_config.json describes lo's layout and scaling (rank, alpha,
 * rsLoRA, targets, modules_to_save); else CPT_ESTATE naming the field (resume checks). */
int cpt_lora_check_config(const cpt_lora *lo, const char *dir, cpt_err *err);

/* Human-readable: trainable parameter count of the adapter. */
size_t cpt_lora_n_trainable(const cpt_lora *lo);

#ifdef __cplusplus
}
#endif
#endif

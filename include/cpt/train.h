/* cpt/train.h: the continued-pretraining loop: gradient accumulation, clipping,
 * AdamW with decay groups and LR multipliers, frozen tensors, anchor penalties,
 * loss-spike skipping, in-loop evaluation against the base model with a forgetting
 * budget, and exact-resume checkpoints.
 *
 * Determinism: the sequence at global index g is a pure function of g (the data
 * interface below), the LR a pure function of the step, and every kernel's reduction
 * order is fixed for a given thread count. So a run resumed from the checkpoint of
 * step K equals, bit for bit on CPU, the run that never stopped (tests/train).
 */
#ifndef CPT_TRAIN_H
#define CPT_TRAIN_H

#include <stdio.h>

#include "cpt/checkpoint.h"
#include "cpt/model.h"
#include "cpt/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A source of packed training sequences. `sequence` fills T positions for global
 * sequence index g: ids[T] inputs, targets[T] (next token or -1 = no loss), pos[T]
 * positions and seg[T] document ids (for block-causal attention), and the index of
 * the source the sequence came from. It must be a pure function of g. */
typedef struct cpt_data_iface {
    void *ctx;
    int (*sequence)(void *ctx, long long g, int T, int32_t *ids, int32_t *targets, int32_t *pos, int32_t *seg,
                    int *source, cpt_err *err);
    int n_sources;
    const char *const *source_names;
} cpt_data_iface;

/* A named validation set: sequences 0..n_seqs-1 of its data interface. */
typedef struct cpt_eval_set {
    const char *name;
    cpt_data_iface data;
    long long n_seqs;
    double budget; /* allowed relative rise of perplexity vs the base model (0.05 = 5%); <= 0: none */
} cpt_eval_set;

/* One stage of a progressive-length run: from step `start` on (until the next stage),
 * micro-batches of micro_batch x seq_len, grad_accum of them per step, from `data`,
 * whose global sample 0 is the stage's first sample (step - start) * global batch. */
typedef struct cpt_train_stage {
    long long start;
    int seq_len, micro_batch, grad_accum;
    cpt_data_iface data;
    /* config.json overrides applied to the model when the stage starts, on top of the
     * earlier stages' (per-stage RoPE: rope_theta, rope_scaling); NULL: none */
    const char *config_override;
} cpt_train_stage;

struct cpt_metrics;

typedef struct cpt_train_cfg {
    const char *run_dir;
    int seq_len, micro_batch, grad_accum;
    long long max_steps;
    int block_causal;    /* 1: attention stays within documents of a packed sequence */
    int reset_positions; /* 1: positions restart at every document */
    int recompute;       /* CPT_RECOMPUTE_NONE (0) | FULL | SELECTIVE (cpt/model.h) */
    /* optimizer */
    cpt_adamw_cfg optim;
    double clip;          /* max global grad norm; <= 0: off */
    double embed_lr_mult; /* LR multiplier for embeddings and LM head */
    /* LR schedule: lr_fn(sched, step) for optimizer update number `step` (0-based) */
    double (*lr_fn)(const void *sched, long long step);
    const void *sched;
    /* anchor penalty (L2 toward base / EWC): adds its gradient into grads, returns the
     * penalty value; NULL = none. `m` is what is trained (the model, or lora->pm). */
    double (*penalty_fn)(void *ctx, const cpt_model *m, float *grads);
    void *penalty_ctx;
    /* frozen tensors: per tensor-table index (may be NULL); frozen_fn, when set, gives the
     * mask for each step instead (e.g. per training stage) */
    const uint8_t *frozen;
    const uint8_t *(*frozen_fn)(void *ctx, long long step);
    void *frozen_ctx;
    /* row freezing (cpt/rowfreeze.h; NULL = none): rows_fn(ctx, m, grads, step, 0) after the
     * gradient reduction, rows_fn(ctx, m, NULL, step, 1) after the optimizer step */
    int (*rows_fn)(void *ctx, cpt_model *m, float *grads, long long step, int after, cpt_err *err);
    void *rows_ctx;
    /* stability: skip a step whose loss or grad norm has a z-score above this against the
     * last `window` accepted steps (<= 0: off); non-finite values are always skipped */
    double skip_zscore;
    int skip_window;
    /* evaluation */
    cpt_data_iface train_data;
    cpt_eval_set *evals;
    int n_evals;
    long long eval_every; /* 0: only at the start and the end */
    int eval_batches;     /* sequences per eval set (capped at n_seqs); recipe eval.sequences */
    int stop_on_budget;   /* 1: stop when a forgetting budget is exceeded, 0: warn */
    /* A further evaluation (cmd_train's eval.long: passkey, needle, loss by position), on
     * rank 0 only, with the weights (and RoPE) of that step: at step 0 of a fresh run, every
     * eval_extra_every steps (0: none between), and at the last step. It logs its own
     * metrics through mx (NULL when metrics are off). NULL: none. */
    int (*eval_extra_fn)(void *ctx, cpt_model *m, long long step, struct cpt_metrics *mx, FILE *log, cpt_err *err);
    void *eval_extra_ctx;
    long long eval_extra_every;
    /* checkpoints */
    long long ckpt_every; /* 0: only at the end */
    int keep_last;
    int keep_best;        /* 1: never delete the checkpoint with the lowest eval loss (mean over sets) */
    int ckpt_sharded;     /* ZeRO-1 on > 1 rank: 1 = each rank writes its optimizer shard
                             (cpt_ckpt_save_sharded), 0 = rank 0 gathers and writes one file */
    const char *recipe_text; /* effective recipe, saved in every checkpoint */
    /* output */
    FILE *log;            /* progress bar / lines and messages (NULL: silent) */
    int metrics;          /* 1: write <run_dir>/metrics.jsonl and TensorBoard events */
    /* data parallelism (cpt/dp.h): NULL or a single-process communicator = one process.
     * micro_batch is per rank; rank r takes its block of the global batch in the order
     * of cpt_mix_rank_index; only rank 0 writes checkpoints (log/metrics: the caller
     * passes them to rank 0 only). */
    struct cpt_comm *comm;
    int zero; /* 1: ZeRO-1, the AdamW moments sharded over the ranks (cpt/zero.h) */
    /* Context parallelism (cpt/cp.h): > 1 splits every sequence over groups of this many
     * consecutive ranks (ring attention); the data-parallel size is then ranks / it, and
     * every seq_len must be a multiple of 2 x it. 0 or 1: off. */
    int context_parallel;
    /* Progressive length: n_stages > 0 stages (sorted, stages[0].start = 0) replace
     * seq_len / micro_batch / grad_accum / train_data of the training steps (evaluation
     * keeps seq_len and micro_batch); activations and batch buffers are reallocated at
     * each boundary. train_data still names the sources (the stages' data have the same). */
    int n_stages;
    const cpt_train_stage *stages;
    /* LoRA (cpt/lora.h): non-NULL = train this adapter, attached to the model (m->lora),
     * instead of the model's weights, which stay frozen and get no gradient buffer. The
     * optimizer, clipping, the penalty, the gradient reduction and the checkpoints then
     * work on the adapter's parameter set lora->pm (frozen / frozen_fn / rows_fn must be
     * NULL; embed_lr_mult applies to its modules_to_save copies). */
    struct cpt_lora *lora;
    /* Frozen tensors that no step trains: a view of the model's contiguous range holding
     * every tensor some step trains (cpt_model_view_range over the union of the masks),
     * or NULL (the whole model). The gradients, the AdamW moments, clipping, the penalty,
     * the reduction and the checkpoints' optimizer state are then the view's (tensors
     * outside it must be frozen in every step); checkpoints still save every weight. */
    cpt_model *trained;
} cpt_train_cfg;

typedef struct cpt_eval_result {
    double base_loss, loss; /* mean token loss (nats) of the base model and now */
    long long tokens;
} cpt_eval_result;

typedef struct cpt_train_result {
    long long steps, tokens, skipped;
    double last_loss, wall_s;
    long long source_tokens[CPT_CKPT_MAX_SOURCES];
    cpt_eval_result evals[16];
    int budget_exceeded;
    long long best_step;  /* checkpoint step with the lowest mean eval loss (-1: none) */
    double best_loss;
    /* wall time of this session by phase (seconds): data loading, forward+backward,
     * penalty+clip+optimizer, evaluation, checkpoint writing */
    double t_data, t_compute, t_optim, t_eval, t_ckpt;
    double t_comm;        /* of t_optim: the data-parallel gradient/statistics reduction (ZeRO-1:
                             also the norm all-reduce and the parameter all-gather) */
    double t_ring;        /* of t_compute: ring attention's K/V passing (context parallelism) */
    int n_skips;          /* skipped steps of this session (first 100 kept) */
    long long skip_steps[100];
    const char *skip_reasons[100]; /* static strings */
} cpt_train_result;

/* Run training. If resume_dir is not NULL, state is restored from that checkpoint
 * first (weights, moments, step, counters, base-model eval values, skip window). */
int cpt_train_run(const cpt_train_cfg *cfg, cpt_model *m, const char *resume_dir, cpt_train_result *res,
                  cpt_err *err);

/* Mean token loss of a model on sequences [0, n) of a data interface (the in-loop
 * evaluation, the same computation as `cpt score` per sequence). */
int cpt_eval_loss(cpt_model *m, const cpt_data_iface *d, long long n, int T, int B, int block_causal,
                  int reset_positions, double *loss, long long *tokens, cpt_err *err);

/* Sizes for the memory plan (cpt/memplan.h), from the same helpers the allocations use:
 * the host batch buffers cpt_train_run holds for micro_batch B, seq_len T, grad_accum A
 * (ids, targets, positions, document ids and the source of every sequence of a step);
 * and what one cpt_eval_loss call allocates for (B, T): inference activations plus its
 * batch buffer (CPT_EINVAL / CPT_ENOMEM as cpt_acts_plan_bytes). The trainer's gradients
 * are one cpt_model_buffer_bytes, its AdamW state cpt_adamw_state_bytes. */
size_t cpt_train_batch_bytes(int B, int T, int A);
int cpt_eval_plan_bytes(const cpt_config *c, int B, int T, int lora_rank, int bf16, size_t *bytes);

/* A simple deterministic data source over one token array (tests, demo): sequence g is
 * the window of T+1 tokens starting at (g * T) mod (n - T - 1), with documents separated
 * by `eos` (seg and positions follow the separators). */
typedef struct cpt_tokstream {
    const int32_t *tokens;
    long long n;
    int32_t eos;
} cpt_tokstream;
cpt_data_iface cpt_tokstream_iface(cpt_tokstream *ts);

#ifdef __cplusplus
}
#endif
#endif

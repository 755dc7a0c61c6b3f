/* cpt/memplan.h: the memory plan of a training run (what `cpt train` prints before its
 * first step, writes to <run_dir>/memory_plan.json and checks against the memory the
 * process may use), in the manner of Megatron's theoretical-memory report and
 * torchtitan's memory estimation, but exact rather than estimated: every planned term is
 * the byte count of one allocation, taken from the size function that allocation itself
 * uses (cpt_model_buffer_bytes, cpt_adamw_state_bytes, cpt_ewc_state_bytes,
 * cpt_acts_plan_bytes, cpt_eval_plan_bytes, cpt_model_rope_bytes, cpt_train_batch_bytes),
 * so the plan cannot drift from the code. All of these buffers are zero-filled when
 * allocated, so they are resident (in RSS) from the start.
 *
 * Terms (bytes):
 *   weights          the fp32 parameters (with a LoRA adapter attached, m->lora: the
 *                    model's plus the adapter's; in bf16 precision plus the bf16 copy)
 *   gradients        one buffer in the layout of what is trained (the model's parameters,
 *                    or with LoRA only the adapter's: the frozen base has none; with tensors
 *                    that no step trains, the range of those that are, in.trained)
 *   adamw            m and v of what is trained
 *   l2_base          the base weights kept for regularization.l2_base (0 when off)
 *   ewc              EWC Fisher + base weights (0 when off)
 *   activations      the training activation arena for (micro_batch, seq_len, recompute),
 *                    attention and cross-entropy workspaces included (their size depends
 *                    on the OpenMP thread count, so plan after setting it)
 *   rope             the RoPE cos/sin tables for seq_len positions
 *   data             the trainer's batch buffers for a whole optimizer step
 *   eval             inference activations + batch buffer of one cpt_eval_loss call
 *                    (allocated during each evaluation, on top of training's; 0 without
 *                    validation sets), or when larger eval.long's at its longest length:
 *                    inference activations for (1, length), a KV cache of length tokens
 *                    (cpt_kvcache_plan_bytes) and one row of logits
 *   resume           (ZeRO-1: at least the second moments rank 0 gathers at each save,
 *                    plus, when resuming, the whole state read before each rank keeps its slice)
 *                    when resuming: the largest checkpoint file, whose mapped pages are
 *                    resident while it is read (0 on a fresh run)
 *   ewc_estimate     EWC on: when the Fisher is estimated (no cache file yet), what the
 *                    estimation allocates besides the EWC state (a gradient buffer, its
 *                    own (1, seq_len) activations without recompute, the sampled rows);
 *                    when it is read from the cache, the cache file (mapped while read).
 *                    Either happens before training's gradients, moments and activations
 *                    exist
 *   process          MEASURED, not computed: the resident set of the process at planning
 *                    time minus the weights: the binary and its libraries, the OpenMP
 *                    thread stacks, the OpenBLAS buffers, the tokenizer, the data readers'
 *                    indexes and buffers, the allocator's own overhead
 * eval and resume never overlap (resume happens before the first evaluation), and the
 * Fisher estimation ends before training allocates, so
 *   total = weights + l2_base + ewc + rope + process
 *           + max(gradients + adamw + activations + data + max(eval, resume), ewc_estimate).
 * Not planned: the page cache of the data shards (mapped read-only, clean, reclaimable).
 */
#ifndef CPT_MEMPLAN_H
#define CPT_MEMPLAN_H

#include "cpt/model.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    CPT_MEM_WEIGHTS = 0,
    CPT_MEM_GRADS,
    CPT_MEM_ADAMW,
    CPT_MEM_L2_BASE,
    CPT_MEM_EWC,
    CPT_MEM_ACTS,
    CPT_MEM_ROPE,
    CPT_MEM_DATA,
    CPT_MEM_EVAL,
    CPT_MEM_RESUME,
    CPT_MEM_EWC_ESTIMATE,
    CPT_MEM_PROCESS,
    CPT_MEM_N_TERMS
};

/* What the plan depends on besides the model. */
typedef struct cpt_memplan_in {
    int micro_batch, seq_len, grad_accum;
    int recompute;        /* CPT_RECOMPUTE_* */
    int l2_base;          /* 1: regularization.l2_base > 0 */
    int ewc;              /* 1: regularization.ewc.lambda > 0 */
    int zero_ranks;       /* ZeRO-1 over this many ranks: the AdamW term is one shard's
                             (0 or 1: whole) */
    int sharded_ckpt;     /* with zero_ranks > 1: 1 = every rank saves its own shard (no
                             gather); 0 = rank 0 gathers the whole state for each save */
    int n_evals;          /* validation sets */
    int context_parallel; /* > 1: the activations are for seq_len / it tokens per sequence,
                             plus the ring attention buffers (cpt/cp.h) */
    size_t resume_bytes;  /* largest checkpoint file of the resume (0: fresh run) */
    size_t process_bytes; /* measured: see cpt_memplan_process_bytes */
    size_t ewc_estimate_bytes; /* Fisher transient (0: no EWC): cpt_ewc_estimate_plan_bytes +
                                  the caller's row buffer, or the cache file's size */
    const cpt_model *trained; /* a view of the model's trained tensors (cpt_model_view_range):
                                 gradients, moments and regularizer copies are its; NULL: all */
    int eval_long_len;        /* eval.long's longest length (0: none): one prompt's inference
                                 activations, its KV cache and its logits, in the eval term */
} cpt_memplan_in;

typedef struct cpt_memplan {
    size_t term[CPT_MEM_N_TERMS];
    size_t total;
    /* echo of the inputs, for the table and the JSON */
    size_t n_params;      /* the model's */
    size_t n_trainable;   /* what gets gradients and moments: n_params, the LoRA adapter's
                             parameter count (cpt_lora_n_trainable), or the trained view's */
    int micro_batch, seq_len, grad_accum, recompute, threads;
    int lora;             /* 1: the trained set is a LoRA adapter */
} cpt_memplan;

/* Build the plan for model m (its config and tensor table) at the current OpenMP thread
 * count. CPT_EINVAL for bad sizes; CPT_ENOMEM (message with a HINT) when a size
 * overflows, i.e. the plan cannot fit any machine. */
int cpt_memplan_make(const cpt_model *m, const cpt_memplan_in *in, cpt_memplan *p, cpt_err *err);

/* The term's key in memory_plan.json ("weights", "gradients", ...) and its label in the
 * table ("AdamW moments (m, v)", ...). */
const char *cpt_memplan_key(int term);
const char *cpt_memplan_label(int term);

/* This process's resident set (VmRSS) and its peak (VmHWM) from /proc/self/status.
 * Either pointer may be NULL. CPT_EIO when the file cannot be read (not Linux). */
int cpt_mem_rss(size_t *rss, size_t *hwm, cpt_err *err);

/* The measured fixed overhead: VmRSS now minus `resident_planned` (the planned bytes
 * already resident, normally the weights); 0 if that is negative. */
int cpt_memplan_process_bytes(size_t resident_planned, size_t *bytes, cpt_err *err);

/* The memory this process may use: MemAvailable (/proc/meminfo) plus what the process
 * already holds (VmRSS: the plan's total counts it), capped by the cgroup limit when one
 * is set (v2 memory.max, the smallest along the cgroup path; v1 memory.limit_in_bytes).
 * `source` (may be NULL) receives a short description of where the number came from.
 * CPT_EIO when neither /proc/meminfo nor a cgroup limit can be read. */
int cpt_mem_available(size_t *bytes, char *source, size_t source_len, cpt_err *err);

/* CPT_ENOMEM when p->total > available, with a message that names both (bytes and GiB),
 * the largest terms, and a HINT (training.recompute: full, a smaller
 * training.micro_batch, a shorter training.seq_len, or training.memory_check: false). */
int cpt_memplan_check(const cpt_memplan *p, size_t available, const char *source, cpt_err *err);

/* The plan as a readable table (one line per term with MiB and exact bytes, then the
 * total and, when available > 0, the available memory) and as JSON (bytes per term key,
 * total, the inputs, and available / source / fits when available > 0). Both malloc'ed;
 * NULL when out of memory. `measured_peak` > 0 adds the measured peak RSS (the report). */
char *cpt_memplan_table(const cpt_memplan *p, size_t available, const char *source);
char *cpt_memplan_json(const cpt_memplan *p, size_t available, const char *source, size_t measured_peak);

#ifdef __cplusplus
}
#endif
#endif

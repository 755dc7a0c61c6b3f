/* train_schema.c: the `cpt train` option table (keys, types, defaults, bounds,
 * help) and its cross-field checks; the generic machinery is in validate.c.
 *
 * Defaults follow docs/methods.md §13 (a suggested starting point for
 * one-off CPT of a base model): AdamW betas (0.9, 0.95), eps 1e-8, weight decay
 * 0.1, clip 1.0; linear warmup over 1% of steps then cosine to 10% of the peak;
 * peak LR 3e-4 (Ibrahim et al. re-warm to the original pretraining peak). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recipe/recipe-impl.h"

#define INF INFINITY
#define BIG 1e12 /* step and token counts: far above any real run, far below 2^53 */
#define OPT(p, t, d, lo, hi, ch, fl, h) {p, t, d, lo, hi, ch, h, fl}

/* Schedule keys: once at the top level with defaults, once per stage without
 * (a stage inherits every schedule key it does not set). */
/* The RoPE keys, top level (rope.*) and per stage (stages.#.rope.*). */
#define ROPE_KEYS(P, H) \
    OPT(P "theta", CPT_RT_FLOAT, NULL, 1, 1e30, NULL, 0, \
        "New rope_theta (the NTK-aware / ABF base change for a longer context, e.g. 10000 -> " \
        "500000 or 1e6; Llama 2 Long: 5e5, Code Llama: 1e6)" H), \
    OPT(P "scaling.type", CPT_RT_ENUM, NULL, 0, 0, "default|linear|dynamic|yarn|llama3", 0, \
        "Replace the model's rope_scaling with this type (default = none; longrope needs " \
        "per-model factor lists and is only read from config.json)" H), \
    OPT(P "scaling.factor", CPT_RT_FLOAT, NULL, 1, 1e6, NULL, 0, \
        "rope_scaling factor (linear, dynamic, yarn, llama3)" H), \
    OPT(P "scaling.original_max_position_embeddings", CPT_RT_INT, NULL, 1, 1e12, NULL, 0, \
        "Pre-extension context (llama3: required; yarn: then factor = " \
        "max_position_embeddings / this, as transformers 4.51 reads it)" H), \
    OPT(P "scaling.low_freq_factor", CPT_RT_FLOAT, NULL, 0, 1e6, NULL, CPT_ROPT_MIN_EXCL, \
        "llama3: low_freq_factor (Llama 3.1: 1)" H), \
    OPT(P "scaling.high_freq_factor", CPT_RT_FLOAT, NULL, 0, 1e6, NULL, CPT_ROPT_MIN_EXCL, \
        "llama3: high_freq_factor (Llama 3.1: 4)" H), \
    OPT(P "scaling.beta_fast", CPT_RT_FLOAT, NULL, 0, 1e6, NULL, CPT_ROPT_MIN_EXCL, \
        "yarn: beta_fast (unset: 32)" H), \
    OPT(P "scaling.beta_slow", CPT_RT_FLOAT, NULL, 0, 1e6, NULL, CPT_ROPT_MIN_EXCL, \
        "yarn: beta_slow (unset: 1)" H), \
    OPT(P "scaling.mscale", CPT_RT_FLOAT, NULL, 0, 1e6, NULL, CPT_ROPT_MIN_EXCL, \
        "yarn: mscale (with mscale_all_dim: attention factor = mscale ratio)" H), \
    OPT(P "scaling.mscale_all_dim", CPT_RT_FLOAT, NULL, 0, 1e6, NULL, CPT_ROPT_MIN_EXCL, \
        "yarn: mscale_all_dim" H), \
    OPT(P "scaling.attention_factor", CPT_RT_FLOAT, NULL, 0, 1e6, NULL, CPT_ROPT_MIN_EXCL, \
        "yarn: attention factor on cos and sin (unset: 0.1 ln(factor) + 1)" H), \
    OPT(P "max_position_embeddings", CPT_RT_INT, NULL, 1, 1073741824, NULL, 0, \
        "New max_position_embeddings (the extended context)" H)

#define SCHED_KEYS(X)                                                                          \
    X("type", CPT_RT_ENUM, "cosine", 0, 0, "constant|linear|cosine|wsd|infinite", 0,             \
      "LR schedule shape (methods §4): cosine = warmup then cosine to min_lr_ratio; wsd = "      \
      "warmup-stable-decay; infinite = warmup, cooldown, constant, anneal")                     \
    X("warmup_steps", CPT_RT_INT, NULL, 0, BIG, NULL, 0,                                         \
      "Warmup length in steps; when set it replaces warmup_frac (set one of the two)")          \
    X("warmup_frac", CPT_RT_FLOAT, "0.01", 0, 1, NULL, CPT_ROPT_MAX_EXCL,                         \
      "Warmup length as a fraction of the steps (1%: Gupta et al. found the length matters "    \
      "little); unset when warmup_steps is set")                                                                                \
    X("min_lr_ratio", CPT_RT_FLOAT, "0.1", 0, 1, NULL, 0,                                         \
      "Final LR as a fraction of the peak (cosine/linear/wsd end, infinite anneal end)")        \
    X("decay_frac", CPT_RT_FLOAT, "0.1", 0, 1, NULL, CPT_ROPT_MIN_EXCL,                           \
      "wsd: fraction of the steps spent in the final decay (MiniCPM: ~10%)")                    \
    X("decay_shape", CPT_RT_ENUM, "1-sqrt", 0, 0, "cosine|linear|1-sqrt|exp", 0,                 \
      "wsd: decay shape (1-sqrt: Hagele et al. 2024)")                                          \
    X("rewarm_from", CPT_RT_FLOAT, "0", 0, 1, NULL, 0,                                            \
      "Warmup starts at rewarm_from * lr instead of 0")                                         \
    X("const_ratio", CPT_RT_FLOAT, "0.5", 0, 1, NULL, CPT_ROPT_MIN_EXCL,                          \
      "infinite: the constant LR as a fraction of the peak")                                    \
    X("cooldown_frac", CPT_RT_FLOAT, "0.15", 0, 1, NULL, CPT_ROPT_MIN_EXCL,                       \
      "infinite: the cooldown to the constant LR ends at this fraction of the steps")           \
    X("anneal_frac", CPT_RT_FLOAT, "0.2", 0, 1, NULL, CPT_ROPT_MAX_EXCL,                          \
      "infinite: the final exponential anneal covers this fraction of the steps (0 = none)")    \
    X("cooldown_shape", CPT_RT_ENUM, "cosine", 0, 0, "cosine|inv-sqrt", 0,                       \
      "infinite: cooldown shape")                                                               \
    X("timescale", CPT_RT_FLOAT, "10", 0, 1e6, NULL, CPT_ROPT_MIN_EXCL,                           \
      "infinite, inv-sqrt cooldown: the timescale alpha of h(x) = 1/sqrt(1 + alpha x) - 1")

#define TOP_SCHED(n, t, d, lo, hi, ch, fl, h) OPT("schedule." n, t, d, lo, hi, ch, fl, h),
#define STAGE_SCHED(n, t, d, lo, hi, ch, fl, h)                                                \
    OPT("stages.#.schedule." n, t, NULL, lo, hi, ch, fl, h " (unset: the top-level value)"),

static const cpt_recipe_opt train_opts[] = {
    OPT("model", CPT_RT_PATH, NULL, 0, 0, NULL, CPT_ROPT_REQUIRED,
        "Base model to continue: a Hugging Face model directory or a llama2.c .bin file"),
    OPT("tokenizer", CPT_RT_PATH, "{model}", 0, 0, NULL, 0,
        "Tokenizer file or directory (default: the model's own)"),
    OPT("out_dir", CPT_RT_PATH, "runs/{recipe.name}", 0, 0, NULL, CPT_ROPT_OUTPUT | CPT_ROPT_DIR,
        "Run directory: checkpoints, logs and this effective config (relative to the working "
        "directory)"),
    OPT("seed", CPT_RT_INT, "1234", 0, 4294967295.0, NULL, 0,
        "Seed of everything random in the run (data order has its own, data.seed)"),
    OPT("threads", CPT_RT_INT, "0", 0, 4096, NULL, 0, "CPU threads; 0 = all cores"),
    OPT("precision", CPT_RT_ENUM, "fp32", 0, 0, "fp32|bf16", 0,
        "Products of the decoder's linear layers, the LM head and attention's tiles: bf16 = bf16 "
        "weight copies and inputs with fp32 accumulation on AMX or AVX512-BF16 (fp32 master "
        "weights, gradients, AdamW, norms, softmax, loss); on a CPU without them the run says so "
        "and trains in fp32"),

    /* RoPE for the run (methods.md 1.2-1.6); applied to the model and written into every
     * checkpoint's and the export's config.json. Unset: the model's own. */
    ROPE_KEYS("rope.", ""),
    OPT("rope.allow_long_context", CPT_RT_BOOL, "false", 0, 0, NULL, 0,
        "Allow sequences longer than the model's context (max_position_embeddings, scaled) "
        "without changing RoPE"),

    OPT("data.sources.*.path", CPT_RT_PATH, NULL, 0, 0, NULL, CPT_ROPT_REQUIRED | CPT_ROPT_DIR,
        "A prepared shard directory (from `cpt data prepare`) for the source named *"),
    OPT("data.sources.*.max_epochs", CPT_RT_FLOAT, NULL, 0, 1e6, NULL, CPT_ROPT_MIN_EXCL,
        "Stop drawing from this source after this many passes (unset: wrap around without "
        "limit; Guo et al.: a few epochs over a good subset)"),
    OPT("data.sources.*.min_doc_tokens", CPT_RT_INT, NULL, 0, 1e15, NULL, 0,
        "Only documents of at least this many tokens (from the shard index; unset: all): a "
        "long-document source for long-context stages (ProLong, methods §5.5)"),
    OPT("data.sources.*.max_doc_tokens", CPT_RT_INT, NULL, 1, 1e15, NULL, 0,
        "Only documents of at most this many tokens (unset: all); the same path may be declared "
        "twice, once long and once short, and mixed by data.mixture / stages.#.mixture"),
    OPT("data.mixture.*", CPT_RT_FLOAT, NULL, 0, 1, NULL, CPT_ROPT_SUM1,
        "Share of training sequences drawn from source * (the shares sum to 1; absent sources "
        "get 0)"),
    OPT("data.replay.source", CPT_RT_STRING, NULL, 0, 0, NULL, 0,
        "Instead of data.mixture: the source replayed at data.replay.fraction; the other "
        "sources share the rest in proportion to their token counts"),
    OPT("data.replay.fraction", CPT_RT_FLOAT, NULL, 0, 1, NULL, CPT_ROPT_MIN_EXCL | CPT_ROPT_MAX_EXCL,
        "Replay share of the token budget (compute-equivalent, methods §5.1: ~0.05 for a weak "
        "shift, ~0.25 for a strong one)"),
    OPT("data.validation.*", CPT_RT_PATH, NULL, 0, 0, NULL, CPT_ROPT_DIR,
        "A prepared validation shard directory for the set named * (evaluated every "
        "eval.every steps)"),
    OPT("data.seed", CPT_RT_INT, "{seed}", 0, 4294967295.0, NULL, 0,
        "Seed of the data order (default: seed)"),

    OPT("training.seq_len", CPT_RT_INT, "2048", 16, 1048576, NULL, 0,
        "Tokens per packed training sequence"),
    OPT("training.micro_batch", CPT_RT_INT, "8", 1, 65536, NULL, 0,
        "Sequences per forward/backward pass"),
    OPT("training.grad_accum", CPT_RT_INT, "1", 1, 65536, NULL, 0,
        "Micro-batches accumulated per optimizer step"),
    OPT("training.zero", CPT_RT_INT, "0", 0, 1, NULL, 0,
        "ZeRO stage: 1 shards the AdamW moments over the data-parallel ranks (per-rank "
        "optimizer memory / N; checkpoints stay consolidated), 0 keeps them whole on every rank"),
    OPT("parallel.context", CPT_RT_INT, "1", 1, 1024, NULL, 0,
        "Context parallelism: each sequence is split over this many ranks (ring attention, zigzag "
        "chunks, methods 14.2); it must divide the number of processes, which then run "
        "processes / it data-parallel groups, and 2 x it must divide every seq_len"),
    OPT("training.max_steps", CPT_RT_INT, NULL, 1, BIG, NULL, 0,
        "Optimizer steps (set this or training.max_tokens; with stages: their sum)"),
    OPT("training.tokens_per_step", CPT_RT_INT, NULL, 16, 1e12, NULL, 0,
        "Tokens per optimizer step for stages that change seq_len or micro_batch: a stage without "
        "stages.#.grad_accum gets grad_accum = tokens_per_step / (micro_batch x seq_len x ranks), which must "
        "divide exactly (unset: every stage keeps its grad_accum)"),
    OPT("training.max_tokens", CPT_RT_INT, NULL, 1, 1e15, NULL, 0,
        "Token budget; steps = ceil(max_tokens / (seq_len * micro_batch * grad_accum))"),
    OPT("training.block_causal", CPT_RT_BOOL, "true", 0, 0, NULL, 0,
        "Attention stays within each document of a packed sequence (document masking, methods "
        "§5.6)"),
    OPT("training.reset_positions", CPT_RT_BOOL, "false", 0, 0, NULL, 0,
        "Positions restart at 0 at every document of a packed sequence"),
    OPT("training.recompute", CPT_RT_ENUM, "none", 0, 0, "none|full|selective", 0,
        "Activation recomputation: full keeps only each layer's input and re-runs its forward "
        "in the backward; selective also keeps attention output + lse (bitwise same results)"),
    OPT("training.train_only", CPT_RT_ENUM, "all", 0, 0, "all|embeddings|new_embeddings", 0,
        "Train only embed_tokens + lm_head (embeddings), or only their rows of the tokens "
        "`cpt vocab extend` added (new_embeddings, from the model's vocab_extend.json); all: "
        "everything not frozen"),
    OPT("training.memory_check", CPT_RT_BOOL, "true", 0, 0, NULL, 0,
        "Refuse to start when the memory plan (printed before the first step, memory_plan.json) "
        "exceeds the memory the process may use (cgroup limit, else MemAvailable); false: warn "
        "and run"),

    OPT("optim.lr", CPT_RT_FLOAT, "3e-4", 0, 1, NULL, CPT_ROPT_MIN_EXCL,
        "Peak learning rate (base models ~1e-4..5e-4, instruct models ~2e-5..1e-4)"),
    OPT("optim.beta1", CPT_RT_FLOAT, "0.9", 0, 1, NULL, CPT_ROPT_MAX_EXCL, "AdamW beta1"),
    OPT("optim.beta2", CPT_RT_FLOAT, "0.95", 0, 1, NULL, CPT_ROPT_MAX_EXCL, "AdamW beta2"),
    OPT("optim.eps", CPT_RT_FLOAT, "1e-8", 0, 1, NULL, CPT_ROPT_MIN_EXCL, "AdamW epsilon"),
    OPT("optim.weight_decay", CPT_RT_FLOAT, "0.1", 0, 10, NULL, 0,
        "AdamW decoupled weight decay (none on norms and biases, methods §3.3)"),
    OPT("optim.embed_lr_mult", CPT_RT_FLOAT, "1.0", 0, 100, NULL, 0,
        "LR multiplier for the embeddings and the LM head"),
    OPT("optim.embed_lr", CPT_RT_FLOAT, NULL, 0, 1, NULL, CPT_ROPT_MIN_EXCL,
        "Peak LR of the embeddings and the LM head (unset: optim.lr times optim.embed_lr_mult); "
        "it follows the schedule (as the multiplier embed_lr / optim.lr)"),
    OPT("optim.clip", CPT_RT_FLOAT, "1.0", 0, 1e6, NULL, 0,
        "Clip the global gradient norm to this; 0 = off"),

    SCHED_KEYS(TOP_SCHED)

    OPT("stages.#.name", CPT_RT_STRING, "stage{#}", 0, 0, NULL, 0,
        "Name of stage # (in logs and checkpoint names)"),
    OPT("stages.#.steps", CPT_RT_INT, NULL, 1, BIG, NULL, CPT_ROPT_REQUIRED,
        "Optimizer steps of stage # (stages run in order; their sum is training.max_steps)"),
    OPT("stages.#.mixture.*", CPT_RT_FLOAT, NULL, 0, 1, NULL, CPT_ROPT_SUM1,
        "Mixture of stage # (replaces data.mixture / data.replay for this stage; sums to 1)"),
    OPT("stages.#.seq_len", CPT_RT_INT, NULL, 16, 1048576, NULL, 0,
        "Sequence length of stage # (unset: training.seq_len). Stages of different lengths (progressive "
        "length) read each source in stream order and count its position in tokens, so a length change "
        "neither skips nor repeats data; validation keeps training.seq_len"),
    OPT("stages.#.micro_batch", CPT_RT_INT, NULL, 1, 65536, NULL, 0,
        "Micro-batch of stage # (unset: training.micro_batch)"),
    OPT("stages.#.grad_accum", CPT_RT_INT, NULL, 1, 65536, NULL, 0,
        "Gradient accumulation of stage # (unset: from training.tokens_per_step, else training.grad_accum)"),
    OPT("stages.#.lr", CPT_RT_FLOAT, NULL, 0, 1, NULL, CPT_ROPT_MIN_EXCL,
        "Peak LR of stage # (unset: optim.lr)"),
    ROPE_KEYS("stages.#.rope.", " from stage # on (applied on top of the RoPE of the earlier stages; written into the "
                                "checkpoints' and the export's config.json)"),
    SCHED_KEYS(STAGE_SCHED)
    OPT("stages.#.train_only", CPT_RT_ENUM, NULL, 0, 0, "all|embeddings|new_embeddings", 0,
        "What stage # trains (unset: training.train_only), e.g. new_embeddings in a first stage "
        "before full CPT"),
    OPT("stages.#.freeze.embeddings", CPT_RT_BOOL, NULL, 0, 0, NULL, 0,
        "Freeze embeddings in stage # (unset: regularization.freeze.embeddings)"),
    OPT("stages.#.freeze.first_layers", CPT_RT_INT, NULL, 0, 1024, NULL, 0,
        "Freeze the first N layers in stage # (unset: regularization.freeze.first_layers)"),

    OPT("regularization.ewc.lambda", CPT_RT_FLOAT, "0", 0, 1e12, NULL, 0,
        "EWC strength: penalty lambda/2 sum F (theta - theta*)^2 with F divided by its mean "
        "(methods §6.1); 0 = off"),
    OPT("regularization.ewc.source", CPT_RT_STRING, NULL, 0, 0, NULL, 0,
        "Source (a data.sources name, usually the replay data) the Fisher is estimated on"),
    OPT("regularization.ewc.samples", CPT_RT_INT, "256", 1, 10000000, NULL, 0,
        "Sequences used to estimate the Fisher (a few hundred to a few thousand)"),
    OPT("regularization.ewc.cache", CPT_RT_PATH, NULL, 0, 0, NULL, CPT_ROPT_OUTPUT,
        "Fisher cache file (safetensors): computed once, reused while it matches the model"),
    OPT("regularization.l2_base", CPT_RT_FLOAT, "0", 0, 1e12, NULL, 0,
        "L2 pull toward the base weights, alpha of (alpha/2)||theta - theta0||^2 (L2-SP, "
        "methods §6.2); 0 = off"),
    OPT("regularization.freeze.embeddings", CPT_RT_BOOL, "false", 0, 0, NULL, 0,
        "Freeze the token embeddings (and a tied LM head)"),
    OPT("regularization.freeze.first_layers", CPT_RT_INT, "0", 0, 1024, NULL, 0,
        "Freeze the first N transformer layers"),

    OPT("lora.rank", CPT_RT_INT, "0", 0, 65536, NULL, 0,
        "LoRA rank r: > 0 trains low-rank adapters on the lora.targets linears (the base "
        "weights frozen, gradients and AdamW moments only for the adapter; saved as a PEFT "
        "adapter in every checkpoint and {out_dir}/adapter); 0 = full-parameter training"),
    OPT("lora.alpha", CPT_RT_FLOAT, NULL, 0, 1e9, NULL, CPT_ROPT_MIN_EXCL,
        "LoRA alpha: the update is scaled by alpha / r (unset: 2 x lora.rank)"),
    OPT("lora.dropout", CPT_RT_FLOAT, "0", 0, 1, NULL, CPT_ROPT_MAX_EXCL,
        "Dropout on the adapters' input (PEFT's lora_dropout), training only"),
    OPT("lora.targets", CPT_RT_STRING, NULL, 0, 0, NULL, 0,
        "Linears that get adapters, comma-separated (q_proj,k_proj,v_proj,o_proj,gate_proj,"
        "up_proj,down_proj) or all-linear; also a YAML list (lora.targets.#). Unset: all-linear"),
    OPT("lora.targets.#", CPT_RT_ENUM, NULL, 0, 0,
        "q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj|all-linear", 0,
        "One linear of the lora.targets list"),
    OPT("lora.modules_to_save", CPT_RT_STRING, NULL, 0, 0, NULL, 0,
        "Modules trained in full next to the adapters (PEFT's modules_to_save), comma-separated: "
        "embed_tokens, lm_head (untied models); also a YAML list (lora.modules_to_save.#)"),
    OPT("lora.modules_to_save.#", CPT_RT_ENUM, NULL, 0, 0, "embed_tokens|lm_head", 0,
        "One module of the lora.modules_to_save list"),
    OPT("lora.rslora", CPT_RT_BOOL, "false", 0, 0, NULL, 0,
        "Rank-stabilised LoRA: scale by alpha / sqrt(r) instead of alpha / r (PEFT use_rslora)"),
    OPT("lora.seed", CPT_RT_INT, "{seed}", 0, 4294967295.0, NULL, 0,
        "Seed of the adapters' initialisation (A Kaiming-uniform as PEFT, B zero)"),
    OPT("lora.merge_export", CPT_RT_BOOL, "true", 0, 0, NULL, 0,
        "The end-of-run export (export.at_end) writes the merged model (W + s B A, as PEFT's "
        "merge_and_unload); false: only the adapter in {out_dir}/adapter"),

    OPT("stability.skip_zscore", CPT_RT_FLOAT, "0", 0, 1000, NULL, 0,
        "Skip an update whose loss is this many standard deviations above the recent mean; 0 = "
        "off (non-finite gradient norms are always skipped)"),
    OPT("stability.window", CPT_RT_INT, "100", 2, 1000000, NULL, 0,
        "Steps in the running loss statistics for skip_zscore"),

    OPT("eval.every", CPT_RT_INT, "100", 0, BIG, NULL, 0,
        "Evaluate the validation sets every N steps; 0 = only at the start and the end"),
    OPT("eval.sequences", CPT_RT_INT, "8", 1, 1000000, NULL, 0,
        "Sequences (of data.seq_len tokens) evaluated per validation set, capped at the set's "
        "size (formerly eval.batches)"),
    OPT("eval.forgetting_budget.*", CPT_RT_FLOAT, NULL, 0, 100, NULL, 0,
        "Allowed relative rise of validation set *'s loss over the base model (0.03 = 3%, the "
        "D-CPT threshold of methods §13)"),
    OPT("eval.on_budget", CPT_RT_ENUM, "warn", 0, 0, "warn|stop", 0,
        "What to do when a forgetting budget is exceeded"),
    OPT("eval.ifeval.every", CPT_RT_INT, NULL, 0, BIG, NULL, 0,
        "Instruction-following retention (instruct models): verifiable-instruction prompts through the "
        "chat template at step 0, every N steps (0: only at the start and the end) and at the end"),
    OPT("eval.ifeval.prompts", CPT_RT_STRING, "ifeval", 0, 0, NULL, 0,
        "The prompt set: ifeval (the 100 built in) or a JSONL file of prompts with checks"),
    OPT("eval.ifeval.limit", CPT_RT_INT, "20", 0, 1000000, NULL, 0,
        "The first N prompts (0: all; each costs a greedy reply)"),
    OPT("eval.ifeval.max_new", CPT_RT_INT, "96", 1, 1000000, NULL, 0,
        "At most N generated tokens per reply"),
    OPT("eval.ifeval.budget", CPT_RT_FLOAT, "0.1", 0, 1, NULL, 0,
        "Allowed drop of prompt-level accuracy below the base (absolute); past it: a warning and an "
        "ifeval_budget event"),
    OPT("eval.tasks.names", CPT_RT_STRING, NULL, 0, 0, NULL, 0,
        "Benchmark tasks in the loop (the names cpt eval takes, comma-separated: arc_easy, hellaswag, "
        "ifeval, triviaqa, qa:FILE.jsonl, a .jsonl of multiple choice, ...): the same first eval.tasks.limit "
        "items at step 0 (the base, cached in OUT_DIR/eval_tasks/base.json), every eval.tasks.every steps "
        "and at the end; metrics task/NAME/... with the paired delta against the base, report.md"),
    OPT("eval.tasks.every", CPT_RT_INT, "0", 0, BIG, NULL, 0,
        "Run eval.tasks every N steps (0: only at the start and the end)"),
    OPT("eval.tasks.limit", CPT_RT_INT, "100", 0, 1000000, NULL, 0,
        "The first N items of each task (0: all)"),
    OPT("eval.tasks.fewshot", CPT_RT_INT, "0", 0, 64, NULL, 0,
        "Solved examples before each item (cpt eval --fewshot)"),
    OPT("eval.tasks.max_new", CPT_RT_INT, "0", 0, 1000000, NULL, 0,
        "Generated tokens per reply for ifeval / QA tasks (0: the task's default, ifeval 256, QA 32)"),
    OPT("eval.tasks.budget", CPT_RT_FLOAT, "0.05", 0, 1, NULL, 0,
        "Allowed drop of a task's score below the base (absolute); past it: a warning and a task_budget event"),
    OPT("eval.tasks.data_dir", CPT_RT_STRING, NULL, 0, 0, NULL, 0,
        "Where the built-in tasks' files are (default as cpt eval: ../shared/data/eval beside the checkout)"),
    OPT("eval.long.lengths", CPT_RT_STRING, NULL, 0, 0, NULL, 0,
        "Long-context checks in the loop (cpt eval-long): comma-separated context lengths, e.g. "
        "\"1024,2048,4096\"; passkey accuracy (and needle / loss by position when their inputs are "
        "set) at step 0, every eval.long.every steps and at the end, in metrics.jsonl (long/...) and report.md"),
    OPT("eval.long.depths", CPT_RT_STRING, "0,0.5,1", 0, 0, NULL, 0,
        "Comma-separated depths (fractions of the filler before the passkey / needle) of eval.long"),
    OPT("eval.long.trials", CPT_RT_INT, "1", 1, 1000, NULL, 0,
        "Prompts per (length, depth) of eval.long (passkeys differ per trial)"),
    OPT("eval.long.every", CPT_RT_INT, "0", 0, BIG, NULL, 0,
        "Run eval.long every N steps; 0 = only at the start and the end (long prompts are slow)"),
    OPT("eval.long.haystack", CPT_RT_PATH, NULL, 0, 0, NULL, 0,
        "Text file the needle of eval.long is hidden in; unset = no needle test"),
    OPT("eval.long.ppl_text", CPT_RT_PATH, NULL, 0, 0, NULL, 0,
        "A long text (a held-out book) for eval.long's loss by position bucket; unset = none"),
    OPT("eval.long.bucket", CPT_RT_INT, "512", 1, 16777216, NULL, 0,
        "First position bucket of eval.long's loss by position: [0,B), [B,2B), [2B,4B), ..."),
    OPT("eval.long.ppl_windows", CPT_RT_INT, "2", 1, 1000000, NULL, 0,
        "Windows (of each length) of eval.long.ppl_text scored for the loss by position"),

    OPT("checkpoint.every", CPT_RT_INT, "500", 0, BIG, NULL, 0,
        "Save a checkpoint every N steps; 0 = only at the end"),
    OPT("checkpoint.keep_last", CPT_RT_INT, "2", 1, 1000000, NULL, 0,
        "Number of most recent checkpoints kept"),
    OPT("checkpoint.sharded_optim", CPT_RT_BOOL, "true", 0, 0, NULL, 0,
        "With ZeRO-1 on several ranks: every rank writes its shard of the optimizer state in "
        "parallel (optim-R-of-N.safetensors; resumes on any number of ranks; cpt ckpt "
        "consolidate makes one file); false: rank 0 gathers it and writes one optim.safetensors"),
    OPT("checkpoint.keep_best", CPT_RT_BOOL, "true", 0, 0, NULL, 0,
        "Also keep the checkpoint with the lowest mean validation loss"),
    OPT("checkpoint.dir", CPT_RT_PATH, "{out_dir}/checkpoints", 0, 0, NULL,
        CPT_ROPT_OUTPUT | CPT_ROPT_DIR, "Checkpoint directory"),

    OPT("export.dtype", CPT_RT_ENUM, "f32", 0, 0, "f32|bf16", 0,
        "Weight type of the exported Hugging Face model"),
    OPT("export.at_end", CPT_RT_BOOL, "true", 0, 0, NULL, 0,
        "Export a Hugging Face model directory when training ends"),
    OPT("export.dir", CPT_RT_PATH, "{out_dir}/export", 0, 0, NULL, CPT_ROPT_OUTPUT | CPT_ROPT_DIR,
        "Export directory"),
};

/* ---- cross-field checks ---- */

static int fail_at(cpt_recipe *r, const char *key, cpt_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_at(cpt_recipe *r, const char *key, cpt_err *err, const char *fmt, ...) {
    char loc[512], msg[1500];
    const rcp_entry *e = key ? rcp_store_find(&r->st, key) : NULL;
    if (e)
        rcp_loc(r, e, 1, loc, sizeof loc);
    else
        snprintf(loc, sizeof loc, "%s", r->st.srcs[1].label);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return cpt_err_set(err, CPT_EINVAL, "%s: %s", loc, msg);
}

static int explicit_(const cpt_recipe *r, const char *key) {
    cpt_recipe_origin o = cpt_recipe_origin_of(r, key);
    return o == CPT_RORIG_FILE || o == CPT_RORIG_OVERRIDE;
}

/* The declared name (under `prefix`) nearest to `name`. */
static const char *nearest_name(const cpt_recipe *r, const char *prefix, const char *name) {
    const char *best = "(none declared)";
    size_t bd = (size_t)-1, n = cpt_recipe_n_names(r, prefix);
    for (size_t i = 0; i < n; i++) {
        const char *c = cpt_recipe_name(r, prefix, i);
        size_t d = c ? cpt_recipe_edit_distance(c, name) : (size_t)-1;
        if (d < bd) bd = d, best = c;
    }
    return best;
}

static int declared(const cpt_recipe *r, const char *prefix, const char *name) {
    size_t n = cpt_recipe_n_names(r, prefix);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(cpt_recipe_name(r, prefix, i), name)) return 1;
    return 0;
}

/* Every name under map `map` is declared under `decl`. */
static int check_names(cpt_recipe *r, const char *map, const char *decl, const char *what,
                       cpt_err *err) {
    size_t n = cpt_recipe_n_names(r, map);
    for (size_t i = 0; i < n; i++) {
        const char *nm = cpt_recipe_name(r, map, i);
        if (declared(r, decl, nm)) continue;
        char key[600];
        snprintf(key, sizeof key, "%s.%s", map, nm);
        return fail_at(r, key, err,
                       "%s: \"%s\" is not a declared %s (declared under %s: %zu). HINT: did you "
                       "mean %s? or declare %s.%s",
                       key, nm, what, decl, cpt_recipe_n_names(r, decl),
                       nearest_name(r, decl, nm), decl, nm);
    }
    return CPT_OK;
}

/* A schedule value for stage s (-1: top level), inherited from the top level. */
static double sched_f(const cpt_recipe *r, int s, const char *k) {
    char key[128];
    if (s >= 0) {
        snprintf(key, sizeof key, "stages.%d.schedule.%s", s, k);
        if (cpt_recipe_has(r, key)) return cpt_recipe_float(r, key);
    }
    snprintf(key, sizeof key, "schedule.%s", k);
    return cpt_recipe_float(r, key);
}
static const char *sched_s(const cpt_recipe *r, int s, const char *k) {
    char key[128];
    if (s >= 0) {
        snprintf(key, sizeof key, "stages.%d.schedule.%s", s, k);
        if (cpt_recipe_has(r, key)) return cpt_recipe_str(r, key);
    }
    snprintf(key, sizeof key, "schedule.%s", k);
    return cpt_recipe_str(r, key);
}

static int check_schedule(cpt_recipe *r, int s, long long steps, cpt_err *err) {
    char pre[64], key[128];
    if (s >= 0)
        snprintf(pre, sizeof pre, "stages.%d.schedule", s);
    else
        snprintf(pre, sizeof pre, "schedule");
    /* warmup: steps or a fraction, not both */
    char ws[128], wf[128];
    snprintf(ws, sizeof ws, "%s.warmup_steps", pre);
    snprintf(wf, sizeof wf, "%s.warmup_frac", pre);
    if (cpt_recipe_has(r, ws) && explicit_(r, wf))
        return fail_at(r, ws, err,
                       "%s and %s are both set. HINT: set one of the two", ws, wf);
    /* warmup_steps replaces the default fraction: unset it so the dump (and a reload
     * of it) shows one warmup length, not two */
    if (cpt_recipe_has(r, ws) && cpt_recipe_has(r, wf)) rcp_store_remove_tree(&r->st, wf);
    double warm;
    if (cpt_recipe_has(r, ws))
        warm = (double)cpt_recipe_int(r, ws) / (double)steps;
    else if (s >= 0 && cpt_recipe_has(r, wf))
        warm = cpt_recipe_float(r, wf);
    else if (cpt_recipe_has(r, "schedule.warmup_steps"))
        warm = (double)cpt_recipe_int(r, "schedule.warmup_steps") / (double)steps;
    else
        warm = cpt_recipe_float(r, "schedule.warmup_frac");
    if (steps > 0 && warm >= 1.0)
        return fail_at(r, cpt_recipe_has(r, ws) ? ws : "schedule.warmup_steps", err,
                       "%s: warmup (%.10g of the steps) is not shorter than the %lld steps. "
                       "HINT: shorten the warmup or run more steps",
                       pre, warm, steps);
    const char *type = sched_s(r, s, "type");
    if (!strcmp(type, "wsd") && warm + sched_f(r, s, "decay_frac") > 1.0 + 1e-12) {
        snprintf(key, sizeof key, "%s.decay_frac", pre);
        return fail_at(r, cpt_recipe_has(r, key) ? key : "schedule.decay_frac", err,
                       "%s: wsd warmup (%.10g) + decay_frac (%.10g) exceed the whole run. HINT: "
                       "lower decay_frac or the warmup",
                       pre, warm, sched_f(r, s, "decay_frac"));
    }
    if (!strcmp(type, "infinite")) {
        double cd = sched_f(r, s, "cooldown_frac"), an = sched_f(r, s, "anneal_frac");
        snprintf(key, sizeof key, "%s.cooldown_frac", pre);
        if (!(warm < cd) || cd > 1.0 - an + 1e-12)
            return fail_at(r, cpt_recipe_has(r, key) ? key : "schedule.cooldown_frac", err,
                           "%s: the infinite schedule needs warmup (%.10g) < cooldown_frac "
                           "(%.10g) <= 1 - anneal_frac (%.10g). HINT: e.g. warmup_frac 0.05, "
                           "cooldown_frac 0.15, anneal_frac 0.2 (the MAE reference defaults)",
                           pre, warm, cd, 1.0 - an);
    }
    return CPT_OK;
}

static int train_check(cpt_recipe *r, cpt_err *err) {
    int rc;
    size_t ns = cpt_recipe_n_names(r, "data.sources");
    if (ns == 0)
        return fail_at(r, NULL, err,
                       "data.sources: no data source declared. HINT: add \"data: {sources: "
                       "{domain: {path: shards/domain}}}\" (shard directories from `cpt data "
                       "prepare`)");
    /* the mixture: explicit, replay, or implied by a single source */
    int has_mix = cpt_recipe_n_names(r, "data.mixture") > 0;
    int has_rs = cpt_recipe_has(r, "data.replay.source");
    int has_rf = cpt_recipe_has(r, "data.replay.fraction");
    if ((rc = check_names(r, "data.mixture", "data.sources", "source", err))) return rc;
    if (has_mix && (has_rs || has_rf))
        return fail_at(r, has_rs ? "data.replay.source" : "data.replay.fraction", err,
                       "data.mixture and data.replay are both given. HINT: use one: an explicit "
                       "mixture, or a replay source and fraction");
    if (has_rs != has_rf)
        return fail_at(r, has_rs ? "data.replay.source" : "data.replay.fraction", err,
                       "data.replay needs both source and fraction (only %s is set). HINT: add "
                       "data.replay.%s",
                       has_rs ? "source" : "fraction", has_rs ? "fraction" : "source");
    if (has_rs) {
        const char *src = cpt_recipe_str(r, "data.replay.source");
        if (!declared(r, "data.sources", src))
            return fail_at(r, "data.replay.source", err,
                           "data.replay.source: \"%s\" is not a declared source. HINT: did you "
                           "mean %s?",
                           src, nearest_name(r, "data.sources", src));
        if (ns < 2)
            return fail_at(r, "data.replay.source", err,
                           "data.replay: only one source is declared, so nothing is left for "
                           "the other %.10g. HINT: declare the domain source too",
                           1 - cpt_recipe_float(r, "data.replay.fraction"));
    }
    /* when every stage has its own mixture the top-level one is never used */
    size_t nst = cpt_recipe_list_len(r, "stages"), staged = 0;
    for (size_t i = 0; i < nst; i++) {
        char key[64];
        snprintf(key, sizeof key, "stages.%zu.mixture", i);
        staged += cpt_recipe_n_names(r, key) > 0;
    }
    if (!has_mix && !has_rs && !(nst > 0 && staged == nst)) {
        if (ns > 1)
            return fail_at(r, NULL, err,
                           "%zu data sources but no data.mixture or data.replay. HINT: add "
                           "data.mixture (weights summing to 1) or data.replay.{source,fraction}",
                           ns);
        char key[600];
        snprintf(key, sizeof key, "data.mixture.%s", cpt_recipe_name(r, "data.sources", 0));
        if ((rc = cpt_recipe_set_derived(r, key, "1", err))) return rc;
    }
    /* validation sets and budgets */
    if ((rc = check_names(r, "eval.forgetting_budget", "data.validation", "validation set", err)))
        return rc;
    /* EWC */
    if (cpt_recipe_has(r, "regularization.ewc.source")) {
        const char *src = cpt_recipe_str(r, "regularization.ewc.source");
        if (!declared(r, "data.sources", src))
            return fail_at(r, "regularization.ewc.source", err,
                           "regularization.ewc.source: \"%s\" is not a declared source. HINT: "
                           "did you mean %s?",
                           src, nearest_name(r, "data.sources", src));
    } else if (cpt_recipe_float(r, "regularization.ewc.lambda") > 0) {
        return fail_at(r, "regularization.ewc.lambda", err,
                       "regularization.ewc.lambda > 0 needs regularization.ewc.source (the data "
                       "the Fisher is estimated on). HINT: set it to your replay source");
    }
    /* length: max_steps or max_tokens; stages add up */
    int has_steps = cpt_recipe_has(r, "training.max_steps");
    int has_tokens = cpt_recipe_has(r, "training.max_tokens");
    if (has_steps && has_tokens)
        return fail_at(r, "training.max_tokens", err,
                       "training.max_steps and training.max_tokens are both set. HINT: set one "
                       "of the two");
    long long total = has_steps ? cpt_recipe_int(r, "training.max_steps") : 0;
    if (nst > 0) {
        long long sum = 0;
        for (size_t i = 0; i < nst; i++) {
            char key[64];
            snprintf(key, sizeof key, "stages.%zu.steps", i);
            sum += cpt_recipe_int(r, key);
            snprintf(key, sizeof key, "stages.%zu.mixture", i);
            if ((rc = check_names(r, key, "data.sources", "source", err))) return rc;
        }
        if (has_tokens)
            return fail_at(r, "training.max_tokens", err,
                           "training.max_tokens with stages: stage lengths are in steps. HINT: "
                           "drop max_tokens (the run is the sum of the stages' steps)");
        if (has_steps && total != sum)
            return fail_at(r, "training.max_steps", err,
                           "training.max_steps = %lld but the stages' steps sum to %lld. HINT: "
                           "set max_steps to %lld or drop it (it is derived from the stages)",
                           total, sum, sum);
        if (!has_steps) {
            char v[32];
            snprintf(v, sizeof v, "%lld", sum);
            if ((rc = cpt_recipe_set_derived(r, "training.max_steps", v, err))) return rc;
        }
        total = sum;
    } else if (!has_steps && !has_tokens) {
        return fail_at(r, NULL, err,
                       "training.max_steps / training.max_tokens: neither is set, so the run has "
                       "no length. HINT: set one, e.g. training.max_steps=1000");
    }
    if (has_tokens) {
        long long per = cpt_recipe_int(r, "training.seq_len") *
                        cpt_recipe_int(r, "training.micro_batch") *
                        cpt_recipe_int(r, "training.grad_accum");
        long long mt = cpt_recipe_int(r, "training.max_tokens");
        total = (mt + per - 1) / per;
    }
    /* schedules: top level over the whole run, stages over their own steps */
    if ((rc = check_schedule(r, -1, total, err))) return rc;
    for (size_t i = 0; i < nst; i++) {
        char key[64];
        snprintf(key, sizeof key, "stages.%zu.steps", i);
        long long st = cpt_recipe_int(r, key);
        snprintf(key, sizeof key, "stages.%zu.schedule", i);
        /* a stage with schedule keys of its own runs that schedule over its steps */
        if (cpt_recipe_n_names(r, key) > 0 && (rc = check_schedule(r, (int)i, st, err))) return rc;
    }
    return CPT_OK;
}

/* Renamed keys, still read (with a warning) so that existing recipes keep working. */
static const cpt_recipe_alias train_aliases[] = {
    {"eval.batches", "eval.sequences", "it counts sequences, not batches"},
};

static const cpt_recipe_schema train_schema = {
    "cpt train",
    train_opts,
    sizeof train_opts / sizeof train_opts[0],
    train_check,
    train_aliases,
    sizeof train_aliases / sizeof train_aliases[0],
};

const cpt_recipe_schema *cpt_recipe_train_schema(void) { return &train_schema; }

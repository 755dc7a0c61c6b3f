/* cpt/checkpoint.h: complete, atomic training checkpoints.
 *
 * Layout: <run>/checkpoints/step-<8 digits>/
 *   config.json, model.safetensors   a Hugging Face model directory (fp32 masters, HF
 *                                    names): transformers loads it as is
 *   optim.safetensors                AdamW moments "exp_avg.<name>", "exp_avg_sq.<name>"
 *                                    (the consolidated per-parameter form of methods.md §9,
 *                                    so a run can resume on any number of processes)
 *   (LoRA runs: adapter_config.json + adapter_model.safetensors instead, a PEFT adapter
 *   directory of the adapter's fp32 weights; the base model is the recipe's model and is
 *   not copied; PeftModel.from_pretrained(base, step-N) loads it)
 *   trainer_state.json               step, optimizer step, tokens, per-source tokens, the
 *                                    trainer's own state (JSON object) and the effective
 *                                    recipe, and the CRC32 of both .safetensors files
 * A save writes everything into "<run>/checkpoints/.tmp-step-<n>-<pid>/", fsyncs each
 * file, renames the directory into place and fsyncs the parent: a crash (even SIGKILL)
 * at any point leaves the previous checkpoints intact and at worst a .tmp directory,
 * which the next save removes. Loading verifies both checksums.
 */
#ifndef CPT_CHECKPOINT_H
#define CPT_CHECKPOINT_H

#include "cpt/model.h"
#include "cpt/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CPT_CKPT_MAX_SOURCES 64

typedef struct cpt_ckpt_state {
    long long step;       /* optimizer steps completed */
    long long tokens;     /* training tokens consumed */
    int n_sources;
    char source_names[CPT_CKPT_MAX_SOURCES][64];
    long long source_tokens[CPT_CKPT_MAX_SOURCES];
    char *trainer_json;   /* trainer-owned JSON object text (malloc'ed; may be NULL) */
    char *recipe_text;    /* effective recipe (malloc'ed; may be NULL) */
} cpt_ckpt_state;

void cpt_ckpt_state_free(cpt_ckpt_state *s);

/* Save a checkpoint for st->step; then delete older checkpoints beyond the newest
 * `keep_last` (0 = keep all) except those listed in `keep` (may be NULL, e.g. the best).
 * On success *out_dir (if non-NULL) receives the malloc'ed checkpoint path. */
int cpt_ckpt_save(const char *run_dir, const cpt_model *m, const cpt_adamw *opt, const cpt_ckpt_state *st,
                  int keep_last, const char *const *keep, char **out_dir, cpt_err *err);

/* ZeRO-1's save, collective over c (every rank calls it): each rank writes its slice of
 * the optimizer state, `shard`, as optim-RRRRR-of-NNNNN.safetensors (flat exp_avg and
 * exp_avg_sq of [offset, offset + count), the range in the metadata) in parallel into
 * rank 0's temporary directory; rank 0 then writes the model and trainer_state.json with
 * "optim_shards" (file, rank, offset, count, crc32 of each) and "parameters" (every
 * tensor's name, shape and flat offset), and renames the directory into place. A failure
 * on any rank leaves the previous checkpoints as they were, and every rank returns it.
 * `cpt ckpt consolidate` turns the shards into one optim.safetensors. */
struct cpt_comm;
int cpt_ckpt_save_sharded(const char *run_dir, const cpt_model *m, struct cpt_comm *c, const cpt_adamw *shard,
                          const cpt_ckpt_state *st, int keep_last, const char *const *keep, char **out_dir, cpt_err *err);

/* Load a checkpoint into an existing model of the same config (and optimizer, if not
 * NULL). Every tensor must match by name and shape. `m` may be a LoRA adapter's parameter
 * set (lo->pm, m->adapter set): the checkpoint must then be an adapter one with the same
 * rank, alpha, targets and modules_to_save (cpt_lora_check_config), and vice versa. The optimizer may be a slice [off,
 * off + n) of the parameter buffer (ZeRO-1): only that part is read, from either the
 * consolidated optim.safetensors or the shards (any number of them), so a checkpoint
 * resumes on any number of ranks. */
int cpt_ckpt_load(const char *ckpt_dir, cpt_model *m, cpt_adamw *opt, cpt_ckpt_state *st, cpt_err *err);

/* Turn a sharded optimizer state (cpt_ckpt_save_sharded) in checkpoint `dir` into one
 * optim.safetensors (exp_avg.<name>, exp_avg_sq.<name> per HF parameter, as a
 * consolidated save writes it), rewrite trainer_state.json to point at it and remove the
 * shards; *n_shards gets how many were merged (0: it was one file already, nothing done).
 * Each file is replaced atomically, so an interrupted run leaves a loadable checkpoint. */
int cpt_ckpt_consolidate(const char *dir, int *n_shards, cpt_err *err);

/* Newest complete checkpoint of a run (by step), or CPT_ENOTFOUND. Directories that fail
 * a quick validity check (missing files) are skipped. */
int cpt_ckpt_latest(const char *run_dir, char **ckpt_dir, cpt_err *err);

#ifdef __cplusplus
}
#endif
#endif

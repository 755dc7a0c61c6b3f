/* cpt/checkpoint.h: complete, atomic training checkpoints.
 *
 * Layout: <run>/checkpoints/step-<8 digits>/
 *   config.json, model.safetensors   a Hugging Face model directory (fp32 masters, HF
 *                                    names): transformers loads it as is
 *   optim.safetensors                AdamW moments "exp_avg.<name>", "exp_avg_sq.<name>"
 *                                    (the consolidated per-parameter form of methods.md §9,
 *                                    so a run can resume on any number of processes)
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

/* Load a checkpoint into an existing model of the same config (and optimizer, if not
 * NULL). Every tensor must match by name and shape. */
int cpt_ckpt_load(const char *ckpt_dir, cpt_model *m, cpt_adamw *opt, cpt_ckpt_state *st, cpt_err *err);

/* Newest complete checkpoint of a run (by step), or CPT_ENOTFOUND. Directories that fail
 * a quick validity check (missing files) are skipped. */
int cpt_ckpt_latest(const char *run_dir, char **ckpt_dir, cpt_err *err);

#ifdef __cplusplus
}
#endif
#endif

/* cli.h: the commands of the cpt binary and helpers shared by them. */
#ifndef CPT_CLI_H
#define CPT_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "cpt/common.h"

int cpt_cmd_train(int argc, char **argv);
int cpt_cmd_export(int argc, char **argv);
int cpt_cmd_score(int argc, char **argv);
int cpt_cmd_eval(int argc, char **argv);
int cpt_cmd_compare(int argc, char **argv);
int cpt_cmd_eval_long(int argc, char **argv);
/* cpt eval / compare's --data-dir default: $CPT_EVAL_DATA, else ../shared/data/eval beside
 * the checkout the binary was built in, else ../shared/data/eval from the working directory. */
const char *cpt_eval_default_data_dir(char *buf, size_t cap);
int cpt_cmd_generate(int argc, char **argv);
int cpt_cmd_convert(int argc, char **argv);
int cpt_cmd_init(int argc, char **argv);
int cpt_cmd_tokenize(int argc, char **argv);
int cpt_cmd_detokenize(int argc, char **argv);
int cpt_cmd_data(int argc, char **argv);
int cpt_cmd_vocab(int argc, char **argv);
int cpt_cmd_ckpt(int argc, char **argv);
int cpt_cmd_synth(int argc, char **argv);

/* cpt train --resume (src/cli/train_resume.c): compare the recipe stored in the checkpoint
 * ckpt_dir with `now` on every value that decides the data stream (seq_len, the global batch
 * micro_batch x grad_accum x ranks (ranks: now; the saved count is in trainer_state.json),
 * tokens_per_step, seed, sources and their length filters, mixtures, stages);
 * a change is CPT_ESTATE listing each "key old -> new", or with allow a warning on log. */
struct cpt_recipe;
int cpt_train_check_resume_recipe(const struct cpt_recipe *now, const char *ckpt_dir, int ranks, int allow, FILE *log, cpt_err *err);

/* Parse whitespace-separated token ids from text (label names the source in errors).
 * Returns a malloc'ed array; ids must be integers in [0, 2^31). */
int cpt_parse_ids(const char *text, const char *label, int32_t **ids, size_t *n, cpt_err *err);

/* The recipe's eval.long block (src/cli/train_evallong.c): NULL *out when eval.long.lengths
 * is unset; run is a cpt_train_cfg eval_extra_fn; markdown the report.md section (malloc'ed,
 * NULL before any run). */
typedef struct cpt_train_evallong cpt_train_evallong;
struct cpt_tok;
struct cpt_model;
struct cpt_metrics;
int cpt_train_evallong_setup(const struct cpt_recipe *r, const struct cpt_tok *tok, const char *run_dir, cpt_train_evallong **out,
                             long long *every, cpt_err *err);
int cpt_train_evallong_run(void *ctx, struct cpt_model *m, long long step, struct cpt_metrics *mx, FILE *log, cpt_err *err);
char *cpt_train_evallong_markdown(const cpt_train_evallong *e);
void cpt_train_evallong_free(cpt_train_evallong *e);

/* The recipe's eval.ifeval block (src/cli/train_evalif.c): NULL *out when eval.ifeval.every
 * is unset; run is a cpt_train_cfg eval_extra_fn (it runs whenever called); markdown the
 * report.md section (malloc'ed, NULL before any run). */
typedef struct cpt_train_evalif cpt_train_evalif;
int cpt_train_evalif_setup(const struct cpt_recipe *r, const struct cpt_tok *tok, const char *run_dir, cpt_train_evalif **out,
                           long long *every, cpt_err *err);
int cpt_train_evalif_run(void *ctx, struct cpt_model *m, long long step, struct cpt_metrics *mx, FILE *log, cpt_err *err);
char *cpt_train_evalif_markdown(const cpt_train_evalif *e);
void cpt_train_evalif_free(cpt_train_evalif *e);

/* The recipe's eval.tasks block (src/cli/train_evaltasks.c): NULL *out when
 * eval.tasks.names is unset; resuming: read the base's cached scores instead of measuring
 * them at the first run; run is a cpt_train_cfg eval_extra_fn; markdown the report.md
 * section (malloc'ed, NULL before any run). */
typedef struct cpt_train_evaltasks cpt_train_evaltasks;
int cpt_train_evaltasks_setup(const struct cpt_recipe *r, const struct cpt_tok *tok, const char *run_dir, int resuming,
                              cpt_train_evaltasks **out, long long *every, cpt_err *err);
int cpt_train_evaltasks_run(void *ctx, struct cpt_model *m, long long step, struct cpt_metrics *mx, FILE *log, cpt_err *err);
char *cpt_train_evaltasks_markdown(const cpt_train_evaltasks *e);
void cpt_train_evaltasks_free(cpt_train_evaltasks *e);

/* precision "fp32" (or NULL: nothing) | "bf16": bf16 products (cpt_model_set_precision) where the
 * CPU has AMX or AVX512-BF16 and the backend a kernel; elsewhere a line on log says `what`
 * ("training", "scoring") runs in fp32 and the call succeeds. Other values: CPT_EINVAL. */
struct cpt_model;
int cpt_cli_set_precision(struct cpt_model *m, const char *precision, const char *what, FILE *log, cpt_err *err);

/* The recipe's lora.* block (src/cli/train_lora.c): with lora.rank > 0, check it against the
 * rest of the recipe (no freezing, no train_only), build the adapter on m (attached) and
 * describe it on log; NULL *out for a full-parameter run. */
struct cpt_lora;
int cpt_train_lora_setup(const struct cpt_recipe *r, struct cpt_model *m, FILE *log, struct cpt_lora **out, cpt_err *err);

/* "a,b,c" -> numbers (at most cap), each in [lo, hi] and integral when asked; opt names the
 * option or recipe key in errors (with an example as HINT). */
int cpt_parse_num_list(const char *s, const char *opt, double lo, double hi, int integral, double *out, int cap, int *n,
                       cpt_err *err);

/* Print "cpt <cmd>: error: <msg>" and return the exit code for a library status
 * (2 for invalid arguments and missing files named on the command line, 1 otherwise). */
int cpt_cli_fail(const char *cmd, const cpt_err *err);

#endif

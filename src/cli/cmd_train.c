/* cmd_train.c: `cpt train RECIPE.yaml [key=value ...]`: turns a validated recipe
 * (cpt/recipe.h, schema in src/recipe/train_schema.c) into a training run: model,
 * data mixture per stage, LR schedule per stage, frozen tensors, anchor penalties
 * (L2 toward the base, EWC), evaluation against the base model, checkpoints, resume,
 * and the final export. Everything is validated before any work starts. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cpt/comm.h"
#include "cpt/fileio.h"
#include "cpt/lora.h"
#include "cpt/memplan.h"
#include "cpt/metrics.h"
#include "cpt/recipe.h"
#include "cpt/regularize.h"
#include "cpt/safetensors.h"
#include "cpt/schedule.h"
#include "cpt/shard.h"
#include "cpt/rowfreeze.h"
#include "cpt/tokenizer.h"
#include "cpt/traindata.h"

#define MAXS 16 /* stages */
#define MAXK 64 /* sources */

typedef struct {
    int n_stages;
    long long start[MAXS + 1]; /* stage s covers steps [start[s], start[s+1]) */
    cpt_schedule sched[MAXS];
    uint8_t *frozen[MAXS];     /* per-stage masks (NULL: nothing frozen) */
    int train_rows[MAXS];      /* 1: the stage trains only the new embedding rows */
    cpt_rowfreeze *rows;
    /* penalties */
    float *theta0;
    double l2;
    cpt_ewc *ewc;
    double ewc_lambda;
} run_ctx;

/* The recipe's RoPE keys under `pre` ("rope" or "stages.N.rope") as config.json
 * overrides in ov (""  when none is set): RoPE for the run (or from a stage on), written
 * into every checkpoint's and the export's config.json (methods.md 1.4: a new rope_theta;
 * 1.2-1.6: a rope_scaling block). */
static int rope_json(const cpt_recipe *r, const char *pre, char *ov, size_t cap, cpt_err *err) {
    static const char *num[] = {"factor", "low_freq_factor", "high_freq_factor", "beta_fast", "beta_slow",
                                "mscale", "mscale_all_dim", "attention_factor"};
    char key[160];
    size_t n = 0;
    n += (size_t)snprintf(ov + n, cap - n, "{");
    snprintf(key, sizeof key, "%s.theta", pre);
    if (cpt_recipe_has(r, key)) n += (size_t)snprintf(ov + n, cap - n, "\"rope_theta\": %.17g, ", cpt_recipe_float(r, key));
    snprintf(key, sizeof key, "%s.max_position_embeddings", pre);
    if (cpt_recipe_has(r, key)) n += (size_t)snprintf(ov + n, cap - n, "\"max_position_embeddings\": %lld, ", cpt_recipe_int(r, key));
    snprintf(key, sizeof key, "%s.scaling.type", pre);
    int has_type = cpt_recipe_has(r, key);
    const char *ty = has_type ? cpt_recipe_str(r, key) : NULL;
    const char *extra[sizeof num / sizeof num[0] + 1];
    size_t nx = 0;
    for (size_t i = 0; i < sizeof num / sizeof num[0]; i++) {
        snprintf(key, sizeof key, "%s.scaling.%s", pre, num[i]);
        if (cpt_recipe_has(r, key)) extra[nx++] = num[i];
    }
    snprintf(key, sizeof key, "%s.scaling.original_max_position_embeddings", pre);
    int has_omp = cpt_recipe_has(r, key);
    long long omp = has_omp ? cpt_recipe_int(r, key) : 0;
    if ((nx || has_omp) && !has_type)
        return cpt_err_set(err, CPT_EINVAL, "%s.scaling.%s is set without %s.scaling.type. HINT: add %s.scaling.type (linear, dynamic, yarn or llama3)",
                           pre, nx ? extra[0] : "original_max_position_embeddings", pre, pre);
    if (has_type) {
        if (!strcmp(ty, "default") && (nx || has_omp))
            return cpt_err_set(err, CPT_EINVAL, "%s.scaling.type default takes no other %s.scaling keys", pre, pre);
        if (!strcmp(ty, "default")) n += (size_t)snprintf(ov + n, cap - n, "\"rope_scaling\": null, ");
        else {
            n += (size_t)snprintf(ov + n, cap - n, "\"rope_scaling\": {\"rope_type\": \"%s\"", ty);
            for (size_t i = 0; i < nx; i++) {
                snprintf(key, sizeof key, "%s.scaling.%s", pre, extra[i]);
                n += (size_t)snprintf(ov + n, cap - n, ", \"%s\": %.17g", extra[i], cpt_recipe_float(r, key));
            }
            if (has_omp) n += (size_t)snprintf(ov + n, cap - n, ", \"original_max_position_embeddings\": %lld", omp);
            n += (size_t)snprintf(ov + n, cap - n, "}, ");
        }
    }
    if (n > 1) {
        n -= 2; /* the last ", " */
        snprintf(ov + n, cap - n, "}");
    } else
        ov[0] = 0;
    return CPT_OK;
}

/* The context check of a stage's sequence length against a config. */
static int check_context(const cpt_config *c, int allow, int T, const char *what, cpt_err *err) {
    long long ctx = cpt_config_context_len(c);
    if (T > ctx && !allow)
        return cpt_err_set(err, CPT_EINVAL,
                           "%s %d is longer than the model's context of %lld (max_position_embeddings %d). "
                           "HINT: extend RoPE with rope.theta or rope.scaling (e.g. rope.scaling.type=yarn rope.scaling.factor=%lld) "
                           "and rope.max_position_embeddings=%d (per stage: stages.N.rope.*), or set rope.allow_long_context=true",
                           what, T, ctx, c->max_pos, (T + ctx - 1) / ctx, T);
    return CPT_OK;
}

/* The top-level rope.* keys applied to the model. */
static int apply_rope(const cpt_recipe *r, cpt_model *m, int T, cpt_err *err) {
    char ov[2048];
    int rc = rope_json(r, "rope", ov, sizeof ov, err);
    if (rc) return rc;
    if (ov[0]) {
        if ((rc = cpt_config_override(&m->cfg, ov, "recipe rope.*", err))) return rc;
        m->rope_built = 0, m->rope_cached = 0;
    }
    m->allow_long_context = cpt_recipe_bool(r, "rope.allow_long_context");
    return check_context(&m->cfg, m->allow_long_context, T, "training.seq_len", err);
}

static int stage_of(const run_ctx *c, long long step) {
    int s = 0;
    while (s + 1 < c->n_stages && step >= c->start[s + 1]) s++;
    return s;
}

static double lr_at(const void *p, long long step) {
    const run_ctx *c = p;
    int s = stage_of(c, step);
    return cpt_schedule_lr(&c->sched[s], step - c->start[s]);
}

static const uint8_t *frozen_at(void *p, long long step) {
    run_ctx *c = p;
    return c->frozen[stage_of(c, step)];
}

static double penalty(void *p, const cpt_model *m, float *grads) {
    run_ctx *c = p;
    double v = 0;
    if (c->theta0 && c->l2 > 0) v += cpt_reg_l2sp(m, c->theta0, grads, c->l2, NULL);
    if (c->ewc && c->ewc_lambda > 0) v += cpt_ewc_penalty(c->ewc, m, grads, c->ewc_lambda, NULL);
    return v;
}

static int rows_step(void *p, cpt_model *m, float *grads, long long step, int after, cpt_err *err) {
    run_ctx *c = p;
    if (!c->rows || !c->train_rows[stage_of(c, step)]) return 0;
    if (after) {
        cpt_rowfreeze_restore(c->rows, m);
        return 0;
    }
    return cpt_rowfreeze_grads(c->rows, m, grads, err);
}

/* Key helpers: a stage key if the stage sets it, else the top-level one. */
static const char *skey(char *buf, size_t n, int stage, const char *key) {
    snprintf(buf, n, "stages.%d.%s", stage, key);
    return buf;
}

static int stage_has(const cpt_recipe *r, int stage, const char *key) {
    char b[256];
    return stage >= 0 && cpt_recipe_has(r, skey(b, sizeof b, stage, key));
}

static double getf(const cpt_recipe *r, int stage, const char *key) {
    char b[256];
    return stage_has(r, stage, key) ? cpt_recipe_float(r, skey(b, sizeof b, stage, key)) : cpt_recipe_float(r, key);
}

static long long geti(const cpt_recipe *r, int stage, const char *key) {
    char b[256];
    return stage_has(r, stage, key) ? cpt_recipe_int(r, skey(b, sizeof b, stage, key)) : cpt_recipe_int(r, key);
}

static const char *gets_(const cpt_recipe *r, int stage, const char *key) {
    char b[256];
    return stage_has(r, stage, key) ? cpt_recipe_str(r, skey(b, sizeof b, stage, key)) : cpt_recipe_str(r, key);
}

static int build_schedule(const cpt_recipe *r, int stage, long long steps, double lr, cpt_schedule *s, cpt_err *err) {
    cpt_schedule_init(s);
    int t = cpt_schedule_type_from_name(gets_(r, stage, "schedule.type"));
    if (t < 0) return cpt_err_set(err, CPT_EINVAL, "schedule.type: unknown");
    s->type = t;
    s->lr = lr;
    s->total_steps = steps;
    long long w = 0;
    if (cpt_recipe_has(r, "schedule.warmup_steps") || stage_has(r, stage, "schedule.warmup_steps"))
        w = geti(r, stage, "schedule.warmup_steps");
    else if (cpt_recipe_has(r, "schedule.warmup_frac") || stage_has(r, stage, "schedule.warmup_frac"))
        w = llround(getf(r, stage, "schedule.warmup_frac") * (double)steps);
    s->warmup_steps = w > steps ? steps : w;
    s->min_lr_ratio = getf(r, stage, "schedule.min_lr_ratio");
    s->rewarm_from = getf(r, stage, "schedule.rewarm_from");
    s->decay_frac = getf(r, stage, "schedule.decay_frac");
    int ds = cpt_decay_shape_from_name(gets_(r, stage, "schedule.decay_shape"));
    if (ds >= 0) s->decay_shape = ds;
    s->const_ratio = getf(r, stage, "schedule.const_ratio");
    int cs = cpt_cooldown_shape_from_name(gets_(r, stage, "schedule.cooldown_shape"));
    if (cs >= 0) s->cooldown_shape = cs;
    double cf = getf(r, stage, "schedule.cooldown_frac"), af = getf(r, stage, "schedule.anneal_frac");
    s->cooldown_end = s->warmup_steps + llround(cf * (double)steps);
    if (s->cooldown_end > steps) s->cooldown_end = steps;
    s->anneal_start = steps - llround(af * (double)steps);
    if (s->anneal_start < s->cooldown_end) s->anneal_start = s->cooldown_end;
    int rc = cpt_schedule_validate(s, err);
    if (rc && stage >= 0) cpt_err_wrap(err, "stage %d", stage);
    return rc;
}

static uint8_t *freeze_mask(const cpt_model *m, int embeddings, long long first_layers) {
    if (!embeddings && first_layers <= 0) return NULL;
    uint8_t *f = calloc((size_t)m->n_tensors, 1);
    if (!f) return NULL;
    for (int i = 0; i < m->n_tensors; i++) {
        const char *n = m->tensors[i].name;
        int l = -1;
        if (embeddings && (!strcmp(n, "model.embed_tokens.weight") || !strcmp(n, "lm_head.weight"))) f[i] = 1;
        if (sscanf(n, "model.layers.%d.", &l) == 1 && l < first_layers) f[i] = 1;
    }
    return f;
}

/* Tokens of the train shards in dir, counting documents of min..max tokens (0 = no bound). */
static long long source_tokens(const char *dir, uint64_t mn, uint64_t mx, cpt_err *err, int *rc) {
    char **paths = NULL;
    size_t n = 0;
    long long tot = 0;
    *rc = cpt_list_shards(dir, "train", &paths, &n, err);
    for (size_t i = 0; i < n && !*rc; i++) {
        cpt_shard *s = NULL;
        *rc = cpt_shard_open(&s, paths[i], err);
        for (uint64_t d = 0, a, len; !*rc && (mn || mx) && d < cpt_shard_n_docs(s); d++) {
            cpt_shard_doc_range(s, d, &a, &len);
            tot += len >= mn && (!mx || len <= mx) ? (long long)len : 0;
        }
        if (!*rc && !mn && !mx) tot += (long long)cpt_shard_n_tokens(s);
        cpt_shard_close(s);
    }
    cpt_free_list(paths, n);
    return tot;
}

/* The plan as a markdown section of report.md (measured_peak > 0: with the measured
 * peak RSS beside it). malloc'ed; NULL when out of memory. */
static char *memplan_markdown(const cpt_memplan *p, size_t measured_peak) {
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f) return NULL;
    fprintf(f, "| term | MiB | bytes |\n|---|---:|---:|\n");
    for (int i = 0; i < CPT_MEM_N_TERMS; i++)
        fprintf(f, "| %s | %.1f | %zu |\n", cpt_memplan_label(i), (double)p->term[i] / 1048576.0, p->term[i]);
    fprintf(f, "| **total (planned peak)** | %.1f | %zu |\n", (double)p->total / 1048576.0, p->total);
    if (measured_peak)
        fprintf(f, "| measured peak RSS (VmHWM) | %.1f | %zu |\n\nPlan vs measured: %+.1f%% (micro-batch %d x %d, recompute %s).\n",
                (double)measured_peak / 1048576.0, measured_peak, 100.0 * ((double)p->total - (double)measured_peak) / (double)measured_peak,
                p->micro_batch, p->seq_len, p->recompute == CPT_RECOMPUTE_FULL ? "full" : p->recompute == CPT_RECOMPUTE_SELECTIVE ? "selective" : "none");
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* The EWC Fisher cache file of the run. */
static void ewc_cache_path(const cpt_recipe *r, const char *run_dir, char *buf, size_t n) {
    if (cpt_recipe_has(r, "regularization.ewc.cache")) snprintf(buf, n, "%s", cpt_recipe_str(r, "regularization.ewc.cache"));
    else snprintf(buf, n, "%s/ewc-fisher.safetensors", run_dir);
}

/* The token rows of n Fisher sequences of T + 1 tokens. */
static size_t ewc_rows_bytes(int n, int T) { return sizeof(int32_t) * (size_t)n * (size_t)(T + 1); }

/* Size of the largest file a resume from `dir` maps while reading (0 if none). */
static size_t resume_map_bytes(const char *dir) {
    static const char *files[] = {"model.safetensors", "optim.safetensors", "adapter_model.safetensors"};
    size_t mx = 0;
    char p[4400];
    for (int i = 0; i < 3; i++) {
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        if (stat(p, &st) == 0 && (size_t)st.st_size > mx) mx = (size_t)st.st_size;
    }
    return mx;
}

/* Plan the run's memory (cpt/memplan.h), print it (stdout for --plan, the log for a run),
 * write <run_dir>/memory_plan.json for a run, and refuse a plan that does not fit unless
 * training.memory_check is false. *md receives the report section. */
static int memory_plan(const cpt_recipe *r, const cpt_model *m, int T, int B, int A, int n_ev, const char *resume_dir,
                       int plan_only, const char *run_dir, FILE *log, cpt_memplan *plan, char **md, size_t *avail_out,
                       char *src, size_t src_n, int zero_ranks, const cpt_model *trained, cpt_err *err) {
    cpt_memplan_in in;
    memset(&in, 0, sizeof in);
    in.zero_ranks = zero_ranks;
    in.context_parallel = (int)cpt_recipe_int(r, "parallel.context");
    in.sharded_ckpt = cpt_recipe_bool(r, "checkpoint.sharded_optim");
    in.micro_batch = B, in.seq_len = T, in.grad_accum = A;
    const char *rm = cpt_recipe_str(r, "training.recompute");
    in.recompute = rm && !strcmp(rm, "full") ? CPT_RECOMPUTE_FULL : rm && !strcmp(rm, "selective") ? CPT_RECOMPUTE_SELECTIVE : CPT_RECOMPUTE_NONE;
    in.l2_base = cpt_recipe_float(r, "regularization.l2_base") > 0;
    in.ewc = cpt_recipe_float(r, "regularization.ewc.lambda") > 0;
    in.n_evals = n_ev;
    in.trained = trained;
    if (cpt_recipe_has(r, "eval.long.lengths")) { /* its longest prompt (validated by the eval.long setup) */
        double lv[64];
        int nl = 0;
        cpt_err e0 = {0};
        if (!cpt_parse_num_list(cpt_recipe_str(r, "eval.long.lengths"), "eval.long.lengths", 2, 1 << 24, 1, lv, 64, &nl, &e0))
            for (int i = 0; i < nl; i++) in.eval_long_len = lv[i] > in.eval_long_len ? (int)lv[i] : in.eval_long_len;
    }
    in.resume_bytes = resume_dir ? resume_map_bytes(resume_dir) : 0;
    if (in.ewc) {
        /* Before training allocates: the Fisher is read from its cache (the mapped file is
         * resident while read) or estimated on at most regularization.ewc.samples rows. */
        char cache[4200];
        ewc_cache_path(r, run_dir, cache, sizeof cache);
        struct stat st;
        if (stat(cache, &st) == 0) in.ewc_estimate_bytes = (size_t)st.st_size;
        else {
            size_t est = 0;
            int n = (int)cpt_recipe_int(r, "regularization.ewc.samples");
            if (cpt_ewc_estimate_plan_bytes(m, T + 1, &est) || !cpt_add_size(est, ewc_rows_bytes(n, T), &in.ewc_estimate_bytes))
                in.ewc_estimate_bytes = SIZE_MAX;
        }
    }
    /* Everything resident now but the weights is the process's fixed overhead. */
    int rc = cpt_memplan_process_bytes(cpt_model_buffer_bytes(m), &in.process_bytes, err);
    if (!rc) rc = cpt_memplan_make(m, &in, plan, err);
    if (rc) return rc;
    int check = cpt_recipe_bool(r, "training.memory_check");
    size_t avail = 0;
    cpt_err e2 = {0};
    if (cpt_mem_available(&avail, src, src_n, &e2)) {
        if (check) return cpt_err_set(err, e2.code, "%s", e2.msg);
        avail = 0;
    }
    char *tab = cpt_memplan_table(plan, avail, src);
    char *js = cpt_memplan_json(plan, avail, src, 0);
    if (!tab || !js) {
        free(tab), free(js);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    }
    fputs(tab, plan_only ? stdout : log);
    if (!plan_only) {
        char path[4200];
        snprintf(path, sizeof path, "%s/memory_plan.json", run_dir);
        rc = cpt_write_file_atomic(path, js, strlen(js), err);
    }
    free(tab), free(js);
    if (rc) return rc;
    *md = memplan_markdown(plan, 0);
    *avail_out = avail;
    if (avail > 0 && plan->total > avail) {
        if (check) return cpt_memplan_check(plan, avail, src, err);
        fprintf(log, "cpt train: warning: the memory plan does not fit (%.2f GiB planned, %.2f GiB available) but training.memory_check is "
                     "false: going on\n", (double)plan->total / 1073741824.0, (double)avail / 1073741824.0);
    }
    return CPT_OK;
}

static void usage(FILE *f) {
    fprintf(f, "usage: cpt train RECIPE.yaml [key=value ...] [--resume auto|PATH [--resume-allow-changes]] [--print-config] [--plan]\n\n"
               "Continued pretraining from a YAML recipe. Overrides use dotted keys, e.g. optim.lr=5e-5.\n"
               "  --resume auto    continue the latest complete checkpoint of the run (start fresh if none)\n"
               "  --resume PATH    continue from that checkpoint directory\n"
               "  --resume-allow-changes\n"
               "                   resume even if the recipe changes a value that orders the data (seq_len,\n"
               "                   micro_batch, grad_accum, tokens_per_step, data.seed, sources and their\n"
               "                   min/max_doc_tokens, mixtures, stage lengths); without it such a resume is\n"
               "                   refused with the list of changes\n"
               "  --print-config   validate, print the effective config and exit\n"
               "  --plan           (or --dry-run) load the model and data, print the memory plan on stdout and\n"
               "                   exit without training: 0 when it fits (or training.memory_check is false),\n"
               "                   1 with the same error as the run when it does not\n\n"
               "Before its first step a run prints the memory plan (weights, gradients, AdamW moments,\n"
               "regularizer copies, activations + scratch, eval activations, data buffers and the measured\n"
               "process overhead), writes it to OUT_DIR/memory_plan.json and refuses to start when the total\n"
               "exceeds the memory the process may use (cgroup limit, else MemAvailable), unless\n"
               "training.memory_check: false.\n\n"
               "Recipe keys (defaults in parentheses):\n");
    cpt_recipe_help(f, cpt_recipe_train_schema());
}

/* The in-loop evaluations (eval.long, eval.ifeval, eval.tasks) behind the trainer's one hook. */
enum { N_EXTRA = 3 };
typedef struct extra_chain {
    void *ctx[N_EXTRA];
    int (*fn[N_EXTRA])(void *ctx, cpt_model *m, long long step, struct cpt_metrics *mx, FILE *log, cpt_err *err);
    long long every[N_EXTRA], max_steps;
} extra_chain;

static int extra_chain_run(void *ctx, cpt_model *m, long long step, struct cpt_metrics *mx, FILE *log, cpt_err *err) {
    extra_chain *c = ctx;
    for (int i = 0; i < N_EXTRA; i++) {
        if (!c->ctx[i] || !(step == 0 || step == c->max_steps || (c->every[i] > 0 && step % c->every[i] == 0))) continue;
        int rc = c->fn[i](c->ctx[i], m, step, mx, log, err);
        if (rc) return rc;
    }
    return CPT_OK;
}

int cpt_cmd_train(int argc, char **argv) {
    const char *recipe_path = NULL, *resume = NULL;
    int print_only = 0, plan_only = 0, allow_changes = 0;
    const char **over = calloc((size_t)argc + 1, sizeof(char *));
    size_t n_over = 0;
    if (!over) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            free(over);
            return 0;
        } else if (!strcmp(a, "--resume")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "cpt train: --resume needs auto or a checkpoint directory\n");
                free(over);
                return 2;
            }
            resume = argv[++i];
        } else if (!strncmp(a, "--resume=", 9)) {
            resume = a + 9;
        } else if (!strcmp(a, "--resume-allow-changes")) {
            allow_changes = 1;
        } else if (!strcmp(a, "--print-config")) {
            print_only = 1;
        } else if (!strcmp(a, "--plan") || !strcmp(a, "--dry-run")) {
            plan_only = 1;
        } else if (strchr(a, '=')) {
            over[n_over++] = a;
        } else if (!strncmp(a, "--", 2)) {
            fprintf(stderr, "cpt train: unknown option '%s'\nHINT: run 'cpt train --help'\n", a);
            free(over);
            return 2;
        } else if (!recipe_path) {
            recipe_path = a;
        } else {
            fprintf(stderr, "cpt train: unexpected argument '%s' (one recipe; overrides are key=value)\n", a);
            free(over);
            return 2;
        }
    }
    if (!recipe_path && n_over == 0) {
        usage(stderr);
        free(over);
        return 2;
    }
    cpt_err err = {0};
    cpt_recipe *r = NULL;
    /* Data parallelism: under mpirun / srun every rank runs this command; rank 0 alone
     * writes logs, metrics, checkpoints, reports and exports (cpt/dp.h). */
    cpt_comm *comm = NULL;
    if (cpt_comm_init(&comm, NULL, NULL, &err)) {
        free(over);
        return cpt_cli_fail("train", &err);
    }
    int rank0 = comm->rank == 0;
    int rc = cpt_recipe_load(cpt_recipe_train_schema(), recipe_path, over, n_over, &r, &err);
    free(over);
    if (rc) {
        fprintf(stderr, "cpt train: error: %s\n", err.msg);
        return 2;
    }
    for (size_t i = 0; i < cpt_recipe_n_warnings(r); i++)
        fprintf(stderr, "cpt train: warning: %s\n", cpt_recipe_warning(r, i));
    /* Context parallelism: groups of cpK ranks share each sequence; the data-parallel
     * size (what the global batch and the data position count) is Wdp = ranks / cpK. */
    int cpK = (int)cpt_recipe_int(r, "parallel.context"), Wdp = comm->size / cpK;
    char *dump = NULL;
    if (comm->size % cpK) {
        rc = cpt_err_set(&err, CPT_EINVAL, "parallel.context %d needs a multiple of %d processes; this run has %d. HINT: mpirun -np %d (or a multiple), or parallel.context=%d",
                         cpK, cpK, comm->size, cpK, comm->size);
        goto out;
    }
    if ((rc = cpt_recipe_dump(r, &dump, &err))) goto out;
    if (print_only) {
        fputs(dump, stdout);
        goto out;
    }
    FILE *log = rank0 ? stderr : fopen("/dev/null", "w");
    if (!log) log = stderr;
    if (!plan_only) fprintf(log, "cpt train: effective config\n%s\n", dump);

    const char *run_dir = cpt_recipe_str(r, "out_dir");
    char path[4200];
    if (!plan_only && rank0) { /* --plan leaves no trace: no run directory */
        if ((rc = cpt_mkdirs(run_dir, &err))) goto out;
        snprintf(path, sizeof path, "%s/recipe.yaml", run_dir);
        if ((rc = cpt_recipe_save(r, path, &err))) goto out;
    }
    if (!plan_only && (rc = comm->barrier(comm, &err))) goto out; /* the run directory exists for every rank */
    long long threads = cpt_recipe_int(r, "threads");
    if (threads > 0) omp_set_num_threads((int)threads);

    cpt_model *m = NULL;
    cpt_lora *lo = NULL; /* lora.rank > 0: the adapter trained instead of the weights */
    cpt_model *Pv = NULL; /* tensors that no stage trains: the view of the trained range */
    cpt_tok *tok = NULL;
    cpt_mixdata *md = NULL, *smd[MAXS] = {0};
    cpt_train_stage stages[MAXS];
    cpt_shardseq *vs[16] = {0};
    cpt_eval_set evs[16];
    char *resume_dir = NULL, *plan_md = NULL, *evlong_md = NULL, *evif_md = NULL, *evtasks_md = NULL, *extra_md = NULL;
    cpt_train_evallong *evlong = NULL;
    cpt_train_evalif *evif = NULL;
    cpt_train_evaltasks *evtasks = NULL;
    extra_chain chain = {0};
    cpt_memplan plan;
    memset(&plan, 0, sizeof plan);
    size_t plan_avail = 0;
    char plan_src[1200] = "";
    run_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    int n_ev = 0;
    const char *model_dir = cpt_recipe_str(r, "model");
    const char *tok_dir = cpt_recipe_has(r, "tokenizer") ? cpt_recipe_str(r, "tokenizer") : model_dir;
    rc = cpt_is_dir(model_dir) ? cpt_model_load_hf(&m, model_dir, &err) : cpt_model_load_llama2c(&m, model_dir, &err);
    if (rc) goto done;
    if ((rc = cpt_tok_load(&tok, tok_dir, &err))) goto done;
    int32_t pad = cpt_tok_pad(tok) >= 0 ? cpt_tok_pad(tok) : (cpt_tok_eos(tok) >= 0 ? cpt_tok_eos(tok) : 0);

    /* ---- data ---- */
    int K = (int)cpt_recipe_n_names(r, "data.sources");
    if (K < 1 || K > MAXK) {
        rc = cpt_err_set(&err, CPT_EINVAL, "data.sources: declare between 1 and %d sources", MAXK);
        goto done;
    }
    const char *names[MAXK], *dirs[MAXK];
    double maxep[MAXK], stok[MAXK];
    uint64_t min_dt[MAXK], max_dt[MAXK];
    char key[256];
    for (int k = 0; k < K; k++) {
        names[k] = cpt_recipe_name(r, "data.sources", (size_t)k);
        snprintf(key, sizeof key, "data.sources.%s.path", names[k]);
        dirs[k] = cpt_recipe_str(r, key);
        snprintf(key, sizeof key, "data.sources.%s.max_epochs", names[k]);
        maxep[k] = cpt_recipe_has(r, key) ? cpt_recipe_float(r, key) : 0.0;
        snprintf(key, sizeof key, "data.sources.%s.min_doc_tokens", names[k]);
        min_dt[k] = cpt_recipe_has(r, key) ? (uint64_t)cpt_recipe_int(r, key) : 0;
        snprintf(key, sizeof key, "data.sources.%s.max_doc_tokens", names[k]);
        max_dt[k] = cpt_recipe_has(r, key) ? (uint64_t)cpt_recipe_int(r, key) : 0;
        stok[k] = (double)source_tokens(dirs[k], min_dt[k], max_dt[k], &err, &rc);
        if (rc) goto done;
    }
    int T = (int)cpt_recipe_int(r, "training.seq_len"), B = (int)cpt_recipe_int(r, "training.micro_batch");
    int A = (int)cpt_recipe_int(r, "training.grad_accum");
    int S = (int)cpt_recipe_list_len(r, "stages");
    if (S > MAXS) {
        rc = cpt_err_set(&err, CPT_EINVAL, "stages: at most %d stages", MAXS);
        goto done;
    }
    /* Per-stage geometry (progressive length): seq_len, micro_batch, grad_accum. */
    int sT[MAXS], sB[MAXS], sA[MAXS], progressive = 0, maxT = T, plan_s = 0;
    for (int s = 0; s < (S > 0 ? S : 1); s++) {
        sT[s] = S > 0 && stage_has(r, s, "seq_len") ? (int)cpt_recipe_int(r, skey(key, sizeof key, s, "seq_len")) : T;
        sB[s] = S > 0 && stage_has(r, s, "micro_batch") ? (int)cpt_recipe_int(r, skey(key, sizeof key, s, "micro_batch")) : B;
        sA[s] = S > 0 && stage_has(r, s, "grad_accum") ? (int)cpt_recipe_int(r, skey(key, sizeof key, s, "grad_accum")) : A;
        if (S > 0 && !stage_has(r, s, "grad_accum") && cpt_recipe_has(r, "training.tokens_per_step")) {
            long long tps = cpt_recipe_int(r, "training.tokens_per_step"), per = (long long)sB[s] * sT[s] * Wdp;
            if (tps % per) {
                rc = cpt_err_set(&err, CPT_EINVAL,
                                 "training.tokens_per_step %lld is not a multiple of stage %d's micro_batch x seq_len x ranks = %d x %d x %d = %lld. "
                                 "HINT: set stages.%d.grad_accum, or a tokens_per_step that %lld divides (e.g. %lld)",
                                 tps, s, sB[s], sT[s], Wdp, per, s, per, (tps / per + 1) * per);
                goto done;
            }
            sA[s] = (int)(tps / per);
        }
        if (sT[s] % (2 * cpK)) {
            rc = cpt_err_set(&err, CPT_EINVAL, "%s %d is not a multiple of 2 x parallel.context = %d (context parallelism cuts each sequence into %d chunks). HINT: use a seq_len divisible by %d",
                             S > 0 ? "a stage's seq_len" : "training.seq_len", sT[s], 2 * cpK, 2 * cpK, 2 * cpK);
            goto done;
        }
        if (sT[s] != T || sB[s] != B || sA[s] != A) progressive = 1;
        if (sT[s] > maxT) maxT = sT[s];
        if ((long long)sB[s] * sT[s] > (long long)sB[plan_s] * sT[plan_s]) plan_s = s;
    }
    if ((rc = apply_rope(r, m, sT[0], &err))) goto done;
    if ((rc = cpt_train_lora_setup(r, m, log, &lo, &err))) goto done;
    if ((rc = cpt_cli_set_precision(m, cpt_recipe_str(r, "precision"), "training", log, &err))) goto done;
    /* what is trained: the model, or the adapter's parameter set */
    cpt_model *P = lo ? lo->pm : m;
    /* Per-stage RoPE (stages.N.rope.*), cumulative from that stage on; each stage's
     * seq_len is checked against the context its RoPE gives. */
    static char stage_rope[MAXS][2048];
    {
        char *txt = cpt_config_to_json(&m->cfg, "float32");
        cpt_config cc;
        if (!txt || (rc = cpt_config_parse(&cc, txt, strlen(txt), "model config", &err))) {
            free(txt);
            if (!rc) rc = cpt_err_set(&err, CPT_ENOMEM, "out of memory");
            goto done;
        }
        free(txt);
        for (int s = 0; s < (S > 0 ? S : 1) && !rc; s++) {
            char pre[64], what[64];
            snprintf(pre, sizeof pre, "stages.%d.rope", s);
            stage_rope[s][0] = 0;
            if (S > 0 && (rc = rope_json(r, pre, stage_rope[s], sizeof stage_rope[s], &err))) break;
            if (stage_rope[s][0]) {
                progressive = 1;
                if ((rc = cpt_config_override(&cc, stage_rope[s], pre, &err))) break;
            }
            snprintf(what, sizeof what, S > 0 ? "stages.%d.seq_len" : "training.seq_len", s);
            rc = check_context(&cc, m->allow_long_context, sT[s], what, &err);
        }
        cpt_config_free(&cc);
        if (rc) goto done;
    }
    long long max_steps = 0;
    if (cpt_recipe_has(r, "training.max_steps")) max_steps = cpt_recipe_int(r, "training.max_steps");
    else if (cpt_recipe_has(r, "training.max_tokens"))
        max_steps = (cpt_recipe_int(r, "training.max_tokens") + (long long)A * B * T * Wdp - 1) / ((long long)A * B * T * Wdp);
    ctx.n_stages = S > 0 ? S : 1;
    double wbuf[MAXS][MAXK];
    const double *wptr[MAXS];
    uint64_t ends[MAXS];
    ctx.start[0] = 0;
    for (int s = 0; s < ctx.n_stages; s++) {
        int st = S > 0 ? s : -1;
        long long steps = st >= 0 ? cpt_recipe_int(r, skey(key, sizeof key, s, "steps")) : max_steps;
        ctx.start[s + 1] = ctx.start[s] + steps;
        if ((rc = cpt_recipe_mixture(r, st, stok, wbuf[s], &err))) goto done;
        wptr[s] = wbuf[s];
        ends[s] = s + 1 == ctx.n_stages ? UINT64_MAX : (uint64_t)ctx.start[s + 1];
        double lr = st >= 0 && stage_has(r, s, "lr") ? cpt_recipe_float(r, skey(key, sizeof key, s, "lr")) : cpt_recipe_float(r, "optim.lr");
        if ((rc = build_schedule(r, st, steps, lr, &ctx.sched[s], &err))) goto done;
        int fe = cpt_recipe_bool(r, "regularization.freeze.embeddings");
        long long fl = cpt_recipe_int(r, "regularization.freeze.first_layers");
        if (st >= 0 && stage_has(r, s, "freeze.embeddings")) fe = cpt_recipe_bool(r, skey(key, sizeof key, s, "freeze.embeddings"));
        if (st >= 0 && stage_has(r, s, "freeze.first_layers")) fl = cpt_recipe_int(r, skey(key, sizeof key, s, "freeze.first_layers"));
        if (fl > m->cfg.n_layers) {
            rc = cpt_err_set(&err, CPT_EINVAL, "freeze.first_layers = %lld exceeds the model's %d layers", fl, m->cfg.n_layers);
            goto done;
        }
        const char *only = st >= 0 && stage_has(r, s, "train_only") ? cpt_recipe_str(r, skey(key, sizeof key, s, "train_only"))
                                                                      : cpt_recipe_str(r, "training.train_only");
        if (strcmp(only, "all")) { /* train_only: embeddings / new_embeddings (cpt/rowfreeze.h) */
            if (fe) {
                rc = cpt_err_set(&err, CPT_EINVAL, "train_only = %s with freeze.embeddings = true trains nothing. HINT: drop one of the two", only);
                goto done;
            }
            ctx.train_rows[s] = !strcmp(only, "new_embeddings");
            if (ctx.train_rows[s] && !ctx.rows) {
                int lo = 0, hi = 0;
                if ((rc = cpt_rowfreeze_range_from_dir(model_dir, &lo, &hi, &err)) ||
                    (rc = cpt_rowfreeze_create(&ctx.rows, m, lo, hi, &err)))
                    goto done;
            }
            ctx.frozen[s] = cpt_rowfreeze_mask_embeddings_only(m);
            if (!ctx.frozen[s]) {
                rc = cpt_err_set(&err, CPT_ENOMEM, "out of memory");
                goto done;
            }
        } else {
            ctx.frozen[s] = freeze_mask(m, fe, fl);
        }
    }
    max_steps = ctx.start[ctx.n_stages];
    if (!lo) {
        /* Tensors that no stage trains get no gradient or moments: the trainer works on the
         * view of the contiguous range of those that some stage trains. */
        uint8_t *any = calloc((size_t)m->n_tensors, 1);
        if (!any) {
            rc = cpt_err_set(&err, CPT_ENOMEM, "out of memory");
            goto done;
        }
        for (int s = 0; s < ctx.n_stages; s++)
            for (int i = 0; i < m->n_tensors; i++) any[i] |= !ctx.frozen[s] || !ctx.frozen[s][i];
        rc = cpt_model_view_range(m, any, &Pv, NULL, &err);
        free(any);
        if (rc) goto done;
        if (Pv) {
            P = Pv;
            fprintf(log, "frozen in every stage: %zu of %zu parameters outside the trained tensors' range get no gradient or AdamW moments (%s .. %s)\n",
                     m->n_params - Pv->n_params, m->n_params, Pv->tensors[0].name, Pv->tensors[Pv->n_tensors - 1].name);
        }
    }
    if (max_steps <= 0) {
        rc = cpt_err_set(&err, CPT_EINVAL, "training: set training.max_steps, training.max_tokens or stages with steps");
        goto done;
    }
    cpt_mixdata_cfg mc = {K, names, dirs, maxep, ctx.n_stages, wptr, ends, (uint64_t)cpt_recipe_int(r, "data.seed"), T,
                          (uint64_t)A * B * (uint64_t)Wdp, 0, pad, min_dt, max_dt, NULL, 0};
    if (!progressive && (rc = cpt_mixdata_open(&md, &mc, &err))) goto done;
    if (progressive) {
        /* Progressive length: one sequential mixture per stage; stage s starts each source
         * at the stream token where stage s-1 left it, so the data position is counted in
         * tokens and a length change neither skips nor repeats data (cpt/traindata.h). */
        uint64_t pos[MAXK] = {0};
        for (int s = 0; s < ctx.n_stages; s++) {
            uint64_t G = (uint64_t)sA[s] * (uint64_t)sB[s] * (uint64_t)Wdp, end = (uint64_t)(ctx.start[s + 1] - ctx.start[s]);
            cpt_mixdata_cfg c1 = {K, names, dirs, maxep, 1, &wptr[s], &end, (uint64_t)cpt_recipe_int(r, "data.seed"), sT[s],
                                  G, 0, pad, min_dt, max_dt, pos, 1};
            if ((rc = cpt_mixdata_open(&smd[s], &c1, &err))) {
                cpt_err_wrap(&err, "stage %d (seq_len %d)", s, sT[s]);
                goto done;
            }
            fprintf(log, "stage %d: %d x %d x %d sequences of %d tokens per step (%lld tokens); data from stream token", s, sB[s], sA[s],
                    Wdp, sT[s], (long long)G * sT[s]);
            for (int k = 0; k < K; k++) fprintf(log, " %s=%llu", names[k], (unsigned long long)cpt_mixdata_start(smd[s], k));
            fprintf(log, "\n");
            cpt_mixdata_position(smd[s], end * G, pos);
            stages[s] = (cpt_train_stage){ctx.start[s], sT[s], sB[s], sA[s], cpt_mixdata_iface(smd[s]),
                                          stage_rope[s][0] ? stage_rope[s] : NULL};
            if (stage_rope[s][0]) fprintf(log, "stage %d: RoPE from this stage on: %s\n", s, stage_rope[s]);
        }
        md = smd[0];
    }
    if ((int)cpt_mixdata_vocab_size(md) > m->cfg.vocab_size) {
        rc = cpt_err_set(&err, CPT_EINVAL, "the data was tokenized with a vocabulary of %u but the model has %d. HINT: prepare the data with the model's tokenizer",
                         cpt_mixdata_vocab_size(md), m->cfg.vocab_size);
        goto done;
    }
    fprintf(log, "data parallel: %d rank%s (%s), global batch %d x %d x %d = %lld sequences of %d tokens per step\n", Wdp,
            Wdp == 1 ? "" : "s", comm->name, B, A, Wdp, (long long)B * A * Wdp, T);
    if (cpK > 1)
        fprintf(log, "context parallel: %d ranks per sequence (ring attention, zigzag chunks of %d tokens), %d x %d = %d processes\n", cpK,
                T / (2 * cpK), Wdp, cpK, comm->size);
    {
        int zero = (int)cpt_recipe_int(r, "training.zero"), W = zero ? comm->size : 1;
        char per[32] = "";
        if (zero) snprintf(per, sizeof per, " / %d rank%s", W, W == 1 ? "" : "s");
        fprintf(log, "optimizer state (AdamW m, v%s): 2 x %zu x 4 B%s = %.1f MiB per rank (ZeRO-%d)\n", lo ? " of the LoRA adapter" : "",
                P->n_params, per, (double)cpt_adamw_state_bytes_sharded(P, W) / 1048576.0, zero);
    }
    for (int k = 0; k < K; k++) fprintf(log, "source %-12s %12.0f tokens in %s\n", names[k], stok[k], dirs[k]);
    for (int s = 0; s < ctx.n_stages; s++) {
        fprintf(log, "stage %d: steps [%lld, %lld) lr %.3g (%s) mixture", s, ctx.start[s], ctx.start[s + 1], ctx.sched[s].lr,
                cpt_schedule_type_name(ctx.sched[s].type));
        for (int k = 0; k < K; k++) fprintf(log, " %s=%.3f", names[k], wbuf[s][k]);
        fprintf(log, "\n");
    }
    /* ---- validation sets ---- */
    n_ev = (int)cpt_recipe_n_names(r, "data.validation");
    if (n_ev > 16) {
        rc = cpt_err_set(&err, CPT_EINVAL, "data.validation: at most 16 sets");
        goto done;
    }
    for (int i = 0; i < n_ev; i++) {
        const char *nm = cpt_recipe_name(r, "data.validation", (size_t)i);
        snprintf(key, sizeof key, "data.validation.%s", nm);
        /* A prepared directory's held-out val-*.shard files, or its train shards when it
         * was prepared as a validation-only corpus. */
        cpt_err e0 = {0};
        rc = cpt_shardseq_open(&vs[i], cpt_recipe_str(r, key), "val", T, pad, &e0);
        if (rc == CPT_ENOTFOUND) rc = cpt_shardseq_open(&vs[i], cpt_recipe_str(r, key), "train", T, pad, &err);
        else if (rc) err = e0;
        if (rc) {
            cpt_err_wrap(&err, "validation set '%s'", nm);
            goto done;
        }
        snprintf(key, sizeof key, "eval.forgetting_budget.%s", nm);
        evs[i].name = nm;
        evs[i].data = cpt_shardseq_iface(vs[i]);
        evs[i].n_seqs = cpt_shardseq_n_seqs(vs[i]);
        evs[i].budget = cpt_recipe_has(r, key) ? cpt_recipe_float(r, key) : 0.0;
    }
    /* ---- resume ---- */
    if (resume && !strcmp(resume, "auto")) {
        cpt_err e2 = {0};
        if (cpt_ckpt_latest(run_dir, &resume_dir, &e2) != CPT_OK) fprintf(log, "no checkpoint in %s: starting fresh\n", run_dir);
    } else if (resume && strcmp(resume, "none") != 0) {
        resume_dir = strdup(resume);
    }
    if (resume_dir && (rc = cpt_train_check_resume_recipe(r, resume_dir, Wdp, allow_changes, log, &err))) goto done;
    /* ---- memory plan: before anything big is allocated ---- */
    if ((rc = memory_plan(r, m, sT[plan_s], sB[plan_s], sA[plan_s], n_ev, resume_dir, plan_only, run_dir, log, &plan, &plan_md, &plan_avail, plan_src,
                          sizeof plan_src, cpt_recipe_int(r, "training.zero") ? comm->size : 1, Pv, &err)) ||
        plan_only)
        goto done;
    /* ---- anchor penalties ---- */
    ctx.l2 = cpt_recipe_float(r, "regularization.l2_base");
    if (ctx.l2 > 0) {
        /* LoRA: the pull is on what trains, toward the adapter's initialisation */
        ctx.theta0 = cpt_alloc_aligned(cpt_model_buffer_bytes(P));
        if (!ctx.theta0) {
            rc = cpt_err_set(&err, CPT_ENOMEM, "out of memory for the base weights");
            goto done;
        }
        memcpy(ctx.theta0, P->params, cpt_model_buffer_bytes(P));
    }
    ctx.ewc_lambda = cpt_recipe_float(r, "regularization.ewc.lambda");
    if (ctx.ewc_lambda > 0) {
        const char *src = cpt_recipe_str(r, "regularization.ewc.source");
        int k = -1;
        for (int i = 0; i < K; i++)
            if (!strcmp(names[i], src)) k = i;
        char cache[4200];
        ewc_cache_path(r, run_dir, cache, sizeof cache);
        if (cpt_is_file(cache)) {
            /* the Fisher is the whole model's (or the LoRA adapter's), whatever is frozen */
            rc = cpt_ewc_load(&ctx.ewc, lo ? P : m, cache, &err);
            if (!rc && !resume) rc = cpt_ewc_check_base(ctx.ewc, lo ? P : m, &err);
            if (rc) goto done;
            fprintf(log, "EWC: Fisher loaded from %s\n", cache);
        } else {
            int n = (int)cpt_recipe_int(r, "regularization.ewc.samples");
            cpt_shardseq *ss = NULL;
            if ((rc = cpt_shardseq_open(&ss, dirs[k], "train", T, pad, &err))) goto done;
            long long avail = cpt_shardseq_n_seqs(ss);
            if (n > avail) n = (int)avail;
            /* Rows of T+1 tokens from the source's first n packed sequences: the inputs,
             * then the last target; -1 after the real tokens (padding). A row may span a
             * document boundary; for a Fisher estimate that is an acceptable approximation. */
            int32_t *rows = malloc(ewc_rows_bytes(n, T));
            int32_t *scratch = malloc(sizeof(int32_t) * 4 * (size_t)T);
            if (!rows || !scratch) rc = cpt_err_set(&err, CPT_ENOMEM, "EWC: out of memory for %d sequences of %d tokens", n, T);
            int32_t *ids = scratch, *tg = scratch + T, *ps = scratch + 2 * T, *sg = scratch + 3 * T;
            cpt_data_iface di = cpt_shardseq_iface(ss);
            for (int i = 0; i < n && !rc; i++) {
                rc = di.sequence(di.ctx, i, T, ids, tg, ps, sg, NULL, &err);
                int32_t *row = rows + (size_t)i * (T + 1);
                int t = 0;
                for (; t < T && sg[t] >= 0; t++) row[t] = ids[t];
                row[t] = t == T && tg[T - 1] >= 0 ? tg[T - 1] : -1;
                for (int u = t + 1; u <= T; u++) row[u] = -1;
            }
            free(scratch);
            cpt_shardseq_close(ss);
            if (!rc) {
                fprintf(log, "EWC: estimating the diagonal Fisher on %d sequences of '%s'\n", n, src);
                rc = cpt_ewc_estimate(&ctx.ewc, m, rows, n, T + 1, &err);
            }
            free(rows);
            if (!rc && rank0) rc = cpt_ewc_save(ctx.ewc, lo ? P : m, cache, &err);
            if (rc) goto done;
        }
    }
    /* ---- train ---- */
    cpt_train_cfg tc;
    memset(&tc, 0, sizeof tc);
    tc.run_dir = run_dir;
    tc.seq_len = T, tc.micro_batch = B, tc.grad_accum = A, tc.max_steps = max_steps;
    tc.block_causal = cpt_recipe_bool(r, "training.block_causal");
    tc.reset_positions = cpt_recipe_bool(r, "training.reset_positions");
    {
        const char *rm = cpt_recipe_str(r, "training.recompute");
        tc.recompute = rm && !strcmp(rm, "full") ? CPT_RECOMPUTE_FULL
                       : rm && !strcmp(rm, "selective") ? CPT_RECOMPUTE_SELECTIVE : CPT_RECOMPUTE_NONE;
    }
    tc.optim = (cpt_adamw_cfg){cpt_recipe_float(r, "optim.lr"), cpt_recipe_float(r, "optim.beta1"), cpt_recipe_float(r, "optim.beta2"),
                               cpt_recipe_float(r, "optim.eps"), cpt_recipe_float(r, "optim.weight_decay")};
    tc.clip = cpt_recipe_float(r, "optim.clip");
    tc.embed_lr_mult = cpt_recipe_float(r, "optim.embed_lr_mult");
    if (cpt_recipe_has(r, "optim.embed_lr")) {
        if (tc.embed_lr_mult != 1.0) {
            rc = cpt_err_set(&err, CPT_EINVAL, "optim.embed_lr and optim.embed_lr_mult (%g) are both set. HINT: keep one", tc.embed_lr_mult);
            goto done;
        }
        tc.embed_lr_mult = cpt_recipe_float(r, "optim.embed_lr") / cpt_recipe_float(r, "optim.lr");
    }
    tc.rows_fn = ctx.rows ? rows_step : NULL, tc.rows_ctx = &ctx;
    tc.lr_fn = lr_at, tc.sched = &ctx;
    tc.penalty_fn = (ctx.l2 > 0 || ctx.ewc_lambda > 0) ? penalty : NULL, tc.penalty_ctx = &ctx;
    tc.frozen_fn = lo ? NULL : frozen_at, tc.frozen_ctx = &ctx;
    tc.lora = lo;
    tc.trained = Pv;
    tc.skip_zscore = cpt_recipe_float(r, "stability.skip_zscore");
    tc.skip_window = (int)cpt_recipe_int(r, "stability.window");
    tc.train_data = cpt_mixdata_iface(md);
    tc.evals = evs, tc.n_evals = n_ev;
    tc.eval_every = cpt_recipe_int(r, "eval.every");
    tc.eval_batches = (int)cpt_recipe_int(r, "eval.sequences");
    tc.stop_on_budget = !strcmp(cpt_recipe_str(r, "eval.on_budget"), "stop");
    tc.ckpt_every = cpt_recipe_int(r, "checkpoint.every");
    tc.keep_last = (int)cpt_recipe_int(r, "checkpoint.keep_last");
    tc.keep_best = cpt_recipe_bool(r, "checkpoint.keep_best");
    tc.ckpt_sharded = cpt_recipe_bool(r, "checkpoint.sharded_optim");
    tc.recipe_text = dump;
    tc.log = rank0 ? log : NULL;
    tc.metrics = rank0;
    tc.comm = comm;
    tc.zero = (int)cpt_recipe_int(r, "training.zero");
    tc.context_parallel = cpK;
    if (progressive) tc.n_stages = ctx.n_stages, tc.stages = stages;
    if ((rc = cpt_train_evallong_setup(r, tok, run_dir, &evlong, &chain.every[0], &err))) goto done;
    if ((rc = cpt_train_evalif_setup(r, tok, run_dir, &evif, &chain.every[1], &err))) goto done;
    if ((rc = cpt_train_evaltasks_setup(r, tok, run_dir, resume_dir != NULL, &evtasks, &chain.every[2], &err))) goto done;
    if (evlong || evif || evtasks) {
        /* the blocks behind the trainer's one hook: called at step 0, every gcd of their
         * periods and at the end; each runs at its own period */
        chain.ctx[0] = evlong, chain.ctx[1] = evif, chain.ctx[2] = evtasks, chain.max_steps = max_steps;
        chain.fn[0] = cpt_train_evallong_run, chain.fn[1] = cpt_train_evalif_run, chain.fn[2] = cpt_train_evaltasks_run;
        long long a = 0;
        for (int i = 0; i < N_EXTRA; i++) {
            long long b = chain.ctx[i] ? chain.every[i] : 0;
            while (b) {
                long long t = a % b;
                a = b, b = t;
            }
        }
        tc.eval_extra_fn = extra_chain_run, tc.eval_extra_ctx = &chain, tc.eval_extra_every = a;
    }
    cpt_train_result res;
    rc = cpt_train_run(&tc, m, resume_dir, &res, &err);
    if (rc || !rank0) goto done;
    {
        /* The planned peak against the measured one (VmHWM), in the log and in
         * memory_plan.json / report.md. */
        size_t hwm = 0;
        cpt_err e4 = {0};
        if (!cpt_mem_rss(NULL, &hwm, &e4)) {
            fprintf(log, "memory: planned %.1f MiB, measured peak RSS %.1f MiB (%+.1f%%)\n", (double)plan.total / 1048576.0,
                    (double)hwm / 1048576.0, hwm ? 100.0 * ((double)plan.total - (double)hwm) / (double)hwm : 0.0);
            char *js = cpt_memplan_json(&plan, plan_avail, plan_src, hwm);
            snprintf(path, sizeof path, "%s/memory_plan.json", run_dir);
            if (!js || cpt_write_file_atomic(path, js, strlen(js), &e4)) fprintf(log, "warning: %s not updated\n", path);
            free(js);
            free(plan_md);
            plan_md = memplan_markdown(&plan, hwm);
        }
    }
    fprintf(log, "done: %lld steps, %lld tokens in %.1f s (%.0f tokens/s), %lld steps skipped\n", res.steps, res.tokens,
            res.wall_s, res.wall_s > 0 ? (double)res.tokens / res.wall_s : 0.0, res.skipped);
    {
        double tot = res.t_data + res.t_compute + res.t_optim + res.t_eval + res.t_ckpt;
        if (tot > 0)
            fprintf(log, "time: forward+backward %.1f%%, optimizer %.1f%%, data %.2f%%, eval %.1f%%, checkpoints %.1f%% "
                         "(trainer overhead: data+eval+checkpoints = %.1f%% of %.1f s)\n",
                    100 * res.t_compute / tot, 100 * res.t_optim / tot, 100 * res.t_data / tot, 100 * res.t_eval / tot,
                    100 * res.t_ckpt / tot, 100 * (res.t_data + res.t_eval + res.t_ckpt) / tot, tot);
        if (tot > 0 && comm->size > 1)
            fprintf(log, "data parallel: %s %.1f%% of the run (%.2f s over %lld steps, %d ranks)\n",
                    cpt_recipe_int(r, "training.zero") ? "ZeRO-1 reduce-scatter + norm + all-gather" : "gradient all-reduce",
                    100 * res.t_comm / tot, res.t_comm, res.steps, comm->size);
        if (tot > 0 && cpK > 1)
            fprintf(log, "context parallel: ring attention K/V passing %.1f%% of the run (%.2f s, %d ranks per sequence)\n",
                    100 * res.t_ring / tot, res.t_ring, cpK);
    }
    for (int i = 0; i < n_ev; i++)
        fprintf(log, "  %-12s base ppl %.3f -> %.3f (%+.2f%%)\n", evs[i].name, exp(res.evals[i].base_loss), exp(res.evals[i].loss),
                100.0 * (exp(res.evals[i].loss) / exp(res.evals[i].base_loss) - 1.0));
    if (lo) { /* the trained adapter, as PEFT saves it (PeftModel.from_pretrained(base, DIR)) */
        snprintf(path, sizeof path, "%s/adapter", run_dir);
        if ((rc = cpt_lora_save_peft(lo, path, model_dir, &err))) goto done;
        fprintf(log, "LoRA adapter: %s (PEFT; cpt export %s --adapter %s --out DIR merges it)\n", path, model_dir, path);
    }
    if (cpt_recipe_bool(r, "export.at_end") && (!lo || cpt_recipe_bool(r, "lora.merge_export"))) {
        char exp_dir[4200];
        if (cpt_recipe_has(r, "export.dir")) snprintf(exp_dir, sizeof exp_dir, "%s", cpt_recipe_str(r, "export.dir"));
        else snprintf(exp_dir, sizeof exp_dir, "%s/final", run_dir);
        int dt = !strcmp(cpt_recipe_str(r, "export.dtype"), "bf16") ? CPT_DT_BF16 : CPT_DT_F32;
        cpt_err e5 = {0};
        if (lo && cpt_lora_merge(lo, &e5)) {
            /* e.g. a tied model whose embed_tokens copy trained: the adapter is the result */
            fprintf(log, "warning: no merged export: %s\n", e5.msg);
        } else {
            if ((rc = cpt_model_save_hf(m, exp_dir, dt, 5000000000ull, tok_dir, &err))) goto done;
            fprintf(log, "exported %s%s\n", exp_dir, lo ? " (the base with the LoRA adapter merged in)" : "");
        }
    }
    if (res.budget_exceeded) fprintf(log, "WARNING: a forgetting budget was exceeded (see the eval lines above)\n");
    /* Curves and report (failures here are reported but do not fail a finished run). */
    {
        cpt_err e3 = {0};
        if (cpt_plot_run_curves(run_dir, &e3)) fprintf(log, "warning: curves not written: %s\n", e3.msg);
        cpt_report_valset rv[16];
        for (int i = 0; i < n_ev; i++) {
            rv[i].name = evs[i].name;
            rv[i].base_loss = res.evals[i].base_loss;
            rv[i].final_loss = res.evals[i].loss;
            rv[i].budget_pct = evs[i].budget > 0 ? 100.0 * evs[i].budget : -1.0;
        }
        cpt_report_source rs[MAXK];
        for (int k = 0; k < K; k++) rs[k].name = names[k], rs[k].tokens = res.source_tokens[k];
        cpt_report_skip sk[100];
        for (int i = 0; i < res.n_skips; i++) sk[i].step = res.skip_steps[i], sk[i].reason = res.skip_reasons[i];
        char final_ck[64], model_desc[4300];
        snprintf(final_ck, sizeof final_ck, "checkpoints/step-%08lld", res.steps);
        cpt_report_ckpt ck[1] = {{res.steps, final_ck}};
        snprintf(model_desc, sizeof model_desc, "%s (%s)", m->cfg.architecture, model_dir);
        cpt_report_data rd = {cpt_recipe_name_of(r), model_desc, res.budget_exceeded ? "completed, forgetting budget exceeded" : "completed",
                              res.steps, max_steps, res.tokens, res.wall_s, rv, n_ev, rs, K, sk, res.n_skips, ck, 1, NULL, plan_md,
                              NULL};
        evlong_md = cpt_train_evallong_markdown(evlong), evif_md = cpt_train_evalif_markdown(evif);
        evtasks_md = cpt_train_evaltasks_markdown(evtasks);
        if (evlong_md || evif_md || evtasks_md) {
            const char *parts[3] = {evlong_md, evif_md, evtasks_md};
            size_t n = 4;
            for (int i = 0; i < 3; i++) n += parts[i] ? strlen(parts[i]) + 1 : 0;
            if ((extra_md = malloc(n))) {
                extra_md[0] = 0;
                for (int i = 0; i < 3; i++)
                    if (parts[i]) {
                        if (extra_md[0]) strcat(extra_md, "\n");
                        strcat(extra_md, parts[i]);
                    }
            }
        }
        rd.extra_md = extra_md;
        if (cpt_report_write(run_dir, &rd, &e3)) fprintf(log, "warning: report not written: %s\n", e3.msg);
        else fprintf(log, "report: %s/report.md, curves: %s/curves.svg\n", run_dir, run_dir);
    }
done:
    free(resume_dir);
    free(plan_md);
    free(evlong_md), free(evif_md), free(evtasks_md), free(extra_md);
    cpt_train_evallong_free(evlong);
    cpt_train_evalif_free(evif);
    cpt_train_evaltasks_free(evtasks);
    for (int s = 0; s < MAXS; s++) free(ctx.frozen[s]);
    cpt_rowfreeze_free(ctx.rows);
    cpt_free_aligned(ctx.theta0);
    cpt_ewc_free(ctx.ewc);
    for (int i = 0; i < 16; i++) cpt_shardseq_close(vs[i]);
    if (smd[0]) md = NULL; /* progressive: md is smd[0] */
    for (int s = 0; s < MAXS; s++) cpt_mixdata_close(smd[s]);
    cpt_mixdata_close(md);
    cpt_tok_free(tok);
    cpt_lora_free(lo);
    cpt_model_free(Pv);
    cpt_model_free(m);
    if (log != stderr) fclose(log); /* ranks > 0: /dev/null */
out:
    free(dump);
    cpt_recipe_free(r);
    if (rc && comm->size > 1) { /* one failing rank stops the whole job (the others may wait in a collective) */
        char msg[CPT_ERR_MSG_MAX + 64];
        snprintf(msg, sizeof msg, "cpt train: error: %s", err.msg);
        comm->abort(comm, 1, msg);
    }
    cpt_comm_finalize(comm);
    if (rc) return cpt_cli_fail("train", &err);
    return 0;
}

/* trainer.c: the training loop of cpt/train.h and the in-loop evaluation. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "cpt/fileio.h"
#include "cpt/metrics.h"
#include "cpt/progress.h"
#include "cpt/backend.h"
#include "cpt/cp.h"
#include "cpt/dp.h"
#include "cpt/lora.h"
#include "cpt/mixture.h"
#include "cpt/train.h"
#include "cpt/zero.h"

/* ---------------- a token-array data source ---------------- */

static int tokstream_seq(void *ctx, long long g, int T, int32_t *ids, int32_t *targets, int32_t *pos, int32_t *seg,
                         int *source, cpt_err *err) {
    const cpt_tokstream *ts = ctx;
    if (ts->n < T + 2) return cpt_err_set(err, CPT_EINVAL, "token stream of %lld tokens is shorter than one sequence of %d", ts->n, T + 1);
    long long span = ts->n - T - 1;
    long long start = (long long)(((unsigned long long)g * (unsigned long long)T) % (unsigned long long)span);
    const int32_t *w = ts->tokens + start;
    int32_t doc = 0, p = 0;
    for (int t = 0; t < T; t++) {
        ids[t] = w[t];
        targets[t] = w[t + 1];
        pos[t] = p++;
        seg[t] = doc;
        if (w[t] == ts->eos) { /* the next token starts a new document */
            doc++;
            p = 0;
            targets[t] = -1; /* do not predict across the boundary */
        }
    }
    if (source) *source = 0;
    return CPT_OK;
}

cpt_data_iface cpt_tokstream_iface(cpt_tokstream *ts) {
    static const char *names[] = {"tokens"};
    cpt_data_iface d = {ts, tokstream_seq, 1, names};
    return d;
}

/* ---------------- host buffer sizes (shared with the memory plan) ---------------- */

/* ids, targets, positions and document ids of A micro-batches of B x T. */
static size_t batch_ids_bytes(int B, int T, int A) { return sizeof(int32_t) * 4 * (size_t)B * (size_t)T * (size_t)A; }
static size_t batch_src_bytes(int B, int A) { return sizeof(int) * (size_t)B * (size_t)A; }

size_t cpt_train_batch_bytes(int B, int T, int A) { return batch_ids_bytes(B, T, A) + batch_src_bytes(B, A); }

int cpt_eval_plan_bytes(const cpt_config *c, int B, int T, int lora_rank, int bf16, size_t *bytes) {
    size_t acts = 0;
    int rc = cpt_acts_plan_bytes(c, B, T, 0, CPT_RECOMPUTE_NONE, lora_rank, bf16, &acts);
    if (rc) return rc;
    if (!cpt_add_size(acts, batch_ids_bytes(B, T, 1), bytes)) return CPT_ENOMEM;
    return CPT_OK;
}

/* ---------------- evaluation ---------------- */

int cpt_eval_loss(cpt_model *m, const cpt_data_iface *d, long long n, int T, int B, int block_causal,
                  int reset_positions, double *loss, long long *tokens, cpt_err *err) {
    cpt_acts *a = NULL;
    int rc = cpt_acts_create(&a, m, B, T, 0, err);
    if (rc) return rc;
    size_t N = (size_t)B * T;
    int32_t *buf = malloc(batch_ids_bytes(B, T, 1));
    if (!buf) {
        cpt_acts_free(a);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    }
    int32_t *ids = buf, *tg = buf + N, *pos = buf + 2 * N, *seg = buf + 3 * N;
    double total = 0;
    long long ntok = 0;
    for (long long g0 = 0; g0 < n && !rc; g0 += B) {
        int rows = (int)(n - g0 < B ? n - g0 : B);
        for (int b = 0; b < B && !rc; b++) {
            if (b < rows) {
                rc = d->sequence(d->ctx, g0 + b, T, ids + (size_t)b * T, tg + (size_t)b * T, pos + (size_t)b * T,
                                 seg + (size_t)b * T, NULL, err);
            } else { /* pad the last batch: rows with no targets contribute nothing */
                for (int t = 0; t < T; t++) ids[(size_t)b * T + t] = 0, tg[(size_t)b * T + t] = -1, pos[(size_t)b * T + t] = t, seg[(size_t)b * T + t] = 0;
            }
        }
        if (rc) break;
        cpt_batch bt = {B, T, ids, tg, reset_positions ? pos : NULL, block_causal ? seg : NULL};
        double ls = 0;
        long long nv = 0;
        rc = cpt_model_step(m, a, &bt, NULL, 1.0f, NULL, &ls, &nv, NULL, err);
        total += ls;
        ntok += nv;
    }
    free(buf);
    cpt_acts_free(a);
    if (rc) return rc;
    *loss = ntok ? total / (double)ntok : NAN;
    if (tokens) *tokens = ntok;
    return CPT_OK;
}

/* ---------------- trainer state that goes into checkpoints ---------------- */

typedef struct {
    double *wl, *wn; /* windows of accepted losses / grad norms (oldest first) */
    int nw;
    long long skipped;
    double base[16];
    int have_base;
    long long best_step; /* -1: none */
    double best_loss;
    double last_eval_mean; /* mean eval loss of the latest evaluation (NAN: none yet) */
    long long last_eval_step;
} tstate;

/* Context-parallel group size (1: off) and the data-parallel size, ranks / it. */
static int cp_size(const cpt_train_cfg *cfg) { return cfg->context_parallel > 1 ? cfg->context_parallel : 1; }
static int dp_size(const cpt_train_cfg *cfg) { return (cfg->comm ? cfg->comm->size : 1) / cp_size(cfg); }

/* The activations for micro-batch B x T; with context parallelism they hold this rank's
 * T / K rows per sequence, run attention on a new ring, and *lbuf gets room for one
 * micro-batch of local ids, targets, positions and document ids. Frees what the
 * previous stage had (its ring time goes to res). */
static int make_acts(const cpt_train_cfg *cfg, cpt_model *m, int B, int T, cpt_acts **acts, cpt_cp **cp, int32_t **lbuf,
                     cpt_train_result *res, cpt_err *err) {
    int K = cp_size(cfg);
    cpt_acts_free(*acts);
    *acts = NULL;
    if (*cp) res->t_ring += cpt_cp_comm_seconds(*cp);
    cpt_cp_free(*cp);
    *cp = NULL;
    free(*lbuf);
    *lbuf = NULL;
    int rc = cpt_acts_create_ex(acts, m, B, T / K, 1, cfg->recompute, err);
    if (!rc && cfg->trained) /* the gradients are the trained view's range only */
        cpt_acts_set_grad_window(*acts, (size_t)(cfg->trained->params - m->params), cfg->trained->n_params);
    if (rc || K == 1) return rc;
    const cpt_config *c = &m->cfg;
    if ((rc = cpt_cp_create(cp, cfg->comm, K, m->be, B, T / K, c->n_heads, c->n_kv_heads, c->head_dim, err))) return rc;
    if ((rc = cpt_acts_set_cp(*acts, *cp, err))) return rc;
    if (!(*lbuf = malloc(sizeof(int32_t) * 4 * (size_t)B * (T / K)))) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    return CPT_OK;
}

static char *tstate_json(const tstate *s, const cpt_train_cfg *cfg, int B, int A, int T) {
    json_t *o = json_object(), *wl = json_array(), *wn = json_array(), *base = json_object();
    for (int i = 0; i < s->nw; i++) {
        json_array_append_new(wl, json_real(s->wl[i]));
        json_array_append_new(wn, json_real(s->wn[i]));
    }
    for (int i = 0; i < cfg->n_evals && s->have_base; i++) json_object_set_new(base, cfg->evals[i].name, json_real(s->base[i]));
    json_object_set_new(o, "skip_window_loss", wl);
    json_object_set_new(o, "skip_window_norm", wn);
    json_object_set_new(o, "skipped", json_integer(s->skipped));
    json_object_set_new(o, "base_eval_loss", base);
    json_object_set_new(o, "best_step", json_integer(s->best_step));
    json_object_set_new(o, "best_loss", json_real(isfinite(s->best_loss) ? s->best_loss : 0.0));
    /* the data position is step * global batch: a resume needs the same global batch
     * (any number of ranks, cpt_dp_check_resume) */
    int W = dp_size(cfg);
    json_object_set_new(o, "data_parallel_ranks", json_integer(W));
    json_object_set_new(o, "context_parallel", json_integer(cfg->context_parallel > 1 ? cfg->context_parallel : 1));
    json_object_set_new(o, "global_batch", json_integer((long long)B * A * W));
    json_object_set_new(o, "seq_len", json_integer(T)); /* of the stage the next step belongs to */
    char *txt = json_dumps(o, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(o);
    return txt;
}

static int tstate_load(tstate *s, const char *txt, const cpt_train_cfg *cfg, int B, int A, int T, cpt_err *err) {
    json_error_t je;
    json_t *o = json_loads(txt ? txt : "{}", 0, &je);
    if (!o) return cpt_err_set(err, CPT_EFORMAT, "checkpoint trainer state: %s", je.text);
    json_t *wl = json_object_get(o, "skip_window_loss"), *wn = json_object_get(o, "skip_window_norm");
    s->nw = 0;
    for (size_t i = 0; i < json_array_size(wl) && (int)i < cfg->skip_window && i < json_array_size(wn); i++) {
        s->wl[s->nw] = json_real_value(json_array_get(wl, i));
        s->wn[s->nw++] = json_real_value(json_array_get(wn, i));
    }
    s->skipped = json_integer_value(json_object_get(o, "skipped"));
    json_t *bs = json_object_get(o, "best_step");
    s->best_step = json_is_integer(bs) ? json_integer_value(bs) : -1;
    s->best_loss = s->best_step >= 0 ? json_number_value(json_object_get(o, "best_loss")) : INFINITY;
    json_t *dpr = json_object_get(o, "data_parallel_ranks"), *gb = json_object_get(o, "global_batch");
    int rc = cpt_dp_check_resume(json_is_integer(dpr) ? json_integer_value(dpr) : 0, json_is_integer(gb) ? json_integer_value(gb) : 0,
                                 dp_size(cfg), B, A, err);
    json_t *sl = json_object_get(o, "seq_len");
    if (!rc && json_is_integer(sl) && json_integer_value(sl) != T)
        rc = cpt_err_set(err, CPT_ESTATE,
                         "checkpoint trainer state: the next step was to use sequences of %lld tokens, the recipe now gives %d. "
                         "HINT: keep the stage's seq_len (stages.N.seq_len / training.seq_len) when resuming",
                         (long long)json_integer_value(sl), T);
    if (rc) {
        json_decref(o);
        return rc;
    }
    json_t *base = json_object_get(o, "base_eval_loss");
    s->have_base = 1;
    for (int i = 0; i < cfg->n_evals; i++) {
        json_t *v = json_object_get(base, cfg->evals[i].name);
        if (!json_is_number(v)) s->have_base = 0;
        else s->base[i] = json_number_value(v);
    }
    json_decref(o);
    return CPT_OK;
}

static double zscore(const double *w, int n, double x) {
    if (n < 8) return 0.0; /* too few points for a meaningful spread */
    double mu = 0, var = 0;
    for (int i = 0; i < n; i++) mu += w[i];
    mu /= n;
    for (int i = 0; i < n; i++) var += (w[i] - mu) * (w[i] - mu);
    double sd = sqrt(var / n);
    return sd > 0 ? (x - mu) / sd : 0.0;
}

/* Append an accepted step's (loss, grad norm) to the rolling window (oldest first). */
static void window_push(tstate *s, int cap, double loss, double norm) {
    if (cap <= 0) return;
    if (s->nw == cap) {
        memmove(s->wl, s->wl + 1, sizeof(double) * (size_t)(cap - 1));
        memmove(s->wn, s->wn + 1, sizeof(double) * (size_t)(cap - 1));
        s->nw--;
    }
    s->wl[s->nw] = loss;
    s->wn[s->nw] = norm;
    s->nw++;
}

/* Evaluate every set; fills res->evals[i].loss; returns 1 if a budget is exceeded. */
static int run_evals(const cpt_train_cfg *cfg, cpt_model *m, tstate *s, long long step, cpt_train_result *res,
                     cpt_metrics *mx, cpt_err *err, int *rc_out) {
    int exceeded = 0;
    *rc_out = CPT_OK;
    for (int i = 0; i < cfg->n_evals; i++) {
        const cpt_eval_set *e = &cfg->evals[i];
        long long n = e->n_seqs < cfg->eval_batches || cfg->eval_batches <= 0 ? e->n_seqs : cfg->eval_batches;
        double loss = 0;
        long long tok = 0;
        int rc = cpt_dp_eval_loss(cfg->comm, m, &e->data, n, cfg->seq_len, cfg->micro_batch, cfg->block_causal, cfg->reset_positions,
                               &loss, &tok, err);
        if (rc) {
            *rc_out = cpt_err_wrap(err, "evaluating '%s' at step %lld", e->name, step);
            return 0;
        }
        if (!s->have_base) s->base[i] = loss;
        res->evals[i].base_loss = s->base[i];
        res->evals[i].loss = loss;
        res->evals[i].tokens = tok;
        /* The budget is on perplexity: "general perplexity may rise at most 5%". */
        double rel = exp(loss - s->base[i]) - 1.0;
        int over = e->budget > 0 && rel > e->budget;
        exceeded |= over;
        if (cfg->log)
            fprintf(cfg->log, "%seval step %lld %-10s loss %.4f ppl %.3f (base %.3f, %+.2f%%)%s\n",
                    isatty(fileno(cfg->log)) ? "\r\033[K" : "", step, e->name, loss, exp(loss), exp(s->base[i]), 100.0 * rel,
                    over ? "  OVER FORGETTING BUDGET" : "");
        if (mx) {
            char k1[160], k2[160], k3[160];
            snprintf(k1, sizeof k1, "loss/%s", e->name);
            snprintf(k2, sizeof k2, "ppl/%s", e->name);
            snprintf(k3, sizeof k3, "delta_pct/%s", e->name);
            const char *keys[] = {k1, k2, k3};
            double vals[] = {loss, exp(loss), 100.0 * (exp(loss - s->base[i]) - 1.0)};
            int mrc = cpt_metrics_log(mx, "eval", step, keys, vals, 3, err);
            if (mrc) {
                *rc_out = mrc;
                return 0;
            }
        }
    }
    s->have_base = 1;
    double mean = 0;
    for (int i = 0; i < cfg->n_evals; i++) mean += res->evals[i].loss / cfg->n_evals;
    s->last_eval_mean = mean;
    s->last_eval_step = step;
    return exceeded;
}

/* The stage step belongs to (-1: no stages). */
static int stage_at(const cpt_train_cfg *cfg, long long step) {
    if (cfg->n_stages <= 0) return -1;
    int s = 0;
    while (s + 1 < cfg->n_stages && step >= cfg->stages[s + 1].start) s++;
    return s;
}

/* The geometry and data of the step's stage. */
static void stage_geom(const cpt_train_cfg *cfg, long long step, int *B, int *A, int *T, long long *start, const cpt_data_iface **d) {
    int s = stage_at(cfg, step);
    if (s < 0) {
        *B = cfg->micro_batch, *A = cfg->grad_accum, *T = cfg->seq_len, *start = 0, *d = &cfg->train_data;
        return;
    }
    const cpt_train_stage *g = &cfg->stages[s];
    *B = g->micro_batch, *A = g->grad_accum, *T = g->seq_len, *start = g->start, *d = &g->data;
}

int cpt_train_run(const cpt_train_cfg *cfg, cpt_model *m, const char *resume_dir, cpt_train_result *res, cpt_err *err) {
    memset(res, 0, sizeof *res);
    if (cfg->n_evals > 16) return cpt_err_set(err, CPT_EINVAL, "at most 16 validation sets");
    if (cfg->train_data.n_sources > CPT_CKPT_MAX_SOURCES) return cpt_err_set(err, CPT_EINVAL, "too many data sources");
    int B, T, A;
    long long s_start;
    const cpt_data_iface *td;
    for (int i = 0; i < (cfg->n_stages > 0 ? cfg->n_stages : 1); i++) {
        const cpt_train_stage *g = cfg->n_stages > 0 ? &cfg->stages[i] : NULL;
        B = g ? g->micro_batch : cfg->micro_batch, T = g ? g->seq_len : cfg->seq_len, A = g ? g->grad_accum : cfg->grad_accum;
        if (B <= 0 || T <= 1 || A <= 0 || cfg->max_steps < 0 || (g && (i ? g->start < cfg->stages[i - 1].start : g->start != 0)))
            return cpt_err_set(err, CPT_EINVAL, "training%s: micro_batch, seq_len > 1 and grad_accum must be positive, stages in order",
                               g ? " stage" : "");
    }
    int Kc = cp_size(cfg);
    if (Kc > 1) {
        int Wall = cfg->comm ? cfg->comm->size : 1;
        if (Wall % Kc)
            return cpt_err_set(err, CPT_EINVAL, "context parallelism over %d ranks needs a multiple of %d processes, not %d. HINT: run mpirun -np %d (or a multiple), or set parallel.context to a divisor of %d",
                               Kc, Kc, Wall, Kc, Wall);
        for (int i = 0; i < (cfg->n_stages > 0 ? cfg->n_stages : 1); i++) {
            int Ti = cfg->n_stages > 0 ? cfg->stages[i].seq_len : cfg->seq_len;
            if (Ti % (2 * Kc))
                return cpt_err_set(err, CPT_EINVAL, "context parallelism over %d ranks cuts each sequence into %d chunks: seq_len %d%s is not a multiple of %d. HINT: use a seq_len divisible by %d",
                                   Kc, 2 * Kc, Ti, cfg->n_stages > 0 ? " (a stage's)" : "", 2 * Kc, 2 * Kc);
        }
    }
    /* P: what is trained, the model's weights or a LoRA adapter's parameter set */
    cpt_lora *lo = cfg->lora;
    if (lo && (lo->base != m || m->lora != lo))
        return cpt_err_set(err, CPT_EINVAL, "training: the LoRA adapter is not attached to this model");
    if (lo && (cfg->frozen || cfg->frozen_fn || cfg->rows_fn))
        return cpt_err_set(err, CPT_EINVAL, "training: frozen tensors or rows with LoRA (the base model is frozen already). HINT: drop regularization.freeze.* and training.train_only, or lora.*");
    if (cfg->trained && (lo || cfg->trained->view_of != m))
        return cpt_err_set(err, CPT_EINVAL, "training: the trained-tensor view is not a view of this model%s", lo ? " (or LoRA is on)" : "");
    cpt_model *P = lo ? lo->pm : cfg->trained ? cfg->trained : m;
    /* A view: its tensors are the model's [vfirst, vfirst + n) */
    int vfirst = 0;
    if (P->view_of) {
        while (vfirst < m->n_tensors && strcmp(m->tensors[vfirst].name, P->tensors[0].name)) vfirst++;
        if (vfirst + P->n_tensors > m->n_tensors) return cpt_err_set(err, CPT_EINVAL, "training: the trained-tensor view does not match the model");
    }
    const uint8_t *last_frozen = NULL;
    stage_geom(cfg, 0, &B, &A, &T, &s_start, &td);
    int cur_stage = stage_at(cfg, 0);
    int rc = CPT_OK;
    cpt_adamw *opt = NULL;
    cpt_zero *zr = NULL; /* ZeRO-1: opt holds this rank's shard */
    cpt_acts *acts = NULL;
    float *grads = NULL, *lr_mult = NULL;
    int32_t *buf = NULL;
    int *srcs = NULL;
    tstate st = {0};
    st.best_step = -1, st.best_loss = INFINITY, st.last_eval_mean = NAN, st.last_eval_step = -1;
    cpt_ckpt_state ck = {0};
    long long step = 0, tokens = 0;
    cpt_metrics *mx = NULL;
    cpt_progress *prog = NULL;
    size_t N = (size_t)B * T;
    cpt_comm *comm = cfg->comm;
    /* W, rank: data-parallel size and index (the ranks of one context group read the same
     * sequences); cr: the rank in its context group (0 counts the sequences' statistics) */
    int W = dp_size(cfg), rank = (comm ? comm->rank : 0) / Kc, cr = (comm ? comm->rank : 0) % Kc, wrank = comm ? comm->rank : 0;
    cpt_cp *cp = NULL;
    int32_t *lbuf = NULL; /* context parallelism: this rank's rows of one micro-batch */
    st.wl = calloc((size_t)(cfg->skip_window > 0 ? cfg->skip_window : 1), sizeof(double));
    st.wn = calloc((size_t)(cfg->skip_window > 0 ? cfg->skip_window : 1), sizeof(double));
    buf = malloc(batch_ids_bytes(B, T, A));
    srcs = malloc(batch_src_bytes(B, A));
    lr_mult = malloc(sizeof(float) * (size_t)P->n_tensors);
    grads = P->be->alloc(cpt_model_buffer_bytes(P));
    if (!st.wl || !st.wn || !buf || !srcs || !lr_mult || !grads) {
        rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = cfg->zero ? cpt_zero_create(&zr, comm, P, &opt, err) : cpt_adamw_create(&opt, P, err))) goto done;
    if ((rc = make_acts(cfg, m, B, T, &acts, &cp, &lbuf, res, err))) goto done;
    if (cfg->log && cp)
        fprintf(cfg->log, "context parallel: each sequence over %d ranks (ring attention), %d local tokens per sequence, ring buffers %.1f MiB\n",
                Kc, T / Kc, (double)cpt_cp_bytes(cp) / 1048576.0);
    if (cfg->log && cur_stage >= 0) fprintf(cfg->log, "stage 0: sequences of %d tokens, micro-batch %d x %d\n", T, B, A);
    if (cfg->log) fprintf(cfg->log, "activations: %.1f MiB for micro-batch %d x %d%s (recompute %s)\n", (double)cpt_acts_bytes(acts) / 1048576.0, B, T / Kc, Kc > 1 ? " local tokens" : "", cfg->recompute == CPT_RECOMPUTE_FULL ? "full" : cfg->recompute == CPT_RECOMPUTE_SELECTIVE ? "selective" : "none");
    for (int i = 0; i < P->n_tensors; i++) {
        /* the model's embeddings / LM head, or a LoRA adapter's trained copies of them
         * ("base_model.model.model.embed_tokens.weight", "base_model.model.lm_head.weight") */
        const char *nm = P->tensors[i].name;
        size_t ln = strlen(nm);
        int emb = (ln >= 25 && !strcmp(nm + ln - 25, "model.embed_tokens.weight")) ||
                  !strcmp(nm, "lm_head.weight") || !strcmp(nm, "base_model.model.lm_head.weight");
        lr_mult[i] = emb ? (float)cfg->embed_lr_mult : 1.0f;
    }
    if (resume_dir) {
        if ((rc = zr ? cpt_zero_load_state(resume_dir, P, opt, &ck, err) : cpt_ckpt_load(resume_dir, P, opt, &ck, err))) goto done;
        {
            int rB, rA, rT;
            long long rs;
            const cpt_data_iface *rd;
            stage_geom(cfg, ck.step, &rB, &rA, &rT, &rs, &rd);
            if ((rc = tstate_load(&st, ck.trainer_json, cfg, rB, rA, rT, err))) goto done;
        }
        if (!lo) cpt_model_refresh_lowp(m); /* the loaded weights' bf16 copy (bf16 precision) */
        step = ck.step;
        tokens = ck.tokens;
        for (int i = 0; i < ck.n_sources; i++)
            for (int j = 0; j < cfg->train_data.n_sources; j++)
                if (!strcmp(ck.source_names[i], cfg->train_data.source_names[j])) res->source_tokens[j] = ck.source_tokens[i];
        res->skipped = st.skipped;
        if (cfg->log) fprintf(cfg->log, "resumed from %s at step %lld (%lld tokens)\n", resume_dir, step, tokens);
    }
    /* Per-stage config overrides (RoPE) of the stages up to the first step's, in order. */
    int cfg_stage = -1;
    while (cfg_stage < stage_at(cfg, step)) {
        const char *ov = cfg->stages[++cfg_stage].config_override;
        if (ov && (rc = cpt_config_override(&m->cfg, ov, "stage config", err))) goto done;
        if (ov) m->rope_built = 0, m->rope_cached = 0;
    }
    if (cfg->metrics && cfg->run_dir &&
        (rc = cpt_metrics_open(&mx, cfg->run_dir, resume_dir ? step : CPT_METRICS_FRESH, err)))
        goto done;
    if (!st.have_base && cfg->n_evals > 0) {
        int erc;
        run_evals(cfg, m, &st, step, res, mx, err, &erc);
        if ((rc = erc)) goto done;
    }
    int extra_rank = cfg->eval_extra_fn && (!cfg->comm || cfg->comm->rank == 0);
    if (extra_rank && step == 0) {
        double te0 = cpt_now();
        if ((rc = cfg->eval_extra_fn(cfg->eval_extra_ctx, m, step, mx, cfg->log, err))) goto done;
        res->t_eval += cpt_now() - te0;
    }
    double t0 = cpt_now();
    long long tokens0 = tokens;
    prog = cfg->log ? cpt_progress_new(cfg->log, "train", (double)cfg->max_steps, "step") : NULL;
    int stop = 0;
    while (step < cfg->max_steps && !stop) {
        if (stage_at(cfg, step) != cur_stage) {
            /* Progressive length: a new stage's micro-batch geometry (the memory plan was
             * made for the largest stage) */
            cur_stage = stage_at(cfg, step);
            stage_geom(cfg, step, &B, &A, &T, &s_start, &td);
            while (cfg_stage < cur_stage) {
                const char *ov = cfg->stages[++cfg_stage].config_override;
                if (ov && (rc = cpt_config_override(&m->cfg, ov, "stage config", err))) goto done;
                if (ov) {
                    m->rope_built = 0, m->rope_cached = 0;
                    if (cfg->log) fprintf(cfg->log, "%sstage %d: model config %s\n", isatty(fileno(cfg->log)) ? "\r\033[K" : "", cfg_stage, ov);
                }
            }
            N = (size_t)B * T;
            cpt_acts_free(acts);
            acts = NULL;
            free(buf);
            free(srcs);
            buf = malloc(batch_ids_bytes(B, T, A));
            srcs = malloc(batch_src_bytes(B, A));
            if (!buf || !srcs) {
                rc = cpt_err_set(err, CPT_ENOMEM, "out of memory for stage %d's batches (%d x %d x %d)", cur_stage, B, T, A);
                goto done;
            }
            if ((rc = make_acts(cfg, m, B, T, &acts, &cp, &lbuf, res, err))) goto done;
            if (cfg->log)
                fprintf(cfg->log, "%sstage %d from step %lld: sequences of %d tokens, micro-batch %d x %d, activations %.1f MiB\n",
                        isatty(fileno(cfg->log)) ? "\r\033[K" : "", cur_stage, step, T, B, A, (double)cpt_acts_bytes(acts) / 1048576.0);
        }
        /* Gather the whole step's data first: the loss normaliser is the number of
         * valid targets over all micro-batches (HF's num_items_in_batch). */
        long long ntot = 0;
        double tp0 = cpt_now();
        for (int a = 0; a < A && !rc; a++)
            for (int b = 0; b < B && !rc; b++) {
                long long g = (long long)cpt_mix_rank_index((uint64_t)(step - s_start), (uint32_t)rank, (uint32_t)W, (uint32_t)(A * B),
                                                            (uint32_t)(a * B + b));
                int32_t *base = buf + (size_t)a * N * 4;
                rc = td->sequence(td->ctx, g, T, base + (size_t)b * T, base + N + (size_t)b * T,
                                              base + 2 * N + (size_t)b * T, base + 3 * N + (size_t)b * T, &srcs[a * B + b], err);
                for (int t = 0; t < T && !rc && cr == 0; t++) ntot += base[N + (size_t)b * T + t] >= 0;
            }
        if (rc) goto done;
        {   /* the loss normaliser is the valid targets of the global batch */
            double nd = (double)ntot;
            if ((rc = cpt_dp_reduce_stats(comm, &nd, 1, err))) goto done;
            ntot = (long long)nd;
        }
        double tp1 = cpt_now();
        res->t_data += tp1 - tp0;
        P->be->zero(grads, sizeof(float) * P->n_params);
        const uint8_t *frozen = cfg->frozen_fn ? cfg->frozen_fn(cfg->frozen_ctx, step) : cfg->frozen;
        if (P->view_of && frozen != last_frozen) { /* a step may train nothing outside the view */
            for (int i = 0; i < m->n_tensors; i++)
                if ((i < vfirst || i >= vfirst + P->n_tensors) && !(frozen && frozen[i])) {
                    rc = cpt_err_set(err, CPT_EINVAL, "training step %lld trains '%s', outside the trained-tensor view (cpt_train_cfg.trained)", step,
                                     m->tensors[i].name);
                    goto done;
                }
            last_frozen = frozen;
        }
        const uint8_t *frozen_p = frozen && P->view_of ? frozen + vfirst : lo ? NULL : frozen; /* indexed like P's tensors */
        double loss_sum = 0;
        for (int a = 0; a < A && !rc; a++) {
            int32_t *base = buf + (size_t)a * N * 4;
            cpt_batch bt = {B, T, base, base + N, cfg->reset_positions ? base + 2 * N : NULL, cfg->block_causal ? base + 3 * N : NULL};
            if (cp) { /* this rank's zigzag rows, with their global positions */
                int Tl = T / Kc;
                size_t Nl = (size_t)B * Tl;
                cpt_cp_take(lbuf, base, B, T, Kc, cr);
                cpt_cp_take(lbuf + Nl, base + N, B, T, Kc, cr);
                if (cfg->reset_positions) cpt_cp_take(lbuf + 2 * Nl, base + 2 * N, B, T, Kc, cr);
                else
                    for (int b = 0; b < B; b++)
                        for (int i = 0; i < Tl; i++) lbuf[2 * Nl + (size_t)b * Tl + i] = cpt_cp_global_pos(T, Kc, cr, i);
                if (cfg->block_causal) cpt_cp_take(lbuf + 3 * Nl, base + 3 * N, B, T, Kc, cr);
                bt = (cpt_batch){B, Tl, lbuf, lbuf + Nl, lbuf + 2 * Nl, cfg->block_causal ? lbuf + 3 * Nl : NULL};
            }
            double ls = 0;
            long long nv = 0;
            if (lo) { /* LoRA: the adapter's gradients, none for the base; dropout masks of
                       * this micro-batch from (seed, step, micro-batch, rank): resumes repeat them */
                lo->grads = grads;
                lo->drop_key = cpt_mix64(lo->seed ^ cpt_mix64(((uint64_t)step << 20) ^ ((uint64_t)a << 4) ^ 0x64726f70ull) ^
                                         ((uint64_t)wrank << 40)) | 1u;
            }
            rc = cpt_model_step(m, acts, &bt, lo ? NULL : grads, ntot ? 1.0f / (float)ntot : 0.0f, frozen, &ls, &nv, NULL, err);
            if (lo) lo->grads = NULL, lo->drop_key = 0;
            loss_sum += ls;
        }
        if (rc) goto done;
        double tp2 = cpt_now();
        res->t_compute += tp2 - tp1;
        m->be->sync(); /* the losses and, below, the penalty and norm are read on the host */
        /* Data parallelism: gradients, the loss sum and the per-source draws summed over
         * ranks; the penalty below is then added once, to the reduced gradient. */
        double red[1 + CPT_CKPT_MAX_SOURCES] = {0};
        red[0] = loss_sum;
        for (int i = 0; i < A * B && cr == 0; i++) red[1 + srcs[i]] += 1.0;
        double tr0 = cpt_now();
        /* ZeRO-1: the stats travel with the norm's all-reduce (one collective fewer) */
        rc = zr ? cpt_zero_reduce_grads(zr, P, grads, err) : cpt_dp_reduce_grads(comm, P, grads, red, 1 + cfg->train_data.n_sources, err);
        if (rc) goto done;
        res->t_comm += zr ? 0.0 : cpt_now() - tr0; /* ZeRO-1: its own clock, all its collectives */
        double penalty = cfg->penalty_fn ? cfg->penalty_fn(cfg->penalty_ctx, P, grads) : 0.0;
        if (cfg->rows_fn && (rc = cfg->rows_fn(cfg->rows_ctx, P, grads, step, 0, err))) goto done;
        double norm = 0;
        if (!zr) norm = cpt_grad_norm(P, grads);
        else if ((rc = cpt_zero_grad_norm(zr, P, grads, red, 1 + cfg->train_data.n_sources, &norm, err))) goto done;
        loss_sum = red[0];
        double loss = ntot ? loss_sum / (double)ntot : 0.0;
        double lr = cfg->lr_fn ? cfg->lr_fn(cfg->sched, step) : cfg->optim.lr;
        const char *why = NULL;
        if (!isfinite(loss) || !isfinite(norm)) why = "non-finite loss or gradient norm";
        else if (cfg->skip_zscore > 0 && (zscore(st.wl, st.nw, loss) > cfg->skip_zscore || zscore(st.wn, st.nw, norm) > cfg->skip_zscore))
            why = "loss or gradient-norm spike";
        if (why) {
            st.skipped++;
            res->skipped = st.skipped;
            if (res->n_skips < 100) {
                res->skip_steps[res->n_skips] = step;
                res->skip_reasons[res->n_skips++] = why;
            }
            if (cfg->log)
                fprintf(cfg->log, "%sstep %lld skipped: %s (loss %.4f, grad norm %.4g)\n", isatty(fileno(cfg->log)) ? "\r\033[K" : "",
                        step, why, loss, norm);
            if (mx) {
                char ev[256];
                snprintf(ev, sizeof ev, "{\"what\": \"skipped_step\", \"reason\": \"%s\", \"loss\": %.6g, \"grad_norm\": %.6g}", why,
                         isfinite(loss) ? loss : -1.0, isfinite(norm) ? norm : -1.0);
                if ((rc = cpt_metrics_event(mx, step, ev, err))) goto done;
            }
        } else if (zr) {
            if ((rc = cpt_zero_update(zr, opt, P, grads, &cfg->optim, lr, lr_mult, frozen_p, cfg->clip, norm, err))) goto done;
            window_push(&st, cfg->skip_window, loss, norm);
        } else {
            cpt_grad_clip(P, grads, cfg->clip);
            cpt_adamw_step(opt, P, grads, &cfg->optim, lr, lr_mult, frozen_p);
            window_push(&st, cfg->skip_window, loss, norm);
        }
        if (!why && cfg->rows_fn && (rc = cfg->rows_fn(cfg->rows_ctx, P, NULL, step, 1, err))) goto done;
        if (!why && !lo) cpt_model_refresh_lowp(m); /* bf16 precision: the copy follows the fp32 masters */
        res->t_optim += cpt_now() - tp2;
        for (int k = 0; k < cfg->train_data.n_sources; k++) res->source_tokens[k] += (long long)red[1 + k] * T;
        tokens += (long long)A * B * T * W;
        step++;
        res->last_loss = loss;
        double el = cpt_now() - t0, tps = el > 0 ? (double)(tokens - tokens0) / el : 0.0;
        if (prog) cpt_progress_update(prog, (double)step, "loss %.4f | lr %.3g | %.0f tok/s", loss, lr, tps);
        if (mx) {
            const char *keys[] = {"loss", "lr", "grad_norm", "penalty", "tokens", "tokens_per_s"};
            double vals[] = {loss, lr, norm, penalty, (double)tokens, tps};
            if ((rc = cpt_metrics_log(mx, "train", step, keys, vals, 6, err))) goto done;
        }
        if (extra_rank && ((cfg->eval_extra_every > 0 && step % cfg->eval_extra_every == 0) || step == cfg->max_steps)) {
            double te0 = cpt_now();
            if ((rc = cfg->eval_extra_fn(cfg->eval_extra_ctx, m, step, mx, cfg->log, err))) goto done;
            res->t_eval += cpt_now() - te0;
        }
        int do_eval = cfg->n_evals > 0 && ((cfg->eval_every > 0 && step % cfg->eval_every == 0) || step == cfg->max_steps);
        if (do_eval) {
            double te0 = cpt_now();
            int erc;
            int over = run_evals(cfg, m, &st, step, res, mx, err, &erc);
            res->t_eval += cpt_now() - te0;
            if ((rc = erc)) goto done;
            if (over) {
                res->budget_exceeded = 1;
                if (cfg->stop_on_budget) {
                    if (cfg->log) fprintf(cfg->log, "stopping: forgetting budget exceeded at step %lld\n", step);
                    stop = 1;
                }
            }
        }
        int do_ckpt = cfg->run_dir && ((cfg->ckpt_every > 0 && step % cfg->ckpt_every == 0) || step == cfg->max_steps || stop);
        /* ZeRO-1 on several ranks: each rank writes its shard (collective), or rank 0
         * gathers the shards and writes one file */
        int sharded = do_ckpt && zr && cfg->ckpt_sharded && comm && comm->size > 1;
        cpt_adamw *full = NULL; /* the shards gathered on rank 0 for a consolidated save */
        if (do_ckpt && zr && !sharded && (rc = cpt_zero_gather_state(zr, P, opt, grads, &full, err))) goto done;
        if (do_ckpt && (wrank == 0 || sharded)) {
            double tc0 = cpt_now();
            cpt_ckpt_state cs = {0};
            cs.step = step;
            cs.tokens = tokens;
            cs.n_sources = cfg->train_data.n_sources;
            for (int i = 0; i < cs.n_sources; i++) {
                snprintf(cs.source_names[i], sizeof cs.source_names[0], "%s", cfg->train_data.source_names[i]);
                cs.source_tokens[i] = res->source_tokens[i];
            }
            /* Best checkpoint: this one if its evaluation (at this step) is the best so far. */
            if (cfg->keep_best && st.last_eval_step == step && st.last_eval_mean < st.best_loss) {
                st.best_loss = st.last_eval_mean;
                st.best_step = step;
            }
            {
                int nB, nA, nT;
                long long ns;
                const cpt_data_iface *nd;
                stage_geom(cfg, step, &nB, &nA, &nT, &ns, &nd);
                cs.trainer_json = tstate_json(&st, cfg, nB, nA, nT);
            }
            cs.recipe_text = (char *)cfg->recipe_text;
            char best_name[64];
            snprintf(best_name, sizeof best_name, "step-%08lld", st.best_step);
            const char *keep[] = {best_name, NULL};
            rc = sharded ? cpt_ckpt_save_sharded(cfg->run_dir, P, comm, opt, &cs, cfg->keep_last, st.best_step >= 0 ? keep : NULL, NULL, err)
                         : cpt_ckpt_save(cfg->run_dir, P, full ? full : opt, &cs, cfg->keep_last, st.best_step >= 0 ? keep : NULL, NULL, err);
            free(cs.trainer_json);
            cpt_zero_state_free(full);
            res->t_ckpt += cpt_now() - tc0;
            if (rc) goto done;
        }
    }
    if (zr) res->t_comm += zr->t_comm;
    if (cp) res->t_ring += cpt_cp_comm_seconds(cp);
    res->steps = step;
    res->tokens = tokens;
    res->best_step = st.best_step;
    res->best_loss = st.best_loss;
    res->wall_s = cpt_now() - t0;
done:
    cpt_progress_done(prog);
    cpt_metrics_close(mx);
    cpt_ckpt_state_free(&ck);
    free(st.wl);
    free(st.wn);
    free(buf);
    free(srcs);
    free(lr_mult);
    if (grads) P->be->free(grads);
    cpt_acts_free(acts);
    cpt_cp_free(cp);
    free(lbuf);
    cpt_adamw_free(opt);
    cpt_zero_free(zr);
    return rc;
}

/* train_evallong.c: the recipe's eval.long block for `cpt train`: the checks of
 * `cpt eval-long` (passkey, needle, loss by position; cpt/longctx.h) at step 0, every
 * eval.long.every steps and at the end, with the weights and RoPE of that step. Each run
 * writes OUT_DIR/eval_long/step-N.json and .svg (the heat map), logs the long/... metrics, and
 * the first and last feed a "Long context" section of report.md. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cpt/fileio.h"
#include "cpt/longctx.h"
#include "cpt/metrics.h"
#include "cpt/model.h"
#include "cpt/recipe.h"
#include "cpt/tokenizer.h"

#define EL_MAXL 16

typedef struct snapshot {
    long long step;
    double acc[CPT_LC_NTESTS][EL_MAXL]; /* NAN: not run */
    cpt_lc_ppl ppl[EL_MAXL];
    int n_ppl;
} snapshot;

struct cpt_train_evallong {
    const cpt_tok *tok;
    char dir[4200];
    int lengths[EL_MAXL];
    double depths[64];
    cpt_lc_opts o;
    int32_t *hay, *doc;
    size_t n_hay, n_doc;
    int bucket, windows;
    snapshot first, last;
    int have_first;
};

int cpt_train_evallong_setup(const cpt_recipe *r, const cpt_tok *tok, const char *run_dir, cpt_train_evallong **out, long long *every,
                             cpt_err *err) {
    *out = NULL;
    if (!cpt_recipe_has(r, "eval.long.lengths")) return CPT_OK;
    cpt_train_evallong *e = calloc(1, sizeof *e);
    if (!e) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    double lv[EL_MAXL];
    int nl = 0, nd = 0, rc;
    if ((rc = cpt_parse_num_list(cpt_recipe_str(r, "eval.long.lengths"), "eval.long.lengths", 2, 1 << 24, 1, lv, EL_MAXL, &nl, err)) ||
        (rc = cpt_parse_num_list(cpt_recipe_str(r, "eval.long.depths"), "eval.long.depths", 0, 1, 0, e->depths, 64, &nd, err))) {
        free(e);
        return rc;
    }
    for (int i = 0; i < nl; i++) e->lengths[i] = (int)lv[i];
    e->tok = tok;
    snprintf(e->dir, sizeof e->dir, "%s/eval_long", run_dir);
    e->o.lengths = e->lengths, e->o.n_lengths = nl, e->o.depths = e->depths, e->o.n_depths = nd;
    e->o.trials = (int)cpt_recipe_int(r, "eval.long.trials"), e->o.seed = 42;
    e->o.max_new[CPT_LC_PASSKEY] = 10, e->o.max_new[CPT_LC_NEEDLE] = 24;
    e->o.run[CPT_LC_PASSKEY] = 1;
    e->bucket = (int)cpt_recipe_int(r, "eval.long.bucket"), e->windows = (int)cpt_recipe_int(r, "eval.long.ppl_windows");
    *every = cpt_recipe_int(r, "eval.long.every");
    const char *keys[2] = {"eval.long.haystack", "eval.long.ppl_text"};
    for (int k = 0; k < 2 && !rc; k++) {
        if (!cpt_recipe_has(r, keys[k])) continue;
        const char *path = cpt_recipe_str(r, keys[k]);
        char *txt = NULL;
        size_t tl = 0;
        rc = cpt_read_file(path, &txt, &tl, err);
        if (!rc) rc = k == 0 ? cpt_tok_encode(tok, txt, tl, 0, &e->hay, &e->n_hay, NULL, err) : cpt_tok_encode(tok, txt, tl, 1, &e->doc, &e->n_doc, NULL, err);
        free(txt);
        if (!rc && (k == 0 ? e->n_hay : e->n_doc) == 0) rc = cpt_err_set(err, CPT_EINVAL, "%s: %s is empty", keys[k], path);
    }
    if (!rc && e->doc && e->n_doc < (size_t)e->lengths[nl - 1] + 1)
        rc = cpt_err_set(err, CPT_EINVAL, "eval.long.ppl_text has %zu tokens, fewer than the longest eval.long length %d + 1. HINT: use a longer "
                         "text (a book) or shorter eval.long.lengths", e->n_doc, e->lengths[nl - 1]);
    if (rc) {
        cpt_train_evallong_free(e);
        return rc;
    }
    e->o.haystack = e->hay, e->o.n_haystack = e->n_hay, e->o.run[CPT_LC_NEEDLE] = e->hay != NULL;
    *out = e;
    return CPT_OK;
}

void cpt_train_evallong_free(cpt_train_evallong *e) {
    if (!e) return;
    free(e->hay), free(e->doc), free(e);
}

int cpt_train_evallong_run(void *ctx, cpt_model *m, long long step, struct cpt_metrics *mx, FILE *log, cpt_err *err) {
    cpt_train_evallong *e = ctx;
    cpt_lc_trial *tr = NULL;
    size_t n = 0;
    snapshot s;
    memset(&s, 0, sizeof s);
    s.step = step;
    double t0 = cpt_now();
    int rc = cpt_lc_run(m, e->tok, &e->o, &tr, &n, err);
    const int32_t *docs[1] = {e->doc};
    for (int i = 0; !rc && e->doc && i < e->o.n_lengths; i++)
        if (!(rc = cpt_lc_ppl_run(m, docs, &e->n_doc, 1, e->lengths[i], e->bucket, e->windows, &s.ppl[s.n_ppl], err))) s.n_ppl++;
    if (rc) {
        cpt_lc_trials_free(tr, n);
        return cpt_err_wrap(err, "eval.long at step %lld", step);
    }
    /* accuracies, metrics */
    const char *mk[3 * EL_MAXL * (2 + CPT_LC_MAX_BUCKETS)];
    char kb[3 * EL_MAXL * (2 + CPT_LC_MAX_BUCKETS)][64];
    double mv[3 * EL_MAXL * (2 + CPT_LC_MAX_BUCKETS)];
    int nk = 0;
    for (int t = 0; t < CPT_LC_NTESTS; t++)
        for (int i = 0; i < e->o.n_lengths; i++) {
            int ok = 0, tot = 0;
            for (size_t j = 0; j < n; j++)
                if (tr[j].test == t && tr[j].length == e->lengths[i]) tot++, ok += tr[j].correct;
            s.acc[t][i] = tot ? (double)ok / tot : NAN;
            if (tot) {
                snprintf(kb[nk], sizeof kb[nk], "long/%s/%d", cpt_lc_test_names[t], e->lengths[i]);
                mk[nk] = kb[nk], mv[nk++] = s.acc[t][i];
            }
        }
    for (int i = 0; i < s.n_ppl; i++) {
        snprintf(kb[nk], sizeof kb[nk], "long/loss/%d", s.ppl[i].length);
        mk[nk] = kb[nk], mv[nk++] = s.ppl[i].loss;
        for (int k = 0; k < s.ppl[i].n_buckets; k++) {
            snprintf(kb[nk], sizeof kb[nk], "long/loss/%d/%d-%d", s.ppl[i].length, s.ppl[i].lo[k], s.ppl[i].hi[k]);
            mk[nk] = kb[nk], mv[nk++] = s.ppl[i].bucket_loss[k];
        }
    }
    if (mx && nk && (rc = cpt_metrics_log(mx, "eval", step, mk, mv, nk, err))) {
        cpt_lc_trials_free(tr, n);
        return rc;
    }
    if (log) {
        fprintf(log, "eval.long step %lld (%.1f s):", step, cpt_now() - t0);
        for (int t = 0; t < CPT_LC_NTESTS; t++)
            if (e->o.run[t]) {
                fprintf(log, " %s", cpt_lc_test_names[t]);
                for (int i = 0; i < e->o.n_lengths; i++) fprintf(log, " %d:%.2f", e->lengths[i], s.acc[t][i]);
            }
        for (int i = 0; i < s.n_ppl; i++) fprintf(log, " loss@%d %.4f", s.ppl[i].length, s.ppl[i].loss);
        fprintf(log, "\n");
    }
    /* step-N.json (every answer) and the heat map */
    mkdir(e->dir, 0755);
    char path[4300], title[128];
    json_t *root = json_pack("{s:I}", "step", (json_int_t)step);
    for (int t = 0; t < CPT_LC_NTESTS; t++) {
        if (!e->o.run[t]) continue;
        json_t *items = json_array(), *acc = json_object();
        for (int i = 0; i < e->o.n_lengths; i++) {
            char lk[32];
            snprintf(lk, sizeof lk, "%d", e->lengths[i]);
            json_object_set_new(acc, lk, isfinite(s.acc[t][i]) ? json_real(s.acc[t][i]) : json_null());
        }
        for (size_t j = 0; j < n; j++)
            if (tr[j].test == t)
                json_array_append_new(items, json_pack("{s:i, s:f, s:i, s:i, s:I, s:s, s:b}", "length", tr[j].length, "depth", tr[j].depth, "trial",
                                                       tr[j].trial, "prompt_tokens", tr[j].prompt_tokens, "key", (json_int_t)tr[j].key, "answer",
                                                       tr[j].answer ? tr[j].answer : "", "correct", tr[j].correct));
        json_object_set_new(root, cpt_lc_test_names[t], json_pack("{s:o, s:o}", "accuracy_by_length", acc, "items", items));
    }
    if (s.n_ppl) {
        json_t *jp = json_array();
        for (int i = 0; i < s.n_ppl; i++) {
            json_t *b = json_array();
            for (int k = 0; k < s.ppl[i].n_buckets; k++)
                json_array_append_new(b, json_pack("{s:i, s:i, s:f}", "lo", s.ppl[i].lo[k], "hi", s.ppl[i].hi[k], "loss", s.ppl[i].bucket_loss[k]));
            json_array_append_new(jp, json_pack("{s:i, s:f, s:o}", "length", s.ppl[i].length, "loss", s.ppl[i].loss, "buckets", b));
        }
        json_object_set_new(root, "ppl", jp);
    }
    char *js = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(root);
    snprintf(path, sizeof path, "%s/step-%08lld.json", e->dir, step);
    rc = js ? cpt_write_file_atomic(path, js, strlen(js), err) : cpt_err_set(err, CPT_ENOMEM, "out of memory");
    free(js);
    snprintf(title, sizeof title, "eval.long at step %lld", step);
    char *svg = rc ? NULL : cpt_lc_svg(tr, n, &e->o, s.ppl, s.n_ppl, title);
    snprintf(path, sizeof path, "%s/step-%08lld.svg", e->dir, step);
    if (!rc) rc = svg ? cpt_write_file_atomic(path, svg, strlen(svg), err) : cpt_err_set(err, CPT_ENOMEM, "out of memory");
    free(svg);
    cpt_lc_trials_free(tr, n);
    if (!e->have_first) e->first = s, e->have_first = 1;
    e->last = s;
    return rc;
}

static void fmt_acc(char *b, size_t n, double v) {
    if (isfinite(v)) snprintf(b, n, "%.2f", v);
    else snprintf(b, n, "-");
}

char *cpt_train_evallong_markdown(const cpt_train_evallong *e) {
    if (!e || !e->have_first) return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    const snapshot *a = &e->first, *b = &e->last;
    fprintf(f, "## Long context (eval.long)\n\nPasskey%s accuracy by context length (%d depth%s x %d trial%s each), step %lld -> %lld",
            e->o.run[CPT_LC_NEEDLE] ? " and needle" : "", e->o.n_depths, e->o.n_depths == 1 ? "" : "s", e->o.trials, e->o.trials == 1 ? "" : "s",
            a->step, b->step);
    if (a->n_ppl) fprintf(f, ", and the loss (nats/token) of `eval.long.ppl_text` by position bucket");
    fprintf(f, ":\n\n| length | passkey |%s%s\n|---|---|%s%s\n", e->o.run[CPT_LC_NEEDLE] ? " needle |" : "", a->n_ppl ? " loss by position |" : "",
            e->o.run[CPT_LC_NEEDLE] ? "---|" : "", a->n_ppl ? "---|" : "");
    for (int i = 0; i < e->o.n_lengths; i++) {
        char x[16], y[16];
        fmt_acc(x, sizeof x, a->acc[CPT_LC_PASSKEY][i]), fmt_acc(y, sizeof y, b->acc[CPT_LC_PASSKEY][i]);
        fprintf(f, "| %d | %s -> %s |", e->lengths[i], x, y);
        if (e->o.run[CPT_LC_NEEDLE]) {
            fmt_acc(x, sizeof x, a->acc[CPT_LC_NEEDLE][i]), fmt_acc(y, sizeof y, b->acc[CPT_LC_NEEDLE][i]);
            fprintf(f, " %s -> %s |", x, y);
        }
        if (i < a->n_ppl && i < b->n_ppl) {
            for (int k = 0; k < a->ppl[i].n_buckets; k++)
                fprintf(f, "%s[%d,%d) %.3f -> %.3f", k ? ", " : " ", a->ppl[i].lo[k], a->ppl[i].hi[k], a->ppl[i].bucket_loss[k], b->ppl[i].bucket_loss[k]);
            fprintf(f, " |");
        }
        fprintf(f, "\n");
    }
    fprintf(f, "\n![eval.long at step %lld](<eval_long/step-%08lld.svg>)\n\nEvery answer: `eval_long/step-N.json`; the values per step are the "
               "`long/*` keys of metrics.jsonl.\n", b->step, b->step);
    if (fclose(f)) {
        free(buf);
        return NULL;
    }
    return buf;
}

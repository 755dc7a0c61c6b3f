/* report_md.c: writes a run's report.md from a cpt_report_data the trainer fills.
 * Not a metrics reader: every number comes from the struct. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/fileio.h"
#include "cpt/metrics.h"
#include "report/report-impl.h"

#define MAX_SKIP_ROWS 100 /* longer lists are summarised by reason */

/* Table-cell text: '|' would split the cell and a newline end the row. */
static void md_cell(cpt_buf *b, const char *s) {
    if (!s || !*s) {
        cpt_buf_printf(b, "-");
        return;
    }
    for (; *s; s++) {
        if (*s == '|') cpt_buf_printf(b, "\\|");
        else if (*s == '\n' || *s == '\r') cpt_buf_put(b, " ", 1);
        else cpt_buf_put(b, s, 1);
    }
}

/* 1234567 -> "1,234,567" */
static void fmt_count(char *out, size_t cap, long long v) {
    char digits[32];
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    int n = snprintf(digits, sizeof digits, "%llu", u);
    size_t k = 0;
    if (v < 0 && k + 1 < cap) out[k++] = '-';
    for (int i = 0; i < n && k + 2 < cap; i++) {
        if (i > 0 && (n - i) % 3 == 0) out[k++] = ',';
        out[k++] = digits[i];
    }
    out[k] = '\0';
}

static void fmt_duration(char *out, size_t cap, double s) {
    if (!isfinite(s) || s < 0) {
        snprintf(out, cap, "n/a");
        return;
    }
    long long t = llround(s);
    if (t >= 3600)
        snprintf(out, cap, "%lldh %02lldm %02llds", t / 3600, t / 60 % 60, t % 60);
    else if (t >= 60)
        snprintf(out, cap, "%lldm %02llds", t / 60, t % 60);
    else
        snprintf(out, cap, "%.1fs", s);
}

static void fmt_fixed(char *out, size_t cap, const char *fmt, double v) {
    if (isfinite(v)) snprintf(out, cap, fmt, v);
    else snprintf(out, cap, "n/a");
}

static int has_budget(double b) { return isfinite(b) && b >= 0; }

static int validate(const char *run_dir, const cpt_report_data *d, cpt_err *err) {
    const char *what = NULL;
    if (!d) what = "data is NULL";
    else if (d->steps_done < 0 || d->steps_total < 0 || d->tokens < 0) what = "negative steps or tokens";
    else if (d->n_valsets < 0 || (d->n_valsets && !d->valsets)) what = "valsets";
    else if (d->n_sources < 0 || (d->n_sources && !d->sources)) what = "sources";
    else if (d->n_skips < 0 || (d->n_skips && !d->skips)) what = "skips";
    else if (d->n_ckpts < 0 || (d->n_ckpts && !d->ckpts)) what = "ckpts";
    for (int i = 0; !what && i < d->n_valsets; i++)
        if (!d->valsets[i].name) what = "a validation set without a name";
    for (int i = 0; !what && i < d->n_sources; i++)
        if (!d->sources[i].name || d->sources[i].tokens < 0) what = "a source without a name or with negative tokens";
    for (int i = 0; !what && i < d->n_ckpts; i++)
        if (!d->ckpts[i].path) what = "a checkpoint without a path";
    if (what)
        return cpt_err_set(err, CPT_EINVAL,
                           "%s/report.md: bad report data: %s. HINT: counts must be >= 0 and "
                           "arrays non-NULL when their count is > 0",
                           run_dir, what);
    return CPT_OK;
}

static void write_summary(cpt_buf *b, const char *run_dir, const cpt_report_data *d) {
    const char *name = d->run_name;
    if (!name) {
        const char *slash = strrchr(run_dir, '/');
        name = slash && slash[1] ? slash + 1 : run_dir;
    }
    char a[64], c[64];
    cpt_buf_printf(b, "# Run report: ");
    md_cell(b, name);
    cpt_buf_printf(b, "\n\n| | |\n|---|---|\n| Model | ");
    md_cell(b, d->model);
    cpt_buf_printf(b, " |\n| Status | ");
    md_cell(b, d->status);
    fmt_count(a, sizeof a, d->steps_done);
    fmt_count(c, sizeof c, d->steps_total);
    cpt_buf_printf(b, " |\n| Steps | %s / %s |\n", a, c);
    fmt_count(a, sizeof a, d->tokens);
    cpt_buf_printf(b, "| Tokens | %s |\n", a);
    fmt_duration(a, sizeof a, d->wall_s);
    cpt_buf_printf(b, "| Wall time | %s |\n", a);
    if (d->wall_s > 0 && isfinite(d->wall_s)) {
        fmt_count(a, sizeof a, llround((double)d->tokens / d->wall_s));
        cpt_buf_printf(b, "| Throughput | %s tokens/s |\n", a);
    } else {
        cpt_buf_printf(b, "| Throughput | n/a |\n");
    }
    int over = 0, budgeted = 0;
    for (int i = 0; i < d->n_valsets; i++) {
        const cpt_report_valset *v = &d->valsets[i];
        if (!has_budget(v->budget_pct)) continue;
        budgeted++;
        double delta = (exp(v->final_loss - v->base_loss) - 1) * 100;
        if (!(delta <= v->budget_pct + 1e-9)) over++;
    }
    if (budgeted)
        cpt_buf_printf(b, "| Forgetting budget | %s (%d of %d budgeted sets over) |\n",
                       over ? "**exceeded**" : "kept", over, budgeted);
    cpt_buf_printf(b, "| Skipped steps | %d |\n\n", d->n_skips);
}

static void write_valsets(cpt_buf *b, const cpt_report_data *d) {
    cpt_buf_printf(b, "## Validation: base vs final\n\n");
    if (!d->n_valsets) {
        cpt_buf_printf(b, "No validation sets.\n\n");
        return;
    }
    cpt_buf_printf(b, "Perplexity = exp(loss); delta is the relative change of perplexity; the "
                      "budget is the largest allowed increase.\n\n"
                      "| Set | Base loss | Final loss | Base ppl | Final ppl | Delta | Budget | Within budget |\n"
                      "|---|---:|---:|---:|---:|---:|---:|:---:|\n");
    for (int i = 0; i < d->n_valsets; i++) {
        const cpt_report_valset *v = &d->valsets[i];
        char bl[32], fl[32], bp[32], fp[32], dp[32], bu[32];
        /* ppl ratio as exp(difference): no overflow when both losses are large */
        double delta = (exp(v->final_loss - v->base_loss) - 1) * 100;
        fmt_fixed(bl, sizeof bl, "%.4f", v->base_loss);
        fmt_fixed(fl, sizeof fl, "%.4f", v->final_loss);
        fmt_fixed(bp, sizeof bp, "%.3f", exp(v->base_loss));
        fmt_fixed(fp, sizeof fp, "%.3f", exp(v->final_loss));
        fmt_fixed(dp, sizeof dp, "%+.2f%%", delta);
        const char *within = "-";
        if (has_budget(v->budget_pct)) {
            snprintf(bu, sizeof bu, "%.2f%%", v->budget_pct);
            within = delta <= v->budget_pct + 1e-9 ? "yes" : "**no**"; /* 1e-9: exp/log round-off */
        } else {
            snprintf(bu, sizeof bu, "-");
        }
        cpt_buf_printf(b, "| ");
        md_cell(b, v->name);
        cpt_buf_printf(b, " | %s | %s | %s | %s | %s | %s | %s |\n", bl, fl, bp, fp, dp, bu, within);
    }
    cpt_buf_printf(b, "\n");
}

static void write_sources(cpt_buf *b, const cpt_report_data *d) {
    cpt_buf_printf(b, "## Tokens per source\n\n");
    if (!d->n_sources) {
        cpt_buf_printf(b, "No per-source counts.\n\n");
        return;
    }
    long long total = 0;
    for (int i = 0; i < d->n_sources; i++) total += d->sources[i].tokens;
    cpt_buf_printf(b, "| Source | Tokens | Share |\n|---|---:|---:|\n");
    char t[64];
    for (int i = 0; i < d->n_sources; i++) {
        fmt_count(t, sizeof t, d->sources[i].tokens);
        cpt_buf_printf(b, "| ");
        md_cell(b, d->sources[i].name);
        if (total > 0)
            cpt_buf_printf(b, " | %s | %.1f%% |\n", t, 100.0 * (double)d->sources[i].tokens / (double)total);
        else
            cpt_buf_printf(b, " | %s | - |\n", t);
    }
    fmt_count(t, sizeof t, total);
    cpt_buf_printf(b, "| **total** | %s | 100.0%% |\n\n", t);
}

static void write_skips(cpt_buf *b, const cpt_report_data *d) {
    cpt_buf_printf(b, "## Skipped steps\n\n");
    if (!d->n_skips) {
        cpt_buf_printf(b, "None.\n\n");
        return;
    }
    /* counts per distinct reason, in order of first appearance (quadratic: skips are rare) */
    cpt_buf_printf(b, "%d step%s skipped:", d->n_skips, d->n_skips == 1 ? "" : "s");
    for (int i = 0; i < d->n_skips; i++) {
        const char *r = d->skips[i].reason ? d->skips[i].reason : "unknown";
        int seen = 0, count = 0;
        for (int j = 0; j < d->n_skips; j++) {
            const char *q = d->skips[j].reason ? d->skips[j].reason : "unknown";
            if (strcmp(q, r)) continue;
            if (j < i) seen = 1;
            count++;
        }
        if (seen) continue;
        cpt_buf_printf(b, "%s ", i ? "," : "");
        md_cell(b, r);
        cpt_buf_printf(b, " (%d)", count);
    }
    cpt_buf_printf(b, ".\n\n| Step | Reason |\n|---:|---|\n");
    for (int i = 0; i < d->n_skips && i < MAX_SKIP_ROWS; i++) {
        char s[32];
        fmt_count(s, sizeof s, d->skips[i].step);
        cpt_buf_printf(b, "| %s | ", s);
        md_cell(b, d->skips[i].reason ? d->skips[i].reason : "unknown");
        cpt_buf_printf(b, " |\n");
    }
    if (d->n_skips > MAX_SKIP_ROWS)
        cpt_buf_printf(b, "\n(first %d of %d listed; metrics.jsonl has them all as events)\n",
                       MAX_SKIP_ROWS, d->n_skips);
    cpt_buf_printf(b, "\n");
}

/* Markdown link target in <...> so spaces and parentheses in paths keep working. */
static void md_link(cpt_buf *b, const char *text, const char *target) {
    cpt_buf_printf(b, "[");
    md_cell(b, text);
    cpt_buf_printf(b, "](<");
    for (const char *s = target; *s; s++)
        if (*s != '<' && *s != '>' && *s != '\n') cpt_buf_put(b, s, 1);
    cpt_buf_printf(b, ">)");
}

int cpt_report_write(const char *run_dir, const cpt_report_data *d, cpt_err *err) {
    CPT_ASSERT(run_dir);
    int rc = validate(run_dir, d, err);
    if (rc != CPT_OK) return rc;
    cpt_buf b = {0};
    write_summary(&b, run_dir, d);
    write_valsets(&b, d);
    write_sources(&b, d);
    write_skips(&b, d);
    if (d->memory_plan)
        cpt_buf_printf(&b, "## Memory plan\n\nPlanned before the first step (also in "
                           "[memory_plan.json](memory_plan.json)):\n\n%s\n", d->memory_plan);
    if (d->extra_md) cpt_buf_printf(&b, "%s\n", d->extra_md);
    const char *svg = d->curves_svg ? d->curves_svg : "curves.svg";
    cpt_buf_printf(&b, "## Curves\n\n![training curves](<%s>)\n\n", svg);
    md_link(&b, svg, svg);
    cpt_buf_printf(&b, " (train loss and learning rate; validation perplexity per set against "
                       "the base model). Raw numbers: [metrics.jsonl](metrics.jsonl); "
                       "TensorBoard: `tensorboard --logdir tb`.\n\n## Checkpoints\n\n");
    if (!d->n_ckpts) cpt_buf_printf(&b, "None saved.\n");
    for (int i = 0; i < d->n_ckpts; i++) {
        char s[32], label[48];
        fmt_count(s, sizeof s, d->ckpts[i].step);
        snprintf(label, sizeof label, "step %s", s);
        cpt_buf_printf(&b, "- ");
        md_link(&b, label, d->ckpts[i].path);
        cpt_buf_printf(&b, "%s\n", i == d->n_ckpts - 1 ? " (latest)" : "");
    }
    char *path = cpt_path_join(run_dir, "report.md");
    if (b.oom || !path) {
        free(path);
        cpt_buf_free(&b);
        return cpt_err_set(err, CPT_ENOMEM, "%s/report.md: out of memory", run_dir);
    }
    rc = cpt_write_file_atomic(path, b.p, b.n, err);
    free(path);
    cpt_buf_free(&b);
    return rc;
}

/* cpt/metrics.h: what a person sees of a training run after the fact: the metrics
 * log (metrics.jsonl + TensorBoard event files), SVG curves and the report.md.
 * Live progress on the terminal is cpt/progress.h.
 *
 * Run directory layout written by this module:
 *   <run>/metrics.jsonl                         one JSON object per line (below)
 *   <run>/tb/events.out.tfevents.<ts>.<host>    TensorBoard scalars (one file per open)
 *   <run>/curves.svg                            cpt_plot_run_curves()
 *   <run>/report.md                             cpt_report_write()
 *
 * ---- metrics.jsonl -----------------------------------------------------------------
 * Each line is one compact JSON object, written with one fwrite and fflush'ed, so a
 * crash loses at most the line being written (a torn last line is dropped on resume):
 *   {"step":120,"kind":"train","loss":2.345,"lr":0.0003,"time":1718000000.123}
 *   {"step":0,"kind":"eval","loss/wiki":2.1,"ppl/wiki":8.17,"time":...}
 *   {"step":57,"kind":"event","what":"skipped_step","reason":"nan loss","time":...}
 * Key order: "step", "kind", the caller's fields in the caller's order, "time" (unix
 * seconds, wall clock, fractional). Non-finite values are written as null (JSON has no
 * NaN); TensorBoard gets the actual NaN/Inf.
 * Numbers are printed with the fewest digits that read back to the same double.
 *
 * Field-name conventions that cpt_plot_run_curves() and the trainer share:
 *   train lines: "loss" (nats/token), "lr", optionally "tokens", "grad_norm", "tok_per_s"
 *   eval lines:  "loss/<set>" and/or "ppl/<set>" per validation set; the eval at
 *                step 0 is the base model (before any update), drawn as a dashed line.
 *
 * ---- TensorBoard event files ---------------------------------------------------------
 * TFRecord framing, all integers little-endian:
 *   u64 length | u32 masked_crc32c(length bytes) | data[length] | u32 masked_crc32c(data)
 *   masked_crc32c(x) = ((c >> 15) | (c << 17)) + 0xa282ead8 with c = crc32c(x)
 * Each record is a serialized tensorflow.Event protobuf:
 *   Event{ wall_time:double=1, step:int64=2, file_version:string=3, summary:Summary=5,
 *          session_log:SessionLog=7 }   (6 is the deprecated log_message)
 *   Summary{ value:repeated Value=1 }   Value{ tag:string=1, simple_value:float=2 }
 *   SessionLog{ status:enum=1 (START=1) }
 * The first record is Event{wall_time, file_version:"brain.Event:2"}. Each
 * cpt_metrics_log() call is one Event whose Summary holds one Value per field, tag
 * "<kind>/<key>" (e.g. "train/loss", "eval/ppl/wiki"). A resumed run starts a new file
 * whose second record is SessionLog{START} at step resume_step+1: TensorBoard then
 * discards the orphaned steps > resume_step from the earlier files, so curves have no
 * duplicates. Events (cpt_metrics_event) go to metrics.jsonl only.
 *
 * A cpt_metrics is used by one thread at a time.
 */
#ifndef CPT_METRICS_H
#define CPT_METRICS_H

#include <stdint.h>

#include "cpt/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- metrics log ------------------------------------------------------------------ */

typedef struct cpt_metrics cpt_metrics;

/* Pass as resume_step for a run that starts from scratch. */
#define CPT_METRICS_FRESH (-1LL)

/* Open the metrics log of run_dir (created, with tb/, if missing).
 * resume_step == CPT_METRICS_FRESH: metrics.jsonl is started empty (an existing one
 *   is replaced atomically).
 * resume_step >= 0: the run resumes from the checkpoint of that step; metrics.jsonl
 *   keeps the lines with step <= resume_step and drops the rest (atomic rewrite), so
 *   re-done steps are not logged twice. A torn last line (crash mid-write) is dropped;
 *   a malformed line elsewhere is CPT_EFORMAT naming the line.
 * A new TensorBoard event file is created in either case.
 * On success *m owns two open files; free with cpt_metrics_close. On failure *m is NULL.
 * Errors: CPT_EIO (cannot create/write), CPT_EFORMAT, CPT_ENOMEM, CPT_EINVAL. */
int cpt_metrics_open(cpt_metrics **m, const char *run_dir, long long resume_step, cpt_err *err);

/* Log n numeric fields of kind "train" or "eval" at `step` (one jsonl line, one Event).
 * keys[i]: 1..100 characters of [A-Za-z0-9_.-/:], not "step", "kind" or "time", no
 * duplicates. Errors: CPT_EINVAL (bad kind/key/n), CPT_EIO (write failed). */
int cpt_metrics_log(cpt_metrics *m, const char *kind, long long step, const char *const *keys,
                    const double *vals, int n, cpt_err *err);

/* Log an event (a skipped step, a budget warning, ...): json_object_text is a JSON
 * object such as {"what":"skipped_step","reason":"nan loss"}; its fields are written
 * after "step" and "kind":"event". It must not use the keys step, kind, time.
 * Errors: CPT_EINVAL (not a JSON object, reserved key), CPT_EIO. */
int cpt_metrics_event(cpt_metrics *m, long long step, const char *json_object_text, cpt_err *err);

/* Path of the TensorBoard event file this handle writes (owned by m). */
const char *cpt_metrics_tb_path(const cpt_metrics *m);

/* Flush and close both files; NULL is a no-op. */
void cpt_metrics_close(cpt_metrics *m);

/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as used by TFRecord.
 * Chainable: start with crc = 0; cpt_crc32c(b, nb, cpt_crc32c(a, na, 0)) == crc of a||b.
 * cpt_crc32c("123456789", 9, 0) == 0xE3069283. */
uint32_t cpt_crc32c(const void *data, size_t n, uint32_t crc);
/* TFRecord's masked form of cpt_crc32c(data, n, 0). */
uint32_t cpt_crc32c_masked(const void *data, size_t n);

/* ---- plots ------------------------------------------------------------------------- */

/* One line of a chart: n points (x[i], y[i]). Points with a non-finite coordinate (or
 * y <= 0 on a log axis) are gaps: the line breaks there. */
typedef struct cpt_plot_series {
    const char *name;  /* legend label (required) */
    const double *x;   /* [n] */
    const double *y;   /* [n] */
    int n;
    int axis;          /* 0: left y axis, 1: right y axis of the panel */
    int dashed;        /* 1: dashed line (e.g. a base-model reference) */
    const char *color; /* CSS color, or NULL for the palette colour of its index */
} cpt_plot_series;

/* One chart; panels are stacked vertically and share the x range. */
typedef struct cpt_plot_panel {
    const char *title;   /* may be NULL */
    const char *xlabel;  /* may be NULL */
    const char *ylabel;  /* left axis label, may be NULL */
    const char *y2label; /* right axis label (only drawn if a series uses axis 1) */
    int log_y, log_y2;   /* 1: logarithmic axis */
    const cpt_plot_series *series;
    int n_series;
} cpt_plot_panel;

/* Write an SVG line chart (axes, ticks, grid, legend) to out_path, atomically.
 * Each series with at least one drawable point becomes exactly one <path> element
 * carrying data-series="<name>" and one legend entry; a series with none is listed in
 * the legend as "(no data)". Strings are XML-escaped.
 * Errors: CPT_EINVAL (n_panels < 1, series without name, n < 0), CPT_EIO, CPT_ENOMEM. */
int cpt_plot_svg(const char *out_path, const char *title, const cpt_plot_panel *panels,
                 int n_panels, cpt_err *err);

/* Read <run_dir>/metrics.jsonl and write <run_dir>/curves.svg with two panels:
 *   1. train loss (left axis) and learning rate (right axis) against step;
 *   2. eval perplexity per validation set (ppl/<set>, else exp(loss/<set>)), each with
 *      its step-0 (base model) value as a dashed horizontal line "<set> base".
 * Lines of other kinds are ignored. Errors: CPT_ENOTFOUND (no metrics.jsonl),
 * CPT_EFORMAT (a malformed line other than a torn last line), CPT_EIO, CPT_ENOMEM. */
int cpt_plot_run_curves(const char *run_dir, cpt_err *err);

/* ---- report.md ------------------------------------------------------------------- */

typedef struct cpt_report_valset {
    const char *name;
    double base_loss;  /* mean nats/token of the base model on this set */
    double final_loss; /* same for the final weights */
    /* Forgetting budget: the largest allowed perplexity increase in percent
     * (e.g. 2.0). A negative or NaN budget means none (e.g. the target-domain set). */
    double budget_pct;
} cpt_report_valset;

typedef struct cpt_report_source {
    const char *name;
    long long tokens; /* tokens of this source that the run trained on */
} cpt_report_source;

typedef struct cpt_report_skip {
    long long step;
    const char *reason; /* e.g. "non-finite loss", "grad norm 1e9 > spike limit" */
} cpt_report_skip;

typedef struct cpt_report_ckpt {
    long long step;
    const char *path; /* relative to the run dir, e.g. "ckpt/step_000500" */
} cpt_report_ckpt;

/* Everything report.md shows; the trainer fills it. Pointers are borrowed. */
typedef struct cpt_report_data {
    const char *run_name;     /* may be NULL: the run dir's name is used */
    const char *model;        /* e.g. "Llama-3.2-1B (/models/llama-3.2-1b)" */
    const char *status;       /* e.g. "completed", "stopped at budget"; may be NULL */
    long long steps_done, steps_total;
    long long tokens;         /* tokens trained on */
    double wall_s;            /* wall time of the run (this session and earlier ones) */
    const cpt_report_valset *valsets;
    int n_valsets;
    const cpt_report_source *sources;
    int n_sources;
    const cpt_report_skip *skips;
    int n_skips;
    const cpt_report_ckpt *ckpts;
    int n_ckpts;
    const char *curves_svg;   /* relative link, NULL = "curves.svg" */
    const char *memory_plan;  /* markdown body of a "Memory plan" section; NULL = none */
    const char *extra_md;     /* further sections (e.g. "## Long context"), after the memory plan; NULL = none */
} cpt_report_data;

/* Write <run_dir>/report.md atomically: summary (model, steps, tokens, wall time,
 * tokens/s), a base-vs-final table per validation set (loss, perplexity = exp(loss),
 * delta % of perplexity, within budget yes/no/-), tokens per source with shares, the
 * skipped steps with reasons, links to the curves and checkpoints.
 * Formats: loss %.4f, perplexity %.3f, delta %+.2f%%, counts with thousands separators.
 * Errors: CPT_EINVAL (negative counts, NULL arrays with n > 0), CPT_EIO, CPT_ENOMEM. */
int cpt_report_write(const char *run_dir, const cpt_report_data *d, cpt_err *err);

#ifdef __cplusplus
}
#endif
#endif /* CPT_METRICS_H */

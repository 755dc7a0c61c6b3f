/* metrics.c: the run's metrics log: metrics.jsonl (append-only, truncated on resume)
 * plus a TensorBoard event file per session. Not plotting or reporting (plot_svg.c,
 * curves.c, report_md.c). */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/fileio.h"
#include "cpt/metrics.h"
#include "report/report-impl.h"

#define KEY_MAX 100
#define FIELDS_MAX 4096

struct cpt_metrics {
    char *jsonl_path;
    FILE *jsonl;
    cpt_tbw *tb;
    int failed; /* a write failed: the log may hold a torn line, refuse further writes */
};

/* Keep the lines of `text` whose step <= keep_step; see cpt_metrics_open. */
static int filter_jsonl(const char *path, const char *text, size_t size, long long keep_step,
                        cpt_buf *out, cpt_err *err) {
    size_t pos = 0;
    long line_no = 0;
    while (pos < size) {
        line_no++;
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - line) : size - pos;
        pos += len + (nl ? 1 : 0);
        if (len == 0) continue;
        json_error_t je;
        json_t *obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
        json_t *step = obj ? json_object_get(obj, "step") : NULL;
        int ok = obj && json_is_object(obj) && json_is_integer(step);
        long long s = ok ? json_integer_value(step) : 0;
        json_decref(obj);
        if (!ok) {
            if (!nl) break; /* torn last line of a crashed run: drop it */
            return cpt_err_set(err, CPT_EFORMAT,
                               "%s line %ld: not a JSON object with an integer \"step\" (%s). "
                               "HINT: remove or fix that line, or start a fresh run",
                               path, line_no, obj ? "missing or non-integer step" : je.text);
        }
        if (s <= keep_step) {
            cpt_buf_put(out, line, len);
            cpt_buf_put(out, "\n", 1);
        }
    }
    return out->oom ? cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", path) : CPT_OK;
}

int cpt_metrics_open(cpt_metrics **out, const char *run_dir, long long resume_step, cpt_err *err) {
    *out = NULL;
    if (!run_dir || !*run_dir || resume_step < CPT_METRICS_FRESH)
        return cpt_err_set(err, CPT_EINVAL,
                           "cpt_metrics_open: bad arguments (run_dir %s, resume_step %lld). "
                           "HINT: pass CPT_METRICS_FRESH or the checkpoint's step",
                           run_dir ? run_dir : "NULL", resume_step);
    cpt_metrics *m = calloc(1, sizeof *m);
    char *tb_dir = cpt_path_join(run_dir, "tb");
    if (m) m->jsonl_path = cpt_path_join(run_dir, "metrics.jsonl");
    if (!m || !tb_dir || !m->jsonl_path) {
        free(tb_dir);
        cpt_metrics_close(m);
        return cpt_err_set(err, CPT_ENOMEM, "cpt_metrics_open: out of memory");
    }
    int rc = cpt_mkdirs(tb_dir, err);
    if (rc != CPT_OK) goto fail;

    /* Rewrite metrics.jsonl atomically: empty for a fresh run, the kept prefix on resume. */
    cpt_buf kept = {0};
    if (resume_step >= 0) {
        char *text = NULL;
        size_t size = 0;
        rc = cpt_read_file(m->jsonl_path, &text, &size, err);
        if (rc == CPT_ENOTFOUND) { /* resuming a run whose log was removed: start one */
            if (err) memset(err, 0, sizeof *err);
            rc = CPT_OK;
        } else if (rc == CPT_OK) {
            rc = filter_jsonl(m->jsonl_path, text, size, resume_step, &kept, err);
        }
        free(text);
        if (rc != CPT_OK) {
            cpt_buf_free(&kept);
            goto fail;
        }
    }
    rc = cpt_write_file_atomic(m->jsonl_path, kept.p ? (const void *)kept.p : "", kept.n, err);
    cpt_buf_free(&kept);
    if (rc != CPT_OK) goto fail;
    m->jsonl = fopen(m->jsonl_path, "ab");
    if (!m->jsonl) {
        rc = cpt_err_set(err, CPT_EIO, "%s: cannot open for append: %s", m->jsonl_path,
                         strerror(errno));
        goto fail;
    }

    double now = cpt_unix_now();
    rc = cpt_tbw_open(&m->tb, tb_dir, now, err);
    if (rc == CPT_OK && resume_step >= 0)
        rc = cpt_tbw_session_start(m->tb, now, resume_step + 1, err);
    if (rc != CPT_OK) goto fail;
    free(tb_dir);
    *out = m;
    return CPT_OK;
fail:
    free(tb_dir);
    cpt_metrics_close(m);
    return rc;
}

static int key_ok(const char *k) {
    size_t n = 0;
    for (; k[n]; n++) {
        char c = k[n];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '.' || c == '-' || c == '/' || c == ':';
        if (!ok || n >= KEY_MAX) return 0;
    }
    return n > 0 && strcmp(k, "step") && strcmp(k, "kind") && strcmp(k, "time");
}

static int write_line(cpt_metrics *m, cpt_buf *line, cpt_err *err) {
    if (line->oom) return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", m->jsonl_path);
    int rc = cpt_fwrite_all(m->jsonl, line->p, line->n, m->jsonl_path, err);
    if (rc == CPT_OK && fflush(m->jsonl) != 0)
        rc = cpt_err_set(err, CPT_EIO, "%s: write failed: %s. HINT: check free disk space",
                         m->jsonl_path, strerror(errno));
    if (rc != CPT_OK) m->failed = 1;
    return rc;
}

static int check_usable(cpt_metrics *m, cpt_err *err) {
    CPT_ASSERT(m);
    if (m->failed)
        return cpt_err_set(err, CPT_ESTATE,
                           "%s: an earlier write failed, the log is closed to further lines. "
                           "HINT: fix the disk problem and resume from the last checkpoint",
                           m->jsonl_path);
    return CPT_OK;
}

int cpt_metrics_log(cpt_metrics *m, const char *kind, long long step, const char *const *keys,
                    const double *vals, int n, cpt_err *err) {
    int rc = check_usable(m, err);
    if (rc != CPT_OK) return rc;
    if (!kind || (strcmp(kind, "train") && strcmp(kind, "eval")))
        return cpt_err_set(err, CPT_EINVAL,
                           "%s: kind \"%s\" at step %lld. HINT: kind is \"train\" or \"eval\"; "
                           "use cpt_metrics_event for events",
                           m->jsonl_path, kind ? kind : "NULL", step);
    if (n < 1 || n > FIELDS_MAX || !keys || !vals)
        return cpt_err_set(err, CPT_EINVAL, "%s: %d fields at step %lld. HINT: log 1..%d fields",
                           m->jsonl_path, n, step, FIELDS_MAX);
    for (int i = 0; i < n; i++) {
        if (!keys[i] || !key_ok(keys[i]))
            return cpt_err_set(err, CPT_EINVAL,
                               "%s: field %d name \"%.120s\" at step %lld. HINT: names are 1..%d "
                               "characters of [A-Za-z0-9_.-/:] and not step, kind or time",
                               m->jsonl_path, i, keys[i] ? keys[i] : "NULL", step, KEY_MAX);
        for (int j = 0; j < i; j++)
            if (!strcmp(keys[i], keys[j]))
                return cpt_err_set(err, CPT_EINVAL,
                                   "%s: field \"%s\" given twice at step %lld. HINT: each field "
                                   "once per line",
                                   m->jsonl_path, keys[i], step);
    }
    double now = cpt_unix_now();
    cpt_buf line = {0};
    char num[40];
    cpt_buf_printf(&line, "{\"step\":%lld,\"kind\":\"%s\"", step, kind);
    for (int i = 0; i < n; i++) {
        if (isfinite(vals[i]))
            cpt_fmt_double(num, sizeof num, vals[i]);
        else
            strcpy(num, "null");
        cpt_buf_printf(&line, ",\"%s\":%s", keys[i], num);
    }
    cpt_fmt_double(num, sizeof num, now);
    cpt_buf_printf(&line, ",\"time\":%s}\n", num);
    rc = write_line(m, &line, err);
    cpt_buf_free(&line);
    if (rc != CPT_OK) return rc;
    return cpt_tbw_scalars(m->tb, now, step, kind, keys, vals, n, err);
}

int cpt_metrics_event(cpt_metrics *m, long long step, const char *json_object_text, cpt_err *err) {
    int rc = check_usable(m, err);
    if (rc != CPT_OK) return rc;
    json_error_t je;
    json_t *obj = json_object_text
                      ? json_loads(json_object_text, JSON_REJECT_DUPLICATES, &je)
                      : NULL;
    if (!obj || !json_is_object(obj)) {
        json_decref(obj);
        return cpt_err_set(err, CPT_EINVAL,
                           "%s: event at step %lld is not a JSON object (%s). HINT: pass text "
                           "like {\"what\":\"skipped_step\",\"reason\":\"nan loss\"}",
                           m->jsonl_path, step, json_object_text ? "parse error or not {...}" : "NULL");
    }
    static const char *const reserved[] = {"step", "kind", "time"};
    for (int i = 0; i < 3; i++)
        if (json_object_get(obj, reserved[i])) {
            json_decref(obj);
            return cpt_err_set(err, CPT_EINVAL,
                               "%s: event at step %lld uses the reserved key \"%s\". HINT: "
                               "rename it; step, kind and time are added by the log",
                               m->jsonl_path, step, reserved[i]);
        }
    /* Compact one-line dump in the caller's key order; strip its braces and splice. */
    char *body = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(obj);
    if (!body) return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", m->jsonl_path);
    size_t blen = strlen(body);
    CPT_ASSERT(blen >= 2 && body[0] == '{' && body[blen - 1] == '}');
    char num[40];
    cpt_fmt_double(num, sizeof num, cpt_unix_now());
    cpt_buf line = {0};
    cpt_buf_printf(&line, "{\"step\":%lld,\"kind\":\"event\"%s%.*s,\"time\":%s}\n", step,
                   blen > 2 ? "," : "", (int)(blen - 2), body + 1, num);
    free(body);
    rc = write_line(m, &line, err);
    cpt_buf_free(&line);
    return rc;
}

const char *cpt_metrics_tb_path(const cpt_metrics *m) { return cpt_tbw_path(m->tb); }

void cpt_metrics_close(cpt_metrics *m) {
    if (!m) return;
    if (m->jsonl) fclose(m->jsonl);
    cpt_tbw_close(m->tb);
    free(m->jsonl_path);
    free(m);
}

/* tfevents.c: writes TensorBoard event files (TFRecord of tensorflow.Event) by hand.
 * Not a reader, and only scalars (simple_value) and SessionLog START. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpt/fileio.h"
#include "cpt/metrics.h"
#include "report/report-impl.h"

struct cpt_tbw {
    FILE *f;
    char *path;
};

/* Event field numbers (tensorflow/core/util/event.proto). */
enum { EV_WALL_TIME = 1, EV_STEP = 2, EV_FILE_VERSION = 3, EV_SUMMARY = 5, EV_SESSION_LOG = 7 };
enum { SUMMARY_VALUE = 1, VALUE_TAG = 1, VALUE_SIMPLE = 2, SESSION_LOG_STATUS = 1 };
enum { SESSION_LOG_START = 1 };

static int write_event(cpt_tbw *w, const cpt_buf *ev, cpt_err *err) {
    if (ev->oom) return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory encoding an event", w->path);
    cpt_buf rec = {0};
    if (cpt_tfrecord_frame(&rec, ev->p, ev->n) != CPT_OK) {
        cpt_buf_free(&rec);
        return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory framing a record", w->path);
    }
    int rc = cpt_fwrite_all(w->f, rec.p, rec.n, w->path, err);
    cpt_buf_free(&rec);
    if (rc != CPT_OK) return rc;
    if (fflush(w->f) != 0)
        return cpt_err_set(err, CPT_EIO, "%s: write failed: %s. HINT: check free disk space",
                           w->path, strerror(errno));
    return CPT_OK;
}

int cpt_tbw_open(cpt_tbw **out, const char *dir, double wall_time, cpt_err *err) {
    *out = NULL;
    char host[256];
    if (gethostname(host, sizeof host) != 0) strcpy(host, "localhost");
    host[sizeof host - 1] = '\0';
    for (char *c = host; *c; c++)  /* a hostname must not add path components */
        if (*c == '/' || *c <= ' ') *c = '_';
    cpt_tbw *w = calloc(1, sizeof *w);
    if (!w) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    size_t cap = strlen(dir) + strlen(host) + 96;
    w->path = malloc(cap);
    if (!w->path) {
        free(w);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    }
    /* Two opens within one second on one host would collide: add ".1", ".2", ...
     * (TensorBoard reads every file whose name contains "tfevents", in name order). */
    int fd = -1;
    for (int k = 0; k < 1000 && fd < 0; k++) {
        if (k == 0)
            snprintf(w->path, cap, "%s/events.out.tfevents.%lld.%s", dir, (long long)wall_time, host);
        else
            snprintf(w->path, cap, "%s/events.out.tfevents.%lld.%s.%d", dir, (long long)wall_time,
                     host, k);
        fd = open(w->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        int rc = cpt_err_set(err, CPT_EIO,
                             "%s: cannot create TensorBoard event file: %s. HINT: check that the "
                             "run directory is writable",
                             w->path, strerror(errno));
        free(w->path);
        free(w);
        return rc;
    }
    w->f = fdopen(fd, "wb");
    if (!w->f) {
        close(fd);
        free(w->path);
        free(w);
        return cpt_err_set(err, CPT_ENOMEM, "fdopen: out of memory");
    }
    cpt_buf ev = {0};
    cpt_pb_put_double_field(&ev, EV_WALL_TIME, wall_time);
    cpt_pb_put_bytes_field(&ev, EV_FILE_VERSION, "brain.Event:2", 13);
    int rc = write_event(w, &ev, err);
    cpt_buf_free(&ev);
    if (rc != CPT_OK) {
        cpt_tbw_close(w);
        return rc;
    }
    *out = w;
    return CPT_OK;
}

int cpt_tbw_scalars(cpt_tbw *w, double wall_time, long long step, const char *prefix,
                    const char *const *tags, const double *vals, int n, cpt_err *err) {
    cpt_buf summary = {0}, value = {0}, ev = {0};
    for (int i = 0; i < n; i++) {
        char tag[256];
        int k = snprintf(tag, sizeof tag, "%s/%s", prefix, tags[i]);
        CPT_ASSERT(k > 0 && (size_t)k < sizeof tag); /* callers validate key lengths */
        value.n = 0;
        cpt_pb_put_bytes_field(&value, VALUE_TAG, tag, (size_t)k);
        cpt_pb_put_float_field(&value, VALUE_SIMPLE, (float)vals[i]);
        cpt_pb_put_bytes_field(&summary, SUMMARY_VALUE, value.p, value.n);
    }
    cpt_pb_put_double_field(&ev, EV_WALL_TIME, wall_time);
    cpt_pb_put_varint_field(&ev, EV_STEP, (uint64_t)step);
    cpt_pb_put_bytes_field(&ev, EV_SUMMARY, summary.p, summary.n);
    if (summary.oom || value.oom) ev.oom = 1;
    int rc = write_event(w, &ev, err);
    cpt_buf_free(&summary);
    cpt_buf_free(&value);
    cpt_buf_free(&ev);
    return rc;
}

int cpt_tbw_session_start(cpt_tbw *w, double wall_time, long long step, cpt_err *err) {
    cpt_buf sl = {0}, ev = {0};
    cpt_pb_put_varint_field(&sl, SESSION_LOG_STATUS, SESSION_LOG_START);
    cpt_pb_put_double_field(&ev, EV_WALL_TIME, wall_time);
    cpt_pb_put_varint_field(&ev, EV_STEP, (uint64_t)step);
    cpt_pb_put_bytes_field(&ev, EV_SESSION_LOG, sl.p, sl.n);
    if (sl.oom) ev.oom = 1;
    int rc = write_event(w, &ev, err);
    cpt_buf_free(&sl);
    cpt_buf_free(&ev);
    return rc;
}

const char *cpt_tbw_path(const cpt_tbw *w) { return w->path; }

void cpt_tbw_close(cpt_tbw *w) {
    if (!w) return;
    if (w->f) fclose(w->f);
    free(w->path);
    free(w);
}

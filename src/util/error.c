/* error.c: the cpt_err record, always-on assertions and aligned allocation. */
#include "cpt/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int cpt_err_set(cpt_err *e, int code, const char *fmt, ...) {
    if (!e) return code;
    if (e->code != 0 && e->msg[0]) return e->code; /* keep the innermost message */
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

int cpt_err_set_at(cpt_err *e, int code, const char *where, const char *fmt, ...) {
    char msg[CPT_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return cpt_err_set(e, code, "%s: %s", where, msg);
}

int cpt_err_wrap(cpt_err *e, const char *fmt, ...) {
    if (!e) return CPT_EINVAL;
    char prefix[CPT_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* Build "prefix: msg" by hand, truncating at the buffer size. */
    char joined[CPT_ERR_MSG_MAX];
    size_t k = 0, cap = sizeof joined - 1;
    for (const char *s = prefix; *s && k < cap; s++) joined[k++] = *s;
    for (const char *s = ": "; *s && k < cap; s++) joined[k++] = *s;
    for (const char *s = e->msg; *s && k < cap; s++) joined[k++] = *s;
    joined[k] = '\0';
    memcpy(e->msg, joined, sizeof e->msg);
    if (e->code == 0) e->code = CPT_EINVAL;
    return e->code;
}

const char *cpt_status_str(int code) {
    switch (code) {
    case CPT_OK: return "ok";
    case CPT_EIO: return "I/O error";
    case CPT_EFORMAT: return "format error";
    case CPT_EINVAL: return "invalid value";
    case CPT_ENOMEM: return "out of memory";
    case CPT_EUNSUPPORTED: return "not supported";
    case CPT_ENOTFOUND: return "not found";
    case CPT_ESTATE: return "invalid state";
    default: return "error";
    }
}

void cpt_assert_fail(const char *file, int line, const char *cond) {
    fprintf(stderr, "cpt: internal error at %s:%d: assertion failed: %s\n"
                    "HINT: this is a bug in cpt; please report it with the command line.\n",
            file, line, cond);
    abort();
}

void *cpt_alloc_aligned(size_t bytes) {
    if (bytes == 0) bytes = 64;
    size_t rounded;
    if (!cpt_add_size(bytes, 63, &rounded)) return NULL;
    rounded &= ~(size_t)63;
    void *p = aligned_alloc(64, rounded);
    if (p) memset(p, 0, rounded);
    return p;
}

void cpt_free_aligned(void *p) { free(p); }

double cpt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

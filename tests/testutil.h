/* testutil.h: the tiny harness every C test uses. A failed CHECK records the file,
 * line and condition and the test keeps going; TEST_END returns 1 if anything failed
 * (CTest then reports the test as failed), 77 for a skip. */
#ifndef CPT_TESTUTIL_H
#define CPT_TESTUTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tu_fail = 0, tu_checks = 0;

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        tu_checks++;                                                                      \
        if (!(cond)) {                                                                    \
            tu_fail++;                                                                    \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                 \
    } while (0)

#define CHECKF(cond, ...)                                                                 \
    do {                                                                                  \
        tu_checks++;                                                                      \
        if (!(cond)) {                                                                    \
            tu_fail++;                                                                    \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fputc('\n', stderr);                                                          \
        }                                                                                 \
    } while (0)

/* An expression returning a cpt status must be CPT_OK; prints the error otherwise. */
#define CHECK_OK(expr, errp)                                                              \
    do {                                                                                  \
        tu_checks++;                                                                      \
        int tu_rc_ = (expr);                                                              \
        if (tu_rc_ != 0) {                                                                \
            tu_fail++;                                                                    \
            fprintf(stderr, "FAIL %s:%d: %s returned %d: %s\n", __FILE__, __LINE__, #expr, \
                    tu_rc_, (errp)->msg);                                                 \
        }                                                                                 \
    } while (0)

/* The one rule for skipping a C test (the Python twin is tests/skiputil.py): a test that
 * cannot run (no ../shared data, no oracle) returns 77, which CTest reports as skipped.
 * With CI=true in the environment a skip is a failure (return 1): CI claims to run every
 * test. A skip after failed checks is a failure too, so a partly run test that skips
 * its rest reports failed or skipped, never passed. */
static inline int tu_in_ci(void) {
    const char *v = getenv("CI");
    return v && (!strcmp(v, "true") || !strcmp(v, "TRUE") || !strcmp(v, "True") || !strcmp(v, "1") ||
                 !strcmp(v, "yes"));
}

#define TEST_SKIP(...)                                                                    \
    do {                                                                                  \
        int tu_ci_ = tu_in_ci();                                                          \
        if (tu_fail)                                                                      \
            fprintf(stderr, "FAIL (%d failed checks before the skip): ", tu_fail);        \
        else                                                                              \
            fputs(tu_ci_ ? "FAIL (CI=true, so a skip is a failure): " : "SKIP: ", stderr); \
        fprintf(stderr, __VA_ARGS__);                                                     \
        fputc('\n', stderr);                                                              \
        return tu_fail || tu_ci_ ? 1 : 77;                                                \
    } while (0)

#define TEST_END()                                                                        \
    do {                                                                                  \
        fprintf(stderr, "%s: %d checks, %d failed\n", __FILE__, tu_checks, tu_fail);      \
        return tu_fail ? 1 : 0;                                                           \
    } while (0)

/* Max relative error of a vs b scaled by max|b| (the per-tensor metric used in
 * parity tests: max_i |a_i - b_i| / max(max_i |b_i|, tiny)). */
static inline double tu_rel_err(const float *a, const float *b, size_t n) {
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > md || d != d) md = d != d ? INFINITY : d;
        if (fabs((double)b[i]) > mb) mb = fabs((double)b[i]);
    }
    return md / (mb > 1e-30 ? mb : 1e-30);
}

static inline const char *tu_env(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

#endif

/* report_testutil.h: small helpers shared by the tests/report C tests (scratch
 * directories, whole-file reads, running the Python oracles). */
#ifndef CPT_REPORT_TESTUTIL_H
#define CPT_REPORT_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "cpt/fileio.h"

/* A fresh directory <CPT_TMP or /tmp>/<tag>.XXXXXX (malloc'ed; NULL on failure). */
static inline char *rt_mkdtemp(const char *tag) {
    const char *base = getenv("CPT_TMP");
    if (!base || !*base) base = "/tmp";
    cpt_err err = {0};
    if (cpt_mkdirs(base, &err) != 0) return NULL;
    size_t n = strlen(base) + strlen(tag) + 16;
    char *p = malloc(n);
    if (!p) return NULL;
    snprintf(p, n, "%s/%s.XXXXXX", base, tag);
    if (!mkdtemp(p)) {
        free(p);
        return NULL;
    }
    return p;
}

/* Whole file as a NUL-terminated string (NULL if unreadable); *n gets the size. */
static inline char *rt_slurp(const char *dir, const char *name, size_t *n) {
    char *path = cpt_path_join(dir, name);
    char *text = NULL;
    size_t size = 0;
    cpt_err err = {0};
    if (!path || cpt_read_file(path, &text, &size, &err) != 0) text = NULL;
    free(path);
    if (n) *n = size;
    return text;
}

/* Run `python3 $CPT_SRC/tests/report/<script> <args>`; returns its exit status
 * (77: the oracle's Python packages are missing), or -1 if it could not run. */
static inline int rt_python(const char *script, const char *args) {
    const char *src = getenv("CPT_SRC");
    if (!src || !*src) src = ".";
    size_t n = strlen(src) + strlen(script) + strlen(args) + 64;
    char *cmd = malloc(n);
    if (!cmd) return -1;
    snprintf(cmd, n, "python3 '%s/tests/report/%s' %s", src, script, args);
    int st = system(cmd);
    free(cmd);
    if (st == -1 || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

#endif

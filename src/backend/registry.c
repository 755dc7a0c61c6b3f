/* registry.c: the backends cpt knows, by name, and the pick for a run (CPT_BACKEND).
 * Adding a backend (CUDA) means adding it to `all` below; nothing else looks names up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/backend.h"

const cpt_backend *const *cpt_backend_list(int *n) {
    static const cpt_backend *all[2];
    all[0] = cpt_backend_cpu(), all[1] = cpt_backend_ref();
    if (n) *n = 2;
    return all;
}

static void known_names(char *buf, size_t cap) {
    int n;
    const cpt_backend *const *all = cpt_backend_list(&n);
    buf[0] = 0;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(buf);
        snprintf(buf + len, cap - len, "%s%s", i ? ", " : "", all[i]->name);
    }
}

const cpt_backend *cpt_backend_by_name(const char *name, cpt_err *err) {
    int n;
    const cpt_backend *const *all = cpt_backend_list(&n);
    for (int i = 0; i < n && name; i++)
        if (!strcmp(all[i]->name, name)) return all[i];
    char known[256];
    known_names(known, sizeof known);
    cpt_err_set(err, CPT_EINVAL, "unknown compute backend '%s'. HINT: the known backends are: %s", name ? name : "(null)",
                known);
    return NULL;
}

int cpt_backend_select(const cpt_backend **out, cpt_err *err) {
    const char *env = getenv("CPT_BACKEND");
    *out = cpt_backend_default();
    if (!env || !*env) return CPT_OK;
    cpt_err ignored = {0}; /* the message below names the variable */
    const cpt_backend *be = cpt_backend_by_name(env, &ignored);
    if (!be) {
        char known[256];
        known_names(known, sizeof known);
        return cpt_err_set(err, CPT_EINVAL,
                           "CPT_BACKEND=%s: unknown compute backend. HINT: set CPT_BACKEND to one of: %s (or unset it for %s)",
                           env, known, cpt_backend_default()->name);
    }
    *out = be;
    return CPT_OK;
}

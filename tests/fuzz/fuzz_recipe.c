/* fuzz_recipe.c: libFuzzer target for the recipe layer: YAML -> flat keys (as a
 * file and as an override value) and the full load against the cpt train schema.
 * Invariants beyond "no crash": flat keys are unique, well-formed dotted paths, none
 * is both a value and a section; an override value stays under its key; a rejected
 * input always carries a message; an accepted recipe's dump reloads, and the dump
 * of that reload is a fixed point. Paths resolve against "/" so "/" is a valid
 * model or shard directory the fuzzer can find. */
#include <stdlib.h>
#include <string.h>

#include "cpt/recipe.h"
#include "recipe/recipe-impl.h"

static int key_ok(const char *k) {
    size_t seg = 0;
    for (const char *p = k;; p++) {
        if (*p == '.' || *p == '\0') {
            if (seg == 0) return 0;
            seg = 0;
            if (!*p) return 1;
            continue;
        }
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
        seg++;
    }
}

static void check_store(const rcp_store *s, const char *prefix) {
    size_t pl = strlen(prefix);
    for (size_t i = 0; i < s->n; i++) {
        const char *k = s->e[i].key;
        if (!key_ok(k) || !s->e[i].text) abort();
        if (pl && (strncmp(k, prefix, pl) || (k[pl] != '.' && k[pl] != '\0'))) abort();
        for (size_t j = 0; j < i; j++) {
            const char *o = s->e[j].key;
            size_t ol = strlen(o), kl = strlen(k);
            if (!strcmp(o, k)) abort();
            if (ol < kl && !strncmp(o, k, ol) && k[ol] == '.') abort();
            if (kl < ol && !strncmp(o, k, kl) && o[kl] == '.') abort();
        }
    }
}

static char *strip_markers(const char *d) {
    char *o = malloc(strlen(d) + 1), *w = o;
    if (!o) abort();
    while (*d) {
        if (!strncmp(d, "  # default\n", 12) || !strncmp(d, "  # derived\n", 12))
            d += 11;
        else
            *w++ = *d++;
    }
    *w = '\0';
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    for (int mode = 0; mode < 2; mode++) {
        rcp_store s = {0};
        cpt_err err = {0};
        if (rcp_store_add_src(&s, "fuzz.yaml", "/", &err) != 0) abort();
        const char *prefix = mode ? "x.y" : "";
        int rc = rcp_yaml_flatten(text, size, prefix, 0, 0, &s, &err);
        if (rc != CPT_OK) {
            if (rc > 0 || err.code != rc || !err.msg[0]) abort();
        } else {
            check_store(&s, prefix);
        }
        rcp_store_free(&s);
    }

    cpt_recipe *r = NULL;
    cpt_err err = {0};
    int rc = cpt_recipe_load_text(cpt_recipe_train_schema(), text, size, "fuzz", "/", NULL, 0, &r,
                                  &err);
    if (rc != CPT_OK) {
        if (r || rc > 0 || err.code != rc || !err.msg[0]) abort();
        return 0;
    }
    char *d1 = NULL, *d2 = NULL, *d3 = NULL;
    if (cpt_recipe_dump(r, &d1, &err)) abort();
    cpt_recipe *r2 = NULL, *r3 = NULL;
    if (cpt_recipe_load_text(cpt_recipe_train_schema(), d1, strlen(d1), "fuzz", "/", NULL, 0, &r2,
                             &err))
        abort(); /* an accepted recipe's dump must load */
    if (cpt_recipe_dump(r2, &d2, &err)) abort();
    char *s1 = strip_markers(d1), *s2 = strip_markers(d2);
    if (strcmp(s1, s2)) abort();
    if (cpt_recipe_load_text(cpt_recipe_train_schema(), d2, strlen(d2), "fuzz", "/", NULL, 0, &r3,
                             &err))
        abort();
    if (cpt_recipe_dump(r3, &d3, &err) || strcmp(d2, d3)) abort();
    free(s1);
    free(s2);
    free(d1);
    free(d2);
    free(d3);
    cpt_recipe_free(r);
    cpt_recipe_free(r2);
    cpt_recipe_free(r3);
    return 0;
}

/* fuzz_evalfmt.c: libFuzzer target for the evaluation and synthesis text formats: the
 * ifeval prompt JSONL (cpt_if_parse), the QA JSONL (cpt_qa_parse), replies parsed into
 * Q/A pairs (cpt_synth_parse_pairs) and SQuAD normalisation. Invariants beyond "no
 * crash": a rejected file carries a message and leaves no items; an accepted QA item has
 * a context and at least one non-empty answer; pairs are trimmed; normalize() is
 * idempotent and has no leading, trailing or double spaces; F1 lies in [0, 1] and is 1
 * for a string against itself when it normalises to something; a bioS attribute pool
 * (cpt_bios_parse_pool) is refused with a message and empty pools, or accepted with
 * non-empty values (and a city for every company). */
#include <stdlib.h>
#include <string.h>

#include "cpt/bios.h"
#include "cpt/ifeval.h"
#include "cpt/qa.h"
#include "cpt/synth.h"

static void check_norm(const char *s) {
    char *n = cpt_qa_normalize(s);
    if (!n) return;
    size_t l = strlen(n);
    if (l && (n[0] == ' ' || n[l - 1] == ' ')) abort();
    if (strstr(n, "  ")) abort();
    char *n2 = cpt_qa_normalize(n);
    if (n2 && strcmp(n, n2)) abort();
    double f = cpt_qa_f1(s, s);
    if (l && f != 1.0) abort();
    double g = cpt_qa_f1(s, "the answer");
    if (!(g >= 0 && g <= 1)) abort();
    free(n), free(n2);
}

static void check_pool(const unsigned char *data, size_t size) {
    for (int company = 0; company < 2; company++) {
        cpt_bios_pool p = {0}, c = {0};
        cpt_err e = {0};
        int rc = cpt_bios_parse_pool((const char *)data, size, "fuzz.txt", &p, company ? &c : NULL, &e);
        if (rc && (!e.msg[0] || p.n || c.n)) abort();
        if (!rc && (!p.n || (company && c.n != p.n))) abort();
        for (size_t i = 0; i < p.n; i++)
            if (!p.v[i][0]) abort();
        for (size_t i = 0; i < c.n; i++)
            if (!c.v[i][0]) abort();
        cpt_bios_pool_free(&p), cpt_bios_pool_free(&c);
    }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (size > (1u << 16)) return 0;
    check_pool(data, size);
    cpt_err e = {0};
    cpt_if_set s;
    int rc = cpt_if_parse(&s, (const char *)data, size, "fuzz.jsonl", 0, &e);
    if (rc && (!e.msg[0] || s.items)) abort();
    if (!rc) cpt_if_free(&s);
    memset(&e, 0, sizeof e);
    cpt_qa_task t;
    memset(&t, 0, sizeof t);
    rc = cpt_qa_parse(&t, (const char *)data, size, "fuzz.jsonl", NULL, &e);
    if (rc && (!e.msg[0] || t.items || t.n)) abort();
    for (size_t i = 0; !rc && i < t.n; i++) {
        if (!t.items[i].context || t.items[i].n_answers < 1) abort();
        for (int a = 0; a < t.items[i].n_answers; a++)
            if (!t.items[i].answers[a] || !t.items[i].answers[a][0]) abort();
    }
    if (!rc) cpt_qa_task_free(&t);
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    cpt_qa_pair *p = NULL;
    size_t np = 0;
    if (cpt_synth_parse_pairs(text, &p, &np) == 0)
        for (size_t i = 0; i < np; i++) {
            size_t lq = strlen(p[i].q), la = strlen(p[i].a);
            if ((lq && (p[i].q[0] == ' ' || p[i].q[lq - 1] == ' ')) || (la && (p[i].a[0] == ' ' || p[i].a[la - 1] == ' '))) abort();
            double sup = cpt_synth_support(p[i].a, text);
            if (!(sup >= 0 && sup <= 1)) abort();
        }
    cpt_synth_pairs_free(p, np);
    check_norm(text);
    free(text);
    return 0;
}

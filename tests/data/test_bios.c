/* test_bios.c: the bioS generator (cpt/bios.h) on the real attribute pools of
 * ../shared/data/knowledge-injection/bioS-fields and on hand-made broken ones:
 *   - the pools load with the files' line counts, company lines split into name and city;
 *   - people have unique names, dates in range, exactly round(frac * n) test people, and are
 *     a function of the seed (same seed, same people; another seed, others);
 *   - every biography states every attribute of its person (the value and the full name in
 *     each sentence, one sentence per attribute), K biographies of a person differ, and
 *     "a"/"an" agree with the job;
 *   - the canonical question differs from every paraphrase;
 *   - broken pools are refused naming the file and line: a missing file, a company line
 *     without "; City", invalid UTF-8, an empty file; too many people for the name pools.
 * The written files are checked from the outside in tests/cli/test_synth_bios.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/bios.h"
#include "cpt/fileio.h"
#include "testutil.h"

static size_t count_lines(const char *path) {
    char *t;
    size_t n, k = 0;
    cpt_err e = {0};
    if (cpt_read_file(path, &t, &n, &e)) return 0;
    for (char *s = t; s < t + n;) {
        char *nl = memchr(s, '\n', (size_t)(t + n - s));
        size_t len = nl ? (size_t)(nl - s) : (size_t)(t + n - s);
        int blank = 1;
        for (size_t i = 0; i < len; i++)
            if (s[i] != ' ' && s[i] != '\r' && s[i] != '\t') blank = 0;
        k += !blank;
        s += len + 1;
    }
    free(t);
    return k;
}

static size_t count_sub(const char *h, const char *n) {
    size_t k = 0, l = strlen(n);
    for (const char *p = strstr(h, n); p; p = strstr(p + l, n)) k++;
    return k;
}

static void write_pool(const char *dir, const char *file, const char *text) {
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    cpt_err e = {0};
    CHECK_OK(cpt_write_file_atomic(p, text, strlen(text), &e), &e);
}

static void small_pools(const char *dir) {
    cpt_err e = {0};
    CHECK_OK(cpt_mkdirs(dir, &e), &e);
    write_pool(dir, "first_name.txt", "Ann\nBob\n");
    write_pool(dir, "middle_name.txt", "Lee\n");
    write_pool(dir, "last_name.txt", "Ray\n\n  Day  \n");
    write_pool(dir, "city.txt", "Austin, TX\n");
    write_pool(dir, "university.txt", "Rice University\n");
    write_pool(dir, "field.txt", "Physics\n");
    write_pool(dir, "job.txt", "Engineer\n");
    write_pool(dir, "company.txt", "Acme; Dallas, TX\n");
}

static void refused(const char *dir, const char *want1, const char *want2) {
    cpt_bios_fields f;
    cpt_err e = {0};
    int rc = cpt_bios_load_fields(dir, &f, &e);
    CHECKF(rc != 0 && strstr(e.msg, want1) && (!want2 || strstr(e.msg, want2)), "rc %d: %s (want %s, %s)", rc, e.msg, want1,
           want2 ? want2 : "");
}

int main(void) {
    const char *shared = tu_env("CPT_SHARED"), *tmp = tu_env("CPT_TMP");
    char dir[4200], path[4400];
    snprintf(dir, sizeof dir, "%s/data/knowledge-injection/bioS-fields", shared ? shared : "/nonexistent");
    if (!cpt_is_dir(dir)) TEST_SKIP("no bioS fields at %s", dir);
    cpt_err e = {0};
    cpt_bios_fields f;
    CHECK_OK(cpt_bios_load_fields(dir, &f, &e), &e);
    struct {
        const char *file;
        size_t n;
    } want[] = {{"first_name.txt", f.first.n}, {"middle_name.txt", f.middle.n}, {"last_name.txt", f.last.n},
                {"city.txt", f.city.n},        {"university.txt", f.university.n}, {"field.txt", f.field.n},
                {"job.txt", f.job.n},          {"company.txt", f.company.n}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, want[i].file);
        size_t n = count_lines(path);
        CHECKF(n > 0 && n == want[i].n, "%s: %zu values loaded, the file has %zu lines", want[i].file, want[i].n, n);
    }
    CHECK(f.company_city.n == f.company.n);
    CHECK(f.company.n > 0 && !strcmp(f.company.v[0], "3M") && !strcmp(f.company_city.v[0], "Maplewood, MN"));

    /* people */
    enum { N = 400 };
    cpt_bios_person *p = NULL, *p2 = NULL, *p3 = NULL;
    CHECK_OK(cpt_bios_people(&f, N, 0.25, 7, &p, &e), &e);
    CHECK_OK(cpt_bios_people(&f, N, 0.25, 7, &p2, &e), &e);
    CHECK_OK(cpt_bios_people(&f, N, 0.25, 8, &p3, &e), &e);
    size_t ntest = 0, same_other = 0;
    for (size_t i = 0; p && p2 && p3 && i < N; i++) {
        ntest += (size_t)p[i].test;
        for (size_t j = 0; j < i; j++) CHECKF(strcmp(p[i].name, p[j].name) != 0, "people %zu and %zu share the name %s", i, j, p[i].name);
        CHECKF(p[i].year >= 1900 && p[i].year <= 2099 && p[i].month >= 1 && p[i].month <= 12 && p[i].day >= 1 && p[i].day <= 28,
               "person %zu: date %d-%d-%d", i, p[i].year, p[i].month, p[i].day);
        CHECK(!strcmp(p[i].name, p2[i].name) && !strcmp(p[i].date, p2[i].date) && p[i].test == p2[i].test);
        for (int a = 0; a < CPT_BIOS_NATTR; a++) CHECK(p[i].attr[a] && !strcmp(p[i].attr[a], p2[i].attr[a]));
        same_other += !strcmp(p[i].name, p3[i].name);
        char *ans = NULL;
        CHECK((ans = strstr(p[i].date, ", ")) != NULL && atoi(ans + 2) == p[i].year);
    }
    CHECKF(ntest == 100, "%zu test people of %d at 0.25", ntest, N);
    CHECKF(same_other < 5, "seed 8 drew %zu of the same names as seed 7", same_other);

    /* biographies */
    for (size_t i = 0; p && i < 60; i++) {
        char *b0 = cpt_bios_text(&p[i], i, 0, 7), *b1 = cpt_bios_text(&p[i], i, 1, 7), *b0b = cpt_bios_text(&p[i], i, 0, 7);
        CHECK(b0 && b1 && b0b);
        if (!b0 || !b1 || !b0b) break;
        CHECKF(!strcmp(b0, b0b), "biography 0 of person %zu is not a function of the seed", i);
        CHECKF(strcmp(b0, b1) != 0, "person %zu: biographies 0 and 1 are equal: %s", i, b0);
        for (int a = 0; a < CPT_BIOS_NATTR; a++) {
            const char *v = cpt_bios_answer(&p[i], a);
            CHECKF(strstr(b0, v) && strstr(b1, v), "person %zu: %s '%s' is not in <<%s>>", i, cpt_bios_attr_names[a], v, b0);
        }
        CHECKF(count_sub(b0, p[i].name) == CPT_BIOS_NATTR, "person %zu: the name appears %zu times in <<%s>>", i,
               count_sub(b0, p[i].name), b0);
        const char *job = p[i].attr[CPT_BIOS_JOB];
        char bad[300];
        snprintf(bad, sizeof bad, strchr("AEIOU", job[0]) ? " a %s" : " an %s", job);
        CHECKF(!strstr(b0, bad) && !strstr(b1, bad), "person %zu: wrong article in <<%s>>", i, b0);
        char *q = cpt_bios_question(&p[i], CPT_BIOS_BIRTH_CITY);
        CHECK(q && strstr(q, p[i].name));
        for (int j = 0; q && j < cpt_bios_n_paraphrases(CPT_BIOS_BIRTH_CITY); j++) {
            char *pq = cpt_bios_paraphrase(&p[i], CPT_BIOS_BIRTH_CITY, j);
            CHECK(pq && strstr(pq, p[i].name) && strcmp(pq, q) != 0);
            free(pq);
        }
        CHECK(cpt_bios_paraphrase(&p[i], CPT_BIOS_BIRTH_CITY, 3) == NULL);
        free(q), free(b0), free(b1), free(b0b);
    }
    cpt_bios_people_free(p, N);
    cpt_bios_people_free(p2, N);
    cpt_bios_people_free(p3, N);
    cpt_bios_fields_free(&f);

    /* broken pools */
    char bad[4200];
    snprintf(bad, sizeof bad, "%s/test_bios_pools", tmp ? tmp : "/tmp");
    small_pools(bad);
    CHECK_OK(cpt_bios_load_fields(bad, &f, &e), &e);
    CHECK(f.last.n == 2 && !strcmp(f.last.v[1], "Day"));
    p = NULL;
    CHECK(cpt_bios_people(&f, 2, 0.5, 1, &p, &e) == CPT_OK && p && p[0].test + p[1].test == 1);
    cpt_bios_people_free(p, 2);
    cpt_err e2 = {0};
    CHECKF(cpt_bios_people(&f, 3, 0.5, 1, &p, &e2) == CPT_EINVAL && strstr(e2.msg, "4 names"), "%s", e2.msg);
    cpt_bios_fields_free(&f);
    write_pool(bad, "company.txt", "Acme; Dallas, TX\nNoCity Inc\n");
    refused(bad, "company.txt:2", "Name; City");
    write_pool(bad, "company.txt", "Acme; Dallas, TX\n");
    write_pool(bad, "city.txt", "Austin, TX\nSa\xffo Paulo\n");
    refused(bad, "city.txt:2", "UTF-8");
    write_pool(bad, "city.txt", "\n  \n");
    refused(bad, "city.txt", "no values");
    snprintf(path, sizeof path, "%s/city.txt", bad);
    CHECK(remove(path) == 0);
    refused(bad, "city.txt", "HINT");
    snprintf(path, sizeof path, "rm -rf '%s'", bad);
    CHECK(system(path) == 0);
    TEST_END();
}

/* bios.c: bioS-style synthetic biographies and their question/answer pairs (cpt/bios.h). */
#include "cpt/bios.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "cpt/fileio.h"

const char *const cpt_bios_attr_names[CPT_BIOS_NATTR] = {"birth_date", "birth_city", "university", "major",
                                                         "company",    "company_city", "job"};

static const char *const MONTHS[12] = {"January", "February", "March",     "April",   "May",      "June",
                                       "July",    "August",   "September", "October", "November", "December"};

/* ---------------- attribute pools ---------------- */

static void pool_free(cpt_bios_pool *p) {
    for (size_t i = 0; i < p->n; i++) free(p->v[i]);
    free(p->v);
    memset(p, 0, sizeof *p);
}

static int pool_push(cpt_bios_pool *p, const char *s, size_t n, cpt_err *err) {
    if (p->n == 0 || (p->n >= 16 && (p->n & (p->n - 1)) == 0)) { /* capacity 16, 32, 64, ... */
        size_t cap = p->n ? 2 * p->n : 16;
        char **nv = realloc(p->v, cap * sizeof *nv);
        if (!nv) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
        p->v = nv;
    }
    if (!(p->v[p->n] = strndup(s, n))) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    p->n++;
    return CPT_OK;
}

static int utf8_valid(const char *s, size_t n) {
    utf8proc_int32_t cp;
    for (size_t i = 0; i < n;) {
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

int cpt_bios_parse_pool(const char *text, size_t len, const char *label, cpt_bios_pool *p, cpt_bios_pool *city,
                        cpt_err *err) {
    int rc = CPT_OK;
    long ln = 0;
    for (const char *s = text; !rc && s < text + len;) {
        const char *e = memchr(s, '\n', (size_t)(text + len - s));
        if (!e) e = text + len;
        ln++;
        const char *a = s, *b = e;
        while (a < b && (*a == ' ' || *a == '\t' || *a == '\r')) a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t' || b[-1] == '\r')) b--;
        s = e + 1;
        if (a == b) continue;
        if (!utf8_valid(a, (size_t)(b - a)) || memchr(a, 0, (size_t)(b - a))) {
            rc = cpt_err_set(err, CPT_EFORMAT, "%s:%ld: invalid UTF-8. HINT: save the file as UTF-8", label, ln);
            break;
        }
        if (!city) {
            rc = pool_push(p, a, (size_t)(b - a), err);
            continue;
        }
        const char *semi = memchr(a, ';', (size_t)(b - a));
        const char *c = semi ? semi + 1 : NULL, *ne = semi;
        while (c && c < b && *c == ' ') c++;
        while (ne && ne > a && ne[-1] == ' ') ne--;
        if (!semi || ne == a || c >= b) {
            rc = cpt_err_set(err, CPT_EFORMAT, "%s:%ld: a company line is \"Name; City, ST\". HINT: add the city after a ';'",
                             label, ln);
            break;
        }
        rc = pool_push(p, a, (size_t)(ne - a), err);
        if (!rc) rc = pool_push(city, c, (size_t)(b - c), err);
    }
    if (!rc && p->n == 0) rc = cpt_err_set(err, CPT_EFORMAT, "%s: no values. HINT: one value per line", label);
    if (rc) {
        pool_free(p);
        if (city) pool_free(city);
    }
    return rc;
}

void cpt_bios_pool_free(cpt_bios_pool *p) { pool_free(p); }

static int load_pool(const char *dir, const char *file, cpt_bios_pool *p, cpt_bios_pool *city, cpt_err *err) {
    char *path = cpt_path_join(dir, file), *text = NULL;
    size_t len = 0;
    if (!path) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    int rc = cpt_read_file(path, &text, &len, err);
    if (rc) {
        cpt_err_wrap(err, "bioS fields: HINT: --fields takes a directory with first_name.txt, middle_name.txt, "
                          "last_name.txt, city.txt, university.txt, field.txt, job.txt and company.txt "
                          "(../shared/data/knowledge-injection/bioS-fields)");
        free(path);
        return rc;
    }
    rc = cpt_bios_parse_pool(text, len, path, p, city, err);
    free(text);
    free(path);
    return rc;
}

int cpt_bios_load_fields(const char *dir, cpt_bios_fields *f, cpt_err *err) {
    memset(f, 0, sizeof *f);
    int rc = load_pool(dir, "first_name.txt", &f->first, NULL, err);
    if (!rc) rc = load_pool(dir, "middle_name.txt", &f->middle, NULL, err);
    if (!rc) rc = load_pool(dir, "last_name.txt", &f->last, NULL, err);
    if (!rc) rc = load_pool(dir, "city.txt", &f->city, NULL, err);
    if (!rc) rc = load_pool(dir, "university.txt", &f->university, NULL, err);
    if (!rc) rc = load_pool(dir, "field.txt", &f->field, NULL, err);
    if (!rc) rc = load_pool(dir, "job.txt", &f->job, NULL, err);
    if (!rc) rc = load_pool(dir, "company.txt", &f->company, &f->company_city, err);
    if (rc) cpt_bios_fields_free(f);
    return rc;
}

void cpt_bios_fields_free(cpt_bios_fields *f) {
    cpt_bios_pool *ps[] = {&f->first, &f->middle,  &f->last,    &f->city,        &f->university,
                           &f->field, &f->job,     &f->company, &f->company_city};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) pool_free(ps[i]);
}

/* ---------------- people ---------------- */

static uint64_t below(uint64_t *s, uint64_t n) { return cpt_splitmix64(s) % n; }

static uint64_t str_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

int cpt_bios_people(const cpt_bios_fields *f, size_t n, double test_frac, uint64_t seed, cpt_bios_person **out,
                    cpt_err *err) {
    *out = NULL;
    double names = (double)f->first.n * (double)f->middle.n * (double)f->last.n;
    if (n == 0 || (double)n > names / 2)
        return cpt_err_set(err, CPT_EINVAL, "%zu people: the name pools give %.0f names; ask for 1 to %.0f people", n,
                           names, names / 2);
    if (!(test_frac >= 0 && test_frac <= 1))
        return cpt_err_set(err, CPT_EINVAL, "test fraction %g is not in [0, 1]", test_frac);
    cpt_bios_person *p = calloc(n, sizeof *p);
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    char **set = calloc(cap, sizeof *set); /* open addressing over the names drawn so far */
    if (!p || !set) {
        free(p), free(set);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory for %zu people", n);
    }
    uint64_t s = cpt_mix64(seed ^ 0x62696f53ull);
    int rc = CPT_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        cpt_bios_person *q = &p[i];
        char name[512];
        for (;;) {
            snprintf(name, sizeof name, "%s %s %s", f->first.v[below(&s, f->first.n)], f->middle.v[below(&s, f->middle.n)],
                     f->last.v[below(&s, f->last.n)]);
            size_t h = (size_t)(str_hash(name) & (cap - 1));
            while (set[h] && strcmp(set[h], name)) h = (h + 1) & (cap - 1);
            if (set[h]) continue; /* drawn before: draw again */
            if (!(q->name = strdup(name))) rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
            set[h] = q->name;
            break;
        }
        q->year = 1900 + (int)below(&s, 200), q->month = 1 + (int)below(&s, 12), q->day = 1 + (int)below(&s, 28);
        snprintf(q->date, sizeof q->date, "%s %d, %d", MONTHS[q->month - 1], q->day, q->year);
        q->attr[CPT_BIOS_BIRTH_DATE] = q->date;
        q->attr[CPT_BIOS_BIRTH_CITY] = f->city.v[below(&s, f->city.n)];
        q->attr[CPT_BIOS_UNIVERSITY] = f->university.v[below(&s, f->university.n)];
        q->attr[CPT_BIOS_MAJOR] = f->field.v[below(&s, f->field.n)];
        size_t c = below(&s, f->company.n);
        q->attr[CPT_BIOS_COMPANY] = f->company.v[c];
        q->attr[CPT_BIOS_COMPANY_CITY] = f->company_city.v[c];
        q->attr[CPT_BIOS_JOB] = f->job.v[below(&s, f->job.n)];
    }
    /* the test people: exactly round(test_frac * n) of them, a seeded partial shuffle */
    size_t nt = (size_t)(test_frac * (double)n + 0.5);
    size_t *idx = rc ? NULL : malloc(n * sizeof *idx);
    if (!rc && !idx) rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
    for (size_t i = 0; idx && i < n; i++) idx[i] = i;
    uint64_t t = cpt_mix64(seed ^ 0x74657374ull);
    for (size_t i = 0; idx && i < nt; i++) {
        size_t j = i + (size_t)below(&t, n - i), k = idx[i];
        idx[i] = idx[j], idx[j] = k;
        p[idx[i]].test = 1;
    }
    free(idx);
    free(set);
    if (rc) {
        cpt_bios_people_free(p, n);
        return rc;
    }
    *out = p;
    return CPT_OK;
}

void cpt_bios_people_free(cpt_bios_person *p, size_t n) {
    for (size_t i = 0; p && i < n; i++) free(p[i].name);
    free(p);
}

const char *cpt_bios_answer(const cpt_bios_person *p, int a) { return a >= 0 && a < CPT_BIOS_NATTR ? p->attr[a] : NULL; }

/* ---------------- text ---------------- */

/* "%N" is the full name, "%V" the value, "%A" the value after "a" or "an". Sentence templates per attribute (our wording,
 * several per attribute as bioS has). */
#define NT 5
static const char *const SENT[CPT_BIOS_NATTR][NT] = {
    {"%N was born on %V.", "%N's birthday is %V.", "%N came into this world on %V.", "%N was born on %V, a date the family still celebrates.",
     "The birth of %N took place on %V."},
    {"%N was born in %V.", "%N spent the early years of life in %V.", "%N's hometown is %V.", "%N grew up in %V.",
     "%N's place of birth is %V."},
    {"%N studied at %V.", "%N received a degree from %V.", "%N graduated from %V.", "%N completed an education at %V.",
     "%N attended %V."},
    {"%N majored in %V.", "%N focused on %V during university.", "%N chose %V as a field of study.",
     "%N earned a degree in %V.", "%N's studies were in %V."},
    {"%N worked for %V.", "%N was employed by %V.", "%N built a career at %V.", "%N held a position at %V.",
     "%N joined the staff of %V."},
    {"%N worked in %V.", "%N's workplace was in %V.", "%N was based in %V for work.", "%N commuted to an office in %V.",
     "%N's job took them to %V."},
    {"%N worked as %A.", "%N's occupation was %V.", "%N made a living as %A.", "%N was %A by profession.",
     "%N earned a living working as %A."},
};

/* The canonical questions (the evaluation's) and the paraphrased ones (instruction data). */
static const char *const QUESTION[CPT_BIOS_NATTR] = {
    "What is the birth date of %N?",      "What is the birth city of %N?", "Which university did %N study at?",
    "What major did %N study?",           "Which company did %N work for?", "Where did %N work?",
    "What was the occupation of %N?"};
#define NP 3
static const char *const PARA[CPT_BIOS_NATTR][NP] = {
    {"When was %N born?", "On what date was %N born?", "Tell me %N's date of birth."},
    {"In which city was %N born?", "Where is %N from?", "Name the city where %N was born."},
    {"Where did %N go to university?", "Which school did %N graduate from?", "Name the university %N attended."},
    {"What did %N major in?", "What field did %N study?", "Which subject was %N's major?"},
    {"Who employed %N?", "At which company did %N work?", "Name %N's employer."},
    {"In which city did %N work?", "Where was %N's workplace?", "Name the city where %N was employed."},
    {"What did %N do for a living?", "What was %N's job?", "Name %N's profession."},
};

static char *fill(const char *tmpl, const char *name, const char *val) {
    size_t cap = strlen(tmpl) + 4 * strlen(name) + (val ? 4 * strlen(val) : 0) + 1;
    char *o = malloc(cap), *w = o;
    if (!o) return NULL;
    for (const char *t = tmpl; *t; t++) {
        if (t[0] == '%' && (t[1] == 'N' || t[1] == 'V' || t[1] == 'A')) {
            const char *s = t[1] == 'N' ? name : (val ? val : "");
            if (t[1] == 'A') {
                int vowel = strchr("AEIOUaeiou", s[0]) != NULL && s[0];
                memcpy(w, vowel ? "an " : "a ", vowel ? 3 : 2), w += vowel ? 3 : 2;
            }
            size_t l = strlen(s);
            memcpy(w, s, l), w += l, t++;
        } else *w++ = *t;
    }
    *w = 0;
    return o;
}

char *cpt_bios_text(const cpt_bios_person *p, size_t i, int k, uint64_t seed) {
    uint64_t s = cpt_mix64(cpt_mix64(seed ^ 0x74657874ull) ^ cpt_mix64((uint64_t)i * 1000003u + (uint64_t)k + 1));
    int order[CPT_BIOS_NATTR];
    for (int a = 0; a < CPT_BIOS_NATTR; a++) order[a] = a;
    for (int a = CPT_BIOS_NATTR - 1; a > 0; a--) {
        int j = (int)below(&s, (uint64_t)a + 1), t = order[a];
        order[a] = order[j], order[j] = t;
    }
    size_t cap = 1024, n = 0;
    char *o = malloc(cap);
    for (int j = 0; o && j < CPT_BIOS_NATTR; j++) {
        int a = order[j];
        char *sent = fill(SENT[a][below(&s, NT)], p->name, p->attr[a]);
        if (!sent) {
            free(o);
            return NULL;
        }
        size_t l = strlen(sent);
        if (n + l + 2 > cap) {
            while (n + l + 2 > cap) cap *= 2;
            char *no = realloc(o, cap);
            if (!no) {
                free(sent), free(o);
                return NULL;
            }
            o = no;
        }
        if (n) o[n++] = ' ';
        memcpy(o + n, sent, l + 1);
        n += l;
        free(sent);
    }
    return o;
}

char *cpt_bios_question(const cpt_bios_person *p, int a) {
    return a >= 0 && a < CPT_BIOS_NATTR ? fill(QUESTION[a], p->name, NULL) : NULL;
}

int cpt_bios_n_paraphrases(int a) { return a >= 0 && a < CPT_BIOS_NATTR ? NP : 0; }

char *cpt_bios_paraphrase(const cpt_bios_person *p, int a, int j) {
    return a >= 0 && a < CPT_BIOS_NATTR && j >= 0 && j < NP ? fill(PARA[a][j], p->name, NULL) : NULL;
}

/* ---------------- writing the set ---------------- */

typedef struct {
    cpt_awrite w;
    int open;
} out_file;

static int put_json(out_file *f, json_t *o, cpt_err *err) {
    if (!o) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    int rc = cpt_fwrite_all(f->w.f, s, strlen(s), f->w.path, err);
    if (!rc) rc = cpt_fwrite_all(f->w.f, "\n", 1, f->w.path, err);
    free(s);
    return rc;
}

static json_t *qa_text(const char *q, const char *a) {
    size_t n = strlen(q) + strlen(a) + 32;
    char *t = malloc(n);
    if (!t) return NULL;
    snprintf(t, n, "Question: %s\nAnswer: %s", q, a);
    json_t *o = json_pack("{s:s}", "text", t);
    free(t);
    return o;
}

static json_t *qa_chat(const char *q, const char *a) {
    return json_pack("{s:[{s:s,s:s},{s:s,s:s}]}", "messages", "role", "user", "content", q, "role", "assistant",
                     "content", a);
}

enum { F_PEOPLE, F_BIOS, F_QTRAIN, F_QTEST, F_QTRAIN_TEXT, F_INSTR_TEXT, F_QTRAIN_CHAT, F_INSTR_CHAT, F_N };
static const char *const FILES[F_N] = {"people.jsonl",        "bios.jsonl",          "qa_train.jsonl",
                                       "qa_test.jsonl",       "qa_train.text.jsonl", "instruct.text.jsonl",
                                       "qa_train.chat.jsonl", "instruct.chat.jsonl"};

int cpt_bios_write(const cpt_bios_fields *f, const cpt_bios_opts *o, const char *out_dir, cpt_bios_stats *st,
                   cpt_err *err) {
    memset(st, 0, sizeof *st);
    if (o->bios_per_person < 1) return cpt_err_set(err, CPT_EINVAL, "--bios-per-person must be at least 1");
    if (o->paraphrases < 0 || o->paraphrases > NP)
        return cpt_err_set(err, CPT_EINVAL, "--paraphrases must be 0 to %d (the paraphrase forms per attribute)", NP);
    cpt_bios_person *p = NULL;
    int rc = cpt_bios_people(f, o->people, o->test_frac, o->seed, &p, err);
    if (rc) return rc;
    rc = cpt_mkdirs(out_dir, err);
    out_file fs[F_N];
    memset(fs, 0, sizeof fs);
    for (int k = 0; k < F_N && !rc; k++) {
        char *path = cpt_path_join(out_dir, FILES[k]);
        rc = path ? cpt_awrite_open(&fs[k].w, path, err) : cpt_err_set(err, CPT_ENOMEM, "out of memory");
        fs[k].open = !rc;
        free(path);
    }
    for (size_t i = 0; i < o->people && !rc; i++) {
        const cpt_bios_person *q = &p[i];
        json_t *pj = json_pack("{s:I,s:s}", "id", (json_int_t)i, "name", q->name);
        for (int a = 0; pj && a < CPT_BIOS_NATTR; a++) json_object_set_new(pj, cpt_bios_attr_names[a], json_string(q->attr[a]));
        if (pj) json_object_set_new(pj, "split", json_string(q->test ? "test" : "train"));
        rc = put_json(&fs[F_PEOPLE], pj, err);
        q->test ? st->test_people++ : st->train_people++;
        for (int k = 0; k < o->bios_per_person && !rc; k++) {
            char *t = cpt_bios_text(q, i, k, o->seed);
            if (!t) {
                rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
                break;
            }
            st->bio_bytes += (long long)strlen(t);
            rc = put_json(&fs[F_BIOS], json_pack("{s:s,s:I}", "text", t, "person", (json_int_t)i), err);
            free(t);
            st->bios++;
        }
        for (int a = 0; a < CPT_BIOS_NATTR && !rc; a++) {
            const char *ans = cpt_bios_answer(q, a);
            char *qs = cpt_bios_question(q, a);
            if (!qs) {
                rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
                break;
            }
            rc = put_json(&fs[q->test ? F_QTEST : F_QTRAIN],
                          json_pack("{s:s,s:[s],s:I,s:s}", "question", qs, "answers", ans, "person", (json_int_t)i,
                                    "attribute", cpt_bios_attr_names[a]),
                          err);
            q->test ? st->qa_test++ : st->qa_train++;
            if (!rc && !q->test) rc = put_json(&fs[F_QTRAIN_TEXT], qa_text(qs, ans), err);
            if (!rc && !q->test) rc = put_json(&fs[F_QTRAIN_CHAT], qa_chat(qs, ans), err);
            free(qs);
            for (int j = 0; j < o->paraphrases && !rc; j++) {
                char *ps = cpt_bios_paraphrase(q, a, j);
                if (!ps) {
                    rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
                    break;
                }
                rc = put_json(&fs[F_INSTR_TEXT], qa_text(ps, ans), err);
                if (!rc) rc = put_json(&fs[F_INSTR_CHAT], qa_chat(ps, ans), err);
                free(ps);
                st->instruct++;
            }
        }
    }
    for (int k = 0; k < F_N; k++) {
        if (!fs[k].open) continue;
        if (!rc) rc = cpt_awrite_commit(&fs[k].w, err);
        else cpt_awrite_abort(&fs[k].w);
    }
    st->people = o->people;
    cpt_bios_people_free(p, o->people);
    return rc;
}

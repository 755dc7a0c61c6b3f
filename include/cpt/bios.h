/* cpt/bios.h: synthetic biographies with question/answer pairs in the style of bioS
 * (Allen-Zhu & Li, "Physics of Language Models: Part 3.1", arXiv 2309.14316), built from
 * the attribute pools of ../shared/data/knowledge-injection/bioS-fields (issue 15: a
 * knowledge-injection test whose facts no pretrained model can know).
 *
 * Each person has a unique full name (first middle last) and seven attributes drawn
 * uniformly and independently: birth date (month, day 1-28, year 1900-2099), birth city,
 * university, major (field), employer (company) and the employer's city (from the
 * company line "Company; City"), and job. A biography states each attribute in one
 * sentence (one of several templates per attribute, the full name in every sentence as
 * bioS's "fullname" variant, the sentences in a random order); K biographies per person
 * differ in templates and order (bioS's multiK augmentation).
 *
 * Questions: one canonical question per attribute ("What is the birth city of NAME?";
 * answer "Princeton, NJ"), the form the evaluation asks; and for Knowledge-Instruct-style
 * training data, paraphrased questions (other wording, same short answers).
 *
 * People are split: a fraction test_frac (chosen by the seed) are "test" people, whose
 * biographies are trained on but whose questions are held out; the others are "train"
 * people, whose questions may be trained on (PIT's setting). Everything is a function
 * of (fields, n, seed): a run repeats. */
#ifndef CPT_BIOS_H
#define CPT_BIOS_H

#include <stddef.h>
#include <stdint.h>

#include "cpt/common.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    CPT_BIOS_BIRTH_DATE = 0,
    CPT_BIOS_BIRTH_CITY,
    CPT_BIOS_UNIVERSITY,
    CPT_BIOS_MAJOR,
    CPT_BIOS_COMPANY,
    CPT_BIOS_COMPANY_CITY,
    CPT_BIOS_JOB,
    CPT_BIOS_NATTR
};

/* "birth_date", "birth_city", "university", "major", "company", "company_city", "job". */
extern const char *const cpt_bios_attr_names[CPT_BIOS_NATTR];

typedef struct cpt_bios_pool {
    char **v;
    size_t n;
} cpt_bios_pool;

typedef struct cpt_bios_fields {
    cpt_bios_pool first, middle, last, city, university, field, job;
    cpt_bios_pool company, company_city; /* the two halves of company.txt's "Name; City" lines */
} cpt_bios_fields;

/* Read first_name.txt, middle_name.txt, last_name.txt, city.txt, university.txt,
 * field.txt, job.txt and company.txt from dir: one value per line, surrounding whitespace
 * removed, blank lines skipped. A missing file, an empty pool, invalid UTF-8 or a company
 * line without "; City" is an error naming the file (and line). */
int cpt_bios_load_fields(const char *dir, cpt_bios_fields *f, cpt_err *err);
/* One pool file's text (label names it in errors): the values appended to p, and with
 * city != NULL (company.txt) each line split at ';' into p (name) and city. On error both
 * pools are emptied. */
int cpt_bios_parse_pool(const char *text, size_t len, const char *label, cpt_bios_pool *p, cpt_bios_pool *city,
                        cpt_err *err);
void cpt_bios_pool_free(cpt_bios_pool *p);
void cpt_bios_fields_free(cpt_bios_fields *f);

typedef struct cpt_bios_person {
    char *name;                          /* "First Middle Last", unique in the set */
    int year, month, day;                /* month 1-12, day 1-28 */
    const char *attr[CPT_BIOS_NATTR];    /* value strings (pool-owned; birth date: NULL, see date) */
    char date[40];                       /* "March 7, 1954" */
    int test;                            /* 1: QA held out */
} cpt_bios_person;

/* Draw n people (unique names; CPT_EINVAL when the pools cannot give n distinct names). */
int cpt_bios_people(const cpt_bios_fields *f, size_t n, double test_frac, uint64_t seed, cpt_bios_person **out,
                    cpt_err *err);
void cpt_bios_people_free(cpt_bios_person *p, size_t n);

/* The answer string of attribute a (the date for CPT_BIOS_BIRTH_DATE). */
const char *cpt_bios_answer(const cpt_bios_person *p, int a);
/* Biography number k of person i (malloc'ed; NULL when out of memory): templates and
 * sentence order from (seed, i, k). */
char *cpt_bios_text(const cpt_bios_person *p, size_t i, int k, uint64_t seed);
/* The canonical question about attribute a (malloc'ed). */
char *cpt_bios_question(const cpt_bios_person *p, int a);
/* Number of paraphrased question forms per attribute, and form j (malloc'ed). */
int cpt_bios_n_paraphrases(int a);
char *cpt_bios_paraphrase(const cpt_bios_person *p, int a, int j);

typedef struct cpt_bios_opts {
    size_t people;
    int bios_per_person;  /* K >= 1 */
    int paraphrases;      /* paraphrased questions per (person, attribute) in instruct.jsonl */
    double test_frac;
    uint64_t seed;
} cpt_bios_opts;

typedef struct cpt_bios_stats {
    size_t people, train_people, test_people, bios, qa_train, qa_test, instruct;
    long long bio_bytes;
} cpt_bios_stats;

/* Write the data set into out_dir (created; each file written to FILE.tmp and renamed):
 *   people.jsonl       one {"id", "name", <attributes>, "split": "train"|"test"} per person
 *   bios.jsonl         {"text", "person"}: every person's K biographies (all people)
 *   qa_train.jsonl     {"question", "answers": [A], "person", "attribute"}: canonical
 *                      questions of the train people (cpt eval's qa:FILE format)
 *   qa_test.jsonl      the same for the test people (held out: the evaluation)
 *   qa_train.text.jsonl  {"text": "Question: Q\nAnswer: A"} of qa_train (the prompt form
 *                      of cpt eval's QA tasks), for `cpt data prepare` (PIT's QA data)
 *   instruct.text.jsonl  paraphrased questions about every person with the same answers,
 *                      in the same text form (Knowledge-Instruct: the documents' facts as
 *                      instructions; its wording differs from the evaluation's)
 *   qa_train.chat.jsonl, instruct.chat.jsonl  the same pairs as {"messages": [...]} for
 *                      `cpt data prepare --chat` */
int cpt_bios_write(const cpt_bios_fields *f, const cpt_bios_opts *o, const char *out_dir, cpt_bios_stats *st,
                   cpt_err *err);

#ifdef __cplusplus
}
#endif
#endif

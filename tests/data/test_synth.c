/* test_synth.c: the pieces of `cpt synth qa` (cpt/synth.h) on hand-written inputs:
 *   - replies parsed into pairs: "Q:/A:", "Question:/Answer:", numbered ("1.", "Q1:"),
 *     bold markers, multi-line fields, text before the first question, a question without
 *     an answer, a second "A:" replacing the first;
 *   - grounding: the share of the answer's content words (stop words out) found in the
 *     document, after SQuAD normalisation (case, punctuation, articles);
 *   - {document} / {n} filling, --types parsing, the templates file and its errors.
 * The whole command runs on SmolLM2 in tests/cli/test_synth_cli.py. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/synth.h"
#include "testutil.h"

static void pairs_are(const char *reply, size_t n, const char *const *want) {
    cpt_qa_pair *p = NULL;
    size_t k = 0;
    CHECK(cpt_synth_parse_pairs(reply, &p, &k) == CPT_OK);
    CHECKF(k == n, "%zu pairs from <<%s>>, want %zu", k, reply, n);
    for (size_t i = 0; i < k && i < n; i++)
        CHECKF(!strcmp(p[i].q, want[2 * i]) && !strcmp(p[i].a, want[2 * i + 1]), "pair %zu: <%s> <%s>, want <%s> <%s>", i, p[i].q,
               p[i].a, want[2 * i], want[2 * i + 1]);
    cpt_synth_pairs_free(p, k);
}

static void test_parse(void) {
    pairs_are("Q: What is PCD?\nA: Programmed cell death.\n\nQ: Which plant?\nA: The lace plant.", 2,
              (const char *const[]){"What is PCD?", "Programmed cell death.", "Which plant?", "The lace plant."});
    pairs_are("Here are the questions:\n1. Question: How many cells?\n   Answer: About five cells\n   from the vasculature.\n"
              "2. **Question:** Why?\n**Answer:** Because of mitochondria.",
              2, (const char *const[]){"How many cells?", "About five cells from the vasculature.", "Why?", "Because of mitochondria."});
    pairs_are("Q1: First?\nA1: one\nQ2: Second?\nQ3: Third?\nA3: three\nA3: THREE", 2,
              (const char *const[]){"First?", "one", "Third?", "THREE"}); /* Q2 has no answer; the later A replaces */
    pairs_are("A: an answer before any question\nQ: what\nnext line?\nA: yes", 1, (const char *const[]){"what next line?", "yes"});
    pairs_are("no pairs at all\njust text", 0, NULL);
    pairs_are("", 0, NULL);
    pairs_are("Q: question only", 0, NULL);
    pairs_are("- Q: dashed?\n- A: dashed answer\n\nsome trailing chatter", 1, (const char *const[]){"dashed?", "dashed answer"});
    pairs_are("Quality: high\nAnswered: no\nQ: real?\nA: real", 1, (const char *const[]){"real?", "real"}); /* words that start with Q/A */
}

static void test_support(void) {
    const char *doc = "Programmed cell death (PCD) is the regulated death of cells. The lace plant produces perforations in 2009.";
    CHECK(fabs(cpt_synth_support("The lace plant.", doc) - 1.0) < 1e-12);
    CHECK(fabs(cpt_synth_support("Perforations in the LACE plant, 2009!", doc) - 1.0) < 1e-12);
    CHECK(fabs(cpt_synth_support("lace plant leaves", doc) - 2.0 / 3) < 1e-12);         /* leaves not in the text */
    CHECK(fabs(cpt_synth_support("It is a regulated process", doc) - 1.0 / 2) < 1e-12); /* content words: regulated, process */
    CHECK(cpt_synth_support("it is the", doc) == 0);                                    /* no content words */
    CHECK(cpt_synth_support("mitochondria", doc) == 0);
    CHECK(cpt_synth_support("anything", "") == 0);
}

static void test_fill_types_templates(void) {
    char *s = cpt_synth_fill("Write {n} pairs about:\n{document}\n({n}) {x}", "DOC", 3);
    CHECK(s && !strcmp(s, "Write 3 pairs about:\nDOC\n(3) {x}"));
    free(s);
    for (int t = 0; t < CPT_SYNTH_NTYPES; t++) CHECK(strstr(cpt_synth_default_templates[t], "{document}") != NULL);
    unsigned mask = 0;
    cpt_err e = {0};
    CHECK_OK(cpt_synth_parse_types("factual,summary", &mask, &e), &e);
    CHECK(mask == ((1u << CPT_SYNTH_FACTUAL) | (1u << CPT_SYNTH_SUMMARY)));
    CHECK(cpt_synth_parse_types("factual,opinion", &mask, &e) == CPT_EINVAL && strstr(e.msg, "\"opinion\"") && strstr(e.msg, "HINT"));
    memset(&e, 0, sizeof e);
    CHECK(cpt_synth_parse_types(",", &mask, &e) == CPT_EINVAL);
    const char *t = getenv("CPT_TMP");
    char p[512];
    snprintf(p, sizeof p, "%s/test_synth_tmpl.json", t ? t : "/tmp");
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"{\"reasoning\": \"Why? {document} ({n})\"}", NULL},
        {"{\"opinion\": \"{document}\"}", "unknown key \"opinion\""},
        {"{\"factual\": \"no placeholder\"}", "\"factual\" must be a string containing {document}"},
        {"{\"factual\": 3}", "\"factual\" must be a string"},
        {"[\"x\"]", "not a JSON object"},
        {"{\"factual\": ", "test_synth_tmpl.json:1:"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        FILE *f = fopen(p, "wb");
        if (!f) continue;
        fputs(cases[i].text, f), fclose(f);
        char *out[CPT_SYNTH_NTYPES];
        memset(&e, 0, sizeof e);
        int rc = cpt_synth_load_templates(p, out, &e);
        if (!cases[i].want) {
            CHECK_OK(rc, &e);
            CHECK(!out[CPT_SYNTH_FACTUAL] && out[CPT_SYNTH_REASONING] && !strcmp(out[CPT_SYNTH_REASONING], "Why? {document} ({n})"));
            for (int k = 0; k < CPT_SYNTH_NTYPES; k++) free(out[k]);
        } else {
            CHECKF(rc != CPT_OK && strstr(e.msg, cases[i].want) && strstr(e.msg, p), "case %zu: '%s', want '%s'", i, e.msg, cases[i].want);
            for (int k = 0; k < CPT_SYNTH_NTYPES; k++) CHECK(out[k] == NULL);
        }
    }
}

int main(void) {
    test_parse();
    test_support();
    test_fill_types_templates();
    TEST_END();
}

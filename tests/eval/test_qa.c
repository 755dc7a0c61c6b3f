/* test_qa.c: QA scoring (cpt/qa.h) and generation with stop strings (cpt/generate.h).
 *   - SQuAD normalisation on hand-worked strings: lower case (also non-ASCII), ASCII
 *     punctuation only, articles only between word boundaries ("another", "theatre" stay;
 *     "a" after a non-ASCII dash goes), whitespace runs (also U+00A0) collapsed;
 *   - exact match and token F1 worked by hand (SQuAD v1.1: multiset overlap, 0 when no
 *     overlap or an empty side);
 *   - the JSONL loader: the three item shapes, answer order and de-duplication, and each
 *     malformed line refused naming file:line;
 *   - cpt_generate on a tiny random model with a byte tokenizer: a reply cut at the first
 *     stop string is the prefix of the uncut reply (greedy is prefix-consistent), sampling
 *     repeats with its seed;
 *   - cpt_qa_run: per-item scores are the best over the gold answers, the means theirs.
 * The replies themselves are compared with transformers in test_qa_ref.py. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cpt/generate.h"
#include "cpt/model.h"
#include "cpt/qa.h"
#include "cpt/tokenizer.h"
#include "testutil.h"

static void norm_is(const char *in, const char *want) {
    char *got = cpt_qa_normalize(in);
    CHECKF(got && !strcmp(got, want), "normalize(\"%s\") = \"%s\", want \"%s\"", in, got ? got : "(null)", want);
    free(got);
}

static void test_normalize(void) {
    norm_is("The Beatles!", "beatles");
    norm_is("  A  cat,\tand\nan  owl. ", "cat and owl");
    norm_is("another theatre; then", "another theatre then"); /* articles only as whole words */
    norm_is("Rock-'n'-Roll", "rocknroll");                    /* ASCII punctuation is removed, not spaced */
    norm_is("the", "");
    norm_is("", "");
    norm_is("THE END", "end");
    norm_is("Île-de-France", "îledefrance");                  /* non-ASCII lower case */
    norm_is("caf\xc3\xa9\xe2\x80\x94" "a place", "caf\xc3\xa9\xe2\x80\x94 place"); /* U+2014 is no word char: "a" goes; not punctuation: it stays */
    norm_is("na\xc3\xafve\xc2\xa0" "answer", "na\xc3\xafve answer");               /* U+00A0 is whitespace */
    norm_is("\xc3\xa9" "a", "\xc3\xa9" "a");                                      /* "a" after a letter is no article */
    norm_is("a_b the_c", "ab thec");                                              /* '_' is in string.punctuation */
    norm_is("3a the2 a", "3a the2");                                              /* digits are word characters */
    norm_is("an\"an\" the", "anan");                                                /* punctuation goes first: "anan" is no article */
}

static void test_metrics(void) {
    CHECK(cpt_qa_exact_match("The Beatles!", "beatles") == 1);
    CHECK(cpt_qa_exact_match("Beatles band", "beatles") == 0);
    CHECK(fabs(cpt_qa_f1("the cat sat", "a cat sat down") - 0.8) < 1e-12); /* P 1, R 2/3 */
    CHECK(fabs(cpt_qa_f1("cat cat", "cat") - 2.0 / 3) < 1e-12);            /* overlap counted once: P 1/2, R 1 */
    CHECK(fabs(cpt_qa_f1("cat dog", "dog cat") - 1.0) < 1e-12);
    CHECK(cpt_qa_f1("", "cat") == 0 && cpt_qa_f1("cat", "") == 0 && cpt_qa_f1("the", "a") == 0);
    CHECK(cpt_qa_f1("horse", "Equus caballus") == 0);
}

static const char *tmp_path(const char *name, char *buf, size_t cap) {
    const char *t = getenv("CPT_TMP");
    snprintf(buf, cap, "%s/%s", t ? t : "/tmp", name);
    return buf;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (f) fputs(text, f), fclose(f);
}

static void test_loader(void) {
    char p[512];
    cpt_err e = {0};
    cpt_qa_task t;
    tmp_path("test_qa_ok.jsonl", p, sizeof p);
    write_file(p, "{\"question\": \"Capital of France?\", \"answers\": [\"Paris\", \"paris\", \"Paris\"]}\n\n"
                  "{\"context\": \"Question: Largest planet?\\nAnswer: \", \"answer\": \"Jupiter\", \"aliases\": [\"Jupiter\", \"Jove\"]}\n"
                  "{\"context\": \"Q: 2+2=\", \"continuation\": \"4\", \"answers\": \"four\"}\n");
    char name[600];
    snprintf(name, sizeof name, "qa:%s", p);
    memset(&e, 0, sizeof e);
    CHECK_OK(cpt_qa_load(&t, name, ".", &e), &e);
    CHECKF(t.n == 3, "items: %zu", t.n);
    if (t.n == 3) {
        CHECK(!strcmp(t.items[0].context, "Question: Capital of France?\nAnswer:"));
        CHECK(t.items[0].n_answers == 2 && !strcmp(t.items[0].answers[0], "Paris") && !strcmp(t.items[0].answers[1], "paris"));
        CHECK(!strcmp(t.items[1].context, "Question: Largest planet?\nAnswer:")); /* trailing space removed */
        CHECK(t.items[1].n_answers == 2 && !strcmp(t.items[1].answers[1], "Jove"));
        CHECK(t.items[2].n_answers == 2 && !strcmp(t.items[2].answers[0], "4") && !strcmp(t.items[2].answers[1], "four"));
        CHECK(t.n_until == 1 && !strcmp(t.until[0], "\n"));
    }
    cpt_qa_task_free(&t);
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"{\"question\": \"x\", \"answers\": [\"a\"]}\n{oops\n", "test_qa_bad.jsonl:2: invalid JSON"},
        {"{\"answers\": [\"a\"]}", ":1: needs a string \"question\" or \"context\""},
        {"{\"question\": \"x\"}", ":1: no gold answer"},
        {"{\"question\": \"x\", \"answers\": [\"\"]}", ":1: no gold answer"},
        {"{\"question\": \"x\", \"answers\": [1]}", ":1: answers[0] is not a string"},
        {"{\"question\": \"x\", \"aliases\": {}}", ":1: \"aliases\" must be a string or an array"},
        {"[1]", ":1: needs a string"},
        {"\n \n", "test_qa_bad.jsonl: no items"},
    };
    tmp_path("test_qa_bad.jsonl", p, sizeof p);
    snprintf(name, sizeof name, "qa:%s", p);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(p, bad[i].text);
        memset(&e, 0, sizeof e);
        int rc = cpt_qa_load(&t, name, ".", &e);
        CHECKF(rc == CPT_EFORMAT && strstr(e.msg, bad[i].want) && strstr(e.msg, "HINT"), "bad %zu: rc %d '%s', want '%s'", i, rc,
               e.msg, bad[i].want);
        CHECK(t.n == 0 && t.items == NULL);
    }
    memset(&e, 0, sizeof e);
    int nf = cpt_qa_load(&t, "qa:/no/such/file.jsonl", ".", &e);
    CHECKF(nf != CPT_OK && strstr(e.msg, "/no/such/file.jsonl") && strstr(e.msg, "HINT"), "missing file: %d %s", nf, e.msg);
    memset(&e, 0, sizeof e);
    CHECK(cpt_qa_load(&t, "squad", ".", &e) == CPT_ENOTFOUND && strstr(e.msg, "triviaqa"));
    CHECK(cpt_qa_is_task("triviaqa") && cpt_qa_is_task("qa:x.jsonl") && !cpt_qa_is_task("hellaswag"));
}

#define CFG                                                                                                  \
    "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 260, \"hidden_size\": 32, \"intermediate_size\": " \
    "48, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, "                 \
    "\"max_position_embeddings\": 512, \"tie_word_embeddings\": false, \"eos_token_id\": 257}"

static void test_generate_and_run(void) {
    cpt_err e = {0};
    cpt_config c;
    cpt_model *m = NULL;
    CHECK_OK(cpt_config_parse(&c, CFG, strlen(CFG), "tiny/config.json", &e), &e);
    CHECK_OK(cpt_model_create(&m, &c, &e), &e);
    cpt_config_free(&c);
    if (!m) return;
    cpt_model_init_random(m, 11, 0.5f);
    char dir[512];
    tmp_path("test_qa_tok", dir, sizeof dir);
    mkdir(dir, 0755);
    cpt_tok *tok = NULL;
    CHECK_OK(cpt_tok_write_bytelevel(dir, &e), &e);
    CHECK_OK(cpt_tok_load(&tok, dir, &e), &e);
    if (!tok) return;
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(cpt_tok_encode(tok, "Question: why?\nAnswer:", 23, 0, &ids, &n, NULL, &e), &e);
    /* uncut greedy reply, then the same with a stop string taken from inside it */
    cpt_gen_opts o = {.max_new = 40, .temperature = 0, .top_p = 1};
    cpt_gen_out full = {0}, cut = {0}, s1 = {0}, s2 = {0};
    CHECK_OK(cpt_generate(m, tok, ids, n, &o, &full, &e), &e);
    CHECK(full.text && full.n_tokens == 40 && full.stop == 0);
    size_t fl = full.text ? strlen(full.text) : 0;
    if (fl >= 6) {
        char stop[4] = {full.text[fl / 2], full.text[fl / 2 + 1], 0, 0};
        const char *stops[] = {"\x01never", stop};
        o.stop_strs = stops, o.n_stop_strs = 2;
        CHECK_OK(cpt_generate(m, tok, ids, n, &o, &cut, &e), &e);
        const char *first = strstr(full.text, stop);
        CHECKF(cut.text && cut.stop == 2 && first && strlen(cut.text) == (size_t)(first - full.text) &&
                   !strncmp(cut.text, full.text, strlen(cut.text)),
               "cut at the first \"%s\": \"%s\" of \"%s\"", stop, cut.text ? cut.text : "", full.text);
        CHECK(cut.n_tokens <= full.n_tokens);
    }
    cpt_gen_opts so = {.max_new = 30, .temperature = 0.9, .top_p = 0.9, .seed = 7};
    CHECK_OK(cpt_generate(m, tok, ids, n, &so, &s1, &e), &e);
    CHECK_OK(cpt_generate(m, tok, ids, n, &so, &s2, &e), &e);
    CHECK(s1.text && s2.text && !strcmp(s1.text, s2.text) && s1.n_tokens == s2.n_tokens);
    free(full.text), free(cut.text), free(s1.text), free(s2.text), free(ids);

    /* cpt_qa_run on a file of three items */
    char p[512], name[600];
    tmp_path("test_qa_run.jsonl", p, sizeof p);
    write_file(p, "{\"question\": \"one\", \"answers\": [\"x y\", \"z\"]}\n{\"question\": \"two\", \"answers\": \"q\"}\n"
                  "{\"question\": \"three\", \"answers\": [\"r s t\"]}\n");
    snprintf(name, sizeof name, "qa:%s", p);
    cpt_qa_task t;
    CHECK_OK(cpt_qa_load(&t, name, ".", &e), &e);
    cpt_qa_opts qo = {0, 1, 1234, 12, 1};
    cpt_qa_result r;
    CHECK_OK(cpt_qa_run(m, tok, &t, &qo, NULL, &r, &e), &e);
    CHECK(r.n == 3 && r.fewshot == 1);
    double se = 0, sf = 0;
    for (size_t i = 0; i < r.n; i++) {
        double em = 0, f1 = 0;
        for (int a = 0; a < t.items[i].n_answers; a++) {
            em = fmax(em, cpt_qa_exact_match(r.replies[i], t.items[i].answers[a]));
            f1 = fmax(f1, cpt_qa_f1(r.replies[i], t.items[i].answers[a]));
        }
        CHECK(r.em_i[i] == em && r.f1_i[i] == f1 && !strchr(r.replies[i], '\n'));
        CHECK(r.shots[i] >= 0 && r.shots[i] < 3 && (size_t)r.shots[i] != i);
        se += em, sf += f1;
    }
    CHECK(fabs(r.em - se / 3) < 1e-12 && fabs(r.f1 - sf / 3) < 1e-12);
    /* batched decoding (2 items at a time: a batch of two, then one of one) gives the same
     * replies, token counts and scores as one at a time (the random model has no near ties) */
    cpt_qa_opts qb = qo;
    qb.batch = 2;
    cpt_qa_result rb;
    CHECK_OK(cpt_qa_run(m, tok, &t, &qb, NULL, &rb, &e), &e);
    CHECK(rb.n == r.n && rb.tokens == r.tokens && rb.em == r.em && rb.f1 == r.f1);
    for (size_t i = 0; i < rb.n && i < r.n; i++)
        CHECKF(!strcmp(rb.replies[i], r.replies[i]) && rb.shots[i] == r.shots[i], "item %zu: batched <%s>, single <%s>", i,
               rb.replies[i], r.replies[i]);
    cpt_qa_result_free(&rb);
    cpt_qa_result_free(&r);
    /* more shots than the file allows */
    cpt_qa_opts big = {0, 3, 1, 12, 1};
    memset(&e, 0, sizeof e);
    CHECK(cpt_qa_run(m, tok, &t, &big, NULL, &r, &e) == CPT_EINVAL && strstr(e.msg, "few-shot"));
    cpt_qa_task_free(&t);
    cpt_tok_free(tok);
    cpt_model_free(m);
}

int main(void) {
    test_normalize();
    test_metrics();
    test_loader();
    test_generate_and_run();
    TEST_END();
}

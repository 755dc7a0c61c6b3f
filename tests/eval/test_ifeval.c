/* test_ifeval.c: the verifiable-instruction rules (cpt/ifeval.h) on hand-labelled replies
 * (each rule with replies that follow it and replies that do not, the edge cases named in
 * the header: fences around JSON, "**bold**", empty paragraphs, trailing whitespace), the
 * JSONL loader's errors (file:line and the field), the built-in set (100 prompts, every
 * rule used), and the runner on a tiny random model with a byte tokenizer: one reply per
 * prompt, the verdicts are the rules applied to the replies, the accuracies their means.
 * The generation itself is compared with transformers in test_ifeval_smollm2.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cpt/eval.h"
#include "cpt/ifeval.h"
#include "cpt/model.h"
#include "cpt/tokenizer.h"
#include "testutil.h"

static int rule(int kind, long long n, const char *s, const char *reply) {
    cpt_if_check c = {kind, n, (char *)s};
    return cpt_if_follows(&c, reply);
}

#define YES(kind, n, s, reply) CHECKF(rule(kind, n, s, reply) == 1, "%s should follow: %s", cpt_if_kind_name(kind), reply)
#define NO(kind, n, s, reply) CHECKF(rule(kind, n, s, reply) == 0, "%s should not follow: %s", cpt_if_kind_name(kind), reply)

static void test_rules(void) {
    YES(CPT_IF_LOWERCASE, 0, NULL, "all quiet in the town, 3 birds.");
    NO(CPT_IF_LOWERCASE, 0, NULL, "all quiet in the Town.");
    NO(CPT_IF_LOWERCASE, 0, NULL, "123 456"); /* no letters */
    YES(CPT_IF_UPPERCASE, 0, NULL, "DANGER: KEEP OUT! 5 M.");
    NO(CPT_IF_UPPERCASE, 0, NULL, "DANGER: keep OUT");
    YES(CPT_IF_MAX_WORDS, 5, NULL, "  one two three four five \n");
    NO(CPT_IF_MAX_WORDS, 5, NULL, "one two three four five six");
    YES(CPT_IF_MIN_WORDS, 3, NULL, "one\ntwo\tthree");
    NO(CPT_IF_MIN_WORDS, 3, NULL, "one two");
    YES(CPT_IF_BULLETS, 3, NULL, "Tips:\n* drink\n- sleep\n  * move\nThat is all.");
    NO(CPT_IF_BULLETS, 3, NULL, "* drink\n* sleep");
    NO(CPT_IF_BULLETS, 2, NULL, "* drink\n*sleep\n**bold** line"); /* "*sleep" and "**bold**" are not bullets */
    YES(CPT_IF_NUMBERED, 3, NULL, "1. boil\n2) wait\n10. eat");
    NO(CPT_IF_NUMBERED, 3, NULL, "1. boil\n2.wait\n3. eat");
    YES(CPT_IF_INCLUDE, 0, "cucumber", "Slice the CUCUMBERS thinly.");
    NO(CPT_IF_INCLUDE, 0, "cucumber", "Slice the tomato.");
    YES(CPT_IF_EXCLUDE, 0, "cute", "A cat is small and soft.");
    NO(CPT_IF_EXCLUDE, 0, "cute", "Cats are Cute.");
    YES(CPT_IF_COUNT_MIN, 3, "Max", "Max ran. max sat. Then MAX slept.");
    NO(CPT_IF_COUNT_MIN, 3, "Max", "Max ran. Maxwell sat. maximum."); /* whole words only */
    YES(CPT_IF_STARTS_WITH, 0, "Certainly", "  certainly! A rainbow is ...");
    NO(CPT_IF_STARTS_WITH, 0, "Certainly", "Sure, certainly.");
    YES(CPT_IF_ENDS_WITH, 0, "See you soon!", "Come at 7. See you soon!  \n");
    NO(CPT_IF_ENDS_WITH, 0, "See you soon!", "See you soon! Bye.");
    YES(CPT_IF_JSON, 0, NULL, "{\"planets\": [\"Mars\", \"Venus\"]}");
    YES(CPT_IF_JSON, 0, NULL, "```json\n{\"a\": 1}\n```");
    YES(CPT_IF_JSON, 0, NULL, "[1, 2, 3]");
    NO(CPT_IF_JSON, 0, NULL, "Here is the JSON: {\"a\": 1}");
    NO(CPT_IF_JSON, 0, NULL, "```json\n{\"a\": 1,}\n```");
    YES(CPT_IF_NO_COMMAS, 0, NULL, "Light scatters. Blue wins.");
    NO(CPT_IF_NO_COMMAS, 0, NULL, "Light scatters, blue wins.");
    YES(CPT_IF_QUOTED, 0, NULL, " \"Ride far, ride free.\" ");
    NO(CPT_IF_QUOTED, 0, NULL, "\"Ride far\", they said.");
    NO(CPT_IF_QUOTED, 0, NULL, "\"");
    YES(CPT_IF_TITLE, 0, NULL, "<<The Sea>>\nWaves roll.");
    NO(CPT_IF_TITLE, 0, NULL, "<<>> Waves roll.");
    NO(CPT_IF_TITLE, 0, NULL, "<<The\nSea>>");
    YES(CPT_IF_PARAGRAPHS, 2, NULL, "Elephants are big.\n***\nThey live long.");
    NO(CPT_IF_PARAGRAPHS, 2, NULL, "Elephants are big.\n\nThey live long."); /* blank line is not the divider */
    NO(CPT_IF_PARAGRAPHS, 2, NULL, "Elephants are big.\n***\n***\nThey live long."); /* an empty paragraph */
    YES(CPT_IF_PARAGRAPHS, 3, NULL, "a *** b *** c");
    YES(CPT_IF_POSTSCRIPT, 0, "P.S.", "Thank you.\n\np.s. I loved it.");
    NO(CPT_IF_POSTSCRIPT, 0, "P.S.", "Thank you. P.S. I loved it."); /* not at a line start */
    YES(CPT_IF_HIGHLIGHTS, 2, NULL, "I like *sleeping in* and **long walks**.");
    NO(CPT_IF_HIGHLIGHTS, 2, NULL, "I like *sleeping in* and long walks.");
    NO(CPT_IF_HIGHLIGHTS, 1, NULL, "a ** b");
    YES(CPT_IF_PLACEHOLDERS, 3, NULL, "Dear [name], at [company] on [date].");
    NO(CPT_IF_PLACEHOLDERS, 3, NULL, "Dear [name], at [] on [da\nte].");
    YES(CPT_IF_ONE_OF, 0, "My answer is yes.|My answer is no.", "My answer is no.");
    NO(CPT_IF_ONE_OF, 0, "My answer is yes.|My answer is no.", "my answer is no");
    YES(CPT_IF_CAPS_MAX, 0, NULL, "Trees give shade. I like them. A tree.");
    NO(CPT_IF_CAPS_MAX, 0, NULL, "Trees are VERY tall.");
    YES(CPT_IF_CAPS_MIN, 2, NULL, "The market is LOUD and BUSY.");
    NO(CPT_IF_CAPS_MIN, 2, NULL, "The market is LOUD. I am here.");
}

static void test_loader(void) {
    cpt_if_set s;
    cpt_err e = {0};
    const char *good = "\n{\"id\": \"a\", \"prompt\": \"Say hi.\", \"checks\": [{\"type\": \"lowercase\"}, {\"type\": \"max_words\", \"n\": 3}]}\r\n"
                       "  \n{\"prompt\": \"Hi?\", \"checks\": [{\"type\": \"include\", \"word\": \"hi\"}]}\n";
    CHECK_OK(cpt_if_parse(&s, good, strlen(good), "good.jsonl", 0, &e), &e);
    CHECK(s.n == 2 && !strcmp(s.items[0].id, "a") && s.items[0].n_checks == 2 && s.items[0].checks[1].n == 3);
    CHECK(s.n == 2 && !strcmp(s.items[1].id, "line-4") && !strcmp(s.items[1].checks[0].s, "hi"));
    cpt_if_free(&s);
    CHECK_OK(cpt_if_parse(&s, good, strlen(good), "good.jsonl", 1, &e), &e);
    CHECK(s.n == 1);
    cpt_if_free(&s);
    struct {
        const char *text, *want;
    } bad[] = {
        {"{\"prompt\": \"x\", \"checks\": [{\"type\": \"rhymes\"}]}\n", "bad.jsonl:1: checks[0]: unknown rule \"rhymes\""},
        {"\n{\"prompt\": \"x\", \"checks\": [{\"type\": \"max_words\"}]}\n", "bad.jsonl:2: checks[0] (max_words) needs \"n\""},
        {"{\"prompt\": \"x\", \"checks\": [{\"type\": \"include\", \"word\": \"\"}]}", "needs \"word\", a non-empty string"},
        {"{\"prompt\": \"x\", \"checks\": []}", "bad.jsonl:1: \"checks\" must be a list of 1 to"},
        {"{\"prompt\": \"\", \"checks\": [{\"type\": \"json\"}]}", "\"prompt\" must be a non-empty string"},
        {"[1, 2]", "bad.jsonl:1: not a JSON object"},
        {"{\"prompt\": \"x\", \"checks\": [{\"type\": \"bullets\", \"n\": -1}]}", "a non-negative integer"},
        {"\n\n", "bad.jsonl: no prompts"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&e, 0, sizeof e);
        int rc = cpt_if_parse(&s, bad[i].text, strlen(bad[i].text), "bad.jsonl", 0, &e);
        CHECKF(rc == CPT_EFORMAT && strstr(e.msg, bad[i].want), "bad %zu: rc %d, message '%s', want '%s'", i, rc, e.msg, bad[i].want);
        CHECK(s.n == 0 && s.items == NULL);
    }
    memset(&e, 0, sizeof e);
    CHECK(cpt_if_load(&s, "/no/such/file.jsonl", 0, &e) == CPT_ENOTFOUND && strstr(e.msg, "HINT"));
    /* the built-in set: 100 prompts, every rule used, ids unique */
    CHECK_OK(cpt_if_load(&s, "ifeval", 0, &e), &e);
    CHECKF(s.n == 100, "built-in prompts: %zu", s.n);
    int used[CPT_IF_NKINDS] = {0};
    for (size_t i = 0; i < s.n; i++) {
        for (int k = 0; k < s.items[i].n_checks; k++) used[s.items[i].checks[k].kind]++;
        for (size_t j = 0; j < i; j++) CHECKF(strcmp(s.items[i].id, s.items[j].id), "duplicate id %s", s.items[i].id);
    }
    for (int k = 0; k < CPT_IF_NKINDS; k++) CHECKF(used[k] > 0, "the built-in set never uses rule %s", cpt_if_kind_name(k));
    cpt_if_free(&s);
}

#define CFG                                                                                                  \
    "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 260, \"hidden_size\": 32, \"intermediate_size\": " \
    "48, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, "                 \
    "\"max_position_embeddings\": 512, \"tie_word_embeddings\": false, \"eos_token_id\": 257}"

static void test_runner(void) {
    cpt_err e = {0};
    cpt_config c;
    cpt_model *m = NULL;
    CHECK_OK(cpt_config_parse(&c, CFG, strlen(CFG), "tiny/config.json", &e), &e);
    CHECK_OK(cpt_model_create(&m, &c, &e), &e);
    cpt_config_free(&c);
    if (!m) return;
    cpt_model_init_random(m, 5, 0.3f);
    char dir[512];
    const char *t = getenv("CPT_TMP");
    snprintf(dir, sizeof dir, "%s/test_ifeval_tok", t ? t : "/tmp");
    mkdir(dir, 0755);
    cpt_tok *tok = NULL;
    CHECK_OK(cpt_tok_write_bytelevel(dir, &e), &e);
    CHECK_OK(cpt_tok_load(&tok, dir, &e), &e);
    if (!tok) return;
    cpt_if_set s;
    CHECK_OK(cpt_if_load(&s, "ifeval", 5, &e), &e);
    const char *tpl = "{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}";
    cpt_if_result r;
    CHECK_OK(cpt_if_run(m, tok, tpl, &s, 12, 1, NULL, &r, &e), &e);
    CHECK(r.n == 5);
    size_t ni = 0;
    double pa = 0, ia = 0;
    for (size_t i = 0; i < r.n; i++) {
        CHECK(r.responses[i] != NULL);
        int all = 1;
        for (int k = 0; k < s.items[i].n_checks; k++, ni++) {
            int f = cpt_if_follows(&s.items[i].checks[k], r.responses[i]);
            CHECK(r.follows[i * CPT_IF_MAX_CHECKS + (size_t)k] == f);
            all &= f, ia += f;
        }
        pa += all;
    }
    CHECK(r.n_inst == ni);
    CHECKF(fabs(r.acc - pa / 5) < 1e-12 && fabs(r.inst_acc - ia / (double)ni) < 1e-12, "acc %g inst %g", r.acc, r.inst_acc);
    /* batched decoding (3 then 2 prompts together) gives the same replies and verdicts */
    cpt_if_result rb;
    CHECK_OK(cpt_if_run(m, tok, tpl, &s, 12, 3, NULL, &rb, &e), &e);
    CHECK(rb.n == r.n && rb.acc == r.acc && rb.inst_acc == r.inst_acc);
    for (size_t i = 0; i < rb.n && i < r.n; i++)
        CHECKF(!strcmp(rb.responses[i], r.responses[i]), "prompt %zu: batched <%s>, single <%s>", i, rb.responses[i], r.responses[i]);
    cpt_if_result_free(&rb);
    cpt_if_result_free(&r);
    /* no chat template: refused with a HINT */
    memset(&e, 0, sizeof e);
    CHECK(cpt_if_run(m, tok, NULL, &s, 12, 1, NULL, &r, &e) != CPT_OK && strstr(e.msg, "chat template"));
    cpt_if_free(&s);
    cpt_tok_free(tok);
    cpt_model_free(m);
}

int main(void) {
    test_rules();
    test_loader();
    test_runner();
    TEST_END();
}
